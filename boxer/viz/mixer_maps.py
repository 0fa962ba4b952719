"""From captured attention (`mixer_capture.py`) to maps on the feature grid, and ViT attention rollout.

`query_map` turns one core call into the weights Tensor[h, H, W] that the token at (y, x) gives
every position of the H x W map. How a row of the probabilities maps onto the grid depends on the
mixer (layouts from `boxer/layers/mixers/`):

- `GlobalAttention` (mhsa, mhsa_rel, mhsa_qr, mhsa_abs), `NonLocal`, `LocalAttention` (dense path):
  all H*W tokens, row-major;
- `SpatialReductionAttention` (pvt): keys are the ceil(H/R) x ceil(W/R) reduced map; each key's
  weight is spread over its R x R cell (divided by R^2, so the map still sums to 1);
- `WindowAttention` (window, window_shifted): the map is padded to whole windows and, when shifted,
  rolled by -shift; the query's window in that frame is found and its keys are rolled back.

Attention rollout (Abnar and Zuidema, 2020): per layer the heads' mean A, the residual as
0.5 A + 0.5 I, rows renormalised, multiplied from the first layer to the last.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from boxer.errors import BoxerError


def _global(probs: Tensor, height: int, width: int, y: int, x: int, mixer) -> Tensor:
    return probs[0, :, y * width + x].reshape(-1, height, width)


def _reduced(probs: Tensor, height: int, width: int, y: int, x: int, mixer) -> Tensor:
    r = mixer.sr_ratio
    hr, wr = math.ceil(height / r), math.ceil(width / r)
    keys = probs[0, :, y * width + x].reshape(-1, hr, wr) / (r * r)
    return keys.repeat_interleave(r, 1).repeat_interleave(r, 2)[:, :height, :width]


def _windows(probs: Tensor, height: int, width: int, y: int, x: int, mixer) -> Tensor:
    (wh, ww), (sh, sw) = mixer._window_and_shift(height, width)
    hp, wp = height + (-height) % wh, width + (-width) % ww
    yr, xr = (y - sh) % hp, (x - sw) % wp  # the query in the rolled frame
    window = (yr // wh) * (wp // ww) + xr // ww  # image 0's windows come first (window_partition)
    row = probs[window, :, (yr % wh) * ww + xr % ww]  # h, win_h*win_w
    full = probs.new_zeros(row.shape[0], hp, wp)
    y0, x0 = (yr // wh) * wh, (xr // ww) * ww
    full[:, y0 : y0 + wh, x0 : x0 + ww] = row.reshape(-1, wh, ww)
    return torch.roll(full, (sh, sw), (1, 2))[:, :height, :width]  # back to the map's own frame


def _layouts() -> dict[str, object]:
    return {
        "GlobalAttention": _global,
        "NonLocal": _global,
        "LocalAttention": _global,
        "SpatialReductionAttention": _reduced,
        "WindowAttention": _windows,
    }


def supported(mixer: nn.Module) -> bool:
    """True when `query_map` knows the token layout of `mixer`."""
    return type(mixer).__name__ in _layouts()


def query_map(mixer: nn.Module, probs: Tensor, height: int, width: int, y: int, x: int) -> Tensor:
    """Weights Tensor[h, H, W] of the query at (y, x) of image 0, from one call's probabilities.

    Args:
        mixer: the module owning the attention core (its class gives the layout).
        probs: Tensor[*, h, Nq, Nk] of the call.
        height, width: the mixer's input map.
        y, x: the query position.
    """
    layout = _layouts().get(type(mixer).__name__)
    if layout is None:
        raise BoxerError(f"attention maps: no token layout known for {type(mixer).__name__}")
    return layout(probs.float(), height, width, y, x, mixer)


def rollout(attentions: list[Tensor], *, residual: float = 0.5) -> Tensor:
    """Attention rollout of per-layer attentions Tensor[h, N, N] (or [N, N]): Tensor[N, N].

    Row i of the result is how much output token i draws from each input token through all layers.
    """
    out = None
    for a in attentions:
        a = a.float().mean(0) if a.dim() == 3 else a.float()  # heads fused
        a = residual * torch.eye(a.shape[-1]) + (1 - residual) * a
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    if out is None:
        raise BoxerError("attention rollout: no attention layer was recorded")
    return out
