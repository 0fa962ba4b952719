"""Prediction on video files: an annotated video and one JSON line of detections per frame.

`boxer predict CLIP.mp4 --out DIR` streams the frames (at most `batch_size` decoded frames in
memory), runs the detector on every `every`-th one with the eval preprocessing of the image path
(`boxer.engine.predict.ImageFiles`) and writes, per input video:

- `DIR/<stem>.mp4`: the processed frames drawn exactly as `boxer predict` draws images
  (`boxer.engine.draw`, near-duplicates and those past `top` left out), H.264 at `fps / every`, so
  the clip keeps its duration. A video's frames share one size: each picture sits at the bottom of
  one white canvas (the frame with room above it for a title of up to three lines);
- `DIR/<stem>.jsonl`: one line per processed frame,
  `{"frame": i, "time": seconds, "width": w, "height": h, "detections": [...]}`, each detection a
  COCO results record without `image_id` plus its class name: `category_id`, `category`,
  `bbox` (xywh, frame pixels), `score` and, for mask models, an RLE `segmentation`;
- `DIR/images.json`: the bookkeeping of `boxer predict` (`written_by`, `outputs`, `categories`),
  with `videos` (file, frames read, frames processed, fps, size) instead of `images`.

The outputs are written under temporary names and renamed when every video has been read to the
end: an unreadable video (`VideoReadError`, `"<path>: <reason>"`) leaves nothing behind. A video
cut short after an intact header decodes up to the break (ffmpeg stops quietly); the summary then
carries a note. The no-clobber rules of the image path hold (`check_video_outputs`). Decoding and
encoding use the optional `video` extra (imageio-ffmpeg, which bundles an ffmpeg binary).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from boxer.data.images import IMAGE_SUFFIXES
from boxer.engine import draw
from boxer.engine import predict as P
from boxer.engine.checkpoint import atomic_write_text
from boxer.errors import BoxerError
from boxer.evaluation import prediction_to_records

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
EXTRA = "video input needs the optional extra 'video': pip install 'boxer[video]' (imageio-ffmpeg)"


class VideoReadError(BoxerError):
    """A video file that cannot be decoded; the message is `"<path>: <reason>"`."""


def video_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """The videos among `inputs` ([] when there are none); refuses unknown suffixes and a mix.

    Raises:
        BoxerError: a file whose suffix is neither an image's nor a video's, or videos given
            together with images or folders.
    """
    videos, others = [], []
    for item in map(Path, inputs):
        suffix = item.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            videos.append(item)
            continue
        if item.is_file() and suffix not in IMAGE_SUFFIXES:
            raise BoxerError(
                f"{item}: unknown suffix {suffix or '(none)'!r}; boxer predict reads images "
                f"({', '.join(IMAGE_SUFFIXES)}) and videos ({', '.join(VIDEO_SUFFIXES)})"
            )
        others.append(item)
    if videos and others:
        raise BoxerError(f"{others[0]}: give videos and images in separate runs of boxer predict")
    stems = [v.stem for v in videos]
    for v in videos:
        if stems.count(v.stem) > 1:
            raise BoxerError(f"{v}: two input videos are named {v.stem}; their outputs would collide")
    return videos


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise BoxerError(EXTRA) from None
    return imageio_ffmpeg


def _reason(err: Exception) -> str:
    """The last line ffmpeg wrote, without its `Error opening ...:` prefix."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    last = lines[-1] if lines else type(err).__name__
    return f"video file is unreadable ({last.rsplit(': ', 1)[-1] if ': ' in last else last})"


@dataclass
class VideoInfo:
    """What the reader learned of a video: frame size, rate and an estimate of the frame count."""

    width: int
    height: int
    fps: float
    frames: int  # estimated from the duration; 0 when unknown


def _open(path: Path):
    """ffmpeg's frame generator of `path`, started, and the video's info."""
    ffmpeg = _ffmpeg()
    if not path.is_file():
        raise VideoReadError(f"{path}: no such video file")
    try:
        gen = ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration) as err:
        raise VideoReadError(f"{path}: {_reason(err)}") from None
    w, h = meta["size"]
    fps = float(meta.get("fps") or 0)
    if not fps > 0 or not w or not h:
        gen.close()
        raise VideoReadError(f"{path}: video file has no frame rate or frame size")
    duration = float(meta.get("duration") or 0)
    return gen, VideoInfo(int(w), int(h), fps, round(duration * fps) if math.isfinite(duration) else 0)


