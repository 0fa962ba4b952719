"""Prediction helpers: image listing and ids, legible drawing (no stacked duplicates, labels that
never overlap), ground truth by file name, and the best-F1 score threshold."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from boxer.engine import draw
from boxer.engine.ground_truth import GroundTruth, load_ground_truth, match_by_file_name
from boxer.engine.predict import (
    assign_image_ids,
    empty_note,
    keep_above,
    list_images,
    output_paths,
    prediction_panel,
    refuse_overwrite,
)
from boxer.engine.threshold import best_f1_threshold, match_detections, sample_indices
from boxer.errors import BoxerError

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]


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


def test_outputs_never_overwrite_inputs(tmp_path):
    inputs = [tmp_path / "000001.png", tmp_path / "x" / "000001.jpg"]
    outs = output_paths(inputs, [1, 2], tmp_path)
    assert outs == [tmp_path / "000001.png", tmp_path / "000001-2.png"]
    with pytest.raises(BoxerError, match="would overwrite the input image"):
        refuse_overwrite(inputs, outs)
    refuse_overwrite(inputs, output_paths(inputs, [1, 2], tmp_path / "out"))


def _pred(boxes, scores, labels) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def test_near_duplicates_are_not_drawn_and_top_caps():
    pred = _pred(
        [[10, 10, 50, 50], [11, 11, 50, 51], [10, 10, 49, 50], [60, 60, 90, 90]],
        [0.9, 0.8, 0.7, 0.5],
        [0, 3, 0, 1],
    )
    assert draw.drawn_subset(pred["boxes"], pred["scores"]).tolist() == [0, 3]  # any class: one box per item
    assert draw.drawn_subset(pred["boxes"], pred["scores"], top=1).tolist() == [0]
    panel = prediction_panel(pred, score=0.3)
    assert (
        panel.labels.tolist() == [0, 1]
        and "2 with score >= 0.30 (2 near-duplicates not drawn)" in panel.title
    )
    capped = prediction_panel(pred, score=0.3, top=1)
    assert capped.title.endswith("(2 near-duplicates and 1 past --top not drawn)")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_never_overlap_and_stay_on_the_canvas(seed):
    rng = random.Random(seed)
    boxes, sizes = [], []
    for _ in range(25):  # crowded, with many identical corners
        x, y = rng.choice([0, 10, 100]), rng.choice([0, 10, 100])
        boxes.append([x, y, x + rng.randint(5, 80), y + rng.randint(5, 80)])
        sizes.append((rng.randint(30, 90), 16))
    corners = draw.place_labels(boxes, sizes, (256, 256))
    rects = [(x, y, x + w, y + h) for c, (w, h) in zip(corners, sizes) if c for x, y in [c]]
    assert len(rects) >= 10
    for i, a in enumerate(rects):
        assert 0 <= a[0] and a[2] <= 256 and 0 <= a[1] and a[3] <= 256
        assert not any(draw._overlaps(a, b) for b in rects[i + 1 :])


def test_first_label_sits_above_its_box():
    assert draw.place_labels([[40, 50, 90, 100]], [(30, 12)], (200, 200)) == [(40, 38)]


def test_render_panel_is_enlarged_coloured_and_titled():
    image = torch.full((3, 128, 128), 128, dtype=torch.uint8)
    pred = _pred([[10, 60, 100, 120]], [0.87], [3])
    pred["masks"] = torch.zeros(1, 128, 128, dtype=torch.bool)
    pred["masks"][0, 70:110, 20:90] = True
    panel = prediction_panel(pred, score=0.3)
    pil = draw.render_panel(image, panel, NAMES, display=512)
    assert pil.width == 512 and pil.height > 512  # 4x, plus the title strip
    top = pil.height - 512
    outline = pil.getpixel((10 * 4 + 1, top + 90 * 4))  # on the left edge of the box
    assert outline == draw.class_color(3)
    assert pil.getpixel((60 * 4, top + 90 * 4)) != (128, 128, 128)  # mask tint
    assert draw.text_color((255, 225, 25)) == (0, 0, 0) and draw.text_color((0, 0, 128)) == (255, 255, 255)


def test_empty_note_names_threshold_and_best_score():
    assert empty_note(0.3, 0.12) == "nothing scores >= 0.30 (best score 0.12)"
    assert empty_note(0.1102, 0.1098) == "nothing scores >= 0.1102 (best score 0.1098)"  # never "0.11 (0.11)"
    assert empty_note(0.3, None) == "no detections at all"
    empty = prediction_panel(keep_above(_pred([[1, 1, 5, 5]], [0.1], [0]), 0.3), score=0.3)
    assert "0 with score >= 0.30" in empty.title


# ---------------------------------------------------------------- ground truth and thresholds


def _gt(boxes, labels, crowd=()) -> GroundTruth:
    return GroundTruth(
        1, "a.png", 100, 100,
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels, dtype=torch.int64),
        torch.tensor(crowd, dtype=torch.float32).reshape(-1, 4),
    )  # fmt: skip


def test_matching_is_class_aware_one_to_one_and_ignores_crowd():
    gt = _gt([[0, 0, 10, 10], [20, 20, 40, 40]], [0, 1], crowd=[[60, 60, 100, 100]])
    pred = _pred(
        [[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 40, 40], [21, 21, 40, 40], [70, 70, 80, 80]],
        [0.9, 0.95, 0.5, 0.6, 0.7],
        [0, 0, 0, 1, 2],
    )
    tp, ignored = match_detections(pred["boxes"], pred["scores"], pred["labels"], gt)
    # the 0.95 box takes GT 0 first; the 0.9 duplicate is a false positive; wrong class never matches
    assert tp.tolist() == [False, True, False, True, False]
    assert ignored.tolist() == [False, False, False, False, True]


def test_best_f1_threshold():
    # scores 0.9 TP, 0.8 FP, 0.6 TP, 0.2 FP with 2 GT: F1 = 2/3, 1/2, 4/5, 2/3 -> keep >= 0.6
    choice = best_f1_threshold(
        torch.tensor([0.2, 0.9, 0.6, 0.8]), torch.tensor([False, True, True, False]), 2
    )
    assert choice.threshold == pytest.approx(0.6) and choice.f1 == pytest.approx(0.8)
    assert choice.precision == pytest.approx(2 / 3) and choice.recall == pytest.approx(1.0)
    tied = best_f1_threshold(torch.tensor([0.5, 0.5, 0.4]), torch.tensor([True, False, True]), 2)
    assert tied.threshold == pytest.approx(0.4)  # equal scores are kept or dropped together
    none = best_f1_threshold(torch.tensor([0.3, 0.2, 0.1]), torch.zeros(3, dtype=torch.bool), 2)
    assert none.f1 == 0 and none.threshold == pytest.approx(0.2) and "best F1 is only 0.000" in none.note
    # a model that finds almost nothing: best F1 1/51 (keep all 100) is noise -> keep as many as boxes
    hits = torch.zeros(100, dtype=torch.bool)
    hits[-1] = True
    weak = best_f1_threshold(torch.linspace(0.9, 0.1, 100), hits, 2)
    assert weak.threshold == pytest.approx(0.9 - 0.8 / 99) and "keeps as many detections" in weak.note
    with pytest.raises(BoxerError, match="no ground-truth"):
        best_f1_threshold(torch.tensor([0.3]), torch.zeros(1, dtype=torch.bool), 0)
    assert sample_indices(10, 4) == [0, 2, 5, 7] and sample_indices(3, 64) == [0, 1, 2]


def test_ground_truth_by_file_name(fashion_scenes_tiny):
    ann = fashion_scenes_tiny / "annotations" / "instances_val.json"
    data = json.loads(ann.read_text())
    cat_ids = sorted(c["id"] for c in data["categories"])
    truth = load_ground_truth(ann, cat_ids)
    assert len(truth) == len(data["images"])
    assert sum(len(t.boxes) + len(t.crowd_boxes) for t in truth) == len(data["annotations"])
    first = data["images"][0]["file_name"]
    found = match_by_file_name([Path("/elsewhere") / Path(first).name, Path("other.png")], truth, ann)
    assert found[0] is not None and found[0].file_name == first and found[1] is None
    with pytest.raises(BoxerError, match="none of the 1 image"):
        match_by_file_name([Path("other.png")], truth, ann)
    with pytest.raises(BoxerError, match="categories"):
        load_ground_truth(ann, cat_ids[:-1])
