"""Every registered backbone: the feature API (channels, strides, fine to coarse), finite outputs,
gradients for every parameter, odd and even input sizes; BoT50 vs ResNet-50 parameters; hybrids with
every mixer; ViT's simple pyramid; Swin's stages."""

from __future__ import annotations

import math

import pytest
import torch

from boxer.errors import BoxerError
from boxer.layers import list_mixers
from boxer.models.backbones import create_backbone, list_backbones

TINY_RESNET = {"layers": (1, 1, 1, 1), "widths": (4, 8, 8, 16), "stem_width": 8, "img_size": 32}
TINY = {
    "resnet50_mx": TINY_RESNET,
    "bot50": TINY_RESNET,
    "hybrid50": TINY_RESNET,
    "vit_s16": {"dim": 32, "depth": 2, "num_heads": 2, "img_size": 32},
    "vit_ti16": {"dim": 32, "depth": 2, "num_heads": 2, "img_size": 32},
    "vit_fm": {"dim": 16, "depth": 2, "num_heads": 2},
    "swin_t": {"dims": (8, 16, 16, 32), "depths": (1, 2, 1, 1), "num_heads": (2, 2, 2, 2), "img_size": 32},
    "swin_fm": {"dims": (8, 16, 16), "depths": (2, 1, 1), "num_heads": (2, 2, 2)},
}
# The efficient-ViT deck's backbones and baselines (backbones/efficient.py), one block per stage.
_DECK = {"dims": (8, 16, 16, 32), "depths": (1, 1, 1, 1), "num_heads": (2, 2, 2, 2), "img_size": 32}
_DECK_FM = {"dims": (8, 16, 16), "depths": (1, 1, 1), "num_heads": (2, 2, 2)}
TINY.update({n: _DECK for n in ("emsnet_xxtiny", "emsnet_xtiny", "emsnet_tiny", "mat1", "mat2")})
TINY.update(
    {n: _DECK for n in ("partialformer_b0", "partialformer_b1", "pvt_v2_b0", "convnext_xt", "halo_0p7g")}
)
TINY.update({n: _DECK_FM for n in ("emsnet_fm", "mat_fm", "partialformer_fm")})
TINY["swin_0p7g"] = TINY["swin_t"]
SIZES = [(32, 32), (29, 35)]
# torchvision's deeper ResNets are slow to build and run on CPU; resnet18 stands for them by default.
BACKBONES = [
    n if n in TINY or n == "resnet18" else pytest.param(n, marks=pytest.mark.slow) for n in list_backbones()
]


def _build(name: str, **kw):
    torch.manual_seed(0)
    return create_backbone(name, **{**TINY.get(name, {}), **kw})


def _input(net, size: tuple[int, int]) -> torch.Tensor:
    chans = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    return torch.randn(2, chans, *size)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_feature_api(name: str, size: tuple[int, int]) -> None:
    net = _build(name).eval()
    feats = net(_input(net, size))
    assert len(feats) == len(net.out_channels) == len(net.out_strides)
    assert list(net.out_strides) == sorted(net.out_strides)
    for f, c, s in zip(feats, net.out_channels, net.out_strides):
        assert f.shape[:2] == (2, c)
        assert abs(f.shape[2] - size[0] / s) < 1 and abs(f.shape[3] - size[1] / s) < 1, (f.shape, s)
        assert torch.isfinite(f).all()


@pytest.mark.parametrize("name", BACKBONES)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    net = _build(name).train()
    with torch.no_grad():  # move zero-initialised parameters (last BN of each block) off zero
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    # At least 2x2 tokens in the last stage (partial attention: a background set to squeeze; local
    # attention: more than one key), and in EMS's coarse maps (C-MHSA: more than one neighbour).
    side = 64 if name.startswith(("swin", "partialformer", "halo")) else 32
    side = 128 if name.startswith("emsnet") else side
    feats = net(_input(net, (side, side)))
    sum(f.square().mean() for f in feats).backward()
    for pname, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("mixer", list_mixers())
