"""`boxer predict`: annotated PNGs and a results JSON that pycocotools loads (RLE masks too);
`--score auto` (best F1 on the run's training images), `--gt` panels, `--grid`; one-line refusals."""

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
    width, height = Image.open(out / "000003.png").size  # 128 px enlarged to 512, a title strip above
    assert width == 512 and 512 < height < 600 and (out / "street.png").exists()
    skeleton = json.loads((out / "images.json").read_text())
    assert {im["id"] for im in skeleton["images"]} == {3, 1}  # numeric stem, else the next free id
    gt = COCO(str(out / "images.json"))
    dt = gt.loadRes(str(out / "results.json"))
    assert len(dt.anns) > 0 and set(dt.getImgIds()) <= {1, 3}
    assert "(score >= 0.00)" in stdout


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
    gt = fashion_scenes_tiny / "annotations" / "instances_val.json"
    extra = ["--score", "auto", "--score-images", "2", "--gt", gt, "--grid", tmp_path / "g.png"]
    code, stdout, err = run_cli([*argv, "--out", tmp_path / "auto", *extra], capsys)
    assert code == 0 and "on 2 training images" in stdout and (tmp_path / "g.png").exists(), err


def test_predict_auto_score_gt_panels_and_grid(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    out = tmp_path / "out"
    val = fashion_scenes_tiny / "val"
    argv = ["predict", "--checkpoint", trained_run / "best", val, "--out", out, "--score", "auto"]
    argv += ["--score-images", "4", "--gt", fashion_scenes_tiny / "annotations" / "instances_val.json"]
    code, stdout, err = run_cli([*argv, "--grid", out / "grid.png", "--top", "5"], capsys)
    assert code == 0, err
    assert "score threshold " in stdout and f"on 4 training images of {trained_run}" in stdout
    width, _ = Image.open(out / "000001.png").size
    assert width == 2 * 512 + 12  # ground truth | predictions
    grid = Image.open(out / "grid.png")
    assert grid.width > 2 * width * 384 // 512 and grid.height > 3 * 384  # 6 pairs in 2 columns
    results = json.loads((out / "results.json").read_text())
    threshold = float(stdout.split("score threshold ")[1].split()[0])
    assert all(r["score"] >= threshold - 0.005 for r in results)


def test_predict_says_why_nothing_is_drawn(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    image = fashion_scenes_tiny / "val" / "000002.png"
    code, stdout, err = run_cli(
        ["predict", "--checkpoint", trained_run / "last", image, "--out", tmp_path, "--score", "1"], capsys
    )
    assert code == 0, err
    assert "000002.png: no detection drawn: nothing scores >= 1.00 (best score 0." in stdout


def test_predict_auto_score_without_training_data_is_one_line(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run / "last", run / "last", symlinks=False)
    config = json.loads((run / "last" / "config.json").read_text())
    config.update(data=str(tmp_path / "gone"), train_images="", train_ann="")
    (run / "last" / "config.json").write_text(json.dumps(config))
    image = tmp_path / "000001.png"
    Image.new("RGB", (64, 64)).save(image)
    argv = ["predict", "--checkpoint", run / "last", image, "--out", tmp_path / "o", "--score", "auto"]
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "--score auto:" in err and "gone" in err and "--score FLOAT" in err
    config.update(data="")
    (run / "last" / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and "names no training data" in err


def test_predict_refuses_to_overwrite_inputs_and_bad_options(
    trained_run, fashion_scenes_tiny, tmp_path, capsys
):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(fashion_scenes_tiny / "val" / "000001.png", folder / "000001.png")
    before = (folder / "000001.png").read_bytes()
    ckpt = trained_run / "last"
    code, _, err = run_cli(["predict", "--checkpoint", ckpt, folder, "--out", folder], capsys)
    assert code == 1 and "is the input folder" in err
    argv = ["predict", "--checkpoint", ckpt, folder / "000001.png", "--out", tmp_path / "o"]
    code, _, err = run_cli([*argv, "--grid", folder / "000001.png"], capsys)
    assert code == 1 and "--grid" in err and "overwrite" in err
    assert (folder / "000001.png").read_bytes() == before
    other = tmp_path / "other.json"
    ann = json.loads((fashion_scenes_tiny / "annotations" / "instances_val.json").read_text())
    other.write_text(json.dumps({**ann, "images": [{**ann["images"][0], "file_name": "zzz.png"}]}))
    code, _, err = run_cli([*argv, "--gt", other], capsys)
    assert code == 1 and "none of the 1 image(s) is named in it" in err


def test_predict_names_a_missing_input(trained_run, tmp_path, capsys):
    code, _, err = run_cli(
        ["predict", "--checkpoint", trained_run / "last", tmp_path / "x.png", "--out", tmp_path], capsys
    )
    assert code == 1 and "x.png: no such image" in err
