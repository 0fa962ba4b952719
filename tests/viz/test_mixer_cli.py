"""`boxer viz mixer`: the zoo figure, and maps + rollout of a tiny trained ViT."""

from __future__ import annotations

import numpy as np
from PIL import Image

from boxer.cli.main import main


def test_mixer_zoo_writes_a_row_per_mixer(fashion_scenes_tiny, tmp_path, capsys):
    image = sorted((fashion_scenes_tiny / "val").glob("*.png"))[0]
    argv = [
        "viz",
        "mixer",
        str(image),
        "--out",
        str(tmp_path),
        "--mixers",
        "mhsa,window_shifted,pvt",
        "--size",
        "8",
    ]
    assert main(argv) == 0
    assert f"figure: {tmp_path / 'mixers.png'}" in capsys.readouterr().out
    with Image.open(tmp_path / "mixers.png") as im:
        assert im.size == (150 * 6, 160 * 3 + 30)
    data = np.load(tmp_path / "mixers.npz")
    assert set(data.files) == {"mhsa", "window_shifted", "pvt"} and data["mhsa"].shape == (4, 8, 8)


def test_mixer_refuses_an_unknown_mixer(tmp_path, capsys):
    assert main(["viz", "mixer", "--out", str(tmp_path), "--mixers", "nope"]) == 1
    assert "unknown nope" in capsys.readouterr().err


def test_classifier_maps_and_rollout(viz_vit_run, fashion_scenes_tiny, tmp_path, capsys):
    image = sorted((fashion_scenes_tiny / "val").glob("*.png"))[0]
    argv = ["viz", "mixer", str(image), "--checkpoint", str(viz_vit_run / "best"), "--out", str(tmp_path)]
    assert main(argv) == 0
    stem = image.stem
    with Image.open(tmp_path / f"{stem}_layers.png") as im:
        assert im.size == (2 * 170, 180 + 30)
    with Image.open(tmp_path / f"{stem}_rollout.png") as im:
        assert im.size == (520, 290)
    data = np.load(tmp_path / f"{stem}_maps.npz")
    roll = data["rollout"]
    assert roll.shape == (49, 49) and np.allclose(roll.sum(1), 1, atol=1e-5)
