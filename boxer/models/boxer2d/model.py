"""BoxeR-2D (Nguyen et al., "BoxeR: Box-Attention for 2D and 3D Transformers", CVPR 2022), spec section 4.

`BoxeR2D(backbone, transformer, *, num_classes, ...)` implements the detector protocol of
docs/CONTRACTS.md: `forward` returns weighted losses (incl. `loss`), `predict` returns detections in
original image pixels (with masks when the transformer has instance-attention), `param_groups` the
optimiser groups (backbone, `linear_box` window offsets, the rest).

Work saved compared with a literal port: heads run on the last decoder layer only at inference;
mask features and mask logits are computed only for the matched queries (training) or the selected
detections (inference), for the predicted class channel only.

Training accelerations, injected as optional parts and off in the paper presets: `one_to_many`
(MS-DETR's auxiliary one-to-many branch, `one_to_many.py`) and `denoising` (DN-DETR / DINO
denoising queries, `denoising.py`); the criterion holds their losses. Inference never runs them.

Open vocabulary: with a `class_head` (the OWL-ViT-style text head of `text_head.py`) the class logits
are similarities with class-name text embeddings; `set_text_embeddings` renames the classes at
inference. The encoder's proposals stay class-agnostic (one objectness score, as in the paper), and
the denoising queries keep their label-embedding table over the training classes (training only).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from boxer.errors import BoxerError
from boxer.models.backbones.base import Backbone
from boxer.models.boxer2d.criterion import SetCriterion, batch_index
from boxer.models.boxer2d.denoising import DenoisingGenerator, DenoisingQueries
from boxer.models.boxer2d.heads import DetectionHead
from boxer.models.boxer2d.masks import MaskHead, mask_targets, paste_and_rescore
from boxer.models.boxer2d.neck import InputProjection, level_masks
from boxer.models.boxer2d.one_to_many import OneToManyBranch
from boxer.models.boxer2d.postprocess import clip_boxes, postprocess
from boxer.models.boxer2d.targets import normalise_targets
from boxer.models.boxer2d.text_head import TextClassHead
from boxer.models.boxer2d.transformer import BoxTransformer, TransformerOutput, pad_indices


class BoxeR2D(nn.Module):
    """BoxeR-2D detector (and instance segmenter when `transformer.with_masks`).

    Args:
        backbone: multi-scale feature extractor (`boxer.models.backbones` API).
        transformer: the encoder / proposals / decoder stack.
        num_classes: object classes (sigmoid outputs, contiguous labels 0..C-1).
        num_queries: two-stage proposals, i.e. decoder queries.
        aux_loss: supervise every decoder layer (and the encoder output), not only the last.
        num_select: detections kept per image at inference.
        nms_iou: class-wise NMS threshold applied to those detections at inference, or None (the
            paper's: no NMS); see `postprocess.suppress_duplicates`.
        criterion: the set criterion (default: `SetCriterion(num_classes)`, weights of
            docs/boxer2d.md "Losses").
        one_to_many: the auxiliary one-to-many branch (training only; the criterion's `o2m_topk`
            sets its assignment), or None.
        denoising: the denoising-query generator (training only), or None.
        class_head: replaces the decoder's class Linear (e.g. `TextClassHead`), or None.
        lr_linear_box_mult: learning-rate factor of the window-offset Linears (`linear_box`), 0.1 as in
            the official code (docs/training.md, "Configuration").
        channels_last: hand the backbone channels-last images, so that its convolutions run in that
            memory format (oneDNN's faster kernels on the CPU, tensor-core layouts on GPUs; about 14%
            off a ResNet-50's training step, docs/performance.md); the same numbers up to float rounding.
    """

    def __init__(
        self,
        backbone: Backbone,
        transformer: BoxTransformer,
        *,
        num_classes: int,
        num_queries: int = 300,
        aux_loss: bool = True,
        num_select: int = 100,
        nms_iou: float | None = None,
        criterion: SetCriterion | None = None,
        one_to_many: OneToManyBranch | None = None,
        denoising: DenoisingGenerator | None = None,
        class_head: nn.Module | None = None,
        lr_linear_box_mult: float = 0.1,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if num_classes < 1 or num_queries < 1:
            raise BoxerError(f"num_classes and num_queries must be >= 1, got {num_classes} and {num_queries}")
        self.num_classes, self.num_queries = num_classes, num_queries
        if nms_iou is not None and not 0 < nms_iou <= 1:
            raise BoxerError(f"nms_iou must lie in (0, 1] (or None for no NMS), got {nms_iou}")
        self.aux_loss, self.num_select, self.nms_iou = aux_loss, num_select, nms_iou
        self.with_masks = transformer.with_masks
        self.backbone = backbone
        self.neck = InputProjection(
            backbone.out_channels,
            transformer.dim,
            in_strides=getattr(backbone, "out_strides", None),
            num_levels=transformer.num_levels,
        )
        self.transformer = transformer
        self.head = DetectionHead(transformer.dim, num_classes, class_head=class_head)
        self.mask_head = MaskHead(transformer.dim, num_classes) if self.with_masks else None
        self.criterion = criterion or SetCriterion(num_classes)
        self.one_to_many = one_to_many
        self.denoising = denoising
        if lr_linear_box_mult < 0:
            raise BoxerError(f"lr_linear_box_mult must be >= 0, got {lr_linear_box_mult}")
        self.lr_linear_box_mult = lr_linear_box_mult
        self.channels_last = channels_last

    @property
    def text_head(self) -> TextClassHead | None:
        """The text class head, or None for a class Linear."""
        head = self.head.class_embed
        return head if isinstance(head, TextClassHead) else None

    def set_text_embeddings(self, text_embeddings: Tensor) -> None:
        """Renames the classes (inference): text_embeddings Tensor[C, E] of the new prompts, label c =
        row c. Only the text head's buffer and `num_classes` change."""
        if self.text_head is None:
            raise BoxerError("this BoxeR-2D has a class Linear, not a text head (class_head='text')")
        if self.with_masks:
            raise BoxerError("renaming classes needs a box-only model (the mask head is per class)")
        self.text_head.set_text_embeddings(text_embeddings)
        self.num_classes = self.text_head.num_classes

    def _run(
        self, images: Tensor, pad_mask: Tensor | None, *, dense: bool, denoise: DenoisingQueries | None = None
    ) -> TransformerOutput:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        srcs = self.neck(self.backbone(images))  # L x (B, d, H_l, W_l)
        masks = level_masks(pad_mask, [s.shape[-2:] for s in srcs])
        return self.transformer(
            srcs, masks, num_queries=self.num_queries, dense=dense, denoise=denoise, box_head=self.head.boxes
        )

    def forward(self, images: Tensor, pad_mask: Tensor | None, targets: list[dict]) -> dict[str, Tensor]:
        """Weighted training losses.

        Args:
            images: Tensor[B, 3, H, W] normalised, zero-padded bottom-right.
            pad_mask: Tensor[B, H, W] bool, True = padding (or None).
            targets: per image, the dataset contract (`boxes` xyxy pixels of the transformed image,
                `labels`, `size`, and `masks` for mask models).

        Returns:
            `loss_ce`, `loss_bbox`, `loss_giou` (+ `loss_mask`, `loss_dice`), with `_i` per auxiliary
            decoder layer and `_enc_0` for the encoder output (`_o2m` / `_dn` terms of the
            accelerations when on), and `loss`, their sum.
        """
        norm = normalise_targets(targets, self.num_classes, images.device)
        dn = self.denoising(norm) if self.denoising is not None else None
        out = self._run(images, pad_mask, dense=self.aux_loss, denoise=dn)  # dense: for the encoder loss
        layers = list(range(len(out.states)))[-1:] if not self.aux_loss else list(range(len(out.states)))
        hs = torch.stack([out.states[i].t3 for i in layers])  # L, B, Q, d
        logits, boxes = self.head(hs, out.windows(layers))  # L, B, Q, C / L, B, Q, 4
        outputs = {"logits": logits, "boxes": boxes}
        if self.aux_loss:
            p = out.proposals
            outputs.update(enc_logits=p.enc_logits, enc_boxes=p.enc_boxes, enc_valid=p.enc_valid)
        if self.one_to_many is not None:
            h = self.one_to_many([out.states[i].t2 for i in layers])  # L, B, Q, d
            outputs["o2m_logits"], outputs["o2m_boxes"] = self.head(h, out.windows(layers))
        if dn is not None:
            hd = torch.stack([out.dn_states[i] for i in layers])  # L, B, D, d
            outputs["dn_logits"], outputs["dn_boxes"] = self.head(
                hd, out.dn_windows(layers, dn.windows).to(hd.dtype)
            )
            outputs.update(dn_gt=dn.gt_index, dn_positive=dn.positive, dn_groups=dn.groups)
        indices = self.criterion.match(outputs, norm)
        mask_logits = mask_tgts = None
        if self.with_masks:
            mask_logits, mask_tgts = self._train_masks(out, layers, logits, indices[0], targets)
        return self.criterion(outputs, norm, indices=indices, mask_logits=mask_logits, mask_targets=mask_tgts)

    def _train_masks(self, out: TransformerOutput, layers: list[int], logits: Tensor, indices, targets):
        """Mask logits and targets Tensor[K, 28, 28] of the matched pairs of every supervised layer."""
        gt = []
        for i, t in enumerate(targets):
            if "masks" not in t:
                raise BoxerError(f"target of image id {t.get('image_id', i)}: a mask model needs 'masks'")
            gt.append(mask_targets(t["masks"], t["boxes"], 2 * self.transformer.mask_grid))
        mask_logits, mask_tgts = [], []
        for k, layer in enumerate(layers):
            index, real = pad_indices([q for q, _ in indices[k]], logits.device)
            feats = self.transformer.mask_features(out, layer, index)[real]  # K, m, m, d
            b, q = batch_index(indices[k])
            classes = logits[k][b.to(logits.device), q.to(logits.device)].argmax(-1)  # K
            mask_logits.append(self.mask_head(feats, classes))
            tgt = [g[j.to(g.device)] for g, (_, j) in zip(gt, indices[k])]
            mask_tgts.append(
                torch.cat(tgt).to(logits.device) if tgt else logits.new_zeros(0, *gt[0].shape[1:])
            )
        return mask_logits, mask_tgts

    @torch.no_grad()
    def predict(self, images: Tensor, pad_mask: Tensor | None, targets: list[dict]) -> list[dict]:
        """Detections per image.

        Args:
            images, pad_mask: as in `forward`.
            targets: per image `orig_size` (h0, w0); boxes are not needed.

        Returns:
            per image `boxes: Tensor[K, 4]` xyxy in original pixels, `scores: Tensor[K]`,
            `labels: Tensor[K]`, and for mask models `masks: Tensor[K, h0, w0]` bool (scores rescored).
        """
        for i, t in enumerate(targets):
            if "orig_size" not in t:
                raise BoxerError(f"target of image id {t.get('image_id', i)}: needs 'orig_size' (h0, w0)")
        out = self._run(images, pad_mask, dense=False)
        last = out.states[-1].t3  # B, Q, d
        logits, boxes = self.head(last, out.layer_windows(-1))
        # Mask models paste with the unclipped boxes (as the official code), then clip them.
        dets = postprocess(
            logits, boxes, targets, num_select=self.num_select, clip=not self.with_masks, nms_iou=self.nms_iou
        )
        if self.with_masks:
            self._predict_masks(out, logits, dets, targets)
        for d in dets:
            d.pop("queries")
        return dets

    def _predict_masks(
        self, out: TransformerOutput, logits: Tensor, dets: list[dict], targets: list[dict]
    ) -> None:
        """Adds `masks` to `dets` and rescores them, computing mask features of the picked queries only.

        Each mask is pasted into its full (unclipped) box and cut off at the image border, as in the
        official post-processing; the boxes are clipped afterwards."""
        uniq = [torch.unique(d["queries"], return_inverse=True) for d in dets]
        index, real = pad_indices([u for u, _ in uniq], logits.device)
        feats = self.transformer.mask_features(out, len(out.states) - 1, index)  # B, U, m, m, d
        classes = logits.argmax(-1).gather(1, index)  # B, U
        mlog = self.mask_head(feats[real], classes[real])  # sum U, 2m, 2m
        start = 0
        for (u, inverse), d, t in zip(uniq, dets, targets):
            per_query = mlog[start : start + len(u)]
            start += len(u)
            h0, w0 = (int(v) for v in t["orig_size"])
            d["masks"], d["scores"] = paste_and_rescore(per_query[inverse], d["boxes"], d["scores"], h0, w0)
            d["boxes"] = clip_boxes(d["boxes"], h0, w0)

    def param_groups(self, lr: float, *, lr_backbone: float) -> list[dict]:
        """Optimiser groups: backbone at `lr_backbone`, window offsets (`linear_box`) at
        `lr * lr_linear_box_mult`, the rest at `lr`. Frozen parameters are left out."""
        groups: dict[str, list] = {"backbone": [], "linear_box": [], "rest": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            key = (
                "backbone"
                if name.startswith("backbone.")
                else "linear_box"
                if "linear_box" in name
                else "rest"
            )
            groups[key].append(p)
        lrs = {"backbone": lr_backbone, "linear_box": lr * self.lr_linear_box_mult, "rest": lr}
        return [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]

    def export_wrapper(self) -> nn.Module:
        """The module `boxer export` traces: inference plus post-processing (boxer2d/export.py)."""
        from boxer.models.boxer2d.export import BoxeRExport

        return BoxeRExport(self)
