"""CPU fast path of the box-attention core: one gather pass over all levels.

Same maths as `reference.py` (bilinear, zero padding, align_corners=False), organised for the CPU:

* Every level is zero-padded by one pixel around and all levels are flattened into one table of
  rows (b, s_pad, h) -> D values. The four corners of any point that touches the map are then
  valid rows, so there is no per-corner bounds test; points that cannot touch the map
  (X <= -1, X >= W_l, ...) get weight 0 (and zero gradients), as with grid_sample.
* Geometry is computed level by level on contiguous [B*Q*H, P] slices with Python scalars (cheap
  elementwise work) and written straight into the gather layout [bag, L, 4 corners, P].
* Forward: one `embedding_bag` (fused gather + weighted sum; nothing materialised) per call.
* Backward (hand-written): the dot products g . V(corner) come from one sampled dense-dense
  product (`torch.sparse.sampled_addmm`) on the corner pattern; the location and weight gradients
  follow by the chain rule through the bilinear corner weights; the value gradient sorts the
  points once by their top-left row and sums g x corner weight per table row with one
  `embedding_bag` per corner (no scatter, no atomics, nothing of size points x D materialised).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

Shapes = list[tuple[int, int]]


class Geometry:
    """Corner rows, corner weights and per-level bilinear fractions of every sample point.

    Args:
        loc: Tensor[B, Q, H, L, P, 2], (x, y) normalised to each level's map.
        attn: Tensor[B, Q, H, L, P].
        shapes: (H_l, W_l) per level.

    Attributes:
        rows: Tensor[N, L, 4, P] (N = B*Q*H) of padded-table rows of the corners
            (x0y0, x1y0, x0y1, x1y1); int32 when the table allows.
        weights: Tensor[N, L, 4, P], attn x bilinear weight (0 for corners off the map).
        levels: per level (fx, fy, inside, a) on [N, P]: fractions, touches-the-map mask, masked attn.
    """

    def __init__(self, loc: Tensor, attn: Tensor, shapes: Shapes) -> None:
        B, Q, H, L, P, _ = loc.shape
        N = B * Q * H
        padded = [(h + 2) * (w + 2) for h, w in shapes]
        self.shapes, self.B, self.H, self.P = shapes, B, H, P
        self.table_rows = B * sum(padded) * H
        itype = torch.int32 if self.table_rows < 2**31 else torch.int64
        loc_t = loc.reshape(N, L, P, 2).permute(3, 1, 0, 2)  # 2, L, N, P
        attn_t = attn.reshape(N, L, P).transpose(0, 1)  # L, N, P
        b = torch.arange(B, device=loc.device, dtype=itype)[:, None, None] * (sum(padded) * H)
        h = torch.arange(H, device=loc.device, dtype=itype)
        base = (b + h).expand(B, Q, H).reshape(N, 1)  # row of token 0 of (b, h)
        self.rows = torch.empty(N, L, 4, P, device=loc.device, dtype=itype)
        self.weights = torch.empty(N, L, 4, P, device=loc.device, dtype=loc.dtype)
        self.levels = []
        self.steps = torch.tensor([[0, 1, w + 2, w + 3] for _, w in shapes], device=loc.device) * H  # L, 4
        start = 0
        for lvl, (hl, wl) in enumerate(shapes):
            X, Y = loc_t[0, lvl] * wl - 0.5, loc_t[1, lvl] * hl - 0.5  # N, P pixel coords
            inside = (X > -1) & (X < wl) & (Y > -1) & (Y < hl)
            X, Y = torch.where(inside, X, -1.0), torch.where(inside, Y, -1.0)  # park far/NaN points
            x0, y0 = X.floor(), Y.floor()
            fx, fy = X - x0, Y - y0
            tok = (y0 + 1) * (wl + 2) + (x0 + 1) + start  # padded top-left token (exact in float)
            top_left = tok.to(itype) * H + base  # N, P
            for c, step in enumerate((0, H, (wl + 2) * H, (wl + 3) * H)):
                torch.add(top_left, step, out=self.rows[:, lvl, c])
            a = attn_t[lvl] * inside
            # bilinear factors, zero for corners in the padding ring (so the value gradient may skip it)
            wx0, wx1 = (1 - fx) * (x0 >= 0), fx * (x0 < wl - 1)
            ay0, ay1 = a * ((1 - fy) * (y0 >= 0)), a * (fy * (y0 < hl - 1))
            torch.mul(ay0, wx0, out=self.weights[:, lvl, 0])
            torch.mul(ay0, wx1, out=self.weights[:, lvl, 1])
            torch.mul(ay1, wx0, out=self.weights[:, lvl, 2])
            torch.mul(ay1, wx1, out=self.weights[:, lvl, 3])
            self.levels.append((fx, fy, inside, a))
            start += padded[lvl]


def padded_table(value: Tensor, shapes: Shapes) -> Tensor:
    """Tensor[B, S, H, D] -> Tensor[B * S_pad * H, D]: each level zero-padded by one pixel around."""
    B, _, H, D = value.shape
    levels = value.split([h * w for h, w in shapes], dim=1)
    padded = [
        F.pad(v.view(B, h, w, H, D), (0, 0, 0, 0, 1, 1, 1, 1)).flatten(1, 2)
        for v, (h, w) in zip(levels, shapes)
    ]
    return torch.cat(padded, dim=1).view(-1, D)  # rows (b, s_pad, h)


def _bags(t: Tensor, sum_points: bool) -> Tensor:
    """Tensor[N, L, 4, P] -> one row per output bag: [N, L*4*P] or [N*P, L*4]."""
    N, L, _, P = t.shape
    return t.view(N, -1) if sum_points else t.permute(0, 3, 1, 2).reshape(N * P, L * 4)


def gather_forward(value: Tensor, shapes: Shapes, loc: Tensor, attn: Tensor, sum_points: bool) -> Tensor:
    """Tensor[B, Q, H, D] (sum_points) or Tensor[B, Q, H, P, D]; see `reference.core_reference`."""
    B, Q, H, L, P, _ = loc.shape
    D = value.shape[-1]
    out_shape = (B, Q, H, D) if sum_points else (B, Q, H, P, D)
    if B * Q == 0:
        return value.new_zeros(out_shape)
    geo = Geometry(loc, attn, shapes)
    table = padded_table(value, shapes)
    rows, weights = _bags(geo.rows, sum_points), _bags(geo.weights, sum_points)
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
    """g . V(corner) for every corner entry, Tensor[N, L, 4, P] (sampled dense-dense product)."""
    N, L, _, P = geo.rows.shape
    cols = _bags(geo.rows, sum_points)  # bags, K
    nb, K = cols.shape
    crow = torch.arange(0, nb * K + 1, K, device=cols.device, dtype=cols.dtype)
    zeros = table.new_zeros(nb * K)
    if K > table.shape[0]:  # sampled_addmm needs nnz <= rows x columns; extra zero rows are never read
        table = F.pad(table, (0, 0, 0, K - table.shape[0]))
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(crow, cols.reshape(-1), zeros, size=(nb, table.shape[0]))
        dots = torch.sparse.sampled_addmm(pattern, g, table.t()).values()
    if sum_points:
        return dots.view(N, L, 4, P)
    return dots.view(N, P, L, 4).permute(0, 2, 3, 1)


def _value_grad(geo: Geometry, g: Tensor, sum_points: bool) -> Tensor:
    """Scatter of corner weight x g into the value rows, as sorted segment sums (`embedding_bag`).

    The points are sorted once by their top-left row; for every corner c the rows
    top-left + step_c(level) are then sorted too (the step keeps a row inside its own level and
    batch block), so each corner is one `embedding_bag` over g with bags = table rows.
    """
    N, L, _, P = geo.rows.shape
    top_left = geo.rows[:, :, 0].reshape(-1)  # point (n, l, p)
    order = torch.argsort(top_left)
    n, lp = order.div(L * P, rounding_mode="floor"), order.remainder(L * P)
    lvl, p = lp.div(P, rounding_mode="floor"), lp.remainder(P)
    g_row = n if sum_points else n * P + p
    w_pos = n * (L * 4 * P) + lvl * (4 * P) + p  # flat index of corner 0 in geo.weights
    rows = top_left.index_select(0, order).long()
    steps = geo.steps.index_select(0, lvl)  # points, 4
    w_flat = geo.weights.view(-1)
    # bags = unpadded rows; a corner in the padding ring has weight 0, so it may join any bag
    first_entry = padded_rows(geo.shapes, geo.B, geo.H, rows.device)
    grad = None
    for c in range(4):
        counts = torch.bincount(rows + steps[:, c], minlength=geo.table_rows)
        offsets = (counts.cumsum(0) - counts).index_select(0, first_entry)
        offsets[0] = 0
        w_c = w_flat.index_select(0, w_pos + c * P)
        part = F.embedding_bag(g_row, g, offsets, per_sample_weights=w_c, mode="sum")  # B*S*H, D
        grad = part if grad is None else grad.add_(part)
    return grad


def _chain(geo: Geometry, dots: Tensor, loc: Tensor, attn: Tensor) -> tuple[Tensor, Tensor]:
    """Location and weight gradients from d out / d corner weight = g . V(corner)."""
    N, L, _, P = dots.shape
    grad_loc = loc.new_empty(2, L, N, P)
    grad_attn = attn.new_empty(L, N, P)
    for lvl, (hl, wl) in enumerate(geo.shapes):
        fx, fy, inside, a = geo.levels[lvl]
        d00, d10, d01, d11 = dots[:, lvl].unbind(1)  # N, P each
        dx0, dx1 = d10 - d00, d11 - d01  # d / d fx on rows y0, y1
        top, bottom = d00 + dx0 * fx, d01 + dx1 * fx
        torch.mul(top + (bottom - top) * fy, inside, out=grad_attn[lvl])
        torch.mul(a * (dx0 + (dx1 - dx0) * fy), wl, out=grad_loc[0, lvl])  # d pixel / d x = W_l
        torch.mul(a * (bottom - top), hl, out=grad_loc[1, lvl])
    B, Q, H = loc.shape[:3]
    return grad_loc.permute(2, 1, 3, 0).reshape(loc.shape), grad_attn.transpose(0, 1).reshape(B, Q, H, L, P)


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
    return grad_value, *_chain(geo, dots, loc, attn)
