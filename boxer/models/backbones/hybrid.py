"""ResNet with any token mixer in place of the 3x3 convs of chosen stages; ResNet-50 and BoTNet-50.

He et al., "Deep Residual Learning", 2016 (bottleneck v1.5: stride in the 3x3); Srinivas et al.,
"Bottleneck Transformers for Visual Recognition", CVPR 2021: BoT50 is this ResNet-50 with `mhsa_rel`
(MHSA + split 2D relative logits, 4 heads, no q/k/v bias, no output projection) in all three c5
blocks, and a 2x2 average pool after the MHSA of the stride-2 block. Parameter names follow
torchvision's ResNet (conv1, bn1, layer1.0.conv2, ...), so torchvision weights load into the
convolutional parts. A stage with a mixer uses, in each block, `mixer` (+ `AvgPool2d(2)` when the
block has stride 2) where the plain ResNet has its 3x3 conv. Deviations: stem "small" (3x3, stride 1,
no max pool) for 28x28 inputs; widths and depths are keywords; the last BN of each block starts at
zero (`zero_init_residual`, as timm), which helps training from scratch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from boxer.errors import BoxerError
from boxer.layers.mixers import create_mixer
from boxer.models.backbones import register_backbone
from boxer.models.backbones.base import Backbone
from boxer.models.backbones.blocks import check_out_indices, downsampled

log = logging.getLogger(__name__)

BOT_MIXER_KW = {"proj": False, "qkv_bias": False}  # BoTNet's MHSA: the next 1x1 conv projects


class Bottleneck(nn.Module):
    """1x1 -> 3x3 conv or mixer (+ 2x2 avg pool for stride 2) -> 1x1, plus the shortcut.

    Args:
        in_ch: input channels.
        width: inner channels.
        stride: 1 or 2.
        mixer: registered mixer name, or None for the 3x3 conv.
        mixer_kw: keywords for the mixer (num_heads, feat_size, ...).
        norm: BatchNorm class.
        expansion: output channels = width * expansion.
        avg_down: stride-2 shortcut as 2x2 average pool + 1x1 conv (ResNet-D, He et al., "Bag of
            Tricks", 2019) instead of a strided 1x1 conv.
    """

    def __init__(
        self,
        in_ch: int,
        width: int,
        *,
        stride: int = 1,
        mixer: str | None = None,
        mixer_kw: dict[str, Any] | None = None,
        norm: type[nn.Module] = nn.BatchNorm2d,
        expansion: int = 4,
        avg_down: bool = False,
    ) -> None:
        super().__init__()
        out_ch = width * expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = norm(width)
        if mixer is None:
            self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        else:
            pool = nn.AvgPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()
            self.conv2 = nn.Sequential(create_mixer(mixer, width, **(mixer_kw or {})), pool)
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = norm(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            if avg_down and stride != 1:
                self.downsample = nn.Sequential(
                    nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                    nn.Conv2d(in_ch, out_ch, 1, bias=False),
                    norm(out_ch),
                )
            else:
                self.downsample = nn.Sequential(
                    nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), norm(out_ch)
                )

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C_in, H, W] -> Tensor[B, C_out, ceil(H/s), ceil(W/s)]."""
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.relu(self.bn3(self.conv3(x)) + shortcut)


class MixerResNet(Backbone):
    """Bottleneck ResNet whose stages can each use a token mixer instead of 3x3 convs.

    Args:
        layers: blocks per stage.
        widths: inner width per stage (outputs are 4x).
        strides: stride of each stage's first block.
        mixers: per stage, a registered mixer name or None (3x3 conv).
        mixer_heads: heads of every mixer.
        mixer_kw: extra keywords for every mixer (e.g. window_size).
        expansion: block output channels / inner width (4 in ResNet-50).
        avg_down: ResNet-D shortcuts (average pool + 1x1 conv) in stride-2 blocks.
        stem: "imagenet" (7x7/2 conv + 3x3/2 max pool), "small" (one 3x3 conv, for 28x28) or
            "deep" (3x3 conv at full resolution to stem_width // 2, BN, ReLU, then a 3x3 conv with
            `stem_stride`: the input is seen at full resolution before a stride-2 stem subsamples it).
        stem_width: stem channels.
        stem_stride: stride of the "small" / "deep" stem's (last) conv (1 or 2).
        in_chans: input channels.
        img_size: nominal input (H, W); sizes the mixers' position tables.
        out_indices: features to return, timm numbering (0 = stem, 1.. = stages).
        frozen_bn: FrozenBatchNorm2d (detection) instead of BatchNorm2d.
        zero_init_residual: start each block's last BN at zero.
        pretrained: path to a torchvision-style ResNet state dict to load (non-strict).
    """

    def __init__(
        self,
        *,
        layers: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        strides: Sequence[int] = (1, 2, 2, 2),
        mixers: Sequence[str | None] = (None, None, None, None),
        mixer_heads: int = 4,
        mixer_kw: dict[str, Any] | None = None,
        expansion: int = 4,
        avg_down: bool = False,
        stem: str = "imagenet",
        stem_width: int = 64,
        stem_stride: int = 1,
        in_chans: int = 3,
        img_size: int | Sequence[int] = 224,
        out_indices: Sequence[int] = (2, 3, 4),
        frozen_bn: bool = False,
        zero_init_residual: bool = True,
        pretrained: bool | str = False,
    ) -> None:
        super().__init__()
        if not len(layers) == len(widths) == len(strides) == len(mixers):
            raise BoxerError("backbone: layers, widths, strides and mixers need one entry per stage")
        if stem not in ("imagenet", "small", "deep"):
            raise BoxerError(f"backbone: stem must be 'imagenet', 'small' or 'deep', got {stem!r}")
        norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if stem == "deep":
            half = max(stem_width // 2, 1)
            self.conv1 = nn.Sequential(
                nn.Conv2d(in_chans, half, 3, 1, 1, bias=False), norm(half), nn.ReLU(inplace=True),
                nn.Conv2d(half, stem_width, 3, stem_stride, 1, bias=False),
            )  # fmt: skip
        else:
            self.conv1 = nn.Conv2d(
                in_chans, stem_width, *((7, 2, 3) if stem == "imagenet" else (3, stem_stride, 1)), bias=False
            )
        self.bn1 = norm(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        stride = 4 if stem == "imagenet" else stem_stride
        strides_at = {0: 2 if stem == "imagenet" else stem_stride}
        channels_at = {0: stem_width}
        in_ch, self.stage_names = stem_width, []
        for i, (n, width, s, mixer) in enumerate(zip(layers, widths, strides, mixers), start=1):
            blocks = []
            for b in range(n):
                kw = {"num_heads": mixer_heads, "feat_size": downsampled(size, stride), **(mixer_kw or {})}
                block_stride = s if b == 0 else 1
                blocks.append(
                    Bottleneck(
                        in_ch, width, stride=block_stride, mixer=mixer, mixer_kw=kw, norm=norm,
                        expansion=expansion, avg_down=avg_down,
                    )
                )  # fmt: skip
                in_ch, stride = width * expansion, stride * block_stride
            self.add_module(f"layer{i}", nn.Sequential(*blocks))  # torchvision's names
            self.stage_names.append(f"layer{i}")
            strides_at[i], channels_at[i] = stride, in_ch
        self.out_indices = check_out_indices(out_indices, strides_at, "resnet")
        self.out_channels = [channels_at[i] for i in self.out_indices]
        self.out_strides = [strides_at[i] for i in self.out_indices]
        self.num_features = in_ch
        self._init_weights(zero_init_residual)
        if pretrained:
            self._load(pretrained)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck) and isinstance(m.bn3, nn.BatchNorm2d):
                    nn.init.zeros_(m.bn3.weight)

    def _load(self, pretrained: bool | str) -> None:
        if pretrained is True:
            raise BoxerError("backbone: pretrained=True is not available here; pass a path to a state dict")
        from boxer.models.backbones.resnet import _load_state_dict

        state = _load_state_dict(pretrained)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        result = self.load_state_dict(state, strict=False)
        log.info("%s: loaded; %d missing (mixers), %d unexpected keys", pretrained, *map(len, result))

    def forward(self, x: Tensor) -> list[Tensor]:
        """Tensor[B, C_in, H, W] -> features at `out_indices`, fine to coarse."""
        x = self.relu(self.bn1(self.conv1(x)))  # B, stem, H/2, W/2 (small stem: H, W)
        feats = [x] if 0 in self.out_indices else []
        x = self.maxpool(x)
        for i, name in enumerate(self.stage_names, start=1):
            if i > self.out_indices[-1]:
                break
            x = getattr(self, name)(x)
            if i in self.out_indices:
                feats.append(x)
        return feats


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
