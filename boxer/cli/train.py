"""`boxer train`: train a detector on a COCO-format dataset (see docs/training.md)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from boxer.errors import BoxerError


def _config_keys() -> str:
    from boxer.engine.config import TrainConfig

    defaults = TrainConfig().to_dict()
    items = [f"{k}={v!r}" for k, v in defaults.items() if k != "model_kwargs"]
    return "config keys for --set (defaults): " + ", ".join(items) + "; model keywords: model.<name>=<value>"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from boxer.engine.config import TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a detector (BoxeR-2D, Mask R-CNN, ...) on a COCO-format dataset",
        description="Train a registered detector. DIR uses the COCO layout: DIR/train, DIR/val, "
        "DIR/annotations/instances_{train,val}.json. The dataset doctor runs first. Under torchrun, "
        "each process trains on --batch-size images (DDP).",
        epilog=_config_keys(),
    )
    p.add_argument(
        "--config",
        metavar="PRESET",
        help="a preset under configs/ (name or path to a .py file); default: none",
    )
    p.add_argument("--model", help=f"registered model name (see `boxer models`); default {d.model}")
    p.add_argument("--data", metavar="DIR", help="COCO-layout dataset folder (default: the preset's data)")
    p.add_argument(
        "--epochs", type=int, help=f"training epochs (ignored when max_iters is set); default {d.epochs}"
    )
    p.add_argument("--batch-size", type=int, help=f"images per process and step (default {d.batch_size})")
    p.add_argument("--lr", type=float, help=f"learning rate of the transformer and heads (default {d.lr:g})")
    p.add_argument(
        "--image-size",
        type=int,
        help="eval short side (train scales follow it); default: 800, or the native size of small images",
    )
    p.add_argument("--workers", type=int, help=f"data-loading worker processes (default {d.workers})")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/<model>-<time>)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        metavar="CKPT",
        help="continue exactly from CKPT (default: RUN_DIR/last); flags and --set given here override",
    )
    p.add_argument(
        "--init", metavar="CKPT", help="initialise weights from a checkpoint; loads what fits (default: none)"
    )
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        metavar="KEY=VALUE",
        help="override config keys (default: none; keys below)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from boxer.engine import runner
    from boxer.engine.config import parse_set_args, resolve_config
    from boxer.engine.logging import OutputLog
    from boxer.engine.outputs import check_run_dir

    flags = {
        "model": args.model,
        "data": args.data,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "image_size": args.image_size,
        "workers": args.workers,
        "out": args.out,
        "init": args.init,
    }
    resume = None
    if args.resume:
        resume = args.resume if args.resume != "auto" else args.out
        if not resume:
            raise BoxerError("--resume: give the checkpoint (RUN_DIR/last) or --out RUN_DIR")
        overrides = {**{k: v for k, v in flags.items() if v is not None}, **parse_set_args(args.set)}
        cfg, run_dir = runner.resume_config(resume, overrides)
    else:
        cfg = resolve_config(args.config, flags, args.set)
        if not cfg.out:
            cfg.out = f"runs/{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (Path(cfg.out) / "last").exists():
            raise BoxerError(
                f"--out: {cfg.out} already holds a run; use --resume to continue it or another --out"
            )
        check_run_dir(cfg.out, inputs=_inputs(cfg))
    start = time.perf_counter()
    with OutputLog() as output:  # RUN/log.txt: what this command prints, from the banner on
        try:
            record = runner.train(cfg, resume=resume, output=output)
        except BoxerError as err:
            output.write(f"boxer train: {'' if err.exit_code == 130 else 'error: '}{err}\n")
            raise
        _summary(cfg.out, record, time.perf_counter() - start)
    return 0


def _inputs(cfg) -> list[str]:
    """What a run reads: the data folder and its splits, explicit paths, the --init weights."""
    return [cfg.data, cfg.train_images, cfg.train_ann, cfg.val_images, cfg.val_ann, cfg.init]


def _summary(run_dir: str, record: dict, seconds: float) -> None:
    if not record or os.environ.get("RANK", "0") != "0":  # once, from the main process
        return
    ap = {k: v for k, v in record.items() if k.endswith("/AP") or k.endswith("/AP50")}
    scores = ", ".join(f"{k} {v:.3f}" for k, v in ap.items()) or "no evaluation"
    print(f"done in {seconds / 60:.1f} min: epoch {record.get('epoch')}, {scores}")
    print(f"run directory {run_dir}: last/, best/, metrics.jsonl, config.json, log.txt, tb/")
