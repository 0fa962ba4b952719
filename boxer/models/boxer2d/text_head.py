"""Text-conditioned class head for BoxeR-2D (`class_head="text"`), after OWL-ViT (Minderer et al.,
"Simple Open-Vocabulary Object Detection with Vision Transformers", ECCV 2022, section 3.1).

The class Linear of `heads.py` is replaced by a comparison with class-name text embeddings:

    logits[..., c] = exp(log_scale) * cos(proj(h), t_c) + shift(h)

`proj` maps a decoder query's hidden state to the text space, `t_c` is the (frozen) text embedding of
class c's prompt, `log_scale` a learned temperature (CLIP's, initialised at 10 as a logit scale) and
`shift(h)` OWL-ViT's learned per-query logit shift, initialised at the focal-loss prior, so the
head starts where `DetectionHead` starts (-4.6 for every class). Deviation from OWL-ViT: its logit
scale is per query too (an ELU of a Linear); here it is one learned scalar.

The text embeddings are a buffer (`text_embeddings`, saved with the weights): a trained model needs
the text encoder only for class names it was not trained with, and renaming the classes
(`set_text_embeddings`) changes nothing but this buffer. The focal loss, the matcher and the
post-processing take these logits like the Linear's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

MAX_LOG_SCALE = math.log(100.0)  # CLIP's clamp on the learned temperature


class TextClassHead(nn.Module):
    """Scaled cosine similarity between query and text embeddings.

    Args:
        dim: query width d.
        text_embeddings: Tensor[C, E], one row per class prompt (normalised here).
        prior_prob: initial foreground probability of every class.
        init_scale: initial temperature exp(log_scale).
    """

    def __init__(
        self, dim: int, text_embeddings: Tensor, *, prior_prob: float = 0.01, init_scale: float = 10.0
    ) -> None:
        super().__init__()
        if text_embeddings.ndim != 2 or len(text_embeddings) < 1:
            raise ValueError(f"text_embeddings: expected Tensor[C, E], got {tuple(text_embeddings.shape)}")
        self.text_dim = text_embeddings.shape[1]
        self.proj = nn.Linear(dim, self.text_dim)
        self.shift = nn.Linear(dim, 1)
        nn.init.zeros_(self.shift.weight)
        nn.init.constant_(self.shift.bias, -math.log((1 - prior_prob) / prior_prob))
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.register_buffer("text_embeddings", F.normalize(text_embeddings.detach().float(), dim=-1))

    @property
    def num_classes(self) -> int:
        return self.text_embeddings.shape[0]

    def set_text_embeddings(self, text_embeddings: Tensor) -> None:
        """Replaces the class set: text_embeddings Tensor[C', E] (any C'); nothing else changes."""
        if text_embeddings.ndim != 2 or text_embeddings.shape[1] != self.text_dim:
            raise ValueError(
                f"text_embeddings: expected Tensor[C, {self.text_dim}], got {tuple(text_embeddings.shape)}"
            )
        dev = self.text_embeddings.device
        self.text_embeddings = F.normalize(text_embeddings.detach().float(), dim=-1).to(dev)

    def embed_queries(self, h: Tensor) -> Tensor:
        """h: Tensor[..., d] -> Tensor[..., E] unit-norm query embeddings in the text space."""
        return F.normalize(self.proj(h).float(), dim=-1)

    def forward(self, h: Tensor) -> Tensor:
        """h: Tensor[..., d] -> logits Tensor[..., C]."""
        cos = self.embed_queries(h) @ self.text_embeddings.t()  # ..., C
        scale = self.log_scale.clamp(max=MAX_LOG_SCALE).exp()
        return scale * cos + self.shift(h).float()
