"""Swin window attention (W-MSA) and shifted-window attention (SW-MSA) with relative position bias.

Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021.
The map is cut into non-overlapping `window_size` windows; attention runs inside each window with a
learned bias per head and relative offset. The shifted variant rolls the map by `shift_size` first,
and masks pairs of tokens that come from different regions of the rolled map, so no token attends
across the wrapped border.

`attend_windows` is timm's `WindowAttention.forward` (same weights, same result; see the parity test).
Deviations from Swin: masks are -inf rather than -100; when `pad=True` and the window does not
divide the map, the zero padding is also masked out as keys (Swin lets queries attend to it); like
timm, a map no larger than the window uses one window the size of the map and no shift.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models import swin_transformer as timm_swin
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, pair
from boxer.layers.mixers.positions import relative_position_index


def window_partition(x: Tensor, win_h: int, win_w: int) -> Tensor:
    """Tensor[B, H, W, C] -> Tensor[B*nW, win_h*win_w, C] (windows row-major): timm's, flattened."""
    return timm_swin.window_partition(x, (win_h, win_w)).flatten(1, 2)


def window_reverse(windows: Tensor, win_h: int, win_w: int, height: int, width: int) -> Tensor:
    """Tensor[B*nW, win_h*win_w, C] -> Tensor[B, H, W, C]: timm's."""
    windows = windows.view(-1, win_h, win_w, windows.shape[-1])  # B*nW, win_h, win_w, C
    return timm_swin.window_reverse(windows, (win_h, win_w), height, width)


def shifted_window_mask(
    height: int, width: int, win: tuple[int, int], shift: tuple[int, int], pad: tuple[int, int] = (0, 0)
) -> Tensor | None:
    """Which key each query may see after the cyclic shift: BoolTensor[nW, N, N] (True = masked).

    Tokens are labelled by the region of the (padded) map they come from, in the rolled frame (the
    last `shift` rows/columns of the rolled map are the wrapped-around first ones); a pair from two
    regions, or a key that is padding, is masked. `height`, `width` are the padded sizes; `pad` is the
    bottom/right padding. Returns None when nothing needs masking.
    """
    if not any(shift) and not any(pad):
        return None
    region = torch.zeros(height, width, dtype=torch.long)
    for i, hs in enumerate(_bands(height, win[0], shift[0])):
        for j, ws in enumerate(_bands(width, win[1], shift[1])):
            region[hs, ws] = i * 3 + j
    padding = torch.zeros(height, width, dtype=torch.bool)
    padding[height - pad[0] :, :] = pad[0] > 0
    padding[:, width - pad[1] :] |= pad[1] > 0
    padding = torch.roll(padding, (-shift[0], -shift[1]), (0, 1))
    region = window_partition(region[None, :, :, None], *win)[..., 0]  # nW, N
    padding = window_partition(padding[None, :, :, None], *win)[..., 0]  # nW, N
    return (region[:, :, None] != region[:, None, :]) | padding[:, None, :]


def _bands(size: int, win: int, shift: int) -> list[slice]:
    """The three bands of a shifted axis (Swin): before the last window, the last window minus the
    shift, and the shifted-in strip."""
    if not shift:
        return [slice(0, size)]
    return [slice(0, size - win), slice(size - win, size - shift), slice(size - shift, size)]


class WindowAttention(nn.Module):
    """(Shifted) window attention with relative position bias on Tensor[B, C, H, W].

    Args:
        dim: channels.
        num_heads: attention heads.
        window_size: window side (or (h, w)).
        shift_size: cyclic shift (0 = W-MSA; Swin uses window_size // 2 in every other block).
        pad: pad the map to a multiple of the window (masked); False raises on a non-multiple.
        feat_size: unused (accepted by every mixer).
        qkv_bias: bias in the q/k/v projection.
        attn_drop: attention dropout.
        proj_drop: output dropout.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        window_size: int | tuple[int, int] = 7,
        shift_size: int | tuple[int, int] = 0,
        pad: bool = True,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = pair(window_size)
        self.shift_size = pair(shift_size)
        if any(s < 0 or s >= w for s, w in zip(self.shift_size, self.window_size)):
            raise ValueError(f"window attention: shift_size {shift_size} must lie in [0, window_size)")
        self.pad = pad
        self.core = AttentionCore(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop
        )
        win_h, win_w = self.window_size
        self.relative_position_bias_table = nn.Parameter(
            trunc_normal_(torch.empty((2 * win_h - 1) * (2 * win_w - 1), num_heads), std=0.02)
        )

    def relative_bias(self, win_h: int, win_w: int) -> Tensor:
        """Tensor[num_heads, N, N] for a win_h x win_w window (<= the configured window)."""
        index = relative_position_index(
            win_h, win_w, table_h=self.window_size[0], table_w=self.window_size[1]
        )
        n = win_h * win_w
        bias = self.relative_position_bias_table[index.to(self.relative_position_bias_table.device).view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def attend_windows(self, windows: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attention inside each window (timm's `WindowAttention.forward`).

        Args:
            windows: Tensor[B*nW, N, C], N = the configured window area.
            mask: Tensor[nW, N, N], bool (True = masked) or additive float; None = no mask.

        Returns:
            Tensor[B*nW, N, C].
        """
        return self._attend(windows, self.window_size, mask)

    def _attend(self, windows: Tensor, win: tuple[int, int], mask: Tensor | None) -> Tensor:
        n = windows.shape[1]
        bias = self.relative_bias(*win)[None]  # 1, h, N, N
        if mask is not None:
            num_win = mask.shape[0]
            if mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=bias.dtype, device=mask.device).masked_fill(
                    mask, float("-inf")
                )
            bias = bias.view(1, 1, -1, n, n) + mask.to(bias)[None, :, None]  # 1, nW, h, N, N
            bias = bias.expand(windows.shape[0] // num_win, -1, -1, -1, -1).flatten(0, 1)  # B*nW, h, N, N
        q, k, v = self.core.project_qkv(windows)  # B*nW, h, N, d
        return self.core.output(self.core.merge_heads(self.core.attend(q, k, v, bias)))

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        B, C, H, W = x.shape
        win, shift = self._window_and_shift(H, W)
        pad_h, pad_w = (-H) % win[0], (-W) % win[1]
        if (pad_h or pad_w) and not self.pad:
            raise ValueError(
                f"window attention: window {win[0]}x{win[1]} does not divide the {H}x{W} map; "
                "use pad=True or a window that divides it"
            )
        x = F.pad(x.permute(0, 2, 3, 1), (0, 0, 0, pad_w, 0, pad_h))  # B, Hp, Wp, C
        Hp, Wp = H + pad_h, W + pad_w
        if any(shift):
            x = torch.roll(x, (-shift[0], -shift[1]), (1, 2))
        mask = shifted_window_mask(Hp, Wp, win, shift, (pad_h, pad_w))
        out = self._attend(window_partition(x, *win), win, None if mask is None else mask.to(x.device))
        out = window_reverse(out, *win, Hp, Wp)  # B, Hp, Wp, C
        if any(shift):
            out = torch.roll(out, shift, (1, 2))
        return out[:, :H, :W].permute(0, 3, 1, 2)

    def _window_and_shift(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Swin's rule: an axis no longer than the window gets one window of its size and no shift."""
        win = tuple(min(w, s) for w, s in zip(self.window_size, (height, width)))
        shift = tuple(
            0 if s <= w else sh for s, w, sh in zip((height, width), self.window_size, self.shift_size)
        )
        return win, shift
