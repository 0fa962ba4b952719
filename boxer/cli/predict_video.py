"""The video branch of `boxer predict` (`boxer.engine.video`): an annotated video and JSON lines."""

from __future__ import annotations

import argparse
from pathlib import Path


def run_video(args: argparse.Namespace, videos: list[Path]) -> int:
    from boxer.engine.video import check_video_outputs, predict_videos
    from boxer.errors import BoxerError

    for flag, value in (("--gt", args.gt), ("--grid", args.grid)):
        if value:
            raise BoxerError(f"{flag}: for images only, not for videos")
    check_video_outputs(videos, Path(args.out), overwrite=args.overwrite)
    out = predict_videos(
        args.checkpoint,
        videos,
        args.out,
        score=args.score,
        score_images=args.score_images,
        top=args.top,
        every=args.every,
        batch_size=args.batch_size,
        device=args.device,
    )
    for v in out["videos"]:
        found = f"{v['detections']} detections (score >= {out['score']:.2f})"
        if not v["detections"]:
            best = "no detections at all" if v["highest"] is None else f"highest {v['highest']:.4f}"
            found += f" ({best}); lower --score" + ("" if args.score == "auto" else " or use --score auto")
        print(
            f"{v['file_name']}: {v['frames_processed']} of {v['frames_read']} frames (every {v['every']}), "
            f"{found}: {args.out}/{v['video']}, {args.out}/{v['detections_file']}"
        )
        if v["note"]:
            print(f"{v['file_name']}: note: {v['note']}")
    return 0
