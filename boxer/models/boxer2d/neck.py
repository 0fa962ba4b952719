"""Neck of BoxeR-2D (BoxeR, Nguyen et al., CVPR 2022; docs/boxer2d.md, "Files"): input projections, the
extra stride-64 level, per-level padding masks, valid ratios, flattening and the encoder's reference
windows.

Input projections are Conv 1x1 + GroupNorm(32) on each backbone level, plus Conv 3x3 stride 2 +
GroupNorm on the raw last backbone map for the first extra level (ReLU of the previous projected
level for any further one); no activation after GroupNorm; xavier-uniform convs with zero bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boxer.ops.geometry import level_shapes, spatial_shapes_tensor


class InputProjection(nn.Module):
    """Projects backbone maps to `dim` channels and adds extra levels up to `num_levels`.

    Args:
        in_channels: channels of the backbone maps, fine to coarse.
        dim: output channels.
        in_strides: strides of the backbone maps; maps finer than `min_stride` are not used (a
            Swin's stride-4 map, say). None: use every map.
        num_levels: levels produced (backbone levels + extra stride-2 levels); with more usable
            backbone maps than that, the coarsest `num_levels` are used.
        min_stride: finest stride used (8: C3, as in the paper).
        num_groups: GroupNorm groups.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        dim: int,
        *,
        in_strides: Sequence[int] | None = None,
        num_levels: int = 4,
        min_stride: int = 8,
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        strides = list(in_strides) if in_strides is not None else [min_stride] * len(in_channels)
        self.used = [i for i, s in enumerate(strides) if s >= min_stride][-num_levels:]  # backbone maps used
        if not self.used:
            raise ValueError(f"no backbone map has stride >= {min_stride} (strides {strides})")
        in_channels = [in_channels[i] for i in self.used]
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, kernel_size=1), nn.GroupNorm(num_groups, dim))
            for c in in_channels
        )
        extra_in = [in_channels[-1]] + [dim] * (num_levels - len(in_channels) - 1)
        self.extra = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c, dim, kernel_size=3, stride=2, padding=1), nn.GroupNorm(num_groups, dim)
            )
            for c in extra_in[: max(num_levels - len(in_channels), 0)]
        )
        for seq in [*self.lateral, *self.extra]:
            nn.init.xavier_uniform_(seq[0].weight)
            nn.init.zeros_(seq[0].bias)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Maps backbone features `Tensor[B, C_i, H_i, W_i]` to `num_levels` maps `Tensor[B, d, H_l, W_l]`."""
        feats = [feats[i] for i in self.used]
        outs = [proj(f) for proj, f in zip(self.lateral, feats)]
        for i, proj in enumerate(self.extra):
            outs.append(proj(feats[-1] if i == 0 else F.relu(outs[-1])))
        return outs


def level_masks(pad_mask: Tensor | None, sizes: Sequence[tuple[int, int]]) -> list[Tensor] | None:
    """Nearest-resizes the image padding mask (True = padding) to every level.

    Returns None when nothing is padded (e.g. batch size 1), so attention can skip masking.
    """
    if pad_mask is None or not bool(pad_mask.any()):
        return None
    m = pad_mask[:, None].float()  # B, 1, H, W
    return [F.interpolate(m, size=hw, mode="nearest")[:, 0].bool() for hw in sizes]


def valid_ratios(masks: list[Tensor] | None, batch: int, num_levels: int, device) -> Tensor:
    """Per level (valid_w / W_l, valid_h / H_l) from the level masks: Tensor[B, L, 2] (ones if unpadded)."""
    if masks is None:
        return torch.ones(batch, num_levels, 2, device=device)
    ratios = []
    for m in masks:
        valid = ~m  # B, H, W
        vh = valid[:, :, 0].sum(1).float() / m.shape[1]
        vw = valid[:, 0, :].sum(1).float() / m.shape[2]
        ratios.append(torch.stack((vw, vh), dim=-1))
    return torch.stack(ratios, dim=1)  # B, L, 2


def flatten_levels(
    srcs: Sequence[Tensor], masks: list[Tensor] | None
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Flattens level maps level-major then row-major.

    Returns:
        value: Tensor[B, S, d]; padding_mask: Tensor[B, S] bool (True = padding) or None;
        spatial_shapes: LongTensor[L, 2] of (H_l, W_l).
    """
    value = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], dim=1)  # B, S, d
    mask = torch.cat([m.flatten(1) for m in masks], dim=1) if masks is not None else None  # B, S
    shapes = spatial_shapes_tensor([tuple(s.shape[-2:]) for s in srcs], value.device)
    return value, mask, shapes


def encoder_windows(spatial_shapes: Tensor, ratios: Tensor, *, ref_size: float = 4.0) -> Tensor:
    """Reference window of every token: its cell centre and a size of `ref_size` cells of its level.

    Coordinates are normalised to the valid (unpadded) image: centre ((j + 0.5) / valid_W_l,
    (i + 0.5) / valid_H_l), size (ref_size / valid_W_l, ref_size / valid_H_l). Padded tokens get
    centres beyond 1.

    Args:
        spatial_shapes: LongTensor[L, 2] of (H_l, W_l).
        ratios: Tensor[B, L, 2] valid ratios (w, h).
        ref_size: window side in cells.

    Returns:
        Tensor[B, S, 4] (cx, cy, w, h).
    """
    windows = []
    for lvl, (h, w) in enumerate(level_shapes(spatial_shapes)):
        vw = ratios[:, lvl, 0, None] * w  # B, 1 valid width in cells
        vh = ratios[:, lvl, 1, None] * h
        ys, xs = torch.meshgrid(
            torch.arange(h, device=ratios.device, dtype=ratios.dtype) + 0.5,
            torch.arange(w, device=ratios.device, dtype=ratios.dtype) + 0.5,
            indexing="ij",
        )
        cx = xs.reshape(1, -1) / vw  # B, H*W
        cy = ys.reshape(1, -1) / vh
        size = torch.stack(torch.broadcast_tensors(ref_size / vw, ref_size / vh), dim=-1).expand(
            -1, h * w, -1
        )
        windows.append(torch.cat((torch.stack((cx, cy), dim=-1), size), dim=-1))  # B, H*W, 4
    return torch.cat(windows, dim=1)
