"""A stub text encoder for tests: deterministic pseudo-random unit vectors per prompt, no extra needed.

`register_stub()` registers it as text encoder "stub" (once per process) and returns it; `calls`
counts the prompts it encoded.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from boxer.models.text import TEXT_ENCODERS, create_text_encoder, register_text_encoder

STUB_DIM = 24


class StubEncoder:
    dim = STUB_DIM

    def __init__(self) -> None:
        self.calls: list[str] = []

    def encode(self, texts: Sequence[str]) -> Tensor:
        self.calls += list(texts)
        rows = [
            torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode())))
            for t in texts
        ]
        return F.normalize(torch.stack(rows), dim=-1)


def register_stub() -> StubEncoder:
    if "stub" not in TEXT_ENCODERS:
        register_text_encoder(StubEncoder, name="stub")
    return create_text_encoder("stub")
