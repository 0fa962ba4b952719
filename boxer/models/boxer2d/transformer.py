"""The BoxeR-2D transformer (Nguyen et al., CVPR 2022; docs/boxer2d.md): box positional embedding,
box-attention encoder, two-stage proposals and the decoder, on the projected multi-level maps of the neck.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from boxer.models.boxer2d.decoder import BoxDecoder, LayerState
from boxer.models.boxer2d.denoising import DenoisingQueries, attention_mask
from boxer.models.boxer2d.encoder import BoxEncoder
from boxer.models.boxer2d.neck import encoder_windows, flatten_levels, valid_ratios
from boxer.models.boxer2d.position import box_position_embedding
from boxer.models.boxer2d.proposals import ProposalGenerator, Proposals


class Memory(NamedTuple):
    """The encoder output and what attending to it needs."""

    value: Tensor  # B, S, d
    spatial_shapes: Tensor  # L, 2
    valid_ratios: Tensor  # B, L, 2
    padding_mask: Tensor | None  # B, S


class TransformerOutput(NamedTuple):
    states: list[LayerState]  # per decoder layer, Tensor[B, K, d] each (matching queries)
    proposals: Proposals
    memory: Memory
    dn_states: list[Tensor] | None = None  # per decoder layer, Tensor[B, D, d] denoising outputs
    references: list[Tensor] | None = None  # per decoder layer, the windows Tensor[B, K, 4] it used
    dn_references: list[Tensor] | None = None  # the same for the denoising queries, Tensor[B, D, 4]

    def windows(self, layers: list[int]) -> Tensor:
        """The reference windows of the given decoder layers, Tensor[len(layers), B, K, 4] (or the
        proposal windows Tensor[B, K, 4], shared by every layer, without box refinement)."""
        if self.references is None:
            return self.proposals.windows
        return torch.stack([self.references[i] for i in layers])

    def layer_windows(self, layer: int) -> Tensor:
        """The reference windows Tensor[B, K, 4] of decoder layer `layer` (e.g. -1, the last)."""
        return self.proposals.windows if self.references is None else self.references[layer]

    def dn_windows(self, layers: list[int], noised: Tensor) -> Tensor:
        """The denoising queries' reference windows of the given layers: the noised boxes
        `noised: Tensor[B, D, 4]` without box refinement, else Tensor[len(layers), B, D, 4]."""
        if self.dn_references is None:
            return noised
        return torch.stack([self.dn_references[i] for i in layers])


class BoxTransformer(nn.Module):
    """Encoder + two-stage proposals + decoder.

    Args:
        dim: model width d.
        num_heads: attention heads.
        num_levels: feature levels.
        enc_layers: encoder layers.
        dec_layers: decoder layers.
        ffn_dim: FFN hidden width.
        grid_size: box-attention grid side m.
        ref_size: encoder window side in cells of the token's level.
        with_masks: instance-attention in the decoder.
        mask_grid: instance-attention grid side.
        residual_mode: mask-feature residual, "v1" or "v2".
        enc_classes: outputs of the encoder's proposal class head (1 = class-agnostic, the paper's).
        box_refine: iterative box refinement (each decoder layer attends through the previous
            layer's detached predicted boxes; off in the paper's model).
        checkpoint_layers: activation checkpointing of every encoder and decoder layer in training
            (less memory for about one more forward pass of the layers; same numbers).
    """

    def __init__(
        self,
        dim: int = 256,
        *,
        num_heads: int = 8,
        num_levels: int = 4,
        enc_layers: int = 6,
        dec_layers: int = 6,
        ffn_dim: int = 1024,
        grid_size: int = 2,
        ref_size: float = 4.0,
        with_masks: bool = False,
        mask_grid: int = 14,
        residual_mode: str = "v1",
        enc_classes: int = 1,
        box_refine: bool = False,
        checkpoint_layers: bool = False,
    ) -> None:
        super().__init__()
        if enc_layers < 1 or dec_layers < 1:
            raise ValueError(
                f"need at least one encoder and decoder layer, got {enc_layers} and {dec_layers}"
            )
        self.dim, self.num_levels, self.ref_size = dim, num_levels, ref_size
        self.with_masks, self.mask_grid = with_masks, mask_grid
        self.box_refine = box_refine
        common = {"num_heads": num_heads, "num_levels": num_levels, "ffn_dim": ffn_dim,
                  "checkpoint": checkpoint_layers}  # fmt: skip
        self.encoder = BoxEncoder(dim, num_layers=enc_layers, grid_size=grid_size, **common)
        self.proposals = ProposalGenerator(dim, num_classes=enc_classes)
        self.decoder = BoxDecoder(
            dim,
            num_layers=dec_layers,
            grid_size=grid_size,
            with_masks=with_masks,
            mask_grid=mask_grid,
            residual_mode=residual_mode,
            **common,
        )

    def forward(
        self,
        srcs: list[Tensor],
        masks: list[Tensor] | None,
        *,
        num_queries: int,
        dense: bool,
        denoise: DenoisingQueries | None = None,
        box_head: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> TransformerOutput:
        """Runs the encoder and decoder.

        Args:
            srcs: per level Tensor[B, d, H_l, W_l] (the neck's output).
            masks: per level Tensor[B, H_l, W_l] bool (True = padding), or None.
            num_queries: proposals kept.
            dense: also return the dense encoder outputs (for the encoder loss).
            denoise: denoising queries (training), decoded before the proposals under the
                denoising attention mask; their layer outputs come back in `dn_states`.
            box_head: `(hidden Tensor[B, Q, d], windows Tensor[B, Q, 4]) -> boxes Tensor[B, Q, 4]`,
                the detector's box head; needed when the transformer refines boxes.
        """
        B = srcs[0].shape[0]
        src, padding_mask, shapes = flatten_levels(srcs, masks)  # B, S, d
        ratios = valid_ratios(masks, B, len(srcs), src.device).to(src.dtype)  # B, L, 2
        windows = encoder_windows(shapes, ratios, ref_size=self.ref_size)  # B, S, 4
        pos = box_position_embedding(windows, self.dim)  # B, S, d
        memory = self.encoder(src, pos, shapes, windows, ratios, padding_mask)
        props = self.proposals(memory, windows, padding_mask, num_queries=num_queries, dense=dense)
        mem = Memory(memory, shapes, ratios, padding_mask)
        refine = None
        if self.box_refine:
            if box_head is None:
                raise ValueError("box_refine needs the detector's box head (box_head=...)")

            def refine(t: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
                boxes = box_head(t, w.to(t.dtype)).detach()
                return boxes, box_position_embedding(boxes, self.dim)

        if denoise is None:
            states, used = self.decoder(
                props.tgt, props.pos, memory, shapes, props.windows, ratios, padding_mask, refine=refine
            )
            return TransformerOutput(states, props, mem, references=used if refine else None)
        n = denoise.num
        mask = attention_mask(denoise.real, denoise.groups, denoise.per_group, props.tgt.shape[1])
        tgt, pos, windows = (
            torch.cat((a.to(b.dtype), b), 1)
            for a, b in ((denoise.tgt, props.tgt), (denoise.pos, props.pos), (denoise.windows, props.windows))
        )
        both, used = self.decoder(
            tgt, pos, memory, shapes, windows, ratios, padding_mask, mask, refine=refine
        )
        states = [LayerState(*(x[:, n:] for x in s)) for s in both]
        refs = dn_refs = None
        if refine is not None:
            refs, dn_refs = [w[:, n:] for w in used], [w[:, :n] for w in used]
        return TransformerOutput(states, props, mem, [s.t3[:, :n] for s in both], refs, dn_refs)

    def mask_features(self, out: TransformerOutput, layer: int, index: Tensor) -> Tensor:
        """Mask features of layer `layer` for queries `index: LongTensor[B, K]` (per image). Returns
        Tensor[B, K, m_I, m_I, d]."""

        def take(x: Tensor) -> Tensor:
            return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))

        state = LayerState(*(take(s) for s in out.states[layer]))
        mem = out.memory
        if out.references is None:
            windows, pos = take(out.proposals.windows), take(out.proposals.pos)
        else:  # box refinement: the windows this layer attended through, and their positions
            windows = take(out.references[layer])
            pos = box_position_embedding(windows, self.dim).to(state.t1.dtype)
        return self.decoder.layers[layer].mask_features(
            state,
            pos,
            mem.value,
            mem.spatial_shapes,
            windows,
            mem.valid_ratios,
            mem.padding_mask,
        )


def pad_indices(indices: list[Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
    """Per-image query indices -> (LongTensor[B, Kmax] padded with 0, BoolTensor[B, Kmax] real)."""
    kmax = max((len(i) for i in indices), default=0)
    index = torch.zeros(len(indices), kmax, dtype=torch.long, device=device)
    real = torch.zeros(len(indices), kmax, dtype=torch.bool, device=device)
    for b, idx in enumerate(indices):
        index[b, : len(idx)] = idx.to(device)
        real[b, : len(idx)] = True
    return index, real
