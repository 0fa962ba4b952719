"""`boxer train` with every training acceleration switched on through `--set model.<key>=...`: one
smoke iteration of the lite model, boxes and masks, and the run's config records them."""

from __future__ import annotations

import json

import pytest
from cli_helpers import train_tiny

ALL_ON = [
    "model.o2m_topk=3",
    "model.o2m_enc_topk=3",
    "model.dn_groups=2",
    "model.dn_negatives=true",
    "model.iou_aware=true",
    "model.iou_aware_cost=true",
    "model.enc_class_aware=true",
    "max_iters=1",
    "eval_every=0",
]


@pytest.mark.parametrize("model", ["boxer2d_r18_lite", "boxer2d_r18_lite_mask"])
def test_one_iteration_with_every_acceleration(fashion_scenes_tiny, tmp_path, model):
    out = tmp_path / "run"
    assert train_tiny(fashion_scenes_tiny, out, model=model, extra=["--set", *ALL_ON]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model_kwargs"]["dn_groups"] == 2 and config["model_kwargs"]["iou_aware"] is True
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("train/loss_ce_dn", "train/loss_giou_o2m", "train/loss_ce_enc_0"):
        assert key in line, sorted(line)
