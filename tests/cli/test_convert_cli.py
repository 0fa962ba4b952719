"""`boxer convert --from official`: help, a conversion, and one-line refusals."""

from __future__ import annotations

import pytest
import torch
from cli_helpers import run_cli
from official_helpers import official_state_dict

from boxer.cli.main import main


def _official_file(path, masks: bool = False):
    """An official-layout state dict with one-element storages (a small file), saved at `path`."""
    meta = official_state_dict(50, 91, masks, device="meta")
    torch.save({k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in meta.items()}, path)
    return path


def test_help_documents_both_official_file_forms(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "*.ckpt" in out and "'model' entry" in out and "*_final.pth" in out and "'module.'" in out


def test_converts_and_prints_what_it_wrote(tmp_path, capsys):
    src = _official_file(tmp_path / "boxer2d_final.pth", masks=True)
    code, out, _ = run_cli(["convert", "--from", "official", src, "--out", tmp_path / "ckpt"], capsys)
    assert code == 0 and "boxer2d_r50_mask, 80 classes, residual mode v2" in out
    assert (tmp_path / "ckpt" / "model.safetensors").is_file() and (
        tmp_path / "ckpt" / "config.json"
    ).is_file()


def test_mask_file_into_detection_model_is_one_line(tmp_path, capsys):
    src = _official_file(tmp_path / "masks.pth", masks=True)
    argv = ["convert", "--from", "official", src, "--out", tmp_path / "o", "--model", "boxer2d_r50"]
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"boxer convert: error: {src}: detector.mask_embed.*: a mask checkpoint")


def test_bad_key_is_one_line(tmp_path, capsys):
    state = torch.load(_official_file(tmp_path / "a.pth"), weights_only=True)
    state["input_proj.2.0.weight"] = torch.zeros(256, 1024, 1, 1)
    torch.save(state, tmp_path / "b.pth")
    code, _, err = run_cli(
        ["convert", "--from", "official", tmp_path / "b.pth", "--out", tmp_path / "o"], capsys
    )
    assert code == 1 and err.count("\n") == 1
    assert (
        "input_proj.2.0.weight: shape [256, 1024, 1, 1] does not fit boxer2d_r50's neck.lateral.2.0.weight"
        in err
    )
