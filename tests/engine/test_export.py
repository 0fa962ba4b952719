"""`boxer export` (ONNX, torch.export) against the PyTorch model; `boxer predict --onnx`.

Parity (docs/export.md): scores and boxes to rtol 1e-3 / atol 1e-5 after top-k, labels equal, masks
IoU >= 0.99, at an image size and batch other than the ones traced. Random weights, shrunk models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import boxer
from boxer.cli.main import main
from boxer.engine import export as E
from boxer.engine.checkpoint import save_checkpoint

ort = pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")

DETR_SHRINK = {"dim": 32, "enc_layers": 1, "dec_layers": 1, "num_queries": 10, "ffn_dim": 64}
SHRINK = {**DETR_SHRINK, "num_levels": 2}  # BoxeR-2D: two levels still run the per-level loop
EXPORT_SIZE, TEST_SIZE = 128, (160, 96)  # traced at 128 x 128, checked at 160 x 96 (dynamic H, W)


def _checkpoint(root: Path, name: str, kwargs: dict, *, num_classes: int = 3, **config) -> Path:
    torch.manual_seed(0)
    model = boxer.create_model(name, num_classes=num_classes, **kwargs)
    meta = {"model": name, "num_classes": num_classes, "model_kwargs": kwargs,
            "cat_ids": list(range(1, num_classes + 1)), "class_names": [f"c{i}" for i in range(num_classes)],
            "image_size": EXPORT_SIZE, "max_size": EXPORT_SIZE, **config}  # fmt: skip
    save_checkpoint(root, "best", model=model, state={}, config=meta)
    return root / "best"


def _export(tmp_path_factory, name: str, kwargs: dict) -> dict:
    """A checkpoint, its exported program, the .onnx and .pt2 files written by `boxer export`."""
    root = tmp_path_factory.mktemp(name)
    ckpt = _checkpoint(root / "run", name, kwargs)
    model, config = E.load_for_export(ckpt)
    program, kind = E.export_program(model, EXPORT_SIZE, EXPORT_SIZE)
    meta = E.export_metadata(model, kind, config, (EXPORT_SIZE, EXPORT_SIZE))
    E.write_onnx(program, kind, root / "m.onnx", with_masks=meta["with_masks"], metadata=meta)
    torch.export.save(program, str(root / "m.pt2"), extra_files={"boxer.json": json.dumps(meta)})
    return {"checkpoint": ckpt, "model": model, "onnx": root / "m.onnx", "pt2": root / "m.pt2", "meta": meta,
            "program": program}  # fmt: skip


@pytest.fixture(scope="module", params=["boxer2d_r18_lite", "boxer2d_r18_lite_mask"])
def exported(request, tmp_path_factory) -> dict:
    return _export(tmp_path_factory, request.param, SHRINK)


def _inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(batch, 3, *TEST_SIZE, generator=torch.Generator().manual_seed(1))
    return images, torch.tensor([TEST_SIZE] * batch)


def _reference(model, images, sizes) -> list[dict]:
    return model.predict(images, None, [{"orig_size": s} for s in sizes])


def _onnx_outputs(path: Path, images, sizes) -> list[torch.Tensor]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"images": images.numpy(), "orig_sizes": sizes.numpy()}
    return [torch.from_numpy(np.asarray(o)) for o in session.run(None, feeds)]


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def assert_parity(outputs: list[torch.Tensor], reference: list[dict]) -> None:
    """Exported outputs (batched) against `predict` (per image) at the documented tolerances."""
    for b, ref in enumerate(reference):
        torch.testing.assert_close(outputs[1][b], ref["scores"], rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(outputs[0][b], ref["boxes"], rtol=1e-3, atol=1e-5)
        assert torch.equal(outputs[2][b], ref["labels"])
        if "masks" in ref:
            assert _mask_iou(outputs[3][b], ref["masks"]).min() >= 0.99


def test_onnx_matches_pytorch_at_another_size_and_batch(exported):
    images, sizes = _inputs(batch=3)
    assert_parity(
        _onnx_outputs(exported["onnx"], images, sizes), _reference(exported["model"], images, sizes)
    )


def test_torch_export_program_matches_pytorch(exported):
    """The saved .pt2 (loaded back) for the boxes model; the in-memory program for the mask model
    (torch.export.load alone takes ~12 s here)."""
    if exported["meta"]["with_masks"]:
        program = exported["program"]
    else:
        extra = {"boxer.json": ""}
        program = torch.export.load(str(exported["pt2"]), extra_files=extra)
        assert json.loads(extra["boxer.json"])["kind"] == "boxer2d"
    images, sizes = _inputs(batch=1)
    with torch.no_grad():
        outputs = list(program.module()(images, sizes))
    assert_parity(outputs, _reference(exported["model"], images, sizes))


def test_onnx_graph_uses_grid_sample_at_opset_16_or_more(exported):
    import onnx

    proto = onnx.load(str(exported["onnx"]))
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 16
    assert "GridSample" in {n.op_type for n in proto.graph.node} | {
        n.op_type for f in proto.functions for n in f.node
    }
    assert E.load_program_metadata(exported["onnx"])["outputs"][:3] == ["boxes", "scores", "labels"]


def test_detr_and_classifier_export_to_onnx(tmp_path_factory):
    detr = _export(tmp_path_factory, "detr_r18_lite", DETR_SHRINK)
    images, sizes = _inputs(batch=3)
    assert_parity(_onnx_outputs(detr["onnx"], images, sizes), _reference(detr["model"], images, sizes))
    ckpt = _checkpoint(tmp_path_factory.mktemp("cls"), "resnet_fm", {}, num_classes=4, task="classification")
    out = ckpt.parent.parent / "c.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    model, _ = E.load_for_export(ckpt)
    x = torch.randn(3, model.in_chans, model.img_size, model.img_size)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert E.load_program_metadata(out)["dynamic"] == ["batch"]
    with torch.no_grad():
        torch.testing.assert_close(
            torch.from_numpy(session.run(None, {"images": x.numpy()})[0]), model(x), rtol=1e-3, atol=1e-5
        )


def test_predict_onnx_gives_the_detections_of_predict_checkpoint(exported, fashion_scenes_tiny, tmp_path):
    image = str(fashion_scenes_tiny / "val" / "000001.png")
    for flag, value, out in (
        ("--checkpoint", exported["checkpoint"], "a"),
        ("--onnx", exported["onnx"], "b"),
    ):
        argv = ["predict", flag, str(value), image, "--out", str(tmp_path / out), "--score", "0"]
        assert main(argv) == 0
    a, b = (json.loads((tmp_path / o / "results.json").read_text()) for o in "ab")
    assert len(a) == len(b) > 0
    for ra, rb in zip(a, b):
        assert ra["category_id"] == rb["category_id"]
        np.testing.assert_allclose(rb["score"], ra["score"], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(rb["bbox"], ra["bbox"], rtol=1e-3, atol=1e-3)
        if "segmentation" in ra:
            assert rb["segmentation"] == ra["segmentation"]


def test_export_errors_are_one_line(tmp_path, capsys, monkeypatch):
    ckpt = _checkpoint(tmp_path / "run", "boxer2d_r18_lite", SHRINK)
    (tmp_path / "x.onnx").write_text("")
    argv = ["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]
    assert main(argv) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(boxer.errors.BoxerError, match=r"pip install 'boxer\[export\]'"):
        E.require_onnx()
    assert main(["predict", str(tmp_path / "x.onnx"), "--out", str(tmp_path / "o")]) == 1
    assert "give one of --checkpoint and --onnx" in capsys.readouterr().err


def test_nms_model_predicts_the_same_through_onnx(tmp_path_factory, fashion_scenes_tiny, tmp_path):
    """A model with class-wise NMS (`nms_iou`) exports the plain top-k; `predict --onnx` applies the
    NMS after the graph from the metadata, and gives `predict --checkpoint`'s detections."""
    art = _export(tmp_path_factory, "boxer2d_r18_lite", {**SHRINK, "nms_iou": 0.5})
    assert art["meta"]["nms_iou"] == 0.5
    image = str(fashion_scenes_tiny / "val" / "000001.png")
    for flag, value, out in (("--checkpoint", art["checkpoint"], "a"), ("--onnx", art["onnx"], "b")):
        argv = ["predict", flag, str(value), image, "--out", str(tmp_path / out), "--score", "0"]
        assert main(argv) == 0
    a, b = (json.loads((tmp_path / o / "results.json").read_text()) for o in "ab")
    assert 0 < len(a) == len(b) < 30  # 10 queries x 3 classes before the NMS
    for ra, rb in zip(a, b):
        assert ra["category_id"] == rb["category_id"]
        np.testing.assert_allclose(rb["score"], ra["score"], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(rb["bbox"], ra["bbox"], rtol=1e-3, atol=1e-3)
