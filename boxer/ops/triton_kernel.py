"""Fused Triton kernels of the box-attention core, forward and backward.

One program handles BLOCK_Q queries of one (batch, head) pair and all D channels. It walks the points and
levels, computes each point's bilinear corners in registers, loads the corner rows of the flattened value
(B, S, H, D) and accumulates weight x sample, so the sampled tensor is never materialised (the scheme of the
official CUDA kernel, github.com/kienduynguyen/BoxeR; docs/ops.md, "Backends"). The backward recomputes the
corners, takes the dot products g . V(corner) for the location and weight gradients, and adds weight x g
into the value gradient with atomic adds.

Importing this module imports triton: `boxer.ops.dispatch` only does so when the Triton backend
was chosen. On the CPU the kernels run under the Triton interpreter (TRITON_INTERPRET=1, set
before triton is imported), which is how the tests cover them without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_Q = 32


@triton.jit
def _corner(value_ptr, row_base, start, xc, yc, wl, hl, ok, d, dmask, H, D: tl.constexpr):
    """Loads the value rows of one corner for a block of points: [BLOCK_Q, BLOCK_D] (0 off the map)."""
    valid = ok & (xc >= 0) & (xc < wl) & (yc >= 0) & (yc < hl)
    row = (row_base + (start + yc * wl + xc).to(tl.int64) * H) * D
    v = tl.load(value_ptr + row[:, None] + d[None, :], mask=valid[:, None] & dmask[None, :], other=0.0)
    return v, valid, row


@triton.jit
def _point(loc_ptr, attn_ptr, meta_ptr, pt, l, qmask):
    """Pixel geometry of one point per query of the block."""
    hl = tl.load(meta_ptr + 3 * l)
    wl = tl.load(meta_ptr + 3 * l + 1)
    start = tl.load(meta_ptr + 3 * l + 2)
    x = tl.load(loc_ptr + 2 * pt, mask=qmask, other=0.0)
    y = tl.load(loc_ptr + 2 * pt + 1, mask=qmask, other=0.0)
    a = tl.load(attn_ptr + pt, mask=qmask, other=0.0)
    X = x * wl - 0.5  # align_corners=False
    Y = y * hl - 0.5
    inside = qmask & (X > -1.0) & (X < wl) & (Y > -1.0) & (Y < hl)
    X = tl.where(inside, X, -1.0)  # park far (and NaN) points
    Y = tl.where(inside, Y, -1.0)
    x0f = tl.floor(X)
    y0f = tl.floor(Y)
    a = tl.where(inside, a, 0.0)
    return hl, wl, start, X - x0f, Y - y0f, x0f.to(tl.int32), y0f.to(tl.int32), a, inside


@triton.jit
def _forward_kernel(
    value_ptr,
    meta_ptr,
    loc_ptr,
    attn_ptr,
    out_ptr,
    Q,
    S,
    L,
    P,
    H,
    D: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_D: tl.constexpr,
    SUM_POINTS: tl.constexpr,
):
    b = tl.program_id(1) // H
    h = tl.program_id(1) % H
    q = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    qmask = q < Q
    d = tl.arange(0, BLOCK_D)
    dmask = d < D
    bqh = (b * Q + q).to(tl.int64) * H + h  # [BLOCK_Q] output row
    row_base = b.to(tl.int64) * S * H + h
    acc = tl.zeros([BLOCK_Q, BLOCK_D], dtype=value_ptr.dtype.element_ty)
    for p in range(P):
        if not SUM_POINTS:
            acc = tl.zeros([BLOCK_Q, BLOCK_D], dtype=value_ptr.dtype.element_ty)
        for l in range(L):
            pt = (bqh * L + l) * P + p
            hl, wl, start, fx, fy, x0, y0, a, inside = _point(loc_ptr, attn_ptr, meta_ptr, pt, l, qmask)
            v, _, _ = _corner(value_ptr, row_base, start, x0, y0, wl, hl, inside, d, dmask, H, D)
            acc += (a * (1 - fx) * (1 - fy))[:, None] * v
            v, _, _ = _corner(value_ptr, row_base, start, x0 + 1, y0, wl, hl, inside, d, dmask, H, D)
            acc += (a * fx * (1 - fy))[:, None] * v
            v, _, _ = _corner(value_ptr, row_base, start, x0, y0 + 1, wl, hl, inside, d, dmask, H, D)
            acc += (a * (1 - fx) * fy)[:, None] * v
            v, _, _ = _corner(value_ptr, row_base, start, x0 + 1, y0 + 1, wl, hl, inside, d, dmask, H, D)
            acc += (a * fx * fy)[:, None] * v
        if not SUM_POINTS:
            out = out_ptr + (bqh * P + p)[:, None] * D + d[None, :]
            tl.store(out, acc, mask=qmask[:, None] & dmask[None, :])
    if SUM_POINTS:
        tl.store(out_ptr + bqh[:, None] * D + d[None, :], acc, mask=qmask[:, None] & dmask[None, :])


@triton.jit
def _backward_corner(
    value_ptr, gvalue_ptr, g, w, row_base, start, xc, yc, wl, hl, ok, d, dmask, H, D: tl.constexpr
):
    """Adds w x g into the corner's value gradient; returns g . V(corner)."""
    v, valid, row = _corner(value_ptr, row_base, start, xc, yc, wl, hl, ok, d, dmask, H, D)
    mask = valid[:, None] & dmask[None, :]
    tl.atomic_add(gvalue_ptr + row[:, None] + d[None, :], w[:, None] * g, mask=mask)
    return tl.sum(v * g, axis=1)


