"""Two-stage proposals of BoxeR-2D (Nguyen et al., CVPR 2022; docs/boxer2d.md): score every encoder
token, keep the top-k valid ones, turn them into detached decoder reference windows, content queries
and query positions.

A token is excluded (score -65504) when it is padded OR its reference centre lies outside
(border, 1 - border) in x or y: the fixed rule of the official code (commit 7dd7edb), not the
paper-era AND (docs/boxer2d.md, "Deviations from the official code").

Performance: the class logit (d -> 1) runs on every token; the box MLP runs on every token only when
the dense outputs are needed for the encoder loss (training), otherwise only on the top-k.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from boxer.models.boxer2d.heads import DetectionHead
from boxer.models.boxer2d.position import box_position_embedding

MASKED_LOGIT = -65504.0


class Proposals(NamedTuple):
    """Decoder inputs and the encoder outputs for the encoder loss."""

    windows: Tensor  # B, K, 4 cxcywh valid-normalised, detached
    tgt: Tensor  # B, K, d content queries
    pos: Tensor  # B, K, d query positions
    enc_logits: Tensor | None  # B, S, 1 or C (dense, training)
    enc_boxes: Tensor | None  # B, S, 4 (dense, training)
    enc_valid: Tensor | None  # B, S bool (dense, training)


def valid_tokens(windows: Tensor, padding_mask: Tensor | None, *, border: float = 0.01) -> Tensor:
    """Tokens allowed as proposals: not padded, centre inside (border, 1 - border). Tensor[B, S] bool."""
    centre = windows[..., :2]
    valid = ((centre > border) & (centre < 1 - border)).all(-1)  # B, S
    return valid if padding_mask is None else valid & ~padding_mask


class ProposalGenerator(nn.Module):
    """`enc_detector` (class-agnostic head) + `enc_linear` (Linear + LayerNorm content queries).

    Args:
        dim: model width.
        border: margin of the border rule.
        num_classes: outputs of the encoder's class head: 1 (class-agnostic, the paper's) or the
            detector's classes (the `enc_class_aware` acceleration: tokens are ranked by their best
            class score and the encoder loss learns classes, docs/training.md).
    """

    def __init__(self, dim: int, *, border: float = 0.01, num_classes: int = 1) -> None:
        super().__init__()
        self.border = border
        self.enc_detector = DetectionHead(dim, num_classes)
        self.enc_linear = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        nn.init.xavier_uniform_(self.enc_linear[0].weight)

    def forward(
        self, memory: Tensor, windows: Tensor, padding_mask: Tensor | None, *, num_queries: int, dense: bool
    ) -> Proposals:
        """Selects proposals.

        Args:
            memory: Tensor[B, S, d] encoder output.
            windows: Tensor[B, S, 4] the tokens' reference windows (valid-normalised cxcywh).
            padding_mask: Tensor[B, S] bool (True = padding) or None.
            num_queries: k; at most S are kept.
            dense: also return the dense encoder outputs for the encoder loss.

        Returns:
            Proposals with K = min(num_queries, S).
        """
        B, S, d = memory.shape
        valid = valid_tokens(windows, padding_mask, border=self.border)
        logits = self.enc_detector.classify(memory)  # B, S, 1 (or C, class-aware)
        scores = logits.max(-1).values.masked_fill(~valid, MASKED_LOGIT)
        k = min(num_queries, S)
        idx = torch.topk(scores.detach(), k, dim=1, sorted=False).indices  # B, K
        picked = memory.gather(1, idx[..., None].expand(-1, -1, d))  # B, K, d
        ref = windows.gather(1, idx[..., None].expand(-1, -1, 4))  # B, K, 4
        if dense:
            enc_boxes = self.enc_detector.boxes(memory, windows)  # B, S, 4
            boxes = enc_boxes.gather(1, idx[..., None].expand(-1, -1, 4))
        else:
            enc_boxes = None
            boxes = self.enc_detector.boxes(picked, ref)
        boxes = boxes.detach()
        tgt = self.enc_linear(picked.detach())
        pos = box_position_embedding(boxes, d)
        if not dense:
            return Proposals(boxes, tgt, pos, None, None, None)
        return Proposals(
            boxes, tgt, pos, logits.masked_fill(~valid[..., None], MASKED_LOGIT), enc_boxes, valid
        )