def probe_video(path: Path) -> VideoInfo:
    """The info of `path` from its header (no frame decoded); `VideoReadError` as `read_frames`."""
    gen, info = _open(path)
    gen.close()
    return info


def read_frames(path: Path) -> tuple[VideoInfo, Iterator[Tensor]]:
    """The video's info and an iterator of its frames, `Tensor[3, H, W]` uint8 RGB, decoded one by one.

    Raises:
        VideoReadError: missing file, not a video, or a stream that breaks off while decoding.
    """
    gen, info = _open(path)
    return info, _frames(path, gen, info)


def _frames(path: Path, gen, info: VideoInfo) -> Iterator[Tensor]:
    try:
        for data in gen:
            if len(data) != info.width * info.height * 3:
                raise VideoReadError(
                    f"{path}: a frame of {len(data)} bytes in a {info.width}x{info.height} video"
                )
            pixels = np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)  # H, W, 3
            yield torch.from_numpy(pixels.transpose(2, 0, 1).copy())  # 3, H, W
    except (OSError, RuntimeError) as err:
        raise VideoReadError(f"{path}: {_reason(err)}") from None
    finally:
        gen.close()


class VideoWriter:
    """H.264 frames into a hidden temporary sibling of `path`; `commit` renames it, `abort` removes it.

    Args:
        path: the final `.mp4`.
        size: (width, height) of every frame, even numbers.
        fps: frames per second.
    """

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        self.path, self.size = path, size
        self.tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
        self.gen = _ffmpeg().write_frames(
            str(self.tmp), size, fps=fps, codec="libx264", macro_block_size=2, ffmpeg_log_level="error"
        )
        self.gen.send(None)

    def write(self, picture: Image.Image) -> None:
        if picture.size != self.size:
            raise ValueError(f"frame of size {picture.size} in a video of size {self.size}")
        self.gen.send(np.asarray(picture.convert("RGB")).tobytes())

    def finish(self) -> None:
        """Flushes the encoder (the file stays under its temporary name)."""
        self.gen.close()

    def abort(self) -> None:
        try:
            self.gen.close()
        finally:
            self.tmp.unlink(missing_ok=True)


class Frames(P.ImageFiles):
    """Decoded frames as (image, target) pairs with the eval preprocessing of the image path."""

    def __init__(
        self, frames: Sequence[Tensor], ids: Sequence[int], *, image_size: int, max_size: int
    ) -> None:
        super().__init__([], ids, image_size=image_size, max_size=max_size)
        self.frames = list(frames)

    def __len__(self) -> int:
        return len(self.frames)

    def load_uint8(self, index: int) -> Tensor:
        return self.frames[index]


def output_names(video: Path) -> tuple[str, str]:
    """The annotated video's and the detections' file names of an input video."""
    return f"{video.stem}.mp4", f"{video.stem}.jsonl"


def check_video_outputs(videos: Sequence[Path], out_dir: Path, *, overwrite: bool = False) -> None:
    """The no-clobber rules of `boxer.engine.predict.check_outputs` for video outputs, before any work."""
    out = out_dir.resolve()
    for video in videos:
        if out == video.resolve().parent:
            raise BoxerError(f"--out: {out_dir} is the input folder {out}; choose another folder")
    P._writable(out_dir, "--out")
    targets = [out_dir / n for v in videos for n in output_names(v)] + [out_dir / "images.json"]
    P.refuse_overwrite(videos, targets, "--out")
    ours = P.previous_outputs(out_dir)
    foreign = [t for t in targets if (t.exists() or t.is_symlink()) and t.resolve() not in ours]
    if foreign and not overwrite:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise BoxerError(
            f"--out: {foreign[0]}{more} exists and was not written by boxer predict; "
            "pass --overwrite to replace it, or choose a new folder"
        )


def frame_record(
    index: int, time: float, pred: dict[str, Tensor], size: tuple[int, int], *, cat_ids, class_names
) -> dict[str, Any]:
    """One JSON line of the detections file (see the module docstring)."""
    records = prediction_to_records(index, pred, cat_ids, with_masks="masks" in pred)
    for rec, label in zip(records, pred["labels"].tolist()):
        del rec["image_id"]
        rec["category"] = class_names[label]
    h, w = size
    return {"frame": index, "time": round(time, 4), "width": w, "height": h, "detections": records}