@triton.jit
def _backward_kernel(
    grad_ptr,
    value_ptr,
    meta_ptr,
    loc_ptr,
    attn_ptr,
    gvalue_ptr,
    gloc_ptr,
    gattn_ptr,
    Q,
    S,
    L,
    P,
    H,
    D: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_D: tl.constexpr,
    SUM_POINTS: tl.constexpr,
):
    b = tl.program_id(1) // H
    h = tl.program_id(1) % H
    q = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    qmask = q < Q
    d = tl.arange(0, BLOCK_D)
    dmask = d < D
    gmask = qmask[:, None] & dmask[None, :]
    bqh = (b * Q + q).to(tl.int64) * H + h
    row_base = b.to(tl.int64) * S * H + h
    g = tl.load(grad_ptr + bqh[:, None] * D + d[None, :], mask=gmask, other=0.0)
    for p in range(P):
        if not SUM_POINTS:
            g = tl.load(grad_ptr + (bqh * P + p)[:, None] * D + d[None, :], mask=gmask, other=0.0)
        for l in range(L):
            pt = (bqh * L + l) * P + p
            hl, wl, start, fx, fy, x0, y0, a, inside = _point(loc_ptr, attn_ptr, meta_ptr, pt, l, qmask)
            gx, gy = 1 - fx, 1 - fy
            d00 = _backward_corner(
                value_ptr, gvalue_ptr, g, a * gx * gy, row_base, start, x0, y0, wl, hl, inside, d, dmask, H, D
            )
            d10 = _backward_corner(
                value_ptr,
                gvalue_ptr,
                g,
                a * fx * gy,
                row_base,
                start,
                x0 + 1,
                y0,
                wl,
                hl,
                inside,
                d,
                dmask,
                H,
                D,
            )
            d01 = _backward_corner(
                value_ptr,
                gvalue_ptr,
                g,
                a * gx * fy,
                row_base,
                start,
                x0,
                y0 + 1,
                wl,
                hl,
                inside,
                d,
                dmask,
                H,
                D,
            )
            d11 = _backward_corner(
                value_ptr,
                gvalue_ptr,
                g,
                a * fx * fy,
                row_base,
                start,
                x0 + 1,
                y0 + 1,
                wl,
                hl,
                inside,
                d,
                dmask,
                H,
                D,
            )
            top = d00 + (d10 - d00) * fx
            bottom = d01 + (d11 - d01) * fx
            grad_a = tl.where(inside, top + (bottom - top) * fy, 0.0)
            grad_x = a * ((d10 - d00) * gy + (d11 - d01) * fy) * wl
            grad_y = a * (bottom - top) * hl
            tl.store(gattn_ptr + pt, grad_a, mask=qmask)
            tl.store(gloc_ptr + 2 * pt, grad_x, mask=qmask)
            tl.store(gloc_ptr + 2 * pt + 1, grad_y, mask=qmask)


def _meta(shapes: list[tuple[int, int]], device: torch.device) -> Tensor:
    rows, start = [], 0
    for h, w in shapes:
        rows.append((h, w, start))
        start += h * w
    return torch.tensor(rows, dtype=torch.int32, device=device)


def _launch_args(value: Tensor, loc: Tensor):
    B, S, H, D = value.shape
    Q, L, P = loc.shape[1], loc.shape[3], loc.shape[4]
    grid = (triton.cdiv(Q, BLOCK_Q), B * H)
    return grid, (Q, S, L, P, H), dict(D=D, BLOCK_Q=BLOCK_Q, BLOCK_D=triton.next_power_of_2(D))


def triton_forward(
    value: Tensor, shapes: list[tuple[int, int]], loc: Tensor, attn: Tensor, sum_points: bool
) -> Tensor:
    """Same contract as `reference.core_reference` (contiguous inputs of one dtype)."""
    B, Q, H, _, P, _ = loc.shape
    D = value.shape[-1]
    out = value.new_zeros((B, Q, H, D) if sum_points else (B, Q, H, P, D))
    if out.numel() == 0:
        return out
    grid, sizes, meta = _launch_args(value, loc)
    _forward_kernel[grid](
        value, _meta(shapes, value.device), loc, attn, out, *sizes, SUM_POINTS=sum_points, **meta
    )
    return out


def triton_backward(
    grad: Tensor, value: Tensor, shapes: list[tuple[int, int]], loc: Tensor, attn: Tensor, sum_points: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (value, loc, attn); the value gradient is accumulated with atomic adds."""
    grad_value, grad_loc, grad_attn = torch.zeros_like(value), torch.zeros_like(loc), torch.zeros_like(attn)
    if grad.numel() == 0:
        return grad_value, grad_loc, grad_attn
    grid, sizes, meta = _launch_args(value, loc)
    _backward_kernel[grid](
        grad,
        value,
        _meta(shapes, value.device),
        loc,
        attn,
        grad_value,
        grad_loc,
        grad_attn,
        *sizes,
        SUM_POINTS=sum_points,
        **meta,
    )
    return grad_value, grad_loc, grad_attn
