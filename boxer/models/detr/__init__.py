"""DETR: the end-to-end set-prediction detector (Carion et al., ECCV 2020), a baseline for BoxeR-2D.

One file per concern: transformer (sine positions, post-norm encoder / decoder), criterion (matcher
with the softmax class cost, losses), model (backbone C5 -> transformer -> heads, post-processing),
variants (the registered `detr`, `detr_r50`, `detr_r18_lite`).
"""

from __future__ import annotations

from boxer.models.detr.criterion import DETRCriterion, DETRMatcher
from boxer.models.detr.model import DETR
from boxer.models.detr.transformer import DETRTransformer, sine_position_2d

__all__ = ["DETR", "DETRCriterion", "DETRMatcher", "DETRTransformer", "sine_position_2d"]
