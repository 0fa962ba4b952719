"""The one ResNet (He et al., "Deep Residual Learning", 2016; bottleneck "v1.5": stride in the 3x3),
with torchvision's parameter names, under the plain, BoTNet and hybrid backbones.

Names follow torchvision's ResNet (conv1, bn1, layer1.0.conv2, layer1.0.downsample.0, ...), so a
torchvision state dict loads strictly (its `fc` aside), and what `boxer pretrain-backbone` writes is
this state dict as it is. Stage numbering follows timm's features_only: 0 = stem (stride 2),
1..4 = layer1..layer4 (strides 4, 8, 16, 32). A stage may use a token mixer in place of its 3x3
convs (boxer/models/backbones/hybrid.py: BoTNet-50, hybrids); the registered plain ResNets
(`resnet18` .. `resnet101`) have none.

Frozen BatchNorm (docs/CONTRACTS.md, "Backbones"): the plain ResNets default to
`frozen_bn=True`, as in DETR / Deformable DETR / BoxeR, which fine-tune ImageNet weights; the mixer
ResNets (`resnet50_mx`, `bot50`, `hybrid50` and the classifiers built on them) default to
`frozen_bn=False`, since they train from scratch. Detectors pass `frozen_bn` to choose.

The plain ResNets start from the weights torchvision's builders give for the same seed (Kaiming
normal, fan-out; `zero_init_residual=False`; the random numbers of torchvision's 1000-class `fc` are
drawn and the layer dropped), so seeded runs start where they did when these were torchvision
models. Checkpoints saved under the earlier names (`stem.0.` = conv1, `stem.1.` = bn1, `layers.i.` =
layer{i+1}) load through a state-dict pre-hook. Deviations of the mixer variants: stem "small"
(3x3, stride 1, no max pool) or "deep" for small inputs; widths and depths are keywords; the last
BN of each block starts at zero (`zero_init_residual`, as timm), which helps training from scratch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from boxer.errors import BoxerError
from boxer.layers.checkpointing import run_layer
from boxer.layers.mixers import create_mixer
from boxer.models.backbones import register_backbone
from boxer.models.backbones.base import Backbone, freeze_modules
from boxer.models.backbones.blocks import check_out_indices, downsampled

log = logging.getLogger(__name__)

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
          101: ("bottleneck", (3, 4, 23, 3))}  # fmt: skip
_OLD_NAMES = ((r"stem\.0\.", "conv1."), (r"stem\.1\.", "bn1."))  # the names before this module


def _shortcut(
    in_ch: int, out_ch: int, stride: int, norm: type[nn.Module], avg_down: bool
) -> nn.Module | None:
    """torchvision's `downsample` (strided 1x1 conv + norm), or ResNet-D's (2x2 average pool + 1x1
    conv + norm; He et al., "Bag of Tricks", 2019); None when the shapes already agree."""
    if stride == 1 and in_ch == out_ch:
        return None
    if avg_down and stride != 1:
        pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
        return nn.Sequential(pool, nn.Conv2d(in_ch, out_ch, 1, bias=False), norm(out_ch))
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), norm(out_ch))


class BasicBlock(nn.Module):
    """3x3 -> 3x3 conv, plus the shortcut (ResNet-18/34).

    Args:
        in_ch: input channels.
        width: output channels.
        stride: 1 or 2.
        norm: BatchNorm class.
        avg_down: ResNet-D shortcut in a stride-2 block.
    """

    expansion = 1

    def __init__(
        self, in_ch: int, width: int, *, stride: int = 1, norm: type[nn.Module] = nn.BatchNorm2d,
        avg_down: bool = False, **_: Any,
    ) -> None:  # fmt: skip
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = norm(width)
        self.downsample = _shortcut(in_ch, width, stride, norm, avg_down)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C_in, H, W] -> Tensor[B, width, ceil(H/s), ceil(W/s)]."""
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)) + shortcut)

    def last_norm(self) -> nn.Module:
        return self.bn2


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
        avg_down: ResNet-D shortcut in a stride-2 block.
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
        self.downsample = _shortcut(in_ch, out_ch, stride, norm, avg_down)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C_in, H, W] -> Tensor[B, C_out, ceil(H/s), ceil(W/s)]."""
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.relu(self.bn3(self.conv3(x)) + shortcut)

    def last_norm(self) -> nn.Module:
        return self.bn3


class ResNet(Backbone):
    """ResNet whose stages can each use a token mixer instead of 3x3 convs (bottleneck blocks).

    Args:
        layers: blocks per stage.
        widths: inner width per stage (bottleneck outputs are `expansion`x).
        strides: stride of each stage's first block.
        block: "bottleneck" (ResNet-50 and up) or "basic" (ResNet-18/34; no mixers).
        mixers: per stage, a registered mixer name or None (3x3 conv).
        mixer_heads: heads of every mixer.
        mixer_kw: extra keywords for every mixer (e.g. window_size).
        expansion: bottleneck output channels / inner width (4 in ResNet-50).
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
        frozen_stages: the stem and the first `frozen_stages - 1` stages get no gradient (0 = train all).
        checkpoint_stages: activation checkpointing of every stage in training: each keeps its input
            and recomputes its activations in backward (less memory, same numbers).
        zero_init_residual: start each block's last BN at zero.
        torchvision_init: draw the random numbers of torchvision's 1000-class `fc` before the
            Kaiming initialisation, so a seeded model starts from torchvision's weights.
        pretrained: True (torchvision's ImageNet weights of the plain ResNet-18/34/50/101) or a path
            to a state dict in torchvision naming (.safetensors / .pth / a checkpoint directory).
    """

    def __init__(
        self,
        *,
        layers: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        strides: Sequence[int] = (1, 2, 2, 2),
        block: str = "bottleneck",
        mixers: Sequence[str | None] | None = None,
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
        frozen_stages: int = 0,
        checkpoint_stages: bool = False,
        zero_init_residual: bool = True,
        torchvision_init: bool = False,
        pretrained: bool | str = False,
    ) -> None:
        super().__init__()
        mixers = tuple(mixers) if mixers is not None else (None,) * len(layers)
        if not len(layers) == len(widths) == len(strides) == len(mixers):
            raise BoxerError("backbone: layers, widths, strides and mixers need one entry per stage")
        if stem not in ("imagenet", "small", "deep"):
            raise BoxerError(f"backbone: stem must be 'imagenet', 'small' or 'deep', got {stem!r}")
        if block not in ("bottleneck", "basic") or (block == "basic" and any(mixers)):
            raise BoxerError(f"backbone: block must be 'bottleneck' or 'basic' (no mixers), got {block!r}")
        norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        self._stem(stem, in_chans, stem_width, stem_stride, norm)
        self.mixers, self.checkpoint_stages = mixers, checkpoint_stages
        self._stages(layers, widths, strides, block, mixers, norm, img_size, stem, stem_width, stem_stride,
                     dict(mixer_heads=mixer_heads, mixer_kw=mixer_kw, expansion=expansion, avg_down=avg_down),
                     out_indices)  # fmt: skip
        if torchvision_init:
            nn.Linear(self.num_features, 1000)  # torchvision's fc: its random numbers, then dropped
        self._init_weights(zero_init_residual)
        self.register_load_state_dict_pre_hook(_rename_old_keys)
        if pretrained:
            self._load(pretrained)
        if frozen_stages > 0:
            stages = [getattr(self, n) for n in self.stage_names[: frozen_stages - 1]]
            freeze_modules(self.conv1, self.bn1, *stages)

    def _stem(self, stem: str, in_chans: int, width: int, stride: int, norm: type[nn.Module]) -> None:
        if stem == "deep":
            half = max(width // 2, 1)
            self.conv1 = nn.Sequential(
                nn.Conv2d(in_chans, half, 3, 1, 1, bias=False), norm(half), nn.ReLU(inplace=True),
                nn.Conv2d(half, width, 3, stride, 1, bias=False),
            )  # fmt: skip
        else:
            shape = (7, 2, 3) if stem == "imagenet" else (3, stride, 1)  # kernel, stride, padding
            self.conv1 = nn.Conv2d(in_chans, width, *shape, bias=False)
        self.bn1 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()

    def _stages(self, layers, widths, strides, block, mixers, norm, img_size, stem, stem_width,
                stem_stride, block_kw, out_indices) -> None:  # fmt: skip
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        stride = 4 if stem == "imagenet" else stem_stride
        strides_at = {0: 2 if stem == "imagenet" else stem_stride}
        channels_at = {0: stem_width}
        in_ch, self.stage_names = stem_width, []
        for i, (n, width, s, mixer) in enumerate(zip(layers, widths, strides, mixers), start=1):
            blocks = []
            for b in range(n):
                kw = {"num_heads": block_kw["mixer_heads"], "feat_size": downsampled(size, stride),
                      **(block_kw["mixer_kw"] or {})}  # fmt: skip
                block_stride = s if b == 0 else 1
                if block == "basic":
                    blocks.append(BasicBlock(in_ch, width, stride=block_stride, norm=norm,
                                             avg_down=block_kw["avg_down"]))  # fmt: skip
                    in_ch = width
                else:
                    blocks.append(Bottleneck(in_ch, width, stride=block_stride, mixer=mixer, mixer_kw=kw,
                                             norm=norm, expansion=block_kw["expansion"],
                                             avg_down=block_kw["avg_down"]))  # fmt: skip
                    in_ch = width * block_kw["expansion"]
                stride *= block_stride
            self.add_module(f"layer{i}", nn.Sequential(*blocks))  # torchvision's names
            self.stage_names.append(f"layer{i}")
            strides_at[i], channels_at[i] = stride, in_ch
        self.out_indices = check_out_indices(out_indices, strides_at, "resnet")
        self.out_channels = [channels_at[i] for i in self.out_indices]
        self.out_strides = [strides_at[i] for i in self.out_indices]
        self.num_features = in_ch

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (Bottleneck, BasicBlock)) and isinstance(m.last_norm(), nn.BatchNorm2d):
                    nn.init.zeros_(m.last_norm().weight)

    def _load(self, pretrained: bool | str) -> None:
        """Loads torchvision-named weights (not `fc`); a plain ResNet must find every tensor, a mixer
        ResNet keeps its mixers as initialised."""
        state = _torchvision_weights(self) if pretrained is True else _load_state_dict(pretrained)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing and not any(self.mixers):
            raise BoxerError(
                f"{pretrained}: not {f'ResNet-{_depth(self)}' if _depth(self) else 'this ResNet'}"
                " weights in torchvision naming "
                f"({len(missing)} tensors missing, e.g. {missing[:2]})"
            )
        log.info(
            "%s: loaded; %d missing (mixers), %d unexpected keys", pretrained, len(missing), len(unexpected)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        """Tensor[B, C_in, H, W] -> features at `out_indices`, fine to coarse."""
        x = self.relu(self.bn1(self.conv1(x)))  # B, stem, H/2, W/2 (small stem: H, W)
        feats = [x] if 0 in self.out_indices else []
        x = self.maxpool(x)
        for i, name in enumerate(self.stage_names, start=1):
            if i > self.out_indices[-1]:
                break
            x = run_layer(getattr(self, name), x, checkpointed=self.checkpoint_stages)
            if i in self.out_indices:
                feats.append(x)
        return feats


def _rename_old_keys(module: nn.Module, state: dict, prefix: str, *_: Any) -> None:
    """State-dict pre-hook: keys under the earlier names (`stem.0.`, `stem.1.`, `layers.i.`) get
    torchvision's, so checkpoints written before this module load unchanged."""
    for key in [k for k in state if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        new = re.sub(r"^layers\.(\d+)\.", lambda m: f"layer{int(m[1]) + 1}.", rest)
        for old, repl in _OLD_NAMES:
            new = re.sub("^" + old, repl, new)
        if new != rest:
            state[prefix + new] = state.pop(key)


def _depth(net: ResNet) -> int | None:
    """18, 34, 50 or 101 when `net` is that plain ResNet's shape; else None."""
    kind = "basic" if isinstance(net.layer1[0], BasicBlock) else "bottleneck"
    shape = (kind, tuple(len(getattr(net, n)) for n in net.stage_names))
    depth = {v: k for k, v in DEPTHS.items()}.get(shape)
    return None if any(net.mixers) else depth


def _torchvision_weights(net: ResNet) -> dict[str, Tensor]:
    """torchvision's ImageNet weights (IMAGENET1K_V1) of the plain ResNet that `net` is."""
    import torchvision

    depth = _depth(net)
    if depth is None:
        raise BoxerError(
            "backbone: pretrained=True needs a plain ResNet-18/34/50/101; pass a path to a state dict"
        )
    return getattr(torchvision.models, f"ResNet{depth}_Weights").IMAGENET1K_V1.get_state_dict(progress=False)


def _load_state_dict(path: str) -> dict[str, Tensor]:
    """A plain state dict, by `boxer.engine.checkpoint.load_weights_file` (the one weight loader:
    .safetensors, tensor-only .pt/.pth, a checkpoint directory; nothing arbitrary is unpickled)."""
    from boxer.engine.checkpoint import load_weights_file

    try:
        return load_weights_file(path)
    except BoxerError as err:
        reason = " ".join(str(err).removeprefix(f"{path}: ").split())[:300]
        raise BoxerError(f"{path}: cannot load backbone weights ({reason})") from None


def plain_resnet(depth: int, *, frozen_bn: bool = True, **kw: Any) -> ResNet:
    """torchvision's ResNet-`depth` (18, 34, 50, 101): frozen BN by default, torchvision's init."""
    if depth not in DEPTHS:
        raise BoxerError(f"backbone: ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
    block, layers = DEPTHS[depth]
    kw = {"zero_init_residual": False, "torchvision_init": True, **kw}
    return ResNet(layers=layers, block=block, frozen_bn=frozen_bn, **kw)


@register_backbone
def resnet18(**kw: Any) -> ResNet:
    return plain_resnet(18, **kw)


@register_backbone
def resnet34(**kw: Any) -> ResNet:
    return plain_resnet(34, **kw)


@register_backbone
def resnet50(**kw: Any) -> ResNet:
    return plain_resnet(50, **kw)


@register_backbone
def resnet101(**kw: Any) -> ResNet:
    return plain_resnet(101, **kw)
