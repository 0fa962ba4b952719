"""torchvision ResNets as detection backbones (He et al., 2016), "v1.5" (stride in the 3x3 conv).

FrozenBatchNorm2d everywhere, as in DETR / Deformable DETR / BoxeR. Stage numbering follows timm's
features_only: 0 = stem (stride 2), 1..4 = layer1..layer4 (strides 4, 8, 16, 32).
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from boxer.errors import BoxerError
from boxer.models.backbones import register_backbone
from boxer.models.backbones.base import Backbone, freeze_modules

_STRIDES = (2, 4, 8, 16, 32)


class TorchvisionResNet(Backbone):
    """A torchvision ResNet returning the stages in `out_indices`.

    Args:
        depth: 18, 34, 50 or 101.
        out_indices: stages to return, timm numbering (default C3, C4, C5 = 2, 3, 4).
        pretrained: False, True (torchvision's ImageNet weights; needs a download or a cached
            copy), or a path to a state dict (.pth / .safetensors) of a torchvision ResNet.
        frozen_stages: stem and the first `frozen_stages - 1` layers get no gradient (0 = train all).
        frozen_bn: FrozenBatchNorm2d instead of BatchNorm2d.
    """

    def __init__(
        self,
        depth: int = 50,
        *,
        out_indices: Sequence[int] = (2, 3, 4),
        pretrained: bool | str = False,
        frozen_stages: int = 0,
        frozen_bn: bool = True,
    ) -> None:
        super().__init__()
        builders = {18: "resnet18", 34: "resnet34", 50: "resnet50", 101: "resnet101"}
        if depth not in builders:
            raise BoxerError(f"backbone: ResNet depth must be one of {sorted(builders)}, got {depth}")
        if not set(out_indices) <= set(range(5)):
            raise BoxerError(f"backbone: out_indices must lie in 0..4, got {tuple(out_indices)}")
        weights = "IMAGENET1K_V1" if pretrained is True else None
        norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        net = getattr(torchvision.models, builders[depth])(weights=weights, norm_layer=norm)
        if isinstance(pretrained, str):
            missing, _ = net.load_state_dict(_load_state_dict(pretrained), strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing:
                raise BoxerError(
                    f"{pretrained}: not ResNet-{depth} weights in torchvision naming "
                    f"({len(missing)} tensors missing, e.g. {missing[:2]})"
                )
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.maxpool = net.maxpool
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.out_indices = tuple(sorted(out_indices))
        widths = [64] + [64 * 2**i * (1 if depth < 50 else 4) for i in range(4)]
        self.out_channels = [widths[i] for i in self.out_indices]
        self.out_strides = [_STRIDES[i] for i in self.out_indices]
        frozen = [self.stem, *self.layers[: max(frozen_stages - 1, 0)]] if frozen_stages > 0 else []
        freeze_modules(*frozen)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)  # B, 64, H/2, W/2
        feats = [x] if 0 in self.out_indices else []
        x = self.maxpool(x)
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if i in self.out_indices:
                feats.append(x)
            if i >= self.out_indices[-1]:
                break
        return feats


def _load_state_dict(path: str) -> dict[str, Tensor]:
    """A plain state dict, by `boxer.engine.checkpoint.load_weights_file` (the one weight loader:
    .safetensors, tensor-only .pt/.pth, a checkpoint directory; nothing arbitrary is unpickled)."""
    from boxer.engine.checkpoint import load_weights_file

    try:
        return load_weights_file(path)
    except BoxerError as err:
        reason = " ".join(str(err).removeprefix(f"{path}: ").split())[:300]
        raise BoxerError(f"{path}: cannot load backbone weights ({reason})") from None


@register_backbone
def resnet18(**kw) -> TorchvisionResNet:
    return TorchvisionResNet(18, **kw)


@register_backbone
def resnet34(**kw) -> TorchvisionResNet:
    return TorchvisionResNet(34, **kw)


@register_backbone
def resnet50(**kw) -> TorchvisionResNet:
    return TorchvisionResNet(50, **kw)


@register_backbone
def resnet101(**kw) -> TorchvisionResNet:
    return TorchvisionResNet(101, **kw)
