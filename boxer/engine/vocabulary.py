"""Naming the classes of a text-head checkpoint at inference (`boxer predict --text`, `boxer eval
--classes`): the open-vocabulary use of OWL-ViT (Minderer et al., ECCV 2022) on BoxeR-2D's text head
(docs/open_vocabulary.md).

Names the checkpoint was trained with reuse its cached text embeddings (no encoder needed); other
names are encoded with the checkpoint's `text_encoder` and `text_prompt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from boxer.errors import BoxerError

TEXT_KEY = "head.class_embed.text_embeddings"  # the text head's cached embeddings in model.safetensors


def parse_names(text: str, *, flag: str) -> list[str]:
    """Comma-separated names -> list; empty items, an empty list or a repeated name are errors."""
    names = [n.strip() for n in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise BoxerError(f"{flag}: needs comma-separated non-empty names, got {text!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BoxerError(f"{flag}: {repeated[0]!r} given twice")
    return names


def require_text_head(model: nn.Module, checkpoint: str, *, flag: str) -> None:
    if getattr(model, "text_head", None) is None:
        raise BoxerError(
            f"{flag}: checkpoint {checkpoint} has no text head (train with --set model.class_head=text)"
        )


def class_embeddings(model: nn.Module, config: dict[str, Any], names: Sequence[str]) -> Tensor:
    """Tensor[N, E]: cached rows for the checkpoint's own class names, the encoder for the others."""
    from boxer.models.text import encode_prompts

    kwargs = config.get("model_kwargs", {})
    cached = model.text_head.text_embeddings  # C, E in config["class_names"] order
    trained = list(config["class_names"])
    new = [n for n in names if n not in trained]
    encoded = {}
    if new:
        emb = encode_prompts(
            new, encoder=kwargs.get("text_encoder", "minilm"), template=kwargs.get("text_prompt", "{name}")
        )
        encoded = dict(zip(new, emb.to(cached.device)))
    rows = [cached[trained.index(n)] if n in trained else encoded[n] for n in names]
    return torch.stack(rows)


def name_classes(
    model: nn.Module, config: dict[str, Any], names: Sequence[str], *, checkpoint: str, flag: str
):
    """Sets the model's classes to `names` (label i = names[i])."""
    require_text_head(model, checkpoint, flag=flag)
    model.set_text_embeddings(class_embeddings(model, config, names))


def category_ids(names: Sequence[str], categories: dict[int, dict], *, flag: str, source: str) -> list[int]:
    """The category id of each name among `categories` (COCO `cats`), matched case-insensitively."""
    by_name = {str(c.get("name", "")).lower(): int(i) for i, c in categories.items()}
    missing = [n for n in names if n.lower() not in by_name]
    if missing:
        known = ", ".join(str(c.get("name")) for c in categories.values())
        raise BoxerError(f"{flag}: unknown class {missing[0]!r} in {source}; categories: {known}")
    return [by_name[n.lower()] for n in names]
