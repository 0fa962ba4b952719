"""BoxeR-2D: box-attention detector and instance segmenter (Nguyen et al., CVPR 2022).

One file per concern: neck (projections, masks, windows), position (box sine embedding), encoder,
decoder, proposals (two-stage), heads, matcher, criterion, postprocess, masks, model, variants.
"""

from __future__ import annotations

from boxer.models.boxer2d.criterion import SetCriterion
from boxer.models.boxer2d.matcher import HungarianMatcher
from boxer.models.boxer2d.model import BoxeR2D
from boxer.models.boxer2d.transformer import BoxTransformer

__all__ = ["BoxTransformer", "BoxeR2D", "HungarianMatcher", "SetCriterion"]
