"""The shared core op `boxer::box_attention_core`: weighted bilinear sampling at given locations.

Registered with `torch.library.custom_op` so that every backend looks like one operator to
PyTorch: a fake (meta) implementation for tracing/compile, a hand-written backward (a second
custom op, `boxer::box_attention_core_backward`), and FLOP formulas so that
`torch.utils.flop_counter.FlopCounterMode` counts it (see `core_flops`).

Core contract: value Tensor[B, S, H, D], level shapes flattened [H_0, W_0, H_1, W_1, ...],
loc Tensor[B, Q, H, L, P, 2] ((x, y) normalised to each level's map), attn Tensor[B, Q, H, L, P]
-> Tensor[B, Q, H, D] (sum_points) or Tensor[B, Q, H, P, D] (levels summed only). All floating
tensors share one dtype, float32 or float64 (the public ops promote).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from boxer.ops import gather, reference

Shapes = list[tuple[int, int]]


def _pairs(shapes: list[int]) -> Shapes:
    return [(shapes[i], shapes[i + 1]) for i in range(0, len(shapes), 2)]


def _out_shape(value: Tensor, loc: Tensor, sum_points: bool) -> tuple[int, ...]:
    B, Q, H, _, P, _ = loc.shape
    return (B, Q, H, value.shape[-1]) if sum_points else (B, Q, H, P, value.shape[-1])


@torch.library.custom_op("boxer::box_attention_core", mutates_args=())
def _core(
    value: Tensor, shapes: list[int], loc: Tensor, attn: Tensor, sum_points: bool, backend: str
) -> Tensor:
    pairs = _pairs(shapes)
    if backend == "gather":
        return gather.gather_forward(value, pairs, loc, attn, sum_points)
    if backend == "triton":
        from boxer.ops import triton_kernel  # imports triton; only reached when that backend was chosen

        return triton_kernel.triton_forward(value, pairs, loc, attn, sum_points)
    return reference.core_reference(value, pairs, loc, attn, sum_points=sum_points).contiguous()


@_core.register_fake
def _core_fake(value, shapes, loc, attn, sum_points, backend):
    return value.new_empty(_out_shape(value, loc, sum_points))


@torch.library.custom_op("boxer::box_attention_core_backward", mutates_args=())
def _core_backward(
    grad: Tensor, value: Tensor, shapes: list[int], loc: Tensor, attn: Tensor, sum_points: bool, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    pairs = _pairs(shapes)
    grad = grad.contiguous()
    if backend == "gather":
        return gather.gather_backward(grad, value, pairs, loc, attn, sum_points)
    if backend == "triton":
        from boxer.ops import triton_kernel

        return triton_kernel.triton_backward(grad, value, pairs, loc, attn, sum_points)
    return reference.core_reference_backward(grad, value, pairs, loc, attn, sum_points=sum_points)


@_core_backward.register_fake
def _core_backward_fake(grad, value, shapes, loc, attn, sum_points, backend):
    return torch.empty_like(value), torch.empty_like(loc), torch.empty_like(attn)


def _setup_context(ctx, inputs, output) -> None:
    value, shapes, loc, attn, sum_points, backend = inputs
    ctx.save_for_backward(value, loc, attn)
    ctx.shapes, ctx.sum_points, ctx.backend = shapes, sum_points, backend


def _backward(ctx, grad: Tensor):
    value, loc, attn = ctx.saved_tensors
    gv, gl, ga = _core_backward(grad, value, ctx.shapes, loc, attn, ctx.sum_points, ctx.backend)
    return gv, None, gl, ga, None, None


_core.register_autograd(_backward, setup_context=_setup_context)


def core_flops(loc_shape, value_shape) -> int:
    """FLOPs of one forward call: 10 * D per sample point.

    Per point and channel: a bilinear sample is 4 corner multiply-adds (8 FLOPs), the attention
    weighting one more multiply-add (2 FLOPs). Coordinate arithmetic (O(1) per point, not per
    channel) is not counted, as FlopCounterMode counts only matmul-like work elsewhere.
    """
    B, Q, H, L, P, _ = loc_shape
    return 10 * value_shape[-1] * B * Q * H * L * P


@register_flop_formula(torch.ops.boxer.box_attention_core)
def _core_flop(value_shape, shapes, loc_shape, attn_shape, *args, out_shape=None, **kwargs) -> int:
    return core_flops(loc_shape, value_shape)


@register_flop_formula(torch.ops.boxer.box_attention_core_backward)
def _core_backward_flop(grad_shape, value_shape, shapes, loc_shape, *args, out_shape=None, **kwargs) -> int:
    # value gradient (4 corner multiply-adds per channel) + corner dot products (4 per channel)
    return 2 * core_flops(loc_shape, value_shape)


def box_attention_core(
    value: Tensor, shapes: Shapes, loc: Tensor, attn: Tensor, *, sum_points: bool, backend: str
) -> Tensor:
    """Tensor[B, Q, H, D] (sum_points) or Tensor[B, Q, H, P, D] by the named backend.

    Under `torch.export` (and so the ONNX export) the per-level `grid_sample` reference is traced
    inline instead, whatever the backend: the graph then holds standard ops only (GridSample in
    ONNX) and the level sizes may stay symbolic.
    """
    if torch.compiler.is_exporting():
        return reference.core_reference(value, shapes, loc, attn, sum_points=sum_points)
    flat = [int(x) for hw in shapes for x in hw]
    return _core(value.contiguous(), flat, loc.contiguous(), attn.contiguous(), sum_points, backend)
