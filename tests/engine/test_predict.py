"""Prediction helpers: image listing, image ids, drawing, results records."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from boxer.engine.predict import assign_image_ids, draw_predictions, keep_above, list_images
from boxer.errors import BoxerError


def test_image_ids_use_numeric_stems_then_free_ids():
    paths = [Path("a/000007.png"), Path("b/cat.jpg"), Path("c/7.png"), Path("d/1.png"), Path("e/dog.png")]
    assert assign_image_ids(paths) == [7, 2, 3, 1, 4]


def test_list_images_expands_folders_and_names_missing_inputs(tmp_path):
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in list_images([tmp_path])] == ["a.jpg", "b.png"]
    with pytest.raises(BoxerError, match="no such image"):
        list_images([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BoxerError, match="no images"):
        list_images([tmp_path / "empty"])


def test_draw_and_filter():
    pred = {
        "boxes": torch.tensor([[2.0, 2.0, 20.0, 20.0], [5.0, 5.0, 9.0, 9.0]]),
        "scores": torch.tensor([0.9, 0.1]),
        "labels": torch.tensor([1, 0]),
        "masks": torch.zeros(2, 32, 32, dtype=torch.bool),
    }
    kept = keep_above(pred, 0.3)
    assert len(kept["scores"]) == 1 and kept["masks"].shape == (1, 32, 32)
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    drawn = draw_predictions(image, kept, ["a", "b"])
    assert drawn.dtype == torch.uint8 and drawn.shape == image.shape and drawn.sum() > 0
