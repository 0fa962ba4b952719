"""Checkpoints: atomic replacement, safe loading, partial --init loading."""

from __future__ import annotations

import os

import pytest
import torch
from fakes import TinyDetector
from safetensors.torch import save_file

from boxer.engine import checkpoint as ckpt
from boxer.errors import BoxerError


def save(run_dir, model, iteration):
    state = {"iteration": iteration, "epoch": 0, "optimizer": {"x": torch.ones(2)}, "note": [1, 2.5, "s"]}
    return ckpt.save_checkpoint(run_dir, "last", model=model, state=state, config={"model": "tiny"})


@pytest.mark.parametrize("crash_in", ["torch.save", "os.rename", "os.symlink", "os.replace"])
def test_crash_mid_save_leaves_last_loadable(tmp_path, monkeypatch, crash_in):
    model = TinyDetector()
    save(tmp_path, model, iteration=1)
    before = ckpt.load_checkpoint(tmp_path / "last")
    with torch.no_grad():
        model.linear_box.weight.add_(1.0)

    def boom(*args, **kwargs):
        raise OSError("disk on fire")

    module, name = crash_in.split(".")
    monkeypatch.setattr(torch if module == "torch" else os, name, boom)
    with pytest.raises(OSError):
        save(tmp_path, model, iteration=2)
    monkeypatch.undo()
    after = ckpt.load_checkpoint(tmp_path / "last")
    assert after.state["iteration"] == 1
    assert torch.equal(after.weights["linear_box.weight"], before.weights["linear_box.weight"])
    save(tmp_path, model, iteration=3)  # the next save cleans up what the crash left
    versions = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert len(versions) == 1 and versions[0].startswith("last-00000003")
    assert not list(tmp_path.glob(".last.*"))


def test_loading_never_unpickles_objects(tmp_path):
    model = TinyDetector()
    path = save(tmp_path, model, iteration=1)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"iteration": 1, "payload": Evil()}, path / "state.pt")
    with pytest.raises(BoxerError, match="unreadable training state"):
        ckpt.load_checkpoint(tmp_path / "last")


def test_checkpoint_errors_name_the_path(tmp_path):
    with pytest.raises(BoxerError, match="checkpoint not found"):
        ckpt.checkpoint_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BoxerError, match="no trained weights"):
        ckpt.checkpoint_dir(tmp_path / "empty")


def test_load_matching_skips_what_does_not_fit(tmp_path):
    src, dst = TinyDetector(num_classes=5), TinyDetector(num_classes=3)
    weights = ckpt.state_dict_for_safetensors(src)
    weights["extra.weight"] = torch.zeros(1)
    save_file(weights, str(tmp_path / "w.safetensors"))
    loaded, skipped = ckpt.load_matching(dst, ckpt.load_weights_file(tmp_path / "w.safetensors"))
    assert "backbone.0.weight" in loaded and "class_embed.weight" not in loaded
    assert any(s.startswith("class_embed.weight (shape [5, 8] vs [3, 8])") for s in skipped)
    assert any(s.startswith("extra.weight (not in model)") for s in skipped)
    assert torch.equal(dst.backbone[0].weight, src.backbone[0].weight)


def test_shared_tensors_are_saved(tmp_path):
    model = TinyDetector()
    model.tied = model.linear_box  # same parameters under two names
    ckpt.save_checkpoint(tmp_path, "last", model=model, state={"iteration": 0}, config={})
    loaded = ckpt.load_checkpoint(tmp_path)
    assert torch.equal(loaded.weights["tied.weight"], loaded.weights["linear_box.weight"])


@pytest.mark.parametrize("damage", ["truncate", "foreign"])
def test_a_bad_safetensors_file_is_one_line_naming_it(tmp_path, damage):
    model = TinyDetector()
    path = save(tmp_path, model, iteration=1) / ckpt.WEIGHTS
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x89PNG not weights at all")
    for load in (ckpt.load_checkpoint, ckpt.load_weights_file):
        with pytest.raises(BoxerError) as err:
            load(tmp_path / "last")
        assert str(path.resolve()) in str(err.value) and "\n" not in str(err.value)
    single = tmp_path / "w.safetensors"
    single.write_bytes(data[:100])
    with pytest.raises(BoxerError, match="w.safetensors: not a readable .safetensors file"):
        ckpt.load_weights_file(single)


def test_describe_last_says_what_is_saved(tmp_path):
    assert "nothing was saved yet" in ckpt.describe_last(tmp_path)
    save(tmp_path, TinyDetector(), iteration=12)
    text = ckpt.describe_last(tmp_path)
    assert "holds iteration 12" in text and f"--resume {tmp_path / 'last'}" in text
