"""Naming classes at inference: parsing, cached embeddings for trained names, category lookup."""

from __future__ import annotations

import pytest
import torch
from text_stub import register_stub

import boxer
from boxer.engine.vocabulary import category_ids, class_embeddings, name_classes, parse_names
from boxer.errors import BoxerError

TINY = dict(num_queries=4, enc_layers=1, dec_layers=1, dim=32, ffn_dim=32, num_heads=4)
CONFIG = {"class_names": ["Bag", "Coat"], "model_kwargs": {"text_encoder": "stub", "text_prompt": "{name}"}}


def _model():
    register_stub()
    kw = {"class_head": "text", "class_names": CONFIG["class_names"], "text_encoder": "stub", **TINY}
    return boxer.create_model("boxer2d_r18_lite", num_classes=2, **kw)


@pytest.mark.parametrize("text", ["", " ", "a,,b", "a, "])
def test_parse_names_refuses_empty_items(text):
    with pytest.raises(BoxerError, match="--text: needs comma-separated non-empty names"):
        parse_names(text, flag="--text")


def test_parse_names_strips_and_refuses_repeats():
    assert parse_names(" sneaker, a red dress ", flag="--text") == ["sneaker", "a red dress"]
    with pytest.raises(BoxerError, match="'bag' given twice"):
        parse_names("bag,coat,bag", flag="--text")


def test_trained_names_use_the_cache_and_new_names_the_encoder():
    model, stub = _model(), register_stub()
    with torch.no_grad():
        model.text_head.text_embeddings.mul_(-1)  # a cache the encoder would not reproduce
    cached = model.text_head.text_embeddings.clone()
    stub.calls.clear()
    emb = class_embeddings(model, CONFIG, ["Coat", "a red dress", "Bag"])
    assert stub.calls == ["a red dress"]
    assert torch.equal(emb[0], cached[1]) and torch.equal(emb[2], cached[0])
    assert torch.allclose(emb[1], stub.encode(["a red dress"])[0])
    name_classes(model, CONFIG, ["a red dress"], checkpoint="ckpt", flag="--text")
    assert model.num_classes == 1


def test_category_ids_match_names_case_insensitively():
    cats = {1: {"name": "T-shirt/top"}, 9: {"name": "Bag"}}
    assert category_ids(["bag", "t-shirt/top"], cats, flag="--classes", source="ann.json") == [9, 1]
    with pytest.raises(
        BoxerError, match="--classes: unknown class 'Hat' in ann.json; categories: T-shirt/top, Bag"
    ):
        category_ids(["Hat"], cats, flag="--classes", source="ann.json")
