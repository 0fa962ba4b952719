"""Functional ops: `box_attention` and `instance_attention` (contracts in their docstrings, docs/ops.md)."""

from __future__ import annotations

from boxer.ops.dispatch import BACKENDS, ENV_VAR
from boxer.ops.functional import box_attention, instance_attention
from boxer.ops.geometry import grid_offsets, sampling_locations
from boxer.ops.reference import core_reference

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "box_attention",
    "box_attention_reference",
    "core_reference",
    "grid_offsets",
    "instance_attention",
    "sampling_locations",
]


def box_attention_reference(value, spatial_shapes, boxes, weights, *, angles=None):
    """`box_attention` forced onto the per-level grid_sample reference backend."""
    return box_attention(value, spatial_shapes, boxes, weights, angles=angles, backend="reference")
