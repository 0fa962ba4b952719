"""CPU fast path of the box-attention core: one gather pass over all levels.

Same maths as `reference.py` (bilinear, zero padding, align_corners=False), organised for the CPU:

* Every level is zero-padded by one pixel around and all levels are flattened into one table of
  rows (b, s_pad, h) -> D values. The four corners of any point that touches the map are then
  valid rows, so there is no per-corner bounds test; points that cannot touch the map
  (X <= -1, X >= W_l, ...) get weight 0 (and zero gradients), as with grid_sample.
* Geometry is computed for all levels at once on [B*Q*H, L*P] arrays (per-level constants are
  [L*P] vectors, cached per level layout), with fused ops (`addcmul`, `out=`) where they save a
  pass over the points; it is recomputed in backward rather than saved (activation memory).
* Forward: one `embedding_bag` (fused gather + weighted sum; nothing materialised) per call.
* Backward (hand-written): the dot products g . V(corner) come from one sampled dense-dense
  product (`torch.sparse.sampled_addmm`, written in place) on the corner pattern; the location
  and weight gradients follow by the chain rule through the bilinear corner weights; the value
  gradient sorts the points once by their top-left row, sums g x corner weight per occupied
  top-left row with one `embedding_bag` per corner and adds those sums to the corners' value rows
  (`index_add_`): work in points and occupied rows, nothing of size points x D materialised.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

Shapes = list[tuple[int, int]]
_EXACT_INT = {torch.float32: 2**24, torch.float64: 2**53}  # integers below these are exact in the dtype


class Geometry:
    """Corner rows and bilinear fractions of every sample point, in padded-table coordinates.

    Args:
        loc: Tensor[B, Q, H, L, P, 2], (x, y) normalised to each level's map.
        attn: Tensor[B, Q, H, L, P].
        shapes: (H_l, W_l) per level.

    Attributes (N = B*Q*H, K = L*P, columns in (level, point) order):
        top_left: Tensor[N, K] padded-table row of each point's top-left corner (int32 if it fits).
        x0, y0: Tensor[N, K] padded pixel of the top-left corner (float; 0 .. W_l, 0 .. H_l).
        fx, fy, inside, a: Tensor[N, K]: fractions, touches-the-map mask, attn x inside.
        cols: per-column constants (`_Columns`).
    """

    def __init__(self, loc: Tensor, attn: Tensor, shapes: Shapes) -> None:
        B, Q, H, L, P, _ = loc.shape
        N, K = B * Q * H, L * P
        self.shapes, self.B, self.H, self.P, self.N, self.K = shapes, B, H, P, N, K
        cols = self.cols = _columns(tuple(shapes), P, H, loc.device, loc.dtype)
        self.table_rows = B * cols.padded_tokens * H
        xy = loc.reshape(N, K, 2)
        # padded pixel coordinates: pixel x W_l - 1/2 (align_corners=False), + 1 for the zero ring
        X = torch.addcmul(cols.half, xy[..., 0], cols.size[0])  # N, K
        Y = torch.addcmul(cols.half, xy[..., 1], cols.size[1])
        self.inside = (X > 0) & (X < cols.size_ring[0]) & (Y > 0) & (Y < cols.size_ring[1])
        X, Y = torch.where(self.inside, X, 0.0), torch.where(self.inside, Y, 0.0)  # park far/NaN points
        self.x0, self.y0 = X.floor(), Y.floor()
        self.fx, self.fy = X.sub_(self.x0), Y.sub_(self.y0)
        tok = torch.addcmul(self.x0 + cols.start, self.y0, cols.row_len)  # padded token, exact in float
        itype = torch.int32 if self.table_rows < 2**31 else torch.int64
        b = torch.arange(B, device=loc.device, dtype=itype)[:, None, None] * (cols.padded_tokens * H)
        base = (b + torch.arange(H, device=loc.device, dtype=itype)).expand(B, Q, H).reshape(N, 1)
        if self.table_rows < _EXACT_INT[loc.dtype]:
            self.top_left = torch.addcmul(base.to(loc.dtype), tok, cols.heads).to(itype)  # exact
        else:
            self.top_left = tok.to(itype) * H + base
        self.a = attn.reshape(N, K) * self.inside

    def corner_rows(self) -> Tensor:
        """Tensor[N, 4, K]: padded-table rows of the corners (x0y0, x1y0, x0y1, x1y1)."""
        return self.top_left[:, None, :] + self.cols.steps.to(self.top_left.dtype)

    def corner_weights(self, *, corner_major: bool = False) -> Tensor:
        """attn x bilinear weight of each corner, Tensor[N, 4, K] or (corner_major) Tensor[4, N, K].

        Corners in the padding ring get their weight like any other: they read (forward) or
        receive (backward, dropped afterwards) the ring's zeros.
        """
        ay1 = self.fy * self.a
        ay0 = self.a - ay1
        if not corner_major:  # (a stack is faster than strided writes into [N, 4, K])
            w10, w11 = ay0 * self.fx, ay1 * self.fx
            return torch.stack((ay0 - w10, w10, ay1 - w11, w11), dim=1)
        w = self.a.new_empty(4, self.N, self.K)
        torch.mul(ay0, self.fx, out=w[1])
        torch.sub(ay0, w[1], out=w[0])
        torch.mul(ay1, self.fx, out=w[3])
        torch.sub(ay1, w[3], out=w[2])
        return w


class _Columns(NamedTuple):
    """Per-column constants of a level layout (column = (level, point)), each Tensor[K] unless said."""

    size: Tensor  # [2, K]: (W_l, H_l)
    size_ring: Tensor  # [2, K]: (W_l + 1, H_l + 1), the far edge in padded pixels
    row_len: Tensor  # W_l + 2
    start: Tensor  # first padded token of the level
    unpadded_start: Tensor  # [K] int64: first token of the level in the unpadded value
    half: Tensor  # scalar 0.5
    heads: Tensor  # scalar H
    steps: Tensor  # [4, K] int64: table rows from the top-left to each corner
    padded_tokens: int  # sum of (H_l + 2)(W_l + 2)


@functools.lru_cache(maxsize=64)
def _columns(shapes: tuple, P: int, H: int, device: torch.device, dtype: torch.dtype) -> _Columns:
    L = len(shapes)
    padded = [(h + 2) * (w + 2) for h, w in shapes]

    def per_column(vals, dt=dtype):  # [L] -> [K]
        return torch.tensor(vals, device=device, dtype=dt).repeat_interleave(P)

    size = torch.stack((per_column([w for _, w in shapes]), per_column([h for h, _ in shapes])))
    steps = [(0, 1, w + 2, w + 3) for _, w in shapes]  # tokens from top-left to each corner
    return _Columns(
        size=size,
        size_ring=size + 1,
        row_len=per_column([w + 2 for _, w in shapes]),
        start=per_column([sum(padded[:i]) for i in range(L)]),
        unpadded_start=per_column([sum(h * w for h, w in shapes[:i]) for i in range(L)], torch.int64),
        half=torch.tensor(0.5, device=device, dtype=dtype),
        heads=torch.tensor(float(H), device=device, dtype=dtype),
        steps=torch.stack([per_column([st[c] * H for st in steps], torch.int64) for c in range(4)]),
        padded_tokens=sum(padded),
    )


def padded_table(value: Tensor, shapes: Shapes) -> Tensor:
    """Tensor[B, S, H, D] -> Tensor[B * S_pad * H, D]: each level zero-padded by one pixel around."""
    B, _, H, D = value.shape
    levels = value.split([h * w for h, w in shapes], dim=1)
    padded = [
        F.pad(v.view(B, h, w, H, D), (0, 0, 0, 0, 1, 1, 1, 1)).flatten(1, 2)
        for v, (h, w) in zip(levels, shapes)
    ]
    return torch.cat(padded, dim=1).view(-1, D)  # rows (b, s_pad, h)


def _bags(t: Tensor, P: int, sum_points: bool) -> Tensor:
    """Tensor[N, 4, L*P] -> one row per output bag: [N, 4*L*P] or, per point, [N*P, 4*L]."""
    N = t.shape[0]
    if sum_points:
        return t.view(N, -1)
    return t.view(N, 4, -1, P).permute(0, 3, 1, 2).reshape(N * P, -1)


def gather_forward(value: Tensor, shapes: Shapes, loc: Tensor, attn: Tensor, sum_points: bool) -> Tensor:
    """Tensor[B, Q, H, D] (sum_points) or Tensor[B, Q, H, P, D]; see `reference.core_reference`."""
    B, Q, H, L, P, _ = loc.shape
    D = value.shape[-1]
    out_shape = (B, Q, H, D) if sum_points else (B, Q, H, P, D)
    if B * Q == 0:
        return value.new_zeros(out_shape)
    geo = Geometry(loc, attn, shapes)
    table = padded_table(value, shapes)
    rows, weights = _bags(geo.corner_rows(), P, sum_points), _bags(geo.corner_weights(), P, sum_points)
    return F.embedding_bag(rows, table, per_sample_weights=weights, mode="sum").view(out_shape)


def _corner_targets(geo: Geometry, first: Tensor) -> list[Tensor]:
    """For segments of points that share a top-left row, represented by one point each (`first`,
    flat (n, column) indices), the value row (b, s, h) that corner c of the segment lands on, per
    corner: four Tensor[U]; a corner on the padding ring gets the spare row B*S*H."""
    S = sum(h * w for h, w in geo.shapes)
    col = first.remainder(geo.K)
    n = first.div(geo.K, rounding_mode="floor")
    b, h = n.div(geo.N // geo.B, rounding_mode="floor"), n.remainder(geo.H)
    x0 = geo.x0.view(-1).index_select(0, first).long() - 1  # unpadded pixel of the top-left corner
    y0 = geo.y0.view(-1).index_select(0, first).long() - 1
    W, Hl = (s.long().index_select(0, col) for s in geo.cols.size)
    start = geo.cols.unpadded_start.index_select(0, col)
    row0 = ((b * S + start + y0 * W + x0) * geo.H + h).long()
    targets = []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        x, y = x0 + dx, y0 + dy
        inner = (x >= 0) & (x < W) & (y >= 0) & (y < Hl)
        targets.append(torch.where(inner, row0 + (dy * W + dx) * geo.H, geo.B * S * geo.H))
    return targets


def _corner_dots(geo: Geometry, table: Tensor, g: Tensor, sum_points: bool) -> Tensor:
    """g . V(corner) for every corner entry, Tensor[N, 4, L*P] (sampled dense-dense product)."""
    N, K = geo.N, geo.K
    cols = _bags(geo.corner_rows(), geo.P, sum_points)  # bags, entries
    nb, E = cols.shape
    crow = torch.arange(0, nb * E + 1, E, device=cols.device, dtype=cols.dtype)
    zeros = table.new_zeros(nb * E)
    if E > table.shape[0]:  # sampled_addmm needs nnz <= rows x columns; extra zero rows are never read
        table = F.pad(table, (0, 0, 0, E - table.shape[0]))
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(crow, cols.reshape(-1), zeros, size=(nb, table.shape[0]))
        torch.sparse.sampled_addmm(pattern, g, table.t(), beta=0.0, out=pattern)  # in place: no copy
        dots = pattern.values()
    if sum_points:
        return dots.view(N, 4, K)
    return dots.view(N, geo.P, 4, -1).permute(0, 2, 3, 1).reshape(N, 4, K)


def _value_grad(geo: Geometry, g: Tensor, sum_points: bool) -> Tensor:
    """Scatter of corner weight x g into the value rows, as sorted segment sums (`embedding_bag`).

    The points are sorted once by their top-left row; the points sharing a top-left row t form one
    segment. For each corner c, one `embedding_bag` over g sums (corner-c weight x g) per segment,
    and the segment sums are added to row t + step_c(level) of the padded table (a point's corners
    never leave its (image, level) block). Work is in points and occupied top-left rows, not in
    table rows: the sparse decoder queries pay for what they touch. The padding ring's rows (which
    receive the ring corners' share) are dropped at the end. Returns Tensor[B*S*H, D].
    """
    K, P = geo.K, geo.P
    keys, order = torch.sort(geo.top_left.reshape(-1))  # points (n, column) by top-left row
    _, counts = torch.unique_consecutive(keys, return_counts=True)  # points per occupied top-left row
    offsets = counts.cumsum(0) - counts
    n = order.div(K, rounding_mode="floor")
    g_row = n if sum_points else n * P + order.remainder(P)  # the column's point index is column % P
    weights = geo.corner_weights(corner_major=True).view(4, -1)
    targets = _corner_targets(geo, order.index_select(0, offsets))
    grad = g.new_zeros(geo.B * sum(h * w for h, w in geo.shapes) * geo.H + 1, g.shape[1])  # + spare row
    for c in range(4):
        w_c = weights[c].index_select(0, order)
        part = F.embedding_bag(g_row, g, offsets, per_sample_weights=w_c, mode="sum")  # U, D
        grad.index_add_(0, targets[c], part)
    return grad[:-1]


def _chain(geo: Geometry, dots: Tensor, loc_shape: torch.Size) -> tuple[Tensor, Tensor]:
    """Location and weight gradients from d out / d corner weight = g . V(corner)."""
    fx, fy = geo.fx, geo.fy
    d00, d10, d01, d11 = dots.unbind(1)  # N, K each
    dx0, dx1 = d10 - d00, d11 - d01  # d / d fx on rows y0 and y1
    top = torch.addcmul(d00, dx0, fx)
    vertical = torch.addcmul(d01, dx1, fx).sub_(top)  # d / d fy
    grad_attn = torch.addcmul(top, vertical, fy).mul_(geo.inside)
    grad_loc = dots.new_empty(geo.N, geo.K, 2)
    torch.mul(torch.addcmul(dx0, dx1.sub_(dx0), fy), geo.a * geo.cols.size[0], out=grad_loc[..., 0])
    torch.mul(vertical, geo.a * geo.cols.size[1], out=grad_loc[..., 1])  # d pixel / d (x, y) = (W_l, H_l)
    return grad_loc.view(loc_shape), grad_attn.view(loc_shape[:-1])


def gather_backward(
    grad: Tensor, value: Tensor, shapes: Shapes, loc: Tensor, attn: Tensor, sum_points: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (value, loc, attn) of `gather_forward` for the output gradient `grad`."""
    B, Q = loc.shape[:2]
    D = value.shape[-1]
    if B * Q == 0:
        return torch.zeros_like(value), torch.zeros_like(loc), torch.zeros_like(attn)
    geo = Geometry(loc, attn, shapes)
    g = grad.reshape(-1, D).to(value.dtype).contiguous()  # one row per bag
    dots = _corner_dots(geo, padded_table(value, shapes), g, sum_points)
    grad_value = _value_grad(geo, g, sum_points).view(value.shape)
    return grad_value, *_chain(geo, dots, loc.shape)
