"""Registered token mixers: one factory per name, each `(dim, **kw) -> nn.Module` with its defaults.

Keywords given to `create_mixer` override the defaults below (e.g. `window_size=4`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from boxer.layers.mixers import register_mixer
from boxer.layers.mixers.aa_conv import AttentionAugmentedConv
from boxer.layers.mixers.box import BoxAttentionMixer
from boxer.layers.mixers.conv import ConvMixer, DepthwiseConvMixer, PoolMixer
from boxer.layers.mixers.core import pair
from boxer.layers.mixers.cswin import CrossShapedWindowAttention
from boxer.layers.mixers.deformable import DeformableAttention
from boxer.layers.mixers.ems import EMSMixer
from boxer.layers.mixers.global_attn import GlobalAttention, NonLocal
from boxer.layers.mixers.local import LocalAttention
from boxer.layers.mixers.mat import MATAttention
from boxer.layers.mixers.mobilevit import MobileViTBlock
from boxer.layers.mixers.partial import PartialAttention
from boxer.layers.mixers.pvt import SpatialReductionAttention
from boxer.layers.mixers.window import WindowAttention


@register_mixer
def mhsa(dim: int, **kw: Any) -> nn.Module:
    return GlobalAttention(dim, **{"pos": "none", **kw})


@register_mixer
def mhsa_rel(dim: int, **kw: Any) -> nn.Module:
    return GlobalAttention(dim, **{"pos": "rel", **kw})


@register_mixer
def mhsa_qr(dim: int, **kw: Any) -> nn.Module:
    return GlobalAttention(dim, **{"pos": "rel", "content": False, **kw})


@register_mixer
def mhsa_abs(dim: int, **kw: Any) -> nn.Module:
    return GlobalAttention(dim, **{"pos": "abs", **kw})


@register_mixer
def window(dim: int, **kw: Any) -> nn.Module:
    return WindowAttention(dim, **kw)


@register_mixer
def window_shifted(dim: int, **kw: Any) -> nn.Module:
    shift = tuple(s // 2 for s in pair(kw.get("window_size", 7)))
    return WindowAttention(dim, **{"shift_size": shift, **kw})


@register_mixer
def local(dim: int, **kw: Any) -> nn.Module:
    return LocalAttention(dim, **kw)


@register_mixer
def pvt(dim: int, **kw: Any) -> nn.Module:
    return SpatialReductionAttention(dim, **kw)


@register_mixer(name="nonlocal")
def non_local(dim: int, **kw: Any) -> nn.Module:
    return NonLocal(dim, **kw)


@register_mixer
def box(dim: int, **kw: Any) -> nn.Module:
    return BoxAttentionMixer(dim, **kw)


@register_mixer
def conv3x3(dim: int, **kw: Any) -> nn.Module:
    return ConvMixer(dim, **{"kernel_size": 3, **kw})


@register_mixer
def dwconv7(dim: int, **kw: Any) -> nn.Module:
    return DepthwiseConvMixer(dim, **kw)


@register_mixer
def pool(dim: int, **kw: Any) -> nn.Module:
    return PoolMixer(dim, **kw)


@register_mixer
def ems(dim: int, **kw: Any) -> nn.Module:
    return EMSMixer(dim, **kw)


@register_mixer
def mat(dim: int, **kw: Any) -> nn.Module:
    return MATAttention(dim, **kw)


@register_mixer
def partial(dim: int, **kw: Any) -> nn.Module:
    return PartialAttention(dim, **kw)


@register_mixer
def deformable(dim: int, **kw: Any) -> nn.Module:
    return DeformableAttention(dim, **kw)


@register_mixer
def cswin(dim: int, **kw: Any) -> nn.Module:
    return CrossShapedWindowAttention(dim, **kw)


@register_mixer
def aa_conv(dim: int, **kw: Any) -> nn.Module:
    return AttentionAugmentedConv(dim, **kw)


@register_mixer
def mobilevit(dim: int, **kw: Any) -> nn.Module:
    return MobileViTBlock(dim, **kw)