def canvas_size(raw: Tensor, class_names: Sequence[str]) -> tuple[int, int]:
    """(width, height), even, of the frame pictures of a video with frames like `raw`: the frame as
    drawn, with room above it for a title of three lines (2.25 times a one-line strip)."""
    empty = draw.Panel(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    bare = draw.render_panel(raw, empty, class_names, display=P.PNG_DISPLAY)
    empty.title = "frame"
    strip = draw.render_panel(raw, empty, class_names, display=P.PNG_DISPLAY).height - bare.height
    return bare.width + bare.width % 2, (bare.height + math.ceil(2.25 * strip) + 1) // 2 * 2


def on_canvas(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`picture` on a white canvas of `size`, at its bottom (the frame stays put while its title takes
    one to three lines), shrunk first if it would not fit."""
    if picture.size == size:
        return picture
    scale = min(1.0, size[0] / picture.width, size[1] / picture.height)
    if scale < 1:
        new = (max(1, int(picture.width * scale)), max(1, int(picture.height * scale)))
        picture = picture.resize(new, Image.Resampling.BICUBIC)
    out = Image.new("RGB", size, draw.BACKGROUND)
    out.paste(picture, (0, size[1] - picture.height))
    return out


class VideoJob:
    """Runs one detector over videos; each `annotate` call leaves its two files under temporary names.

    Args:
        model: the detector (eval mode).
        config: the checkpoint's config (`cat_ids`, `class_names`, sizes).
        score: keep detections >= this in the JSON lines and the pictures.
        top: draw at most this many per frame.
        every: process frames 0, every, 2 * every, ...
        batch_size: frames per forward pass (and at most this many decoded frames held).
    """

    def __init__(self, model, config: dict[str, Any], *, score: float, top: int | None, every: int,
                 batch_size: int) -> None:  # fmt: skip
        from boxer.engine.runner import _sizes_of

        self.model, self.cfg = model, _sizes_of(config)
        self.cat_ids, self.class_names = config["cat_ids"], config["class_names"]
        self.score, self.top, self.every, self.batch_size = score, top, every, batch_size
        self.device = next(model.parameters()).device

    def annotate(self, video: Path, out_dir: Path, pending: list[tuple[Path, Path]]) -> dict[str, Any]:
        """Writes the annotated video and the JSON lines of `video`; appends (temporary, final) pairs
        to `pending`. Returns the video's entry of images.json plus `detections`, `empty`, `highest`."""
        from boxer.engine.logging import Progress

        info, frames = read_frames(video)
        mp4, jsonl = (out_dir / name for name in output_names(video))
        lines_tmp = jsonl.with_name(f".{jsonl.name}.{uuid.uuid4().hex[:8]}.tmp")
        self.writer, self.stats = None, {"detections": 0, "empty": 0, "highest": None, "note": ""}
        total = math.ceil(info.frames / self.every) if info.frames else 0
        bar = Progress(total, desc=video.name, unit="frame")
        try:
            with open(lines_tmp, "w") as lines:
                read, processed = self._run(frames, info, lines, mp4, bar)
            if self.writer is None:
                raise VideoReadError(f"{video}: video file holds no frame")
            self.writer.finish()
        except BaseException:
            if self.writer is not None:
                self.writer.abort()
            lines_tmp.unlink(missing_ok=True)
            raise
        finally:
            bar.close()
        pending += [(self.writer.tmp, mp4), (lines_tmp, jsonl)]
        if info.frames and read < info.frames - 1:  # ffmpeg stops quietly where a stream breaks off
            self.stats["note"] = f"{read} frames decoded, the header announces {info.frames}: cut short?"
        entry = {"file_name": str(video), "video": mp4.name, "detections_file": jsonl.name,
                 "fps": info.fps, "width": info.width, "height": info.height, "frames_read": read,
                 "frames_processed": processed, "every": self.every}  # fmt: skip
        return {**entry, **self.stats}

    def _run(self, frames: Iterator[Tensor], info: VideoInfo, lines, mp4: Path, bar) -> tuple[int, int]:
        """Reads every frame, processes every `every`-th one; returns (frames read, frames processed)."""
        batch: list[tuple[int, Tensor]] = []
        read = processed = 0
        for index, raw in enumerate(frames):
            read += 1
            if index % self.every:
                continue
            batch.append((index, raw))
            if len(batch) == self.batch_size:
                processed += self._batch(batch, info, lines, mp4, bar)
                batch = []
        if batch:
            processed += self._batch(batch, info, lines, mp4, bar)
        return read, processed

    def _batch(self, batch: list[tuple[int, Tensor]], info: VideoInfo, lines, mp4: Path, bar) -> int:
        from boxer.data import collate_detection
        from boxer.engine.evaluate import predict_batches

        ids = [i for i, _ in batch]
        data = Frames(
            [raw for _, raw in batch], ids, image_size=self.cfg.image_size, max_size=self.cfg.max_size
        )
        loader = [collate_detection([data[k] for k in range(len(data))])]
        preds = predict_batches(self.model, loader, self.device, self.cfg.amp)
        for index, raw in batch:
            self._frame(index, raw, preds[index], info, lines, mp4)
        bar.update(len(batch))
        return len(batch)

    def _frame(
        self, index: int, raw: Tensor, pred: dict[str, Tensor], info: VideoInfo, lines, mp4: Path
    ) -> None:
        time = index / info.fps
        kept = P.keep_above(pred, self.score)
        record = frame_record(index, time, kept, tuple(raw.shape[1:]), cat_ids=self.cat_ids,
                              class_names=self.class_names)  # fmt: skip
        lines.write(json.dumps(record) + "\n")
        panel = P.prediction_panel(
            kept, score=self.score, top=self.top, title_prefix=f"frame {index} ({time:.2f} s): "
        )
        best = float(pred["scores"].max()) if len(pred["scores"]) else None
        if not len(kept["scores"]):
            panel.note = P.empty_note(self.score, best)
            self.stats["empty"] += 1
        self.stats["detections"] += len(record["detections"])
        if best is not None and (self.stats["highest"] is None or best > self.stats["highest"]):
            self.stats["highest"] = best
        picture = P.picture(raw, [panel], self.class_names, display=P.PNG_DISPLAY)
        if self.writer is None:
            size = canvas_size(raw, self.class_names)
            self.writer = VideoWriter(mp4, size, info.fps / self.every)
        self.writer.write(on_canvas(picture, self.writer.size))


def predict_videos(
    checkpoint: str | Path,
    videos: Sequence[Path],
    out_dir: str | Path,
    *,
    score: float | str = 0.3,
    score_images: int = 64,
    top: int | None = None,
    every: int = 1,
    batch_size: int = 1,
    device: str = "auto",
    log=print,
) -> dict[str, Any]:
    """Runs a checkpoint on video files; writes `<stem>.mp4`, `<stem>.jsonl` per video and images.json.

    Nothing is renamed into `out_dir` until every video has been read to the end. `score="auto"`
    as in `boxer.engine.runner.predict_images`. Returns `videos` (the images.json entries with
    `detections`, `empty` frames, `highest` score and a `note` when fewer frames were decoded than
    the header announces) and the `score` used.
    """
    from boxer.engine.distributed import pick_device
    from boxer.engine.runner import _run_name, _sizes_of, load_detector

    for video in videos:  # every header, before the model is loaded
        probe_video(video)
    out_dir = Path(out_dir)
    model, config = load_detector(checkpoint, pick_device(device))
    if score == "auto":
        score = P.choose_score(model, _sizes_of(config), config["cat_ids"], run=_run_name(checkpoint),
                               images=score_images, batch_size=batch_size, log=log)  # fmt: skip
    job = VideoJob(model, config, score=float(score), top=top, every=every, batch_size=batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    pending: list[tuple[Path, Path]] = []
    try:
        summaries = [job.annotate(video, out_dir, pending) for video in videos]
        for tmp, final in pending:
            tmp.replace(final)
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    _write_manifest(out_dir, summaries, [final for _, final in pending], config)
    return {"videos": summaries, "score": float(score)}


def _write_manifest(out_dir: Path, summaries, written: Sequence[Path], config: dict[str, Any]) -> None:
    """images.json: the videos, the categories and the files boxer predict wrote in `out_dir`."""
    keys = ("file_name", "video", "detections_file", "fps", "width", "height", "frames_read",
            "frames_processed", "every")  # fmt: skip
    categories = [{"id": int(c), "name": n} for c, n in zip(config["cat_ids"], config["class_names"])]
    manifest = {"videos": [{k: s[k] for k in keys} for s in summaries], "categories": categories,
                "written_by": P.PRODUCER}  # fmt: skip
    manifest["outputs"] = P._manifest(out_dir, [*written, out_dir / "images.json"])
    atomic_write_text(out_dir / "images.json", json.dumps(manifest) + "\n")
