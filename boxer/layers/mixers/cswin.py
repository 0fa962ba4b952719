"""Cross-shaped window attention (Dong et al., "CSWin Transformer", CVPR 2022), the "(d)
cross-shaped window" pattern of the efficient-ViT deck (docs/zoo.md, "The efficient-ViT deck beside ours").

The heads are split in two halves: the first half attends within horizontal stripes (`stripe_width`
rows, the full width), the second within vertical stripes (`stripe_width` columns, the full height),
so together a token sees the cross through it. Positions come from LePE (locally-enhanced positional
encoding): a 3x3 depthwise convolution of the values added to the attention output, as in CSWin.

Deviations: one stripe width for all stages (CSWin grows it with depth; a keyword here); a side
that is not a multiple of the stripe width is zero-padded and the padded keys are masked; CSWin's
last stage (a map no wider than the stripe) is the same code with a single stripe. With an odd number
of heads the horizontal half gets the extra head; one head attends horizontally only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, map_to_tokens, tokens_to_map


class CrossShapedWindowAttention(nn.Module):
    """Half the heads in horizontal stripes, half in vertical stripes, plus LePE.

    Args:
        dim: channels.
        num_heads: heads (split between the two directions).
        stripe_width: rows (columns) per horizontal (vertical) stripe.
        lepe: add the 3x3 depthwise positional term on the values.
        feat_size: unused (accepted by every mixer).
        qkv_bias: bias in the q/k/v projection.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        stripe_width: int = 2,
        lepe: bool = True,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if stripe_width < 1:
            raise ValueError(f"cross-shaped window attention: stripe_width must be >= 1, got {stripe_width}")
        self.stripe_width = stripe_width
        self.core = AttentionCore(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.lepe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim) if lepe else None

    def _stripes(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention within horizontal stripes: Tensor[B, h', H, W, d] each -> Tensor[B, h', H, W, d]."""
        B, h, H, W, d = q.shape
        sw = min(self.stripe_width, H)
        pad = (-H) % sw
        n = (H + pad) // sw

        def split(t: Tensor) -> Tensor:
            t = F.pad(t, (0, 0, 0, 0, 0, pad)).reshape(B, h, n, sw * W, d)  # B, h', nS, sw*W, d
            return t.transpose(1, 2).flatten(0, 1)  # B*nS, h', sw*W, d

        bias = None
        if pad:
            real = F.pad(q.new_ones(H, W), (0, 0, 0, pad)).view(n, 1, 1, sw * W)  # nS, 1, 1, sw*W
            bias = torch.zeros_like(real).masked_fill(real == 0, float("-inf")).repeat(B, 1, 1, 1)
        out = self.core.attend(split(q), split(k), split(v), bias)  # B*nS, h', sw*W, d
        out = out.reshape(B, n, h, sw, W, d).permute(0, 2, 1, 3, 4, 5).reshape(B, h, n * sw, W, d)
        return out[:, :, :H]

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        B, C, H, W = x.shape
        q, k, v = (t.unflatten(2, (H, W)) for t in self.core.project_qkv(map_to_tokens(x)))  # B, h, H, W, d
        half = (self.core.num_heads + 1) // 2
        rows = self._stripes(q[:, :half], k[:, :half], v[:, :half])  # B, half, H, W, d
        parts = [rows]
        if half < self.core.num_heads:
            qt, kt, vt = (t[:, half:].transpose(2, 3) for t in (q, k, v))  # B, h-half, W, H, d
            parts.append(self._stripes(qt, kt, vt).transpose(2, 3))  # vertical stripes
        out = self.core.merge_heads(torch.cat(parts, 1).flatten(2, 3))  # B, HW, C
        if self.lepe is not None:
            values = tokens_to_map(self.core.merge_heads(v.flatten(2, 3)), H, W)  # B, C, H, W
            out = out + map_to_tokens(self.lepe(values))
        return tokens_to_map(self.core.output(out), H, W)
