"""MAT attention: window attention whose windows exchange information by mixing abstract tokens
(the efficient-ViT deck's "Mixing Abstract Tokens"; docs/zoo.md, "The efficient-ViT deck beside ours").

1. The map is cut into non-overlapping windows (as Swin's W-MSA, `window.py`), without any shift
   and without `torch.roll`.
2. Token abstraction: per window, a learnable query (one per head) attends over the window's keys
   and values; the result is the window's abstract token (a weighted sum of its tokens).
3. Mixing: the abstract tokens of all windows attend to each other (global attention over nW
   tokens, cheap because windows are few).
4. Every token attends over the keys of its own window plus the keys of all mixed abstract tokens,
   so a token outside a window reaches it only through the abstract tokens.

What the deck leaves open, and what is chosen here: one abstract token per window; the abstraction
reuses the window's k and v (only the query is learnt); the mixing step is a full attention with its
own q/k/v and output projections; the mixed abstract tokens enter the windows through their own
key/value projection (`abstract_kv`). This gives ~10 C^2 parameters per mixer, the difference the
deck's ablation shows between MAT and window attention (10.767M vs 7.802M for MAT-2). No relative
position bias (the deck does not give one). Padding (a side not a multiple of the window) is
zero-filled and masked as a key, both in the abstraction and in the token attention; a map no
larger than the window uses one window the size of the map (Swin's rule).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, pair
from boxer.layers.mixers.window import window_partition, window_reverse


class MATAttention(nn.Module):
    """Window attention + abstract tokens mixed across windows.

    Args:
        dim: channels.
        num_heads: heads (of the window, abstraction and mixing attentions).
        window_size: window side (or (h, w)).
        feat_size: unused (accepted by every mixer).
        qkv_bias: bias in the q/k/v projections.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        window_size: int | tuple[int, int] = 7,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        self.window_size = pair(window_size)
        self.core = AttentionCore(dim, num_heads=num_heads, qkv_bias=qkv_bias)  # window tokens
        h, d = self.core.num_heads, self.core.head_dim
        self.abstract_query = nn.Parameter(trunc_normal_(torch.empty(h, 1, d), std=0.02))
        self.mix = AttentionCore(dim, num_heads=num_heads, qkv_bias=qkv_bias)  # abstract tokens
        self.abstract_kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        B, C, H, W = x.shape
        win = tuple(min(w, s) for w, s in zip(self.window_size, (H, W)))
        pad_h, pad_w = (-H) % win[0], (-W) % win[1]
        Hp, Wp = H + pad_h, W + pad_w
        windows = window_partition(F.pad(x.permute(0, 2, 3, 1), (0, 0, 0, pad_w, 0, pad_h)), *win)
        num_win = windows.shape[0] // B  # windows: B*nW, N, C
        q, k, v = self.core.project_qkv(windows)  # each B*nW, h, N, d
        bias = self._padding_bias(H, W, win, x)  # nW, 1, 1, N (or None)
        bias = None if bias is None else bias.repeat(B, 1, 1, 1)  # B*nW, 1, 1, N
        query = self.abstract_query.expand(windows.shape[0], -1, -1, -1)  # B*nW, h, 1, d
        abstract = self.core.merge_heads(self.core.attend(query, k, v, bias))  # B*nW, 1, C
        mixed = self.mix(abstract.view(B, num_win, C))  # B, nW, C
        ak, av = self.abstract_kv(mixed).chunk(2, dim=-1)  # each B, nW, C
        ak, av = (self.core.split_heads(t).repeat_interleave(num_win, 0) for t in (ak, av))  # B*nW, h, nW, d
        if bias is not None:
            bias = F.pad(bias, (0, num_win))  # abstract keys are never masked
        out = self.core.attend(q, torch.cat((k, ak), 2), torch.cat((v, av), 2), bias)  # B*nW, h, N, d
        out = self.core.output(self.core.merge_heads(out))  # B*nW, N, C
        return window_reverse(out, *win, Hp, Wp)[:, :H, :W].permute(0, 3, 1, 2)

    @staticmethod
    def _padding_bias(height: int, width: int, win: tuple[int, int], like: Tensor) -> Tensor | None:
        """Tensor[nW, 1, 1, N]: -inf on padded keys, 0 elsewhere; None without padding."""
        pad_h, pad_w = (-height) % win[0], (-width) % win[1]
        if not (pad_h or pad_w):
            return None
        real = F.pad(like.new_ones(1, height, width, 1), (0, 0, 0, pad_w, 0, pad_h))  # 1, Hp, Wp, 1
        real = window_partition(real, *win)[..., 0]  # nW, N
        zeros = torch.zeros_like(real)
        return zeros.masked_fill(real == 0, float("-inf"))[:, None, None, :]
