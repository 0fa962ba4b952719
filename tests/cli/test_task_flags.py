"""`boxer train-cls` and `boxer pretrain-backbone` take `boxer train`'s flags: --config, --set, --init,
--resume (refused, in one line, by pretraining, which keeps no run directory)."""

from __future__ import annotations

import json

import pytest

from boxer.classification.config import resolve_classify_config
from boxer.cli.main import main
from boxer.engine.pretrain_config import resolve_pretrain_config
from boxer.errors import BoxerError

TINY_MODEL = {"layers": (1, 1), "widths": (4, 8), "strides": (2, 2), "stem_width": 8}


def _preset(tmp_path, name: str, values: dict) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(f"CONFIG = {values!r}\n")
    return str(path)


@pytest.mark.parametrize("command", ["train", "train-cls", "pretrain-backbone"])
def test_every_training_command_has_the_shared_flags(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    for flag in ("--config", "--resume", "--init", "--set"):
        assert flag in out, f"boxer {command} has no {flag}"


def test_classify_config_precedence(tmp_path):
    preset = _preset(tmp_path, "cls", {"epochs": 4, "lr": 1e-3, "model_kwargs": {"mixer": "local"}})
    cfg = resolve_classify_config(preset, {"epochs": 2, "lr": None}, ["lr=2e-3", "model.drop=0.1", "k=(3,)"])
    assert (cfg.epochs, cfg.lr) == (2, 2e-3)  # flag over preset, --set over both
    assert cfg.model_kwargs == {"mixer": "local", "drop": 0.1, "k": (3,)}
    with pytest.raises(BoxerError, match="epochs expects int"):
        resolve_classify_config(sets=["epochs=many"])


def test_pretrain_config_precedence_and_errors(tmp_path):
    preset = _preset(tmp_path, "pre", {"size": 48, "lr": 1e-3})
    cfg = resolve_pretrain_config(preset, {"size": None, "lr": 5e-3}, ["weight_decay=0.1", "epochs=2"])
    assert (cfg.size, cfg.lr, cfg.weight_decay, cfg.epochs) == (48, 5e-3, 0.1, 2.0)
    with pytest.raises(BoxerError, match="did you mean 'epochs'"):
        resolve_pretrain_config(sets=["epochz=2"])


def test_pretrain_refuses_resume_in_one_line(capsys):
    assert main(["pretrain-backbone", "--resume", "RUN/last"]) == 1
    err = capsys.readouterr().err
    assert "--resume: pretrain-backbone keeps no run directory" in err and "Traceback" not in err


def test_pretrain_backbone_from_a_preset_then_init_from_its_weights(tmp_path, fashion_root, capsys):
    tiny = {"size": 32, "epochs": 0.004, "batch_size": 16, "val_size": 64, "workers": 0}
    preset = _preset(tmp_path, "tiny", {**tiny, "fashion_root": str(fashion_root), "progress": False})
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert main(["pretrain-backbone", "--config", preset, "--out", str(first)]) == 0
    argv = ["--config", preset, "--out", str(second), "--init", str(first), "--set", "weight_decay=0.1"]
    assert main(["pretrain-backbone", *argv]) == 0
    report = json.loads(second.with_suffix(".json").read_text())["config"]
    assert report["init"] == str(first) and report["weight_decay"] == 0.1 and report["size"] == 32


def test_train_cls_from_a_preset_then_init_from_its_checkpoint(tmp_path, capsys):
    tiny = {"model": "bot_fm", "model_kwargs": TINY_MODEL, "epochs": 1, "batch_size": 64,
            "limit_train": 256, "val_size": 128, "limit_test": 128, "progress": False}  # fmt: skip
    preset = _preset(tmp_path, "tiny_cls", tiny)
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["train-cls", "--config", preset, "--out", str(first), "--set", "lr=3e-3"]) == 0
    saved = json.loads((first / "last" / "config.json").read_text())
    assert saved["lr"] == 3e-3 and saved["model"] == "bot_fm" and saved["limit_train"] == 256
    capsys.readouterr()
    assert main(["train-cls", "--config", preset, "--out", str(second), "--init", str(first / "best")]) == 0
    assert "init: loaded" in capsys.readouterr().out
