"""benchmarks/convergence.py end to end on the tiny FashionScenes with budgets of seconds: the curves,
the JSON report (also merged across runs), the PNG, and a clear failure for a rejected contender."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from boxer.data.fashion_scenes import generate_fashion_scenes

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "convergence.py"


def _script():
    spec = importlib.util.spec_from_file_location("convergence", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    """A ResNet-18 state dict in torchvision naming without `fc`, as `boxer pretrain-backbone` writes."""
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    path = tmp_path_factory.mktemp("backbone") / "r18.safetensors"
    save_file({k: v for k, v in resnet18().state_dict().items() if not k.startswith("fc.")}, str(path))
    return path


@pytest.fixture(scope="module")
def tuning_scenes(tmp_path_factory, fashion_root) -> Path:
    root = tmp_path_factory.mktemp("tune") / "scenes"
    generate_fashion_scenes(
        root, fashion_root=fashion_root, train=4, val=1, size=128, max_objects=4, seed=1, workers=1
    )
    return root


def _run(data: Path, tune: Path, backbone: Path, out: Path, *argv: str) -> str:
    cmd = [
        sys.executable, str(SCRIPT), "--data", str(data), "--tune", str(tune), "--backbone", str(backbone),
        "--marks", "0.02,0.04", "--size", "96", "--batch-size", "2", "--out", str(out), *argv,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_tiny_budgets_write_curves_json_and_png(
    fashion_scenes_tiny, tuning_scenes, backbone, tmp_path
) -> None:
    out = tmp_path / "convergence.json"
    _run(fashion_scenes_tiny, tuning_scenes, backbone, out, "--contenders", "boxer_lite")
    printed = _run(
        fashion_scenes_tiny, tuning_scenes, backbone, out, "--contenders", "fasterrcnn_r18_fpn", "--merge"
    )
    assert "| boxer_lite |" in printed and "| fasterrcnn_r18_fpn |" in printed  # merged into one table
    report = json.loads(out.read_text())
    assert report["setup"]["marks"] == [0.02, 0.04] and report["setup"]["tune_images"] == 4
    assert report["machine"]["torch_threads"] == 1 and len(report["load_start"]) == 3
    assert set(report["contenders"]) == {"boxer_lite", "fasterrcnn_r18_fpn"}
    for run in report["contenders"].values():
        assert run["stopped"] is None and [p["mark_min"] for p in run["curve"]] == [0.02, 0.04]
        for point in run["curve"]:
            assert point["train_cpu_s"] >= point["mark_min"] * 60 - 0.05  # evaluated once the mark is crossed
            assert 0 <= point["AP50"] <= 1 and 0 <= point["AP"] <= point["AP50"] + 1e-9
            assert 0 <= point["AP50_agnostic"] <= 1
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # --merge-from: a report of one contender takes the other's runs without training
    single = {**report, "contenders": {"boxer_lite": report["contenders"]["boxer_lite"]}}
    other = {**report, "contenders": {"fasterrcnn_r18_fpn": report["contenders"]["fasterrcnn_r18_fpn"]}}
    (tmp_path / "a.json").write_text(json.dumps(single))
    (tmp_path / "b.json").write_text(json.dumps(other))
    conv = _script()
    assert conv.main(["--out", str(tmp_path / "a.json"), "--merge-from", str(tmp_path / "b.json")]) == 0
    merged = json.loads((tmp_path / "a.json").read_text())
    assert set(merged["contenders"]) == {"boxer_lite", "fasterrcnn_r18_fpn"}
    assert (tmp_path / "a.png").stat().st_size > 10_000


def test_a_rejected_keyword_names_the_contender(backbone, monkeypatch) -> None:
    conv = _script()
    monkeypatch.setitem(conv.CONTENDERS, "bad", conv.Contender("boxer2d_r18_lite", {"no_such_keyword": 1}))
    with pytest.raises(conv.ContenderError, match=r"contender bad: .*no_such_keyword.*--contenders"):
        conv.check_contenders(["bad"], num_classes=10, backbone=str(backbone))
    monkeypatch.setitem(conv.CONTENDERS, "gone", conv.Contender("no_such_model"))
    with pytest.raises(conv.ContenderError, match="contender gone: .*unknown model 'no_such_model'"):
        conv.check_contenders(["gone"], num_classes=10, backbone=str(backbone))


def test_tuning_set_must_not_be_the_training_data(fashion_scenes_tiny, backbone, capsys) -> None:
    conv = _script()
    argv = [
        "--data",
        str(fashion_scenes_tiny),
        "--tune",
        str(fashion_scenes_tiny),
        "--backbone",
        str(backbone),
    ]
    assert conv.main([*argv, "--contenders", "boxer_lite"]) == 2
    assert "another seed's scenes" in capsys.readouterr().err


def test_boxer_lite_is_the_demo_recipe() -> None:
    from boxer.engine.config import load_preset

    conv, demo = _script(), load_preset("fashion_scenes_demo")
    lite, accel = conv.CONTENDERS["boxer_lite"], conv.CONTENDERS["boxer_lite_accel"]
    assert (accel.model, accel.kwargs, accel.lr, accel.lr_backbone) == (
        demo["model"], demo["model_kwargs"], demo["lr"], demo["lr_backbone"]
    )  # fmt: skip
    assert lite.kwargs == {"backbone_kwargs": demo["model_kwargs"]["backbone_kwargs"]}
    assert lite.amp == demo["amp"] and conv.SCHEDULE["clip_max_norm"] == demo["clip_max_norm"]
    assert conv.SCHEDULE["warmup_iters"] == demo["warmup_iters"]
    assert conv.SCHEDULE["warmup_factor"] == demo["warmup_factor"]
    assert conv.SCHEDULE["drop_at"] == demo["lr_steps"][0] / demo["max_iters"]
    args = conv.parse_args(["--quick"])
    assert (args.size, args.batch_size, args.threads) == (demo["image_size"], demo["batch_size"], 1)
    assert args.marks == (2.0, 4.0, 8.0) and args.tune_images == 100 and not demo["augment"]
