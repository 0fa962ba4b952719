"""The per-stage MetaFormer: bilinear patch embedding starts as 2x2 average pooling, MLP-only
stages, every stem and downsampling kind, per-stage keywords, bad configurations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from boxer.errors import BoxerError
from boxer.models.backbones.metaformer import DOWNSAMPLES, STEMS, BilinearPatchEmbed, MetaFormer

TINY = {"dims": (8, 16), "depths": (1, 1), "num_heads": 2, "mixers": "mhsa", "img_size": 32}


def test_bilinear_patch_embedding_starts_as_average_pooling() -> None:
    torch.manual_seed(0)
    embed = BilinearPatchEmbed(4, 8)  # offsets start at zero
    x = torch.randn(2, 4, 6, 10)
    expected = embed.norm(embed.proj(F.avg_pool2d(x, 2)))
    torch.testing.assert_close(embed(x), expected)
    with torch.no_grad():
        embed.offset[-1].weight.normal_()
    assert not torch.allclose(embed(x), expected)  # learnt offsets move the samples
    assert embed(torch.randn(1, 4, 7, 5)).shape == (1, 8, 4, 3)


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("downsample", DOWNSAMPLES)
def test_every_stem_and_downsampling(stem: str, downsample: str) -> None:
    net = MetaFormer(**TINY, stem=stem, downsample=downsample, out_indices=(1, 2))
    feats = net(torch.randn(1, 3, 30, 34))
    assert net.out_strides == [4, 8] and [f.shape[1] for f in feats] == [8, 16]
    assert [f.shape[-2:] for f in feats] == [(8, 9), (4, 5)]


def test_mlp_only_stages_and_per_stage_keywords() -> None:
    net = MetaFormer(
        dims=(8, 16), depths=(1, 2), num_heads=(1, 2), mixers=(None, "window"), img_size=32,
        mixer_kw=[{}, {"window_size": 2}], mlp_ratios=(2, 3), pos_conv=True,
    )  # fmt: skip
    first, second = net.stages[0][0], net.stages[1][1]
    assert first.mixer is None and first.norm1 is None and first.pos_conv is not None
    assert second.mixer.window_size == (2, 2) and second.mlp.fc1.out_channels == 48


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"stem": "nope"}, "stem must be one of"),
        ({"downsample": "nope"}, "downsample must be one of"),
        ({"mixers": ("mhsa",)}, "one entry per stage"),
        ({"pretrained": "weights.pth"}, "pretrained weights are not available"),
    ],
)
def test_bad_configuration_is_a_user_error(kw: dict, match: str) -> None:
    with pytest.raises(BoxerError, match=match):
        MetaFormer(**{**TINY, **kw})
