"""Spectra and attention similarity (`boxer/viz/spectrum.py`)."""

from __future__ import annotations

import math

import torch

from boxer.viz.spectrum import amplitude_spectrum, attention_similarity, relative_log_amplitude


def test_spectrum_of_a_2d_sinusoid_peaks_at_its_frequency():
    H, W, fy, fx = 32, 24, 5, 3
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    wave = torch.cos(2 * math.pi * (fy * yy / H + fx * xx / W))
    spec = amplitude_spectrum(wave.expand(2, 3, H, W))
    assert spec.shape == (H, W)
    peaks = {tuple(p) for p in torch.nonzero(spec > 0.9 * spec.max()).tolist()}
    assert peaks == {(H // 2 + fy, W // 2 + fx), (H // 2 - fy, W // 2 - fx)}
    torch.testing.assert_close(spec.max(), torch.tensor(0.5))  # cos = two half-amplitude exponentials


def test_relative_log_amplitude_starts_at_zero_and_spans_zero_to_pi():
    spec = torch.rand(8, 8) + 0.1
    freqs, values = relative_log_amplitude(spec)
    assert len(freqs) == 5 and freqs[0] == 0 and math.isclose(float(freqs[-1]), math.pi, rel_tol=1e-6)
    assert values[0] == 0


def test_attention_similarity_of_identical_and_disjoint_rows():
    same = torch.full((2, 4, 4), 0.25)
    assert math.isclose(attention_similarity(same), 1.0, rel_tol=1e-6)
    assert attention_similarity(torch.eye(4)[None]) == 0.0


def test_viz_spectrum_writes_both_figures_and_the_data(viz_vit_run, fashion_root, tmp_path, capsys):
    import json

    from PIL import Image

    from boxer.cli.main import main

    models = f"vit_fm={viz_vit_run / 'best'},resnet_fm,{viz_vit_run / 'best'}"
    argv = ["viz", "spectrum", "--models", models, "--out", str(tmp_path), "--images", "4",
            "--data-root", str(fashion_root)]  # fmt: skip
    assert main(argv) == 0
    with Image.open(tmp_path / "spectrum.png") as im:
        assert im.size == (380 * 2 + 40, 640)
    with Image.open(tmp_path / "similarity.png") as im:
        assert im.size == (640, 380)
    data = json.loads((tmp_path / "spectrum.json").read_text())
    assert set(data) == {"vit_fm", "resnet_fm (untrained)"}  # the bare checkpoint is labelled vit_fm too
    assert len(data["vit_fm"]["blocks"]) == 2 and len(data["vit_fm"]["attention"]) == 2
    assert data["resnet_fm (untrained)"]["attention"] == []


def test_viz_spectrum_refuses_an_unknown_model_in_one_line(tmp_path, capsys):
    from boxer.cli.main import main

    assert main(["viz", "spectrum", "--models", "resnet_fm,nope", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert (
        "--models: 'nope' is neither a checkpoint folder nor a classifier" in err and "Traceback" not in err
    )
    assert not any(tmp_path.iterdir())
