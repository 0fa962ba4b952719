"""DETR through the whole CLI: `boxer train` (2 iterations, pretrained backbone file, frozen stages),
then `boxer eval` and `boxer predict` on its checkpoint."""

from __future__ import annotations

import json

import torch
import torchvision
from cli_helpers import run_cli, train_tiny
from safetensors.torch import save_file

from boxer.engine.checkpoint import load_checkpoint


def test_detr_trains_evaluates_and_predicts(fashion_scenes_tiny, tmp_path, capsys):
    weights = tmp_path / "r18.safetensors"
    torch.manual_seed(0)
    save_file(torchvision.models.resnet18().state_dict(), weights)
    run = tmp_path / "run"
    extra = [
        "max_iters=2", "model.dec_layers=2",
        f"model.pretrained_backbone={weights}", "model.backbone_kwargs={'frozen_stages': 2}",
    ]  # fmt: skip
    assert train_tiny(fashion_scenes_tiny, run, model="detr_r18_lite", extra=extra) == 0
    out, err = capsys.readouterr()
    last = load_checkpoint(run / "last")
    assert last.config["model"] == "detr_r18_lite" and last.state["iteration"] == 2
    assert last.config["model_kwargs"]["backbone_kwargs"] == {"frozen_stages": 2}
    line = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert "bbox/AP" in line and "train/loss_ce_0" in line and "train/loss_giou" in line

    code, out, err = run_cli(["eval", "--checkpoint", run / "last", "--data", fashion_scenes_tiny], capsys)
    assert code == 0, err
    assert out.count("IoU metric: bbox") == 1 and "segm" not in out

    dest = tmp_path / "pred"
    image = fashion_scenes_tiny / "val" / "000001.png"
    code, _, err = run_cli(
        ["predict", "--checkpoint", run / "last", image, "--out", dest, "--score", "0"], capsys
    )
    assert code == 0, err
    results = json.loads((dest / "results.json").read_text())
    assert len(results) == 10 and (dest / "000001.png").exists()  # one detection per query (10 in TINY)
    assert all(len(r["bbox"]) == 4 and 0 <= r["score"] <= 1 for r in results)
