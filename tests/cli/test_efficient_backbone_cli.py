"""`boxer train` with an efficient-ViT deck backbone (docs/zoo.md) in BoxeR-2D (`--set
model.backbone=...`)."""

from __future__ import annotations

import json
import math

from cli_helpers import train_tiny

from boxer.engine.checkpoint import load_checkpoint


def test_boxer2d_trains_one_iteration_on_emsnet_xtiny(fashion_scenes_tiny, tmp_path):
    out = tmp_path / "ems"
    extra = ["--set", "model.backbone=emsnet_xtiny", "max_iters=1", "eval_every=0"]
    assert train_tiny(fashion_scenes_tiny, out, extra=extra) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_kwargs"]["backbone"] == "emsnet_xtiny"
    weights = load_checkpoint(out / "last", with_state=False).weights
    assert any(k.endswith("backbone.stages.2.1.mixer.mixers.0.key_matrix") for k in weights)  # C-MHSA's M
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["iteration"] == 1 and math.isfinite(line["train/loss"])
