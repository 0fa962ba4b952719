"""Prediction on image files: annotated PNGs, a GT | prediction grid and a COCO results JSON.

Images go through the same eval resize as `CocoDetection` (`build_transforms(False, ...)`) and the
ImageNet normalisation. Outputs in `out_dir`:

- `<stem>.png`: the image (enlarged to a long side of at least 512 px) with the detections of
  score >= the threshold drawn by `boxer.engine.draw` (near-duplicates and those beyond `top`
  left out of the picture only); with ground truth, the GT panel on the left. When nothing is drawn
  a banner says so, with the threshold and the best score found;
- `grid.png` (any name, optional): up to 6 images as GT | prediction pairs;
- `results.json`: COCO results (`image_id`, `category_id`, `bbox` xywh, `score`, and compressed
  RLE `segmentation` for mask models), accepted by pycocotools' `COCO.loadRes`;
- `images.json`: a COCO skeleton (`images` with the ids used, `categories`) so that
  `COCO("images.json").loadRes("results.json")` works without ground truth; `written_by` and
  `outputs` list the files boxer predict wrote in `out_dir`, the only ones a later run may replace.

Nothing is lost (`check_outputs`, before any work): `out_dir` is never an input folder or inside
one, input images are never replaced, a file boxer predict did not write is replaced only with
`--overwrite`, and an `out_dir` that cannot be written is refused up front. Images are read by
`boxer.data.images.read_image`, the reader training uses (same pixels, same one-line errors).

Image ids are the file stem when it is a number (`000123.png` -> 123), else sequential ids that
avoid the numeric ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from boxer.data.images import IMAGE_SUFFIXES, read_image
from boxer.data.io import require_writable_folder
from boxer.engine import draw
from boxer.engine.checkpoint import atomic_write_text
from boxer.engine.ground_truth import GroundTruth
from boxer.errors import BoxerError
from boxer.evaluation import prediction_to_records

PRODUCER = "boxer predict"  # images.json's `written_by`: its `outputs` may be replaced by a new run


def list_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files named by `inputs` (files, or folders whose images are taken, sorted)."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise BoxerError(f"{item}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            paths.extend(found)
        elif item.is_file():
            paths.append(item)
        else:
            raise BoxerError(f"{item}: no such image file or folder")
    return paths


def assign_image_ids(paths: Sequence[Path]) -> list[int]:
    """The numeric file stem as id where there is one (and it is unique), else the next free id."""
    ids: list[int | None] = []
    used: set[int] = set()
    for p in paths:
        stem = int(p.stem) if p.stem.isdigit() else None
        ids.append(stem if stem is not None and stem not in used else None)
        if ids[-1] is not None:
            used.add(ids[-1])
    free = (i for i in range(1, 10**12) if i not in used)
    return [i if i is not None else next(free) for i in ids]


class ImageFiles(torch.utils.data.Dataset):
    """Image files as (image, target) pairs with the eval preprocessing of CocoDetection.

    Args:
        paths: image files.
        ids: their image ids.
        image_size: eval short side.
        max_size: eval long-side cap.
    """

    def __init__(self, paths: Sequence[Path], ids: Sequence[int], *, image_size: int, max_size: int) -> None:
        from boxer.data import build_transforms

        self.paths, self.ids = list(paths), list(ids)
        self.transforms = build_transforms(False, base_size=image_size, max_size=max_size)

    def __len__(self) -> int:
        return len(self.paths)

    def load_uint8(self, index: int) -> Tensor:
        """`Tensor[3, H, W]` uint8 RGB of image `index`, by the reader training uses (same pixels)."""
        return read_image(self.paths[index])

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F

        from boxer.data import IMAGENET_MEAN, IMAGENET_STD

        raw = self.load_uint8(index)
        h0, w0 = raw.shape[-2:]
        empty = {
            "boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(h0, w0)),
            "labels": torch.zeros(0, dtype=torch.int64),
        }
        image, _ = self.transforms(tv_tensors.Image(raw), empty)
        image = F.normalize(F.to_dtype(image, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)
        target = {
            "image_id": self.ids[index],
            "orig_size": torch.tensor([h0, w0]),
            "size": torch.tensor(image.shape[-2:]),
        }
        return image.as_subclass(Tensor), target


def keep_above(pred: dict[str, Tensor], score: float) -> dict[str, Tensor]:
    """The detections of `pred` with score >= `score`."""
    keep = pred["scores"] >= score
    return {k: v[keep] for k, v in pred.items()}


def output_paths(paths: Sequence[Path], ids: Sequence[int], out_dir: Path) -> list[Path]:
    """`out_dir/<stem>.png` per image; `<stem>-<id>.png` when two inputs share a stem."""
    outs: list[Path] = []
    for path, image_id in zip(paths, ids):
        png = out_dir / f"{path.stem}.png"
        outs.append(out_dir / f"{path.stem}-{image_id}.png" if png in outs else png)
    return outs


def refuse_overwrite(inputs: Sequence[Path], outputs: Sequence[Path], flag: str = "--out") -> None:
    """Raises when an output file would replace an input image."""
    given = {p.resolve(): p for p in inputs}
    for out in outputs:
        if out.resolve() in given:
            raise BoxerError(f"{flag}: writing {out} would overwrite the input image {given[out.resolve()]}")


def previous_outputs(out_dir: Path) -> set[Path]:
    """The files an earlier `boxer predict` wrote in `out_dir` (its images.json lists them)."""
    try:
        data = json.loads((out_dir / "images.json").read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(data, dict) or data.get("written_by") != PRODUCER:
        return set()
    names = data.get("outputs")
    return (
        {(out_dir / name).resolve() for name in names if isinstance(name, str)}
        if isinstance(names, list)
        else set()
    )


def _writable(folder: Path, flag: str) -> None:
    try:
        require_writable_folder(folder)
    except BoxerError as err:
        raise BoxerError(f"{flag}: {err}") from None


def check_outputs(
    inputs: Sequence[str | Path], out_dir: Path, *, grid: Path | None = None, overwrite: bool = False
) -> None:
    """Refuses, before any work, outputs that would lose a file or cannot be written.

    Args:
        inputs: the image files and folders as given.
        out_dir: `--out`; neither a folder of inputs nor inside a folder given as input.
        grid: `--grid`, if any.
        overwrite: allow replacing existing files that an earlier `boxer predict` did not write
            (input images are never replaced).
    """
    paths = list_images(inputs)
    out = out_dir.resolve()
    folders = {Path(i).resolve() for i in inputs if Path(i).is_dir()}
    for folder in sorted(folders | {p.resolve().parent for p in paths}):
        if out == folder or (folder in folders and folder in out.parents):
            where = "is" if out == folder else "lies inside"
            raise BoxerError(f"--out: {out_dir} {where} the input folder {folder}; choose another folder")
    _writable(out_dir, "--out")
    if grid is not None:
        _writable(grid.parent, "--grid")
        refuse_overwrite(paths, [grid], "--grid")
    targets = [*output_paths(paths, assign_image_ids(paths), out_dir), out_dir / "results.json"]
    targets += [out_dir / "images.json", *([grid] if grid is not None else [])]
    refuse_overwrite(paths, targets, "--out")
    ours = previous_outputs(out_dir)
    foreign = [t for t in targets if (t.exists() or t.is_symlink()) and t.resolve() not in ours]
    if foreign and not overwrite:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        flag = "--grid" if foreign[0] == grid else "--out"
        raise BoxerError(
            f"{flag}: {foreign[0]}{more} exists and was not written by boxer predict; "
            "pass --overwrite to replace it, or choose a new folder"
        )


def summary_line(
    count: int, detections: int, *, score: float, highest: float | None, out: str, auto: bool = False
) -> str:
    """What was written; when nothing passed the threshold, the best score and what to do."""
    if detections:
        return f"{count} annotated images and {detections} detections (score >= {score:.2f}) written to {out}"
    found = "no detections at all" if highest is None else f"highest {_digits(highest, score)}"
    return (
        f"{count} annotated images written to {out}: 0 detections >= {_digits(score, highest)} ({found}); "
        + ("lower it with --score FLOAT" if auto else "lower --score or use --score auto")
    )


def _digits(value: float, other: float | None) -> str:
    """`value` with enough decimals (2 to 6) to differ from `other`."""
    if other is None:
        return f"{value:.2f}"
    return f"{value:.{next((d for d in range(2, 6) if f'{value:.{d}f}' != f'{other:.{d}f}'), 6)}f}"


def prediction_panel(
    pred: dict[str, Tensor], *, score: float, top: int | None = None, title_prefix: str = ""
) -> draw.Panel:
    """The drawn part of a prediction (already >= `score`): near-duplicates and those past `top` left out.

    Args:
        pred: boxes, scores, labels (masks) of one image, with score >= `score`.
        score: the threshold, for the title and the note.
        top: draw at most this many.
        title_prefix: e.g. the file name.
    """
    distinct = draw.drawn_subset(pred["boxes"], pred["scores"])
    keep = distinct[:top] if top is not None else distinct
    duplicates, capped = len(pred["scores"]) - len(distinct), len(distinct) - len(keep)
    title = f"{title_prefix}predicted: {len(keep)} with score >= {score:.2f}"
    hidden = [f"{duplicates} near-duplicates"] * bool(duplicates) + [f"{capped} past --top"] * bool(capped)
    if hidden:
        title += f" ({' and '.join(hidden)} not drawn)"
    masks = pred["masks"][keep] if "masks" in pred else None
    return draw.Panel(pred["boxes"][keep], pred["labels"][keep], pred["scores"][keep], masks, title)


def empty_note(score: float, best: float | None) -> str:
    """Why a picture shows no detection."""
    if best is None:
        return "no detections at all"
    return f"nothing scores >= {_digits(score, best)} (best score {_digits(best, score)})"


def truth_panel(gt: GroundTruth | None, ann_name: str, title_prefix: str = "") -> draw.Panel:
    """The ground-truth panel of an image (a note when the annotation file does not name it)."""
    if gt is None:
        empty = draw.Panel(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
        empty.title, empty.note = f"{title_prefix}ground truth", f"not in {ann_name}"
        return empty
    return draw.Panel(gt.boxes, gt.labels, title=f"{title_prefix}ground truth: {len(gt.boxes)} boxes")


def picture(
    raw: Tensor, panels: Sequence[draw.Panel], class_names: Sequence[str], *, display: int
) -> Image.Image:
    """The panels of one image side by side."""
    return draw.hstack([draw.render_panel(raw, p, class_names, display=display) for p in panels])


GRID_IMAGES, GRID_DISPLAY, PNG_DISPLAY = 6, 384, 512


def write_outputs(
    out_dir: Path,
    dataset: ImageFiles,
    predictions: dict[int, dict[str, Tensor]],
    *,
    cat_ids: Sequence[int],
    class_names: Sequence[str],
    score: float,
    top: int | None = None,
    truth: Sequence[GroundTruth | None] | None = None,
    ann_name: str = "",
    grid: Path | None = None,
) -> dict[str, Any]:
    """Writes the PNGs, the grid, results.json and images.json.

    Args:
        out_dir: output folder.
        dataset: the images (paths, ids).
        predictions: image id -> prediction (all scores).
        cat_ids: contiguous label -> category id.
        class_names: contiguous label -> name.
        score: keep detections >= this in results.json and the pictures.
        top: draw at most this many per image.
        truth: per image its ground truth (None: not in the file); None = no GT panels.
        ann_name: the annotation file's name, for notes.
        grid: also write up to GRID_IMAGES GT | prediction pairs there.

    Returns:
        `images` (PNG paths), `detections` (records written), `results` (path), `empty`
        (`(image name, note)` of pictures without detections), `grid` (path or None) and `highest`
        (the best score of any detection, None when there is none).
    """
    from boxer.engine.ground_truth import check_size

    out_dir.mkdir(parents=True, exist_ok=True)
    results, images, empty, cells = [], [], [], []
    pngs = output_paths(dataset.paths, dataset.ids, out_dir)
    for index, (path, image_id, png) in enumerate(zip(dataset.paths, dataset.ids, pngs)):
        raw = dataset.load_uint8(index)
        h, w = raw.shape[1:]
        images.append({"id": image_id, "file_name": str(path), "height": h, "width": w})
        pred = keep_above(predictions[image_id], score)
        results.extend(prediction_to_records(image_id, pred, cat_ids, with_masks="masks" in pred))
        panels = [prediction_panel(pred, score=score, top=top)]
        if not len(pred["scores"]):
            all_scores = predictions[image_id]["scores"]
            panels[0].note = empty_note(score, float(all_scores.max()) if len(all_scores) else None)
            empty.append((path.name, panels[0].note))
        if truth is not None:
            check_size(truth[index], path, h, w, ann_name)
            panels.insert(0, truth_panel(truth[index], ann_name, f"{path.name}: "))
        else:
            panels[0].title = f"{path.name}: {panels[0].title}"
        draw.save_png(picture(raw, panels, class_names, display=PNG_DISPLAY), png)
        if grid is not None and len(cells) < GRID_IMAGES:
            cells.append(picture(raw, panels, class_names, display=GRID_DISPLAY))
    if grid is not None:
        grid.parent.mkdir(parents=True, exist_ok=True)
        draw.save_png(draw.grid(cells, columns=2 if truth is not None else 3), grid)
    categories = [{"id": int(c), "name": n} for c, n in zip(cat_ids, class_names)]
    atomic_write_text(out_dir / "results.json", json.dumps(results) + "\n")
    skeleton = {"images": images, "categories": categories, "written_by": PRODUCER}
    skeleton["outputs"] = _manifest(out_dir, [*pngs, out_dir / "results.json", out_dir / "images.json", grid])
    atomic_write_text(out_dir / "images.json", json.dumps(skeleton) + "\n")
    scores = [float(p["scores"].max()) for p in predictions.values() if len(p["scores"])]
    return {"images": pngs, "detections": len(results), "results": out_dir / "results.json",
            "empty": empty, "grid": grid, "highest": max(scores, default=None)}  # fmt: skip


def _manifest(out_dir: Path, written: Sequence[Path | None]) -> list[str]:
    """Names (relative to `out_dir` where inside it) of the files boxer predict wrote there, this
    run and earlier ones that still exist."""
    out = out_dir.resolve()
    files = {p.resolve() for p in written if p is not None} | {
        p for p in previous_outputs(out_dir) if p.exists()
    }
    return sorted(str(p.relative_to(out)) if out in p.parents else str(p) for p in files)


def ground_truth_of(
    paths: Sequence[Path], ann_file: str | Path, cat_ids: Sequence[int]
) -> list[GroundTruth | None]:
    """Each image's entry in `ann_file` (matched by file name), or None where it has none."""
    from boxer.engine.ground_truth import load_ground_truth, match_by_file_name

    return match_by_file_name(paths, load_ground_truth(ann_file, cat_ids), ann_file)


def choose_score(
    model, cfg, cat_ids: Sequence[int], *, run: Path, images: int, batch_size: int = 1, log=print
) -> float:
    """`--score auto`: the best-F1 threshold on the run's training images, logged in one line."""
    from boxer.engine.threshold import auto_score_threshold

    try:
        choice, used = auto_score_threshold(model, cfg, cat_ids, images=images, batch_size=batch_size)
    except BoxerError as err:
        raise BoxerError(f"--score auto: {run}: {err}; give --score FLOAT instead") from None
    best = "" if choice.note else "best "
    log(
        f"score threshold {choice.threshold:.2f} ({best}F1 {choice.f1:.2f} on {used} training images of "
        f"{run}: precision {choice.precision:.2f}, recall {choice.recall:.2f})"
    )
    if choice.note:
        log(f"  note: {choice.note}")
    return choice.threshold
