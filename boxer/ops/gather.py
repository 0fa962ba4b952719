"""CPU fast path of the box-attention core: one gather pass over all levels.

Same maths as `reference.py` (bilinear, zero padding, align_corners=False), organised for the CPU:

* Every level is zero-padded by one pixel around and all levels are flattened into one table of
  rows (b, s_pad, h) -> D values. The four corners of any point that touches the map are then
  valid rows, so there is no per-corner bounds test; points that cannot touch the map
  (X <= -1, X >= W_l, ...) get weight 0 (and zero gradients), as with grid_sample.
* Geometry is computed for all levels at once on [B*Q*H, L*P] arrays (per-level constants are
  [L*P] vectors) and written into the gather layout [bag, 4 corners, L*P].
* Forward: one `embedding_bag` (fused gather + weighted sum; nothing materialised) per call.
* Backward (hand-written): the dot products g . V(corner) come from one sampled dense-dense
  product (`torch.sparse.sampled_addmm`) on the corner pattern; the location and weight gradients
  follow by the chain rule through the bilinear corner weights; the value gradient sorts the
  points once by their top-left row and sums g x corner weight per value row with one
  `embedding_bag` per corner (no scatter, no atomics, nothing of size points x D materialised).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

Shapes = list[tuple[int, int]]


class Geometry:
    """Corner rows, corner weights and bilinear fractions of every sample point.

    Args:
        loc: Tensor[B, Q, H, L, P, 2], (x, y) normalised to each level's map.
        attn: Tensor[B, Q, H, L, P].
        shapes: (H_l, W_l) per level.

    Attributes (N = B*Q*H, K = L*P, columns in (level, point) order):
        top_left: Tensor[N, K] padded-table row of each point's top-left corner (int32 if it fits).
        rows: Tensor[N, 4, K] rows of the corners (x0y0, x1y0, x0y1, x1y1).
        weights: Tensor[N, 4, K], attn x bilinear weight (0 for corners off the map).
        fx, fy, inside, a: Tensor[N, K]: fractions, touches-the-map mask, attn x inside.
        size: Tensor[2, K] of (W_l, H_l) per column; steps: Tensor[4, K] row step to each corner.
    """

    def __init__(self, loc: Tensor, attn: Tensor, shapes: Shapes) -> None:
        B, Q, H, L, P, _ = loc.shape
        N, K = B * Q * H, L * P
        dev, dt = loc.device, loc.dtype
        self.shapes, self.B, self.H, self.P = shapes, B, H, P
        padded = [(h + 2) * (w + 2) for h, w in shapes]
        self.table_rows = B * sum(padded) * H
        itype = torch.int32 if self.table_rows < 2**31 else torch.int64

        def per_column(vals, dtype):  # [L] -> [K]: one value per (level, point) column
            return torch.tensor(vals, device=dev, dtype=dtype).repeat_interleave(P)

        W, Hh = per_column([w for _, w in shapes], dt), per_column([h for h, _ in shapes], dt)
        row_len = per_column([w + 2 for _, w in shapes], dt)
        start = per_column([sum(padded[:i]) for i in range(L)], dt)
        self.size = torch.stack((W, Hh))
        corner_steps = [(0, 1, w + 2, w + 3) for _, w in shapes]  # tokens from top-left to each corner
        self.steps = torch.stack([per_column([st[c] * H for st in corner_steps], itype) for c in range(4)])
        xy = loc.reshape(N, K, 2)
        X, Y = xy[..., 0] * W - 0.5, xy[..., 1] * Hh - 0.5  # N, K pixel coords (align_corners=False)
        self.inside = (X > -1) & (X < W) & (Y > -1) & (Y < Hh)
        X, Y = torch.where(self.inside, X, -1.0), torch.where(self.inside, Y, -1.0)  # park far/NaN points
        x0, y0 = X.floor(), Y.floor()
        self.fx, self.fy = X - x0, Y - y0
        b = torch.arange(B, device=dev, dtype=itype)[:, None, None] * (sum(padded) * H)
        base = (b + torch.arange(H, device=dev, dtype=itype)).expand(B, Q, H).reshape(N, 1)
        tok = (y0 + 1) * row_len + (x0 + 1) + start  # padded top-left token (exact in float)
        self.top_left = tok.to(itype) * H + base
        self.rows = self.top_left[:, None, :] + self.steps  # N, 4, K
        self.a = attn.reshape(N, K) * self.inside
        # bilinear factors, zero for corners in the padding ring (the value gradient skips the ring)
        wx = torch.stack(((1 - self.fx) * (x0 >= 0), self.fx * (x0 < W - 1)), dim=1)  # N, 2, K
        wy = torch.stack(((1 - self.fy) * (y0 >= 0), self.fy * (y0 < Hh - 1)), dim=1) * self.a[:, None]
        self.weights = (wy[:, :, None] * wx[:, None]).view(N, 4, K)  # (y0: x0, x1), (y1: x0, x1)


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
    rows, weights = _bags(geo.rows, P, sum_points), _bags(geo.weights, P, sum_points)
    return F.embedding_bag(rows, table, per_sample_weights=weights, mode="sum").view(out_shape)


def padded_rows(shapes: Shapes, B: int, H: int, device: torch.device) -> Tensor:
    """Padded-table row of every unpadded value row (b, s, h): LongTensor[B * S * H]."""
    toks, start = [], 0
    for h, w in shapes:
        y, x = torch.meshgrid(torch.arange(1, h + 1), torch.arange(1, w + 1), indexing="ij")
        toks.append((start + y * (w + 2) + x).flatten())
        start += (h + 2) * (w + 2)
    tok = torch.cat(toks).to(device)  # S
    b = torch.arange(B, device=device)[:, None, None] * start
    return ((b + tok[None, :, None]) * H + torch.arange(H, device=device)).flatten()


def _corner_dots(geo: Geometry, table: Tensor, g: Tensor, sum_points: bool) -> Tensor:
    """g . V(corner) for every corner entry, Tensor[N, 4, L*P] (sampled dense-dense product)."""
    N, _, K = geo.rows.shape
    cols = _bags(geo.rows, geo.P, sum_points)  # bags, entries
    nb, E = cols.shape
    crow = torch.arange(0, nb * E + 1, E, device=cols.device, dtype=cols.dtype)
    zeros = table.new_zeros(nb * E)
    if E > table.shape[0]:  # sampled_addmm needs nnz <= rows x columns; extra zero rows are never read
        table = F.pad(table, (0, 0, 0, E - table.shape[0]))
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(crow, cols.reshape(-1), zeros, size=(nb, table.shape[0]))
        dots = torch.sparse.sampled_addmm(pattern, g, table.t()).values()
    if sum_points:
        return dots.view(N, 4, K)
    return dots.view(N, geo.P, 4, -1).permute(0, 2, 3, 1).reshape(N, 4, K)


def _value_grad(geo: Geometry, g: Tensor, sum_points: bool) -> Tensor:
    """Scatter of corner weight x g into the value rows, as sorted segment sums (`embedding_bag`).

    The points are sorted once by their top-left row. Corner c of a point sits `step_c(level)` rows
    after its top-left, and the step keeps a row inside its own level and batch block, so the
    points stay sorted by their corner-c row too, and the number of points whose corner-c row is
    below r is the number whose top-left row is below r - step_c: one bincount and one cumsum
    serve all four corners. Each corner is then one `embedding_bag` over g whose bags are the
    value rows. A corner in the padding ring has weight 0, so it may sit in any bag.
    """
    N, _, K = geo.rows.shape
    P = geo.P
    keys = geo.top_left.reshape(-1)  # point (n, column)
    order = torch.argsort(keys)
    n = order.div(K, rounding_mode="floor")
    g_row = n if sum_points else n * P + order.remainder(P)  # the column's point index is column % P
    w_pos = n * (3 * K) + order  # flat index of corner 0 in geo.weights[N, 4, K]
    counts = torch.bincount(keys, minlength=geo.table_rows)
    below = counts.cumsum(0) - counts  # points whose top-left row is below r
    first_entry = padded_rows(geo.shapes, geo.B, geo.H, keys.device)  # B*S*H unpadded rows
    level_step = _row_steps(geo)  # 4, B*S*H: step_c of each unpadded row's level
    w_flat = geo.weights.view(-1)
    grad = None
    for c in range(4):
        offsets = below.index_select(0, first_entry - level_step[c])
        offsets[0] = 0
        w_c = w_flat.index_select(0, w_pos + c * K)
        part = F.embedding_bag(g_row, g, offsets, per_sample_weights=w_c, mode="sum")  # B*S*H, D
        grad = part if grad is None else grad.add_(part)
    return grad


def _row_steps(geo: Geometry) -> Tensor:
    """Tensor[4, B*S*H]: the corner steps of each unpadded value row's level (rows (b, s, h))."""
    per_level = geo.steps[:, :: geo.P].long()  # 4, L
    sizes = torch.tensor([h * w for h, w in geo.shapes], device=per_level.device)
    steps = per_level.repeat_interleave(sizes, dim=1)  # 4, S
    return steps[:, None, :, None].expand(4, geo.B, -1, geo.H).reshape(4, -1)


def _chain(geo: Geometry, dots: Tensor, loc_shape: torch.Size) -> tuple[Tensor, Tensor]:
    """Location and weight gradients from d out / d corner weight = g . V(corner)."""
    fx, fy = geo.fx, geo.fy
    d00, d10, d01, d11 = dots.unbind(1)  # N, K each
    dx0, dx1 = d10 - d00, d11 - d01  # d / d fx on rows y0 and y1
    top = d00 + dx0 * fx
    vertical = d01 + dx1 * fx - top  # d / d fy
    grad_attn = (top + vertical * fy) * geo.inside
    grad_x = geo.a * (dx0 + (dx1 - dx0) * fy) * geo.size[0]  # d pixel / d x = W_l
    grad_y = geo.a * vertical * geo.size[1]
    return torch.stack((grad_x, grad_y), dim=-1).view(loc_shape), grad_attn.view(loc_shape[:-1])


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
