"""MAT attention: a token outside a window influences it only through the abstract tokens."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from boxer.layers import create_mixer


def _grad_outside_window(mixer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    mixer(x)[..., :4, :4].sum().backward()  # the outputs of the top-left 4x4 window
    grad = x.grad.abs().sum(1)[0]
    return grad[:4, :4].sum(), grad.sum() - grad[:4, :4].sum()


def test_other_windows_reach_a_window_only_through_abstract_tokens() -> None:
    torch.manual_seed(0)
    mixer = create_mixer("mat", 8, num_heads=2, window_size=4)
    x = torch.randn(1, 8, 8, 12)
    inside, outside = _grad_outside_window(mixer, x)
    assert inside > 0 and outside > 0  # cross-window information flows
    handle = mixer.mix.register_forward_hook(lambda m, i, out: out.detach())  # cut the abstract path
    inside, outside = _grad_outside_window(mixer, x)
    handle.remove()
    assert inside > 0 and outside == 0


class _RecordOps(TorchDispatchMode):
    """Records the names of the aten ops a forward runs."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_mat_never_rolls_the_map() -> None:
    """MAT exchanges information across windows without torch.roll (Swin's shifted windows roll)."""
    x = torch.randn(1, 8, 8, 8)
    for name, rolls in (("mat", False), ("window_shifted", True)):
        with _RecordOps() as ops:
            create_mixer(name, 8, num_heads=2, window_size=4)(x)
        assert ("roll" in ops.names) is rolls, name


def test_abstract_token_of_a_padded_window_sums_its_real_tokens_only() -> None:
    """A 6x6 map in 4x4 windows: the bottom-right window holds 2x2 real tokens and 12 of padding."""
    torch.manual_seed(0)
    mixer = create_mixer("mat", 8, num_heads=2, window_size=4).eval()
    x = torch.randn(1, 8, 6, 6)
    seen = {}
    handle = mixer.mix.register_forward_pre_hook(lambda m, args: seen.update(abstract=args[0]))
    mixer(x)
    handle.remove()
    real = x[0, :, 4:, 4:].flatten(1).t()[None]  # 1, 4, C
    _, k, v = mixer.core.project_qkv(real)
    expected = mixer.core.merge_heads(mixer.core.attend(mixer.abstract_query[None], k, v))  # 1, 1, C
    torch.testing.assert_close(seen["abstract"][:, 3], expected[:, 0])
