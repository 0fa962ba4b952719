"""The text-encoder interface and registry behind BoxeR-2D's text class head (`text_head.py` in
`boxer/models/boxer2d/`), after OWL-ViT (Minderer et al., "Simple Open-Vocabulary Object Detection
with Vision Transformers", ECCV 2022), whose class head compares query embeddings with the text
embeddings of class names.

An encoder is any object with `dim: int` and `encode(texts: Sequence[str]) -> Tensor[N, dim]` float32,
rows L2-normalised. Encoders are built once per process (`create_text_encoder` caches them): loading a
transformer takes seconds, encoding a handful of names milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Protocol

import torch
from torch import Tensor

from boxer.errors import BoxerError
from boxer.registry import Registry

TEXT_ENCODERS = Registry("text encoder")


class TextEncoder(Protocol):
    """What the text class head needs from an encoder."""

    dim: int

    def encode(self, texts: Sequence[str]) -> Tensor:
        """texts: N prompts -> Tensor[N, dim] float32, rows L2-normalised."""
        ...


def register_text_encoder(fn: Callable[[], TextEncoder] | None = None, *, name: str | None = None):
    """Decorator: registers a no-argument encoder factory under `name` (default: its name)."""
    return TEXT_ENCODERS.register(fn, name=name)


@lru_cache(maxsize=4)
def create_text_encoder(name: str) -> TextEncoder:
    """The registered encoder `name`, built once per process."""
    if name not in TEXT_ENCODERS:
        raise BoxerError(
            f"text_encoder: unknown encoder {name!r}; registered: {', '.join(TEXT_ENCODERS.names())}"
        )
    return TEXT_ENCODERS.create(name)


def format_prompts(names: Sequence[str], template: str = "{name}") -> list[str]:
    """The prompt of each class name, e.g. template "a photo of a {name}"."""
    if "{name}" not in template:
        raise BoxerError(f"text_prompt: {template!r} must contain '{{name}}'")
    return [template.replace("{name}", n) for n in names]


def encode_prompts(names: Sequence[str], *, encoder: str = "minilm", template: str = "{name}") -> Tensor:
    """Tensor[N, dim] L2-normalised text embeddings of `names` put into `template`."""
    if not names or any(not str(n).strip() for n in names):
        raise BoxerError(f"class names: need non-empty names, got {list(names)!r}")
    emb = create_text_encoder(encoder).encode(format_prompts(names, template))
    return torch.nn.functional.normalize(emb.float(), dim=-1)
