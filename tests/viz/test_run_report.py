"""Run reports (`boxer/viz/run_history.py`, `run_eval.py`, `boxer viz run`)."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from boxer.cli.main import main
from boxer.viz.run_eval import confusion_matrix
from boxer.viz.run_history import read_history


def test_confusion_matrix_counts_matches_confusions_misses_and_false_positives():
    truth = {
        1: (torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]]), torch.tensor([0, 1, 1]))
    }
    pred = {
        1: {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [21, 21, 30, 30], [80, 80, 90, 90], [0, 0, 10, 9]]),
            "scores": torch.tensor([0.9, 0.8, 0.7, 0.1]),
            "labels": torch.tensor([0, 0, 1, 0]),
        }
    }
    cm = confusion_matrix(truth, pred, 2, score=0.3)
    expected = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]])  # rows: class 0, class 1, no object
    np.testing.assert_array_equal(cm, expected)


def test_history_reads_per_iteration_events_and_epoch_lines(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    lines = [
        {"epoch": 1, "iteration": 4, "train/loss": 2.0, "lr": 1e-4, "epoch_seconds": 3.0, "bbox/AP": 0.1},
        {"epoch": 2, "iteration": 8, "train/loss": 1.0, "lr": 1e-5, "epoch_seconds": 3.0, "bbox/AP": 0.2},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    writer = SummaryWriter(str(tmp_path / "tb"))
    for it in (2, 4, 6, 8):
        writer.add_scalar("train/loss", 3.0 - it / 4, it, walltime=100.0 + it)
    writer.close()
    hist = read_history(tmp_path)
    np.testing.assert_array_equal(hist.losses["loss"].iteration, [2, 4, 6, 8])  # the events' finer curve
    np.testing.assert_allclose(hist.losses["loss"].seconds, [2, 4, 6, 8])  # from iteration 0 at 1 s/it
    np.testing.assert_allclose(hist.scores["bbox/AP"].value, [0.1, 0.2])
    np.testing.assert_allclose(hist.lr.seconds, [3.0, 6.0])  # epoch lines: summed epoch_seconds


def test_viz_run_writes_every_figure_and_the_data(viz_boxes_run, viz_mask_run, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["viz", "run", str(viz_boxes_run), str(viz_mask_run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    sizes = {
        "curves.png": (1600, 760),
        "per_class_ap.png": (860, 620),
        "pr_curves.png": (1300, 510),
        "confusion_boxes.png": (860, 800),
        "confusion_masks.png": (860, 800),
        "losses.png": None,
    }
    for name, size in sizes.items():
        assert f"figure: {out / name}" in printed
        with Image.open(out / name) as im:
            assert size is None or im.size == size
    report = json.loads((out / "report.json").read_text())
    assert set(report["runs"]) == {"boxes", "masks"}
    ev = report["runs"]["boxes"]["evaluation"]
    assert len(ev["ap50"]) == 10 and np.array(ev["confusion"]["counts"]).shape == (11, 11)
    assert (out / "results_boxes.json").is_file()


def test_viz_run_one_run_defaults_to_its_report_folder(viz_boxes_run, capsys):
    assert main(["viz", "run", str(viz_boxes_run), "--no-eval"]) == 0
    assert (viz_boxes_run / "report" / "curves.png").stat().st_size > 0
    assert not (viz_boxes_run / "report" / "per_class_ap.png").exists()


def test_viz_run_of_a_classification_run_draws_its_curves_and_confusions(viz_vit_run, tmp_path, capsys):
    assert main(["viz", "run", str(viz_vit_run), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0 and not (tmp_path / "per_class_ap.png").exists()
    with Image.open(tmp_path / "confusion_vit.png") as im:
        assert im.size == (60 * 10 + 200, 60 * 10 + 140)
    report = json.loads((tmp_path / "report.json").read_text())
    run = report["runs"]["vit"]
    assert "val_top1" in run["scores"] and "train_loss" in run["losses"]
    counts = np.array(run["evaluation"]["confusion"])
    assert counts.shape == (10, 10) and np.isclose(
        100 * np.trace(counts) / counts.sum(), run["evaluation"]["top1"]
    )


def test_classification_confusion_counts():
    from boxer.viz.cls_eval import confusion_counts

    counts = confusion_counts(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 0]), 3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 0]])
