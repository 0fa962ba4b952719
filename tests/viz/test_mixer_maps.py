"""Mixer attention maps (`boxer/viz/mixer_capture.py`, `mixer_maps.py`) and attention rollout."""

from __future__ import annotations

import pytest
import torch

from boxer.layers.mixers import create_mixer
from boxer.viz.mixer_capture import AttentionCapture
from boxer.viz.mixer_maps import query_map, rollout


def _maps(name: str, y: int, x: int, size: int = 8, **kw) -> torch.Tensor:
    torch.manual_seed(0)
    mixer = create_mixer(name, 16, num_heads=2, **kw).eval()
    inp = torch.randn(1, 16, size, size)
    before = mixer(inp)
    with AttentionCapture(mixer) as cap:
        after = mixer(inp)
    assert torch.equal(before, after)  # the capture changes nothing
    ((core, calls),) = cap.calls.items()
    return query_map(cap.owners[core], calls[0].probs, size, size, y, x)


@pytest.mark.parametrize(("y", "x"), [(0, 0), (5, 2), (7, 7)])
def test_window_map_is_zero_outside_the_query_window(y, x):
    m = _maps("window", y, x, window_size=4)
    assert m.shape == (2, 8, 8)
    torch.testing.assert_close(m.sum((1, 2)), torch.ones(2))
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[y // 4 * 4 : y // 4 * 4 + 4, x // 4 * 4 : x // 4 * 4 + 4] = True
    assert (m[:, ~inside] == 0).all() and (m[:, inside] > 0).all()


@pytest.mark.parametrize(("y", "x"), [(7, 7), (6, 1), (1, 7), (5, 5), (0, 0)])
def test_shifted_window_map_never_crosses_the_wrapped_border(y, x):
    m = _maps("window_shifted", y, x, window_size=4)  # shift 2: regions 0-1 | 2-5 | 6-7 per axis
    torch.testing.assert_close(m.sum((1, 2)), torch.ones(2))
    region = [slice(0, 2), slice(2, 6), slice(6, 8)]
    ry = next(r for r in region if r.start <= y < r.stop)
    rx = next(r for r in region if r.start <= x < r.stop)
    allowed = torch.zeros(8, 8, dtype=torch.bool)
    allowed[ry, rx] = True
    assert (m[:, ~allowed] == 0).all(), "attention leaked across the wrapped border"
    assert (m[:, allowed] > 0).all()


def test_global_local_and_pvt_maps_sum_to_one_with_the_right_support():
    torch.testing.assert_close(_maps("mhsa", 3, 4).sum((1, 2)), torch.ones(2))
    local = _maps("local", 0, 0, kernel_size=3)
    assert (local[:, 2:, :] == 0).all() and (local[:, :, 2:] == 0).all() and (local[:, :2, :2] > 0).all()
    pvt = _maps("pvt", 3, 3, size=7)  # 7 x 7 with R = 2: a padded 4 x 4 reduced map, cropped
    assert pvt.shape == (2, 7, 7) and (pvt >= 0).all() and (pvt.sum((1, 2)) <= 1 + 1e-5).all()
    torch.testing.assert_close(pvt[:, 0, 0], pvt[:, 1, 1])  # one reduced key per 2 x 2 cell


def test_rollout_of_identity_attention_is_identity():
    eye = torch.eye(6).expand(2, 6, 6)
    torch.testing.assert_close(rollout([eye, eye, eye]), torch.eye(6))


def test_rollout_multiplies_layers_with_the_residual():
    a = torch.softmax(torch.randn(5, 5), -1)
    b = torch.softmax(torch.randn(5, 5), -1)
    ra, rb = 0.5 * (a + torch.eye(5)), 0.5 * (b + torch.eye(5))
    torch.testing.assert_close(rollout([a, b]), rb @ ra)
    torch.testing.assert_close(rollout([a, b]).sum(-1), torch.ones(5))
