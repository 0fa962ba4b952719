"""Fixtures of the viz tests: tiny trained runs (the CLI tests' settings, `tests/cli/cli_helpers.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_helpers import train_tiny  # noqa: E402


@pytest.fixture(scope="session")
def viz_boxes_run(tmp_path_factory, fashion_scenes_tiny) -> Path:
    """A 2-epoch boxes-only BoxeR-2D lite run (two metrics lines, an evaluation each)."""
    out = tmp_path_factory.mktemp("viz-runs") / "boxes"
    assert train_tiny(fashion_scenes_tiny, out, extra=["--epochs", "2"]) == 0
    return out


@pytest.fixture(scope="session")
def viz_mask_run(tmp_path_factory, fashion_scenes_tiny) -> Path:
    """A 1-epoch instance-segmentation run."""
    out = tmp_path_factory.mktemp("viz-runs") / "masks"
    assert train_tiny(fashion_scenes_tiny, out, model="boxer2d_r18_lite_mask") == 0
    return out


@pytest.fixture(scope="session")
def viz_vit_run(tmp_path_factory, fashion_root) -> Path:
    """A 1-epoch two-block ViT on a few Fashion-MNIST images (global attention: rollout applies)."""
    from boxer.classification import ClassifyConfig, train_classifier

    out = tmp_path_factory.mktemp("viz-runs") / "vit"
    cfg = ClassifyConfig(
        model="vit_fm", model_kwargs={"depth": 2, "dim": 16, "num_heads": 2}, data_root=str(fashion_root),
        epochs=1, batch_size=32, limit_train=64, val_size=32, limit_test=32, out=str(out), progress=False,
    )  # fmt: skip
    train_classifier(cfg)
    return out
