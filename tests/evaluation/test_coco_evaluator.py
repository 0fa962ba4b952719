"""CocoEvaluator: GT as predictions gives AP 1, results JSON loads in pycocotools, empty predictions
give AP 0, and the 12 stats and the per-class AP / AP50 equal pycocotools' (the oracle) on imperfect
predictions."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from boxer.errors import BoxerError
from boxer.evaluation import STAT_NAMES, CocoEvaluator
from boxer.evaluation.coco_evaluator import (
    format_per_class_table,
    per_class_ap,
    per_class_metrics,
    records_for,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


@pytest.fixture(scope="module")
def val(fashion_scenes_tiny):
    ann = fashion_scenes_tiny / "annotations" / "instances_val.json"
    return ann, json.loads(ann.read_text())


def _gt_predictions(data, *, noise: float = 0.0, seed: int = 0, extra: int = 0) -> dict[int, dict]:
    """Per image: the GT boxes/masks as predictions, optionally jittered, with random false positives."""
    rng = np.random.default_rng(seed)
    cat_ids = sorted(c["id"] for c in data["categories"])
    preds = {}
    for img in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == img["id"]]
        h, w = img["height"], img["width"]
        boxes = [
            [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
            for a in anns
        ]
        labels = [cat_ids.index(a["category_id"]) for a in anns]
        masks = [
            mask_utils.decode({**a["segmentation"], "counts": a["segmentation"]["counts"].encode()})
            for a in anns
        ]
        for _ in range(extra):
            x, y = rng.uniform(0, w - 20), rng.uniform(0, h - 20)
            boxes.append([x, y, x + rng.uniform(4, 20), y + rng.uniform(4, 20)])
            labels.append(int(rng.integers(len(cat_ids))))
            m = np.zeros((h, w), np.uint8)
            m[int(y) : int(boxes[-1][3]), int(x) : int(boxes[-1][2])] = 1
            masks.append(m)
        boxes_t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        boxes_t += noise * torch.from_numpy(rng.normal(size=boxes_t.shape)).float()
        masks_t = (
            torch.from_numpy(np.stack(masks)).bool() if masks else torch.zeros(0, h, w, dtype=torch.bool)
        )
        if noise:  # shift masks by a pixel now and then
            masks_t = (
                torch.stack([m.roll(int(rng.integers(-1, 2)), dims=1) for m in masks_t])
                if len(masks_t)
                else masks_t
            )
        preds[img["id"]] = {
            "boxes": boxes_t,
            "scores": torch.from_numpy(rng.uniform(0.05, 1.0, size=len(boxes))).float(),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "masks": masks_t,
        }
    return preds


def _cat_ids(data) -> list[int]:
    return sorted(c["id"] for c in data["categories"])


def test_ground_truth_gives_ap_one(val, capsys):
    ann, data = val
    ev = CocoEvaluator(ann, iou_types=("bbox", "segm"), cat_ids=_cat_ids(data))
    ev.update(_gt_predictions(data))
    stats = ev.evaluate()
    for t in ("bbox", "segm"):
        assert stats[f"{t}/AP"] == pytest.approx(1.0) and stats[f"{t}/AP50"] == pytest.approx(1.0)
        for rng in ("APs", "APm", "APl"):  # -1 where the tiny set has no GT of that size
            assert stats[f"{t}/{rng}"] in (pytest.approx(1.0), -1.0)
    names = [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
    per_class = {f"{t}/{m}/{n}" for t in ("bbox", "segm") for m in ("AP", "AP50") for n in names}
    assert set(stats) == {f"{t}/{n}" for t in ("bbox", "segm") for n in STAT_NAMES} | per_class
    has_gt = {
        c["name"] for c in data["categories"] if any(a["category_id"] == c["id"] for a in data["annotations"])
    }
    assert per_class_metrics(stats, "segm", "AP50") == {n: (1.0 if n in has_gt else -1.0) for n in names}
    out = capsys.readouterr().out.splitlines()
    assert "Per-class bbox AP50 and AP (-1: no ground truth)" in out
    assert "IoU metric: bbox" in out and "IoU metric: segm" in out
    assert " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in out
    assert sum(line.startswith(" Average") for line in out) == 24


def test_results_json_loads_in_pycocotools(val, tmp_path):
    ann, data = val
    ev = CocoEvaluator(ann, iou_types=("bbox", "segm"), cat_ids=_cat_ids(data), verbose=False)
    ev.update(_gt_predictions(data))
    path = ev.write_results(tmp_path / "results.json")
    records = json.loads(path.read_text())
    assert {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(records[0])
    assert isinstance(records[0]["segmentation"]["counts"], str)
    assert {r["category_id"] for r in records} <= set(_cat_ids(data))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        dt = gt.loadRes(str(path))
    assert len(dt.getAnnIds()) == len(data["annotations"])
    first = data["annotations"][0]
    match = [r for r in records if r["image_id"] == first["image_id"] and r["bbox"] == first["bbox"]]
    assert match and match[0]["category_id"] == first["category_id"]


def test_empty_predictions_give_zero(val):
    ann, data = val
    ev = CocoEvaluator(ann, iou_types=("bbox", "segm"), cat_ids=_cat_ids(data), verbose=False)
    empty = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
    }
    ev.update(
        {img["id"]: {**empty, "masks": torch.zeros(0, 128, 128, dtype=torch.bool)} for img in data["images"]}
    )
    stats = ev.evaluate()
    assert stats["bbox/AP"] == 0.0 and stats["segm/AP"] == 0.0 and stats["bbox/AR100"] == 0.0
    fresh = CocoEvaluator(ann, cat_ids=_cat_ids(data), verbose=False)  # no update at all
    assert fresh.evaluate()["bbox/AP"] == 0.0


def _pycocotools_stats(ann, records, iou_type) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        dt = gt.loadRes(records_for(iou_type, records))
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_parity_with_pycocotools(val, iou_type):
    ann, data = val
    ev = CocoEvaluator(ann, iou_types=(iou_type,), cat_ids=_cat_ids(data), verbose=False)
    ev.update(_gt_predictions(data, noise=1.5, extra=6, seed=3))
    stats = ev.evaluate()
    ours = np.asarray([stats[f"{iou_type}/{n}"] for n in STAT_NAMES])
    oracle = _pycocotools_stats(ann, ev.results, iou_type)
    assert 0.1 < ours[0] < 0.95, "predictions are imperfect, so the comparison means something"
    np.testing.assert_allclose(ours, oracle, rtol=0, atol=1e-12)


def test_subset_of_images_and_label_mapping(val):
    ann, data = val
    cat_ids = _cat_ids(data)
    ev = CocoEvaluator(ann, cat_ids=cat_ids, verbose=False)
    first = data["images"][0]["id"]
    ev.update({first: _gt_predictions(data)[first]})
    assert ev.evaluate()["bbox/AP"] == pytest.approx(1.0)  # only the image seen is evaluated
    assert all(r["category_id"] in cat_ids for r in ev.results)


def test_bad_arguments(val):
    ann, data = val
    with pytest.raises(BoxerError, match="iou_types"):
        CocoEvaluator(ann, iou_types=("keypoints",), cat_ids=_cat_ids(data))
    with pytest.raises(BoxerError, match="cat_ids"):
        CocoEvaluator(ann, cat_ids=[1, 2, 99])
    ev = CocoEvaluator(ann, iou_types=("segm",), cat_ids=_cat_ids(data))
    with pytest.raises(ValueError, match="masks"):
        ev.update(
            {
                1: {
                    "boxes": torch.zeros(1, 4),
                    "scores": torch.ones(1),
                    "labels": torch.zeros(1, dtype=torch.int64),
                }
            }
        )


def _pycocotools_class_stats(ann, records, iou_type, cat_id) -> np.ndarray:
    """COCOeval restricted to one category: its AP and AP50 are that class's (the oracle)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        dt = gt.loadRes(records_for(iou_type, records))
        ev = COCOeval(gt, dt, iou_type)
        ev.params.catIds = [cat_id]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:2])


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_per_class_ap_matches_pycocotools(val, iou_type):
    ann, data = val
    ev = CocoEvaluator(ann, iou_types=(iou_type,), cat_ids=_cat_ids(data), verbose=False)
    ev.update(_gt_predictions(data, noise=2.0, extra=4, seed=5))
    stats = ev.evaluate()
    ap, ap50 = per_class_metrics(stats, iou_type, "AP"), per_class_metrics(stats, iou_type, "AP50")
    names = {c["id"]: c["name"] for c in data["categories"]}
    checked = 0
    for cat_id in _cat_ids(data):
        oracle = _pycocotools_class_stats(ann, ev.results, iou_type, cat_id)
        np.testing.assert_allclose([ap[names[cat_id]], ap50[names[cat_id]]], oracle, rtol=0, atol=1e-12)
        checked += bool(0 < oracle[0] < 1)
    assert checked >= 2, "some classes are imperfect, so the comparison means something"


def test_per_class_ap_from_a_precision_array():
    precision = -np.ones((10, 101, 3, 4, 3))  # T, R, K, A, M; class 2 has no ground truth
    precision[:, :, 0, 0, -1] = 0.5
    precision[0, :, 1, 0, -1] = 1.0  # class 1: perfect at IoU 0.5 only, 0 elsewhere
    precision[1:, :, 1, 0, -1] = 0.0
    precision[:, :, 0, 1:, :2] = 0.9  # other areas / max-dets are not read
    ap, ap50 = per_class_ap(precision, np.linspace(0.5, 0.95, 10))
    np.testing.assert_allclose(ap, [0.5, 0.1, -1.0])
    np.testing.assert_allclose(ap50, [0.5, 1.0, -1.0])
    lines = format_per_class_table("bbox", ["a", "bb", "c"], ap, ap50)
    assert lines[2] == "a       0.500   0.500" and lines[4].endswith("-1.000  -1.000")
