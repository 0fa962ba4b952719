"""Partial attention: only foreground queries attend fully (PartialFormer, the efficient-ViT deck's
"Proposed Partial Attention"; what it gives and our choices: docs/zoo.md, "The efficient-ViT deck beside
ours").

1. Token separation: a context score per token, then Mean() + Sort() + Gather(): the top
   `fg_ratio` of the tokens form the foreground set, the rest the background set.
2. SQA (single-query attention): a learnable token Q_A attends over the background set, squeezing it
   into one bridge token.
3. MMSA (mixed multi-head self-attention): the foreground tokens and the bridge token attend to each
   other (full attention over K + 1 tokens).
4. The foreground outputs go back to their positions; every background position receives the
   bridge token's MMSA output. A background token's own content survives through the block's
   residual, so its output depends on the foreground set only through Q_A's bridge (SQA + MMSA).

What the deck leaves open, and what is chosen here:
- the context score: the dot product of each token with the mean token of the map (its agreement
  with the global context), divided by sqrt(C); no parameters (sort and gather pass no gradient to a
  score network). Ties keep the row-major order (stable sort).
- the foreground count is round(fg_ratio * H * W), at least 1 and, when the map has more than one
  token, at most H * W - 1 (so the background set is never empty); `fg_ratio=1.0` keeps every token
  in the foreground (plain global attention plus the bridge).
- SQA's output is added to Q_A (the bridge starts from the learnt token). One bridge token; no head
  expansion e or channel reduction r (the slide names them without values): SQA and MMSA have the
  usual q/k/v and output projections.
"""

from __future__ import annotations

import math

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, map_to_tokens, tokens_to_map


def context_scores(tokens: Tensor) -> Tensor:
    """Tensor[B, N, C] -> Tensor[B, N]: each token's dot product with the mean token / sqrt(C)."""
    context = tokens.mean(1, keepdim=True)  # B, 1, C
    return (tokens * context).sum(-1) / math.sqrt(tokens.shape[-1])


def foreground_count(num_tokens: int, fg_ratio: float) -> int:
    """How many tokens form the foreground set (see the module docstring)."""
    if num_tokens == 1 or fg_ratio >= 1.0:
        return num_tokens
    return min(max(round(fg_ratio * num_tokens), 1), num_tokens - 1)


class PartialAttention(nn.Module):
    """Foreground tokens attend fully (MMSA); background tokens are squeezed by Q_A (SQA).

    Args:
        dim: channels.
        num_heads: heads of SQA and MMSA.
        fg_ratio: share of tokens in the foreground set, in (0, 1].
        feat_size: unused (accepted by every mixer).
        qkv_bias: bias in the q/k/v projections.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        fg_ratio: float = 0.5,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 < fg_ratio <= 1.0:
            raise ValueError(f"partial attention: fg_ratio must lie in (0, 1], got {fg_ratio}")
        self.fg_ratio = fg_ratio
        self.bridge = nn.Parameter(trunc_normal_(torch.empty(1, 1, dim), std=0.02))  # Q_A
        self.squeeze = AttentionCore(dim, num_heads=num_heads, qkv_bias=qkv_bias)  # SQA
        self.core = AttentionCore(dim, num_heads=num_heads, qkv_bias=qkv_bias)  # MMSA

    def separate(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Token separation: LongTensor[B, K] foreground and LongTensor[B, N-K] background indices."""
        order = context_scores(tokens).argsort(dim=1, descending=True, stable=True)  # B, N
        k = foreground_count(tokens.shape[1], self.fg_ratio)
        return order[:, :k], order[:, k:]

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        B, C, H, W = x.shape
        tokens = map_to_tokens(x)  # B, N, C
        fg_idx, bg_idx = self.separate(tokens)
        fg = tokens.gather(1, fg_idx[..., None].expand(-1, -1, C))  # B, K, C
        bridge = self.bridge.expand(B, -1, -1)  # B, 1, C
        if bg_idx.shape[1]:
            bg = tokens.gather(1, bg_idx[..., None].expand(-1, -1, C))  # B, N-K, C
            q = self.squeeze.project_q(bridge)  # B, h, 1, d
            k, v = self.squeeze.project_kv(bg)  # B, h, N-K, d
            bridge = bridge + self.squeeze.output(self.squeeze.merge_heads(self.squeeze.attend(q, k, v)))
        mixed = self.core(torch.cat((fg, bridge), 1))  # B, K+1, C
        out = mixed[:, -1:].expand(B, H * W, C).clone()  # background: the bridge's output
        out.scatter_(1, fg_idx[..., None].expand(-1, -1, C), mixed[:, :-1])
        return tokens_to_map(out, H, W)
