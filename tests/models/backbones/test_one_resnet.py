"""One ResNet under the plain, BoTNet and hybrid backbones (boxer/models/backbones/resnet.py).

The plain ResNets were torchvision's models re-parented (`stem` = conv1, bn1, relu; `layers.i` =
layer{i+1}): the unified module must start from the same weights for the same seed, give the same
features for the same state dict, take torchvision's state dict strictly and still load
checkpoints written under the earlier names."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from boxer.models.backbones import create_backbone
from boxer.models.backbones.hybrid import MixerResNet
from boxer.models.backbones.resnet import ResNet


def _torchvision_features(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """C3, C4, C5 of a torchvision ResNet, as the earlier backbone computed them."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    feats = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = layer(x)
        feats.append(x)
    return feats[1:]


def _old_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The earlier backbone's keys: stem.0 = conv1, stem.1 = bn1, layers.i = layer{i+1}."""
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in ("conv1", "bn1"):
            out[f"stem.{0 if head == 'conv1' else 1}.{rest}"] = value
        elif head.startswith("layer"):
            out[f"layers.{int(head[5:]) - 1}.{rest}"] = value
    return out


@pytest.mark.parametrize(("depth", "frozen_bn"), [(18, True), (50, True), (18, False)])
def test_plain_resnet_is_torchvisions(depth, frozen_bn):
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    torch.manual_seed(3)
    reference = getattr(torchvision.models, f"resnet{depth}")(norm_layer=norm).eval()
    torch.manual_seed(3)
    ours = create_backbone(f"resnet{depth}", frozen_bn=frozen_bn).eval()
    tv_state = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert list(ours.state_dict()) == list(tv_state)  # torchvision's names, in its order
    for key, value in ours.state_dict().items():
        assert torch.equal(value, tv_state[key]), key  # the same seeded initialisation
    with torch.no_grad():  # BN statistics that matter, then the same state dict in both
        for m in reference.modules():
            if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
                (
                    m.running_mean.uniform_(-0.2, 0.2),
                    m.running_var.uniform_(0.5, 2.0),
                    m.weight.uniform_(0.5, 1.5),
                )
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(ours(x), _torchvision_features(reference, x)):
            assert torch.equal(a, b)


def test_checkpoints_under_the_earlier_names_load():
    torch.manual_seed(0)
    source = create_backbone("resnet18")
    target = create_backbone("resnet18")
    outer = nn.Module()
    outer.backbone = target
    old = {f"backbone.{k}": v for k, v in _old_names(source.state_dict()).items()}
    assert outer.load_state_dict(old, strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_frozen_stages_and_defaults():
    trainable_bn = create_backbone("resnet18", frozen_stages=2, frozen_bn=False)
    frozen = {n.split(".")[0] for n, p in trainable_bn.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "bn1", "layer1"}  # the stem and the first stage
    net = create_backbone("resnet18")
    assert isinstance(net.bn1, FrozenBatchNorm2d)  # plain ResNets: frozen BN by default
    assert isinstance(create_backbone("bot50").bn1, nn.BatchNorm2d)  # mixer ResNets: trainable BN
    assert MixerResNet is ResNet and type(create_backbone("bot50")) is type(net)


def test_resnet50_mx_is_resnet50_with_trainable_bn():
    torch.manual_seed(0)
    plain = create_backbone("resnet50", frozen_bn=False)
    mixer_free = create_backbone("resnet50_mx")
    assert list(plain.state_dict()) == list(mixer_free.state_dict())
    mixer_free.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(plain.eval()(x), mixer_free.eval()(x)))
