"""`boxer predict`: annotated PNGs and a results JSON that pycocotools loads (RLE masks too)."""

from __future__ import annotations

import json
import shutil

from cli_helpers import run_cli
from PIL import Image
from pycocotools.coco import COCO


def test_predict_writes_pngs_and_loadable_results(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    images = tmp_path / "in"
    images.mkdir()
    shutil.copy(fashion_scenes_tiny / "val" / "000003.png", images / "000003.png")
    shutil.copy(fashion_scenes_tiny / "val" / "000004.png", images / "street.png")
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        ["predict", "--checkpoint", trained_run / "last", images, "--out", out, "--score", "0"], capsys
    )
    assert code == 0, err
    assert Image.open(out / "000003.png").size == (128, 128) and (out / "street.png").exists()
    skeleton = json.loads((out / "images.json").read_text())
    assert {im["id"] for im in skeleton["images"]} == {3, 1}  # numeric stem, else the next free id
    gt = COCO(str(out / "images.json"))
    dt = gt.loadRes(str(out / "results.json"))
    assert len(dt.anns) > 0 and set(dt.getImgIds()) <= {1, 3}


def test_predict_writes_rle_segmentations_for_mask_models(
    trained_mask_run, fashion_scenes_tiny, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", trained_mask_run / "last", fashion_scenes_tiny / "val" / "000001.png"]
    code, _, err = run_cli([*argv, "--out", out, "--score", "0"], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results and all(isinstance(r["segmentation"]["counts"], str) for r in results)
    dt = COCO(str(out / "images.json")).loadRes(str(out / "results.json"))
    assert dt.annToMask(next(iter(dt.anns.values()))).shape == (128, 128)


def test_predict_names_a_missing_input(trained_run, tmp_path, capsys):
    code, _, err = run_cli(
        ["predict", "--checkpoint", trained_run / "last", tmp_path / "x.png", "--out", tmp_path], capsys
    )
    assert code == 1 and "x.png: no such image" in err
