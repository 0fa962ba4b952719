"""Imports every model family so that its `@register_model` factories run. One line per family."""

# Each family module registers its variants with boxer.models.register_model when imported.
# classifiers, the efficient-ViT deck's classifiers (efficient), Mask R-CNN (docs/zoo.md)
from boxer.models import classifiers, efficient, maskrcnn  # noqa: E402,F401
from boxer.models.boxer2d import variants  # noqa: E402,F401  BoxeR-2D (docs/boxer2d.md)
from boxer.models.detr import variants as detr_variants  # noqa: E402,F401  DETR baseline
