"""`boxer viz attention` on tiny trained checkpoints: figures of the expected size and the data."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from boxer.cli.main import main


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_attention_figures_and_data(viz_boxes_run, fashion_scenes_tiny, tmp_path, capsys):
    image = sorted((fashion_scenes_tiny / "val").glob("*.png"))[0]
    out = tmp_path / "viz"
    argv = ["viz", "attention", "--checkpoint", viz_boxes_run / "best", image, "--out", out,
            "--detections", "2", "--pixel", "40,50"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    assert "attention.json" in capsys.readouterr().out
    index = json.loads((out / "attention.json").read_text())
    (entry,) = index["images"]
    assert len(entry["detections"]) == 2 and len(entry["figures"]) == 2 + 4  # 4 encoder query levels
    for fig in entry["figures"]:
        assert _png_size(fig) == (4 * 228 + 8, 1 * 244 + 56)  # 4 levels x 1 layer
    data = np.load(entry["data"])
    assert data["dec_windows"].shape == (2, 1, 8, 4, 4) and data["dec_points"].shape == (2, 1, 8, 4, 2, 2, 2)
    np.testing.assert_allclose(data["dec_weights"].sum((-3, -2, -1)), 1.0, rtol=1e-5)
    assert data["enc_windows"].shape == (4, 1, 8, 4, 4)
    ref = data["enc_reference"][0, 0]  # the level-0 token's window contains the pixel
    assert ref[0] <= 40 <= ref[2] and ref[1] <= 50 <= ref[3]


def test_attention_of_a_mask_model_adds_the_mask(viz_mask_run, fashion_scenes_tiny, tmp_path, capsys):
    image = sorted((fashion_scenes_tiny / "val").glob("*.png"))[0]
    argv = ["viz", "attention", "--checkpoint", viz_mask_run / "best", image, "--out", tmp_path,
            "--detections", "1"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    (entry,) = json.loads((tmp_path / "attention.json").read_text())["images"]
    assert _png_size(entry["figures"][0]) == (5 * 228 + 8, 1 * 244 + 56)  # + the mask column
    assert np.load(entry["data"])["dec_points"].shape[-3:] == (14, 14, 2)


def test_attention_refuses_a_layer_that_does_not_exist(viz_boxes_run, fashion_scenes_tiny, tmp_path, capsys):
    image = sorted((fashion_scenes_tiny / "val").glob("*.png"))[0]
    argv = ["viz", "attention", "--checkpoint", viz_boxes_run / "best", image, "--out", tmp_path,
            "--layers", "3"]  # fmt: skip
    assert main([str(a) for a in argv]) == 1
    assert "--layers: the decoder has 1 layers" in capsys.readouterr().err


def test_encoder_at_the_best_detections_centre(viz_boxes_run, fashion_scenes_tiny, tmp_path, capsys):
    image = sorted((fashion_scenes_tiny / "val").glob("*.png"))[0]
    argv = ["viz", "attention", "--checkpoint", viz_boxes_run / "best", image, "--out", tmp_path,
            "--detections", "1", "--pixel", "centre", "--layers", "-1"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    data = np.load(tmp_path / f"{image.stem}_attention.npz")
    x0, y0, x1, y1 = data["det_boxes"][0]
    np.testing.assert_allclose(data["enc_pixel"], [(x0 + x1) / 2, (y0 + y1) / 2], rtol=1e-5)


def test_one_figure_per_query(viz_boxes_run, fashion_scenes_tiny, tmp_path, capsys):
    image = sorted((fashion_scenes_tiny / "val").glob("*.png"))[1]
    argv = ["viz", "attention", "--checkpoint", viz_boxes_run / "best", image, "--out", tmp_path,
            "--detections", "10"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    queries = np.load(tmp_path / f"{image.stem}_attention.npz")["det_queries"]
    assert len(queries) == 10 and len(set(queries.tolist())) == 10  # 10 queries in the tiny model
