"""Shared pieces of the train / eval / predict CLI tests: a tiny model setting and a CLI runner."""

from __future__ import annotations

from pathlib import Path

from boxer.cli.main import main

# A BoxeR-2D lite shrunk to seconds per run on CPU: 96-pixel images, width 32, one layer each.
TINY = [
    "--image-size", "96", "--batch-size", "2", "--workers", "0",
    "--set", "model.dim=32", "model.enc_layers=1", "model.dec_layers=1", "model.num_queries=10",
    "model.ffn_dim=64", "max_size=96", "progress=false", "lr_backbone=2e-4",
]  # fmt: skip


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Runs `boxer ARGV` in-process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def train_tiny(data: Path, out: Path, model: str = "boxer2d_r18_lite", extra: list[str] | None = None) -> int:
    return main(
        [
            "train",
            "--model",
            model,
            "--data",
            str(data),
            "--epochs",
            "1",
            "--out",
            str(out),
            *TINY,
            *(extra or []),
        ]
    )
