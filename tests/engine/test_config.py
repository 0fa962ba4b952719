"""Config: presets, flags, `--set key=value` type checks and errors."""

from __future__ import annotations

import json

import pytest

from boxer.engine.config import TrainConfig, load_preset, resolve_config
from boxer.errors import BoxerError


def test_set_overrides_with_types():
    cfg = resolve_config(
        flags={"epochs": 3, "lr": None},
        sets=[
            "lr=1e-3",
            "lr_steps=8,11",
            "amp=bf16",
            "model.num_queries=50",
            "model.backbone=resnet18",
            "augment=false",
        ],
    )
    assert cfg.epochs == 3 and cfg.lr == 1e-3 and cfg.lr_steps == [8, 11] and cfg.amp == "bf16"
    assert cfg.model_kwargs == {"num_queries": 50, "backbone": "resnet18"}
    assert cfg.augment is False
    assert isinstance(resolve_config(sets=["lr=1"]).lr, float)


@pytest.mark.parametrize(
    "item, message",
    [
        ("learning_rate=1", "unknown config key 'learning_rate'"),
        ("epoch=3", "did you mean 'epochs'"),
        ("epochs=three", "epochs='three' is not a valid value"),
        ("epochs=2.5", "epochs expects int"),
        ("amp=fp8", "amp must be one of"),
        ("batch_size=0", "batch_size must be >= 1"),
        ("lr_steps=[11, 8]", "lr_steps must be increasing"),
        ("novalue", "expected key=value"),
    ],
)
def test_set_errors_are_one_line_and_named(item, message):
    with pytest.raises(BoxerError, match=message.replace("(", r"\(").replace("[", r"\[")) as err:
        resolve_config(sets=[item])
    assert "\n" not in str(err.value)


def test_presets_load_and_resolve(tmp_path):
    preset = tmp_path / "p.py"
    preset.write_text(
        "CONFIG = dict(model='boxer2d_r50', epochs=50, lr_steps=[40], model_kwargs={'num_queries': 300})\n"
    )
    cfg = resolve_config(str(preset), flags={"epochs": 5})
    assert cfg.model == "boxer2d_r50" and cfg.epochs == 5 and cfg.lr_steps == [40]
    assert cfg.model_kwargs == {"num_queries": 300}
    bad = tmp_path / "bad.py"
    bad.write_text("CONFIG = dict(epoks=1)\n")
    with pytest.raises(BoxerError, match="did you mean 'epochs'"):
        resolve_config(str(bad))
    with pytest.raises(BoxerError, match="no preset"):
        load_preset("definitely_not_a_preset")


def test_repository_presets_are_valid():
    for name in ("coco_boxer2d_r50_3x", "coco_boxer2d_r50_mask_3x", "fashion_scenes_demo"):
        resolve_config(name)


def test_saved_config_round_trips(tmp_path):
    cfg = resolve_config(sets=["epochs=7", "model.dim=64"])
    cfg.save(tmp_path / "config.json", num_classes=10)
    values = json.loads((tmp_path / "config.json").read_text())
    assert values["num_classes"] == 10
    assert TrainConfig.from_dict(values, strict=False) == cfg
