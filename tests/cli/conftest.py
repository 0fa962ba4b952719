"""Fixtures of the train / eval / predict CLI tests: runs trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import train_tiny


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, fashion_scenes_tiny) -> Path:
    """A 1-epoch boxes-only run on the tiny FashionScenes (with evaluation)."""
    out = tmp_path_factory.mktemp("runs") / "boxes"
    assert train_tiny(fashion_scenes_tiny, out) == 0
    return out


@pytest.fixture(scope="session")
def trained_mask_run(tmp_path_factory, fashion_scenes_tiny) -> Path:
    """A 1-epoch instance-segmentation run on the tiny FashionScenes."""
    out = tmp_path_factory.mktemp("runs") / "masks"
    assert train_tiny(fashion_scenes_tiny, out, model="boxer2d_r18_lite_mask") == 0
    return out
