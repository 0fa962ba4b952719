"""`boxer predict VIDEO` (docs/training.md): an annotated video with one frame per processed frame
(`--every`), one JSON line of detections per processed frame, and one-line refusals that leave
nothing behind (a corrupt video, an unknown suffix, videos mixed with images, a missing extra)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from PIL import Image

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")


def make_video(path: Path, scenes: Path, frames: int = 8, fps: float = 10.0, faststart: bool = False) -> Path:
    """`frames` frames of 128 px FashionScenes images (the val images in turn, shifted a little);
    `faststart` puts the header first, so that a cut-short copy still opens."""
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(scenes.glob("*.png"))]
    params = ["-movflags", "+faststart"] if faststart else None
    writer = imageio_ffmpeg.write_frames(
        str(path), (128, 128), fps=fps, output_params=params, ffmpeg_log_level="error"
    )
    writer.send(None)
    for i in range(frames):
        writer.send(np.ascontiguousarray(np.roll(images[i % len(images)], 2 * i, axis=1)).tobytes())
    writer.close()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory, fashion_scenes_tiny) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", fashion_scenes_tiny / "val")


def refused(code: int, err: str, *fragments: str) -> None:
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_predict_video_writes_annotated_video_and_json_lines(trained_run, clip, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["predict", clip, "--checkpoint", trained_run / "best", "--out", out, "--score", "0"]
    code, stdout, err = run_cli([*argv, "--every", "3", "--batch-size", "2"], capsys)
    assert code == 0, err
    assert "3 of 8 frames (every 3)" in stdout and "clip.mp4: 3/" in err  # summary; progress line
    assert imageio_ffmpeg.count_frames_and_secs(str(out / "clip.mp4"))[0] == 3
    meta = next(imageio_ffmpeg.read_frames(str(out / "clip.mp4")))
    assert meta["size"][0] == 512 and meta["size"][1] > 512 and meta["fps"] == pytest.approx(10 / 3, rel=0.01)
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == [0, 3, 6]
    assert [r["time"] for r in lines] == pytest.approx([0.0, 0.3, 0.6])
    assert all((r["width"], r["height"]) == (128, 128) for r in lines)
    detections = [d for r in lines for d in r["detections"]]
    assert detections and set(detections[0]) == {"category_id", "category", "bbox", "score"}
    manifest = json.loads((out / "images.json").read_text())
    assert manifest["written_by"] == "boxer predict"
    assert manifest["outputs"] == ["clip.jsonl", "clip.mp4", "images.json"]
    assert manifest["videos"][0]["frames_read"] == 8 and manifest["videos"][0]["frames_processed"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl", "clip.mp4", "images.json"]  # no temps
    code, stdout, err = run_cli(argv, capsys)  # every frame; replaces its own outputs without --overwrite
    assert code == 0 and "8 of 8 frames (every 1)" in stdout, err
    assert imageio_ffmpeg.count_frames_and_secs(str(out / "clip.mp4"))[0] == 8


def test_bad_videos_are_one_line_and_leave_nothing(trained_run, clip, fashion_scenes_tiny, tmp_path, capsys):
    ckpt = ["--checkpoint", trained_run / "last", "--out", tmp_path / "out"]
    corrupt = tmp_path / "in" / "broken.mp4"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"not a video" * 100)
    code, _, err = run_cli(["predict", corrupt, *ckpt], capsys)
    refused(code, err, f"{corrupt}: video file is unreadable (Invalid data found when processing input)")
    cut = tmp_path / "in" / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    code, _, err = run_cli(["predict", clip, cut, *ckpt], capsys)  # the first video reads fine
    refused(code, err, f"{cut}: video file is unreadable")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    odd = tmp_path / "in" / "clip.xyz"
    odd.write_bytes(clip.read_bytes())
    code, _, err = run_cli(["predict", odd, *ckpt], capsys)
    refused(code, err, f"{odd}: unknown suffix '.xyz'; boxer predict reads images (.png")
    code, _, err = run_cli(["predict", clip, fashion_scenes_tiny / "val", *ckpt], capsys)
    refused(code, err, "give videos and images in separate runs")
    code, _, err = run_cli(
        ["predict", clip, "--checkpoint", trained_run / "last", "--out", clip.parent], capsys
    )
    refused(code, err, f"--out: {clip.parent} is the input folder")


def test_missing_video_extra_is_one_line(trained_run, clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if not installed
    code, _, err = run_cli(["predict", clip, "--checkpoint", trained_run / "last", "--out", tmp_path], capsys)
    refused(code, err, "pip install 'boxer[video]'")


def test_video_cut_short_after_its_header_is_processed_with_a_note(
    trained_run, fashion_scenes_tiny, tmp_path, capsys
):
    whole = make_video(tmp_path / "whole.mp4", fashion_scenes_tiny / "val", frames=10, faststart=True)
    cut = tmp_path / "in" / "cut.mp4"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    out = tmp_path / "out"
    code, stdout, err = run_cli(["predict", cut, "--checkpoint", trained_run / "last", "--out", out], capsys)
    assert code == 0, err
    read = json.loads((out / "images.json").read_text())["videos"][0]["frames_read"]
    assert 0 < read < 9 and f"{cut}: note: {read} frames decoded, the header announces 10" in stdout
    assert imageio_ffmpeg.count_frames_and_secs(str(out / "cut.mp4"))[0] == read
