"""Prediction heads of BoxeR-2D (Nguyen et al., CVPR 2022; docs/boxer2d.md): a sigmoid class Linear
and a box MLP that refines a reference window, box = sigmoid(MLP(h) + logit(reference)).

The decoder's head is shared by all decoder layers (applied once to the stacked layer outputs); the
encoder's proposal head (`enc_detector`) is a class-agnostic instance of the same module. A
`class_head` module (e.g. the text head of `text_head.py`) replaces the class Linear.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from boxer.models.boxer2d.blocks import MLP, inverse_sigmoid


class DetectionHead(nn.Module):
    """Class logits and boxes from hidden states.

    Args:
        dim: input width.
        num_classes: sigmoid outputs (no "no-object" column).
        prior_prob: initial foreground probability; class bias = -log((1 - p) / p) (-4.595 at 0.01).
        class_head: a module Tensor[..., d] -> Tensor[..., num_classes] used instead of the Linear.
    """

    def __init__(
        self, dim: int, num_classes: int, *, prior_prob: float = 0.01, class_head: nn.Module | None = None
    ) -> None:
        super().__init__()
        if class_head is not None:
            self.class_embed = class_head
        else:
            self.class_embed = nn.Linear(dim, num_classes)
            nn.init.constant_(self.class_embed.bias, -math.log((1 - prior_prob) / prior_prob))
        self.bbox_embed = MLP(dim, dim, 4, num_layers=3, zero_last=True)

    def classify(self, h: Tensor) -> Tensor:
        """h: Tensor[..., d] -> logits Tensor[..., C]."""
        return self.class_embed(h)

    def boxes(self, h: Tensor, reference: Tensor) -> Tensor:
        """h: Tensor[..., d], reference: Tensor[..., 4] cxcywh in [0, 1] -> boxes Tensor[..., 4] likewise."""
        return torch.sigmoid(self.bbox_embed(h) + inverse_sigmoid(reference))

    def forward(self, h: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
        return self.classify(h), self.boxes(h, reference)
