"""Position terms and masks: relative logits are translation equivariant, shifted windows never
attend across the wrapped border, local attention never sees beyond the map."""

from __future__ import annotations

import torch

from boxer.layers import create_mixer
from boxer.layers.mixers.positions import RelativeLogits2d, relative_position_index
from boxer.layers.mixers.window import shifted_window_mask


def test_relative_logits_are_translation_equivariant() -> None:
    """With the same query everywhere, logit(p, p + d) depends only on the offset d."""
    torch.manual_seed(0)
    H, W, d = 5, 6, 8
    rel = RelativeLogits2d(d, (H, W))
    q = torch.randn(1, 1, 1, d).expand(1, 1, H * W, d)
    logits = rel(q, H, W).view(H, W, H, W)
    for dy, dx in [(0, 0), (1, 2), (-2, 1), (3, -4)]:
        values = [
            logits[y, x, y + dy, x + dx]
            for y in range(H)
            for x in range(W)
            if 0 <= y + dy < H and 0 <= x + dx < W
        ]
        assert len(values) > 1
        torch.testing.assert_close(torch.stack(values), values[0].expand(len(values)))


def test_relative_logits_shift_with_the_input() -> None:
    """Shifting a toy map by one column shifts the logits by one column (away from the border)."""
    torch.manual_seed(0)
    H, W, d = 4, 8, 4
    rel = RelativeLogits2d(d, (H, W))
    q = torch.randn(1, 1, H, W, d)
    shifted = torch.roll(q, 1, dims=3)
    a = rel(q.flatten(2, 3), H, W).view(H, W, H, W)
    b = rel(shifted.flatten(2, 3), H, W).view(H, W, H, W)
    torch.testing.assert_close(b[:, 2:7, :, 2:7], a[:, 1:6, :, 1:6])


def test_smaller_maps_use_the_central_part_of_the_table() -> None:
    rel = RelativeLogits2d(4, (6, 6))
    small = RelativeLogits2d(4, (3, 3))
    with torch.no_grad():
        small.height_rel.copy_(rel.height_rel[3:8])
        small.width_rel.copy_(rel.width_rel[3:8])
    q = torch.randn(2, 1, 9, 4)
    torch.testing.assert_close(rel(q, 3, 3), small(q, 3, 3))


def test_shift_mask_separates_wrapped_regions() -> None:
    mask = shifted_window_mask(8, 8, (4, 4), (2, 2))
    assert mask.shape == (4, 16, 16)
    assert not mask[0].any()  # the top-left window is not wrapped
    assert mask[3].sum() > 0  # the bottom-right window mixes four regions


def test_shifted_window_never_attends_across_the_wrapped_border() -> None:
    torch.manual_seed(0)
    mixer = create_mixer("window_shifted", 8, num_heads=2, window_size=4)
    assert mixer.shift_size == (2, 2)
    x = torch.randn(1, 8, 8, 8, requires_grad=True)
    mixer(x)[..., 0, 0].sum().backward()  # token (0, 0) shares a rolled window with rows/cols 6, 7
    grad = x.grad.abs().sum(1)[0]  # H, W
    assert grad[6:, :].sum() == 0 and grad[:, 6:].sum() == 0
    assert grad[0:2, 0:2].sum() > 0  # its own region still counts
    # Without the mask the same window would mix the wrapped tokens in: the test can fail.
    x.grad = None
    mixer._attend = lambda windows, win, mask: type(mixer)._attend(mixer, windows, win, None)
    mixer(x)[..., 0, 0].sum().backward()
    assert x.grad.abs().sum(1)[0][6:, 6:].sum() > 0


def test_padding_is_never_attended() -> None:
    """A 6x6 map with 4x4 windows pads to 8x8; outputs do not depend on what the padding holds."""
    torch.manual_seed(0)
    mixer = create_mixer("window", 8, num_heads=2, window_size=4).eval()
    x = torch.randn(1, 8, 6, 6)
    out = mixer(x)
    torch.testing.assert_close(out, mixer(x))  # deterministic
    # Pretend a larger map: the extra rows/cols are real there, so outputs change near the border.
    big = torch.nn.functional.pad(x, (0, 2, 0, 2), value=3.0)
    assert not torch.allclose(mixer(big)[..., :6, :6], out)


def test_local_attention_sees_only_its_neighbourhood() -> None:
    torch.manual_seed(0)
    for dense_max_tokens in (1024, 0):  # both paths
        mixer = create_mixer("local", 8, num_heads=2, kernel_size=3, dense_max_tokens=dense_max_tokens)
        x = torch.randn(1, 8, 6, 7, requires_grad=True)
        mixer(x)[..., 2, 3].sum().backward()
        touched = x.grad.abs().sum(1)[0] > 0
        expected = torch.zeros(6, 7, dtype=torch.bool)
        expected[1:4, 2:5] = True
        assert torch.equal(touched, expected)


def test_local_attention_dense_and_unfold_paths_agree() -> None:
    torch.manual_seed(0)
    dense = create_mixer("local", 8, num_heads=2, kernel_size=5).eval()
    gathered = create_mixer("local", 8, num_heads=2, kernel_size=5, dense_max_tokens=0).eval()
    gathered.load_state_dict(dense.state_dict())
    x = torch.randn(2, 8, 7, 9)
    torch.testing.assert_close(dense(x), gathered(x), rtol=1e-5, atol=1e-5)


def test_relative_position_index_matches_swin() -> None:
    from timm.models.swin_transformer import get_relative_position_index

    assert torch.equal(relative_position_index(3, 5), get_relative_position_index(3, 5))
