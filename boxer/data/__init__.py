"""Data: the Fashion-MNIST source, the FashionScenes generator, COCO-format datasets, transforms,
batching, the dataset doctor and summaries. See docs/data.md."""

from __future__ import annotations

from boxer.data.coco import IMAGENET_MEAN, IMAGENET_STD, CocoDetection, decode_segmentation
from boxer.data.collate import DetectionBatch, collate_detection
from boxer.data.doctor import DoctorReport, Problem, check_dataset, require_valid_dataset
from boxer.data.fashion_mnist import FASHION_MNIST_CLASSES, find_fashion_mnist, load_fashion_mnist
from boxer.data.fashion_scenes import generate_fashion_scenes
from boxer.data.summary import DatasetSummary, format_summary, summarize_coco
from boxer.data.transforms import build_transforms

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CocoDetection",
    "DatasetSummary",
    "DetectionBatch",
    "DoctorReport",
    "Problem",
    "build_transforms",
    "check_dataset",
    "collate_detection",
    "decode_segmentation",
    "find_fashion_mnist",
    "format_summary",
    "generate_fashion_scenes",
    "load_fashion_mnist",
    "require_valid_dataset",
    "summarize_coco",
]
