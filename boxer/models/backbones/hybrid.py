"""ResNet with a token mixer in place of the 3x3 convs of chosen stages: BoTNet-50 and the hybrids.

Srinivas et al., "Bottleneck Transformers for Visual Recognition", CVPR 2021: BoT50 is ResNet-50
with `mhsa_rel` (MHSA + split 2D relative logits, 4 heads, no q/k/v bias, no output projection) in
all three c5 blocks, and a 2x2 average pool after the MHSA of the stride-2 block. The network is the
one ResNet of boxer/models/backbones/resnet.py (torchvision's parameter names; a stage with a mixer
uses `mixer` + `AvgPool2d(2)` for stride 2 where the plain ResNet has its 3x3 conv); this file only
chooses the mixers. These default to trainable BatchNorm (`frozen_bn=False`) and
`zero_init_residual=True`: they train from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from boxer.errors import BoxerError
from boxer.models.backbones import register_backbone
from boxer.models.backbones.resnet import Bottleneck, ResNet

MixerResNet = ResNet  # the name its users know; one class
__all__ = ["BOT_MIXER_KW", "Bottleneck", "MixerResNet", "bot50", "hybrid50", "mixer_resnet", "resnet50_mx"]

BOT_MIXER_KW = {"proj": False, "qkv_bias": False}  # BoTNet's MHSA: the next 1x1 conv projects


def mixer_resnet(
    *,
    mixer: str | None = None,
    mixer_stages: Sequence[int] = (4,),
    layers: Sequence[int] = (3, 4, 6, 3),
    **kw: Any,
) -> MixerResNet:
    """A MixerResNet with the same `mixer` in every stage listed in `mixer_stages` (1-based)."""
    if mixer is not None and not set(mixer_stages) <= set(range(1, len(layers) + 1)):
        raise BoxerError(f"backbone: mixer_stages must lie in 1..{len(layers)}, got {tuple(mixer_stages)}")
    mixers = tuple(mixer if i in mixer_stages else None for i in range(1, len(layers) + 1))
    return MixerResNet(layers=layers, mixers=kw.pop("mixers", mixers), **kw)


def bot_kw(mixer: str, mixer_kw: dict[str, Any] | None) -> dict[str, Any]:
    """BoTNet's MHSA settings for the mhsa_* mixers (other mixers keep their own defaults)."""
    return {**(BOT_MIXER_KW if mixer.startswith("mhsa") else {}), **(mixer_kw or {})}


@register_backbone(name="resnet50_mx")
def resnet50_mx(**kw: Any) -> MixerResNet:
    """ResNet-50 as a MixerResNet (same architecture and names as torchvision's)."""
    return mixer_resnet(**kw)


@register_backbone
def bot50(*, mixer: str = "mhsa_rel", mixer_kw: dict[str, Any] | None = None, **kw: Any) -> MixerResNet:
    """BoTNet-50: ResNet-50 with BoT MHSA (4 heads, relative positions) in all blocks of the last stage."""
    last = len(kw.get("layers", (3, 4, 6, 3)))
    return mixer_resnet(mixer=mixer, mixer_stages=(last,), mixer_kw=bot_kw(mixer, mixer_kw), **kw)


@register_backbone
def hybrid50(*, mixer: str = "window", mixer_stages: Sequence[int] = (3, 4), **kw: Any) -> MixerResNet:
    """ResNet-50 with `mixer` in `mixer_stages` (default: Swin windows in c4 and c5)."""
    return mixer_resnet(mixer=mixer, mixer_stages=mixer_stages, **kw)
