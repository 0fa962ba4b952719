"""Parity with timm given the same weights (<= 1e-5): BoTNet MHSA vs `timm.layers.BottleneckAttn`,
Swin window attention vs `timm.models.swin_transformer.WindowAttention` (and the shifted block)."""

from __future__ import annotations

import pytest
import torch
from timm.layers.bottleneck_attn import BottleneckAttn
from timm.models.swin_transformer import SwinTransformerBlock
from timm.models.swin_transformer import WindowAttention as TimmWindowAttention

from boxer.layers import create_mixer


@pytest.mark.parametrize(("size", "heads"), [((8, 8), 4), ((6, 10), 2)])
def test_relative_mhsa_matches_timm_bottleneck_attn(size: tuple[int, int], heads: int) -> None:
    torch.manual_seed(0)
    dim = 32
    theirs = BottleneckAttn(dim, feat_size=size, num_heads=heads).eval()
    ours = create_mixer("mhsa_rel", dim, num_heads=heads, feat_size=size, proj=False, qkv_bias=False).eval()
    with torch.no_grad():
        ours.core.qkv.weight.copy_(theirs.qkv.weight[:, :, 0, 0])
        ours.pos_embed.height_rel.copy_(theirs.pos_embed.height_rel)
        ours.pos_embed.width_rel.copy_(theirs.pos_embed.width_rel)
    x = torch.randn(2, dim, *size)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


def _copy_window_weights(ours, theirs) -> None:
    with torch.no_grad():
        ours.core.qkv.load_state_dict(theirs.qkv.state_dict())
        ours.core.proj.load_state_dict(theirs.proj.state_dict())
        ours.relative_position_bias_table.copy_(theirs.relative_position_bias_table)


@pytest.mark.parametrize("fused", [True, False])
def test_window_attention_matches_timm(fused: bool) -> None:
    torch.manual_seed(0)
    dim, heads, win = 24, 3, 4
    theirs = TimmWindowAttention(dim, num_heads=heads, window_size=win).eval()
    theirs.fused_attn = fused
    ours = create_mixer("window", dim, num_heads=heads, window_size=win).eval()
    _copy_window_weights(ours, theirs)
    windows = torch.randn(6, win * win, dim)  # B*nW = 2 * 3
    torch.testing.assert_close(ours.attend_windows(windows), theirs(windows), rtol=0, atol=1e-5)
    mask = torch.zeros(3, win * win, win * win)
    mask[1, :, 5:] = -100.0
    torch.testing.assert_close(ours.attend_windows(windows, mask), theirs(windows, mask), rtol=0, atol=1e-5)


@pytest.mark.parametrize("shift", [0, 2])
def test_shifted_window_mixer_matches_timm_swin_block(shift: int) -> None:
    torch.manual_seed(0)
    dim, heads, win, H, W = 24, 3, 4, 8, 12
    block = SwinTransformerBlock(dim, (H, W), num_heads=heads, window_size=win, shift_size=shift).eval()
    ours = create_mixer("window", dim, num_heads=heads, window_size=win, shift_size=shift).eval()
    _copy_window_weights(ours, block.attn)
    x = torch.randn(2, dim, H, W)
    theirs = block._attn(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # timm: B, H, W, C
    torch.testing.assert_close(ours(x), theirs, rtol=0, atol=1e-5)
