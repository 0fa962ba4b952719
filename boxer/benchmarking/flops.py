"""FLOP counting with `torch.utils.flop_counter.FlopCounterMode`, plus the formulas it lacks.

torch counts matmuls, convolutions and the CUDA attention kernels, but not the CPU fused attention
kernel `aten._scaled_dot_product_flash_attention_for_cpu` that `F.scaled_dot_product_attention` runs
on CPU; we register it with torch's own SDPA formula, so attention FLOPs do not depend on the device.
Box-attention's custom op registers its formula in `boxer.ops.library`. Other ops (grid_sample,
softmax, norms, element-wise) count zero, as in torch's counter. A "FLOP" is one multiply or one add:
a multiply-accumulate is 2 FLOPs (torch's convention; `count_flops` returns that). torchvision, timm
and most vision papers count a multiply-add once; `boxer bench` reports that by default
(`boxer.benchmarking.runner`, docs/zoo.md "Efficiency table").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

_aten = torch.ops.aten


def _register_cpu_attention() -> None:
    forward = _aten._scaled_dot_product_flash_attention_for_cpu
    backward = _aten._scaled_dot_product_flash_attention_for_cpu_backward
    if forward not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(forward)
        def _forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    if backward not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(backward)
        def _backward(
            grad_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs
        ) -> int:
            return flop_counter.sdpa_backward_flop_count(grad_shape, query_shape, key_shape, value_shape)


_register_cpu_attention()


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of `fn` (forward only, unless `fn` runs a backward itself)."""
    import boxer.ops  # noqa: F401  (registers box-attention's formula)

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