def test_hybrid_resnet_takes_every_mixer(mixer: str) -> None:
    net = _build("hybrid50", mixer=mixer, mixer_stages=(3, 4), mixer_heads=2)
    for stage in (net.layer3, net.layer4):
        assert all(not isinstance(b.conv2, torch.nn.Conv2d) for b in stage)
    feats = net(torch.randn(2, 3, 35, 29))
    assert [f.shape[1] for f in feats] == net.out_channels
    sum(f.mean() for f in feats).backward()


def test_bot50_matches_the_deck() -> None:
    """BoT50: MHSA (relative, 4 heads, no projection) in all three c5 blocks; fewer parameters."""
    bot, r50 = create_backbone("bot50"), create_backbone("resnet50_mx")
    mixers = [b.conv2[0] for b in bot.layer4]
    assert len(mixers) == 3 and all(m.pos_embed is not None and m.core.num_heads == 4 for m in mixers)
    assert isinstance(bot.layer4[0].conv2[1], torch.nn.AvgPool2d)  # the stride-2 block pools after MHSA
    n_bot = sum(p.numel() for p in bot.parameters()) + 2048 * 1000 + 1000  # + the ImageNet head
    n_r50 = sum(p.numel() for p in r50.parameters()) + 2048 * 1000 + 1000
    assert n_bot < n_r50
    assert math.isclose(n_bot / 1e6, 20.8, abs_tol=0.1) and math.isclose(n_r50 / 1e6, 25.5, abs_tol=0.1)


def test_resnet50_takes_torchvision_weights() -> None:
    import torchvision

    state = {k: v for k, v in torchvision.models.resnet50().state_dict().items() if not k.startswith("fc.")}
    create_backbone("resnet50_mx").load_state_dict(state, strict=True)
    missing, unexpected = create_backbone("bot50").load_state_dict(state, strict=False)
    assert sorted(unexpected) == [f"layer4.{i}.conv2.weight" for i in range(3)]  # the replaced 3x3 convs
    assert missing and all(k.startswith("layer4.") and ".conv2.0." in k for k in missing)  # the MHSA


def test_vit_simple_feature_pyramid() -> None:
    net = _build("vit_s16", out_indices=(1, 2, 3, 4))
    assert net.out_strides == [4, 8, 16, 32] and net.out_channels == [8, 16, 32, 32]
    feats = net(torch.randn(1, 3, 64, 48))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 12), (8, 6), (4, 3), (2, 2)]


def test_swin_selects_stages() -> None:
    net = _build("swin_t", out_indices=(2, 4))
    assert net.out_strides == [8, 32] and net.out_channels == [16, 32]


@pytest.mark.parametrize(
    ("name", "kw"),
    [("bot50", {"out_indices": (5,)}), ("vit_s16", {"out_indices": (0,)}), ("swin_t", {"out_indices": (0,)})],
)
def test_bad_out_indices_are_user_errors(name: str, kw: dict) -> None:
    with pytest.raises(BoxerError, match="out_indices"):
        _build(name, **kw)


def test_resnet_block_options_deep_stem_avg_down_expansion() -> None:
    net = _build(
        "resnet50_mx", stem="deep", stem_stride=2, avg_down=True, expansion=2, out_indices=(0, 1, 2, 3, 4)
    )
    assert isinstance(net.conv1, torch.nn.Sequential) and net.conv1[0].stride == (1, 1)
    short = net.layer2[0].downsample
    assert isinstance(short[0], torch.nn.AvgPool2d) and short[1].stride == (1, 1)  # pool, then 1x1
    assert net.out_channels == [8, 8, 16, 16, 32] and net.out_strides == [2, 2, 4, 8, 16]
    feats = net(torch.randn(2, 3, 29, 35))
    assert [f.shape[1] for f in feats] == net.out_channels
    assert tuple(feats[-1].shape[-2:]) == (2, 3)  # ceil at every stride-2 step
    with pytest.raises(BoxerError, match="stem must be"):
        _build("resnet50_mx", stem="tiny")
