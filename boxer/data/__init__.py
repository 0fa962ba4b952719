"""Data: the Fashion-MNIST source, the FashionScenes generator, COCO-format datasets, transforms,
batching, the dataset doctor and summaries. See docs/data.md.

Importing `boxer.data` is cheap (no torch): the names below load their module on first use, as in
`boxer.engine`, so `boxer data --help` answers without importing torch.
"""

from __future__ import annotations

from boxer.lazy import lazy_getattr

_EXPORTS = {
    "IMAGENET_MEAN": "boxer.data.coco",
    "IMAGENET_STD": "boxer.data.coco",
    "CocoDetection": "boxer.data.coco",
    "decode_segmentation": "boxer.data.coco",
    "DetectionBatch": "boxer.data.collate",
    "collate_detection": "boxer.data.collate",
    "DoctorReport": "boxer.data.doctor",
    "Problem": "boxer.data.doctor",
    "check_dataset": "boxer.data.doctor",
    "require_valid_dataset": "boxer.data.doctor",
    "FASHION_MNIST_CLASSES": "boxer.data.fashion_mnist",
    "find_fashion_mnist": "boxer.data.fashion_mnist",
    "load_fashion_mnist": "boxer.data.fashion_mnist",
    "generate_fashion_scenes": "boxer.data.fashion_scenes",
    "DatasetSummary": "boxer.data.summary",
    "format_summary": "boxer.data.summary",
    "summarize_coco": "boxer.data.summary",
    "build_transforms": "boxer.data.transforms",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
