"""Independent naive loops of box-attention and instance-attention (test oracles).

Written from the issue's contract with Python scalars only: no code shared with `boxer.ops`.
"""

from __future__ import annotations

import math

import torch


def bilinear(value, start, hl, wl, b, h, x, y):
    """Bilinear sample (zero padding, align_corners=False) of level map at normalised (x, y): Tensor[D]."""
    X, Y = x * wl - 0.5, y * hl - 0.5
    x0, y0 = math.floor(X), math.floor(Y)
    out = torch.zeros(value.shape[-1], dtype=torch.float64)
    for xi in (x0, x0 + 1):
        for yi in (y0, y0 + 1):
            if 0 <= xi < wl and 0 <= yi < hl:
                wgt = (1 - abs(X - xi)) * (1 - abs(Y - yi))
                out += wgt * value[b, start + yi * wl + xi, h].double()
    return out


def grid_point(box, angle, m, i, j):
    """Cell centre (i = row, j = column) of an m x m grid over box (cx, cy, w, h), rotated by angle."""
    cx, cy, w, h = box
    ox, oy = ((j + 0.5) / m - 0.5) * w, ((i + 0.5) / m - 0.5) * h
    if angle is not None:
        ox, oy = math.cos(angle) * ox - math.sin(angle) * oy, math.sin(angle) * ox + math.cos(angle) * oy
    return cx + ox, cy + oy


def naive_samples(value, shapes, boxes, angles, m):
    """Per point samples: Tensor[B, Q, H, L, m, m, D] float64."""
    B, _, H, D = value.shape
    Q, L = boxes.shape[1], boxes.shape[3]
    out = torch.zeros(B, Q, H, L, m, m, D, dtype=torch.float64)
    starts = [sum(a * c for a, c in shapes[:lvl]) for lvl in range(L)]
    for b in range(B):
        for q in range(Q):
            for h in range(H):
                for lvl in range(L):
                    box = boxes[b, q, h, lvl].tolist()
                    angle = None if angles is None else float(angles[b, q, h, lvl])
                    hl, wl = shapes[lvl]
                    for i in range(m):
                        for j in range(m):
                            x, y = grid_point(box, angle, m, i, j)
                            out[b, q, h, lvl, i, j] = bilinear(value, starts[lvl], hl, wl, b, h, x, y)
    return out


def naive_box_attention(value, shapes, boxes, weights, angles=None):
    """Tensor[B, Q, H*D] float64."""
    B, _, H, D = value.shape
    Q, m = boxes.shape[1], weights.shape[-1]
    samples = naive_samples(value, shapes, boxes, angles, m)
    out = (samples * weights.double()[..., None]).sum(dim=(3, 4, 5))  # B, Q, H, D
    return out.reshape(B, Q, H * D)


def naive_instance_attention(value, shapes, boxes, logits, angles=None, g=14):
    """(out Tensor[B, Q, H*D], mask features Tensor[B, Q, g, g, H*D]) float64."""
    B, _, H, D = value.shape
    Q, L = boxes.shape[1], boxes.shape[3]
    r = g // 2
    fine = torch.zeros(B, Q, H, L, g, g, dtype=torch.float64)
    for i in range(g):
        for j in range(g):
            fine[..., i, j] = logits[..., i // r, j // r].double()
    spatial = torch.softmax(fine.reshape(B, Q, H, L * g * g), -1).view(B, Q, H, L, g, g)
    level = torch.softmax(fine, dim=3)
    samples = naive_samples(value, shapes, boxes, angles, g)  # B, Q, H, L, g, g, D
    out = (samples * spatial[..., None]).sum(dim=(3, 4, 5)).reshape(B, Q, H * D)
    feats = (samples * level[..., None]).sum(dim=3)  # B, Q, H, g, g, D
    return out, feats.permute(0, 1, 3, 4, 2, 5).reshape(B, Q, g, g, H * D)
