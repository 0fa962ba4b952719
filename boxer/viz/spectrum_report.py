"""`boxer viz spectrum`: amplitude spectra of every block's feature map, and attention redundancy,
for several classifiers side by side (the efficient-ViT deck's ViT / ConvNeXt / EMS figure).

Models are given as `NAME=CKPT` (a trained `boxer train-cls` checkpoint), a checkpoint folder alone, or a
bare registered `NAME` (built untrained, seed 0: a reference for what training changes). Inputs are
the first N test images of Fashion-MNIST, through the classifiers' own preprocessing. Feature maps
are read by forward hooks on every block (a module class named `*Block` or `Bottleneck`, the
backbones' residual blocks); attention by `AttentionCapture`. Figures: `spectrum.png` (relative log
amplitude vs frequency, a curve per block coloured by depth; the high-frequency share per block)
and `similarity.png` (mean cosine similarity of different queries' attention, per attention layer);
numbers in `spectrum.json`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from boxer.errors import BoxerError
from boxer.viz.figures import new_figure, save_figure
from boxer.viz.mixer_capture import AttentionCapture
from boxer.viz.run_curves import RUN_COLOURS
from boxer.viz.spectrum import (
    amplitude_spectrum,
    attention_similarity,
    high_frequency_ratio,
    relative_log_amplitude,
)


def load_model(spec: str) -> tuple[str, nn.Module]:
    """(label, classifier in eval mode) of `NAME=CKPT`, `CKPT` or `NAME` (untrained)."""
    from boxer.classification.runner import build_classifier, load_classifier
    from boxer.errors import BoxerError
    from boxer.models import MODELS
    from boxer.models.classifiers import is_classifier

    name, _, ckpt = spec.partition("=")
    if ckpt or Path(spec).is_dir():
        model, config = load_classifier(ckpt or spec)
        return (name if ckpt else config["model"]), model
    if not is_classifier(name):
        known = ", ".join(n for n in MODELS.names() if is_classifier(n))
        raise BoxerError(
            f"--models: {name!r} is neither a checkpoint folder nor a classifier; classifiers: {known}"
        )
    torch.manual_seed(0)
    return f"{name} (untrained)", build_classifier(name, num_classes=10, model_kwargs={}).eval()


def is_block(module: nn.Module) -> bool:
    name = type(module).__name__
    return name.endswith("Block") or name == "Bottleneck"


def analyse(model: nn.Module, x: Tensor) -> dict:
    """Spectra of every block's output and attention similarity of every attention layer."""
    maps: list[tuple[str, Tensor]] = []
    handles = [
        m.register_forward_hook(lambda mod, args, out, n=n: maps.append((n, out)) if out.dim() == 4 else None)
        for n, m in model.named_modules()
        if is_block(m)
    ]
    try:
        with AttentionCapture(model) as cap, torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    blocks = []
    for name, fmap in maps:
        spec = amplitude_spectrum(fmap)
        freqs, rel = relative_log_amplitude(spec)
        blocks.append(
            {
                "block": name,
                "size": list(fmap.shape[-2:]),
                "freqs": freqs.tolist(),
                "relative_log_amplitude": rel.tolist(),
                "high_frequency_ratio": high_frequency_ratio(spec),
            }
        )
    sims = [{"layer": n.removesuffix(".core"), "similarity": _finite(attention_similarity(c[0].probs))}
            for n, c in cap.calls.items() if c]  # fmt: skip
    return {"blocks": blocks, "attention": sims}


def _finite(value: float) -> float | None:
    """None for NaN (a map of one token has no pair of queries), so that the JSON stays valid."""
    return None if math.isnan(value) else value


def fashion_inputs(model: nn.Module, count: int, root: str | None) -> Tensor:
    from boxer.classification.data import load_classification_data, to_model_input

    data = load_classification_data(root=root, val_size=1, limit_test=count, limit_train=1)
    return to_model_input(data.test.images[:count], in_chans=model.in_chans, img_size=model.img_size)


def spectrum_figure(results: dict[str, dict]):
    fig = new_figure(380 * len(results) + 40, 640)
    axes = fig.subplots(2, len(results), squeeze=False)
    for c, (label, res) in enumerate(results.items()):
        ax = axes[0, c]
        n = max(len(res["blocks"]), 1)
        for i, b in enumerate(res["blocks"]):
            ax.plot(b["freqs"], b["relative_log_amplitude"], color=plt.get_cmap("viridis")(i / max(n - 1, 1)))
        ax.set_title(f"{label}: {len(res['blocks'])} blocks", fontsize=9)
        ax.set_xlabel("frequency (0 .. pi)", fontsize=8)
        ax.set_ylabel("log amplitude - log amplitude at 0", fontsize=8)
        ax.grid(alpha=0.3)
        ax = axes[1, c]
        ax.plot(range(len(res["blocks"])), [b["high_frequency_ratio"] for b in res["blocks"]], marker="o",
                color=RUN_COLOURS[c % len(RUN_COLOURS)])  # fmt: skip
        ax.set_xlabel("block", fontsize=8)
        ax.set_ylabel("high-frequency share of amplitude", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("relative log amplitude of the blocks' feature maps, a curve per block (dark: first, "
                 "yellow: last), Fashion-MNIST test images", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def similarity_figure(results: dict[str, dict]):
    fig = new_figure(640, 380)
    ax = fig.add_subplot(1, 1, 1)
    for c, (label, res) in enumerate(results.items()):
        values = [math.nan if a["similarity"] is None else a["similarity"] for a in res["attention"]]
        if values:
            ax.plot(
                range(len(values)), values, marker="o", color=RUN_COLOURS[c % len(RUN_COLOURS)], label=label
            )
    ax.set_xlabel("attention layer", fontsize=9)
    ax.set_ylabel("mean cosine similarity of queries' attention", fontsize=9)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no attention layer in these models", ha="center", transform=ax.transAxes)
    ax.set_title("redundancy of attention (1: every query attends alike)", fontsize=10)
    fig.tight_layout()
    return fig


def write_spectrum(
    models: list[str], out_dir: str | Path, *, images: int = 32, root: str | None = None
) -> dict:
    """Writes spectrum.png, similarity.png and spectrum.json for `models`; returns their paths."""
    if not models:
        raise BoxerError("--models: name at least one model")
    results = {}
    for spec in models:
        label, model = load_model(spec)
        results[label] = analyse(model, fashion_inputs(model, images, root))
    out = Path(out_dir)
    figures = [save_figure(spectrum_figure(results), out / "spectrum.png"),
               save_figure(similarity_figure(results), out / "similarity.png")]  # fmt: skip
    (out / "spectrum.json").write_text(json.dumps(results))
    return {"figures": [str(f) for f in figures], "data": [str(out / "spectrum.json")]}
