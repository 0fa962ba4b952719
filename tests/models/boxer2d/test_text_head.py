"""The open-vocabulary text class head (OWL-ViT style) with a stub text encoder: the logit formula,
renaming the classes touches only the text side, checkpoints carry the text embeddings, errors."""

from __future__ import annotations

import math

import pytest
import torch
from text_stub import register_stub
from torch.nn import functional as F

import boxer
from boxer.engine.vocabulary import TEXT_KEY
from boxer.errors import BoxerError
from boxer.models.boxer2d.text_head import TextClassHead

NAMES = ["Bag", "Sneaker", "Coat"]
TINY = dict(num_queries=6, enc_layers=1, dec_layers=2, dim=32, ffn_dim=32, num_heads=4)


def _model(**kw):
    register_stub()
    torch.manual_seed(0)
    kw = {"num_classes": 3, "class_head": "text", "class_names": NAMES, "text_encoder": "stub", **TINY, **kw}
    return boxer.create_model("boxer2d_r18_lite", **kw)


def _batch():
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 64, 64, generator=gen)
    size = torch.tensor([64, 64])
    targets = [
        {
            "boxes": torch.tensor([[8.0, 4, 50, 40]]),
            "labels": torch.tensor([2]),
            "size": size,
            "orig_size": size,
        },
        {
            "boxes": torch.tensor([[1.0, 10, 30, 60]]),
            "labels": torch.tensor([0]),
            "size": size,
            "orig_size": size,
        },
    ]
    return images, targets


def test_logits_are_the_scaled_cosine_similarity_plus_shift():
    torch.manual_seed(0)
    text = torch.randn(5, 12)
    head = TextClassHead(16, text)
    with torch.no_grad():
        head.log_scale.fill_(1.3)
        head.shift.weight.normal_()
    h = torch.randn(2, 7, 16)
    q = head.proj(h)
    cos = (q / q.norm(dim=-1, keepdim=True)) @ (text / text.norm(dim=-1, keepdim=True)).t()  # 2, 7, 5
    expected = math.exp(1.3) * cos + head.shift(h)
    assert torch.allclose(head(h), expected, atol=1e-5)


def test_initial_logits_start_at_the_focal_prior():
    head = TextClassHead(16, torch.randn(4, 12))
    assert torch.allclose(head.shift.bias, torch.tensor([-math.log(99.0)]))
    assert torch.all(head.shift.weight == 0) and math.isclose(
        float(head.log_scale.detach().exp()), 10.0, rel_tol=1e-6
    )


def test_text_embeddings_are_a_buffer_not_a_parameter():
    head = TextClassHead(16, torch.randn(4, 12))
    assert "text_embeddings" in dict(head.named_buffers())
    assert "text_embeddings" not in dict(head.named_parameters())
    assert torch.allclose(head.text_embeddings.norm(dim=-1), torch.ones(4))


def test_the_model_encodes_its_class_names():
    stub = register_stub()
    model = _model()
    assert torch.allclose(model.text_head.text_embeddings, stub.encode(NAMES), atol=1e-6)


def test_training_losses_and_gradients_through_the_text_head():
    model = _model(dn_groups=2, iou_aware=True).train()
    images, targets = _batch()
    losses = model(images, None, targets)
    assert torch.isfinite(losses["loss"]) and "loss_ce" in losses and "loss_ce_dn" in losses
    losses["loss"].backward()
    head = model.text_head
    for p in (head.proj.weight, head.shift.weight, head.log_scale):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_renaming_changes_only_the_text_side():
    stub = register_stub()
    model = _model().eval()
    images, targets = _batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        hs = torch.randn(2, 6, 32)
        old_logits = model.head.classify(hs)
        old_queries = model.text_head.embed_queries(hs)
    renamed = ["a red dress", "Coat", "Bag", "sandal"]
    model.set_text_embeddings(stub.encode(renamed))
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == [TEXT_KEY]
    assert model.num_classes == 4
    with torch.no_grad():
        new_logits = model.head.classify(hs)
        assert torch.equal(model.text_head.embed_queries(hs), old_queries)
    assert new_logits.shape == (2, 6, 4)
    assert torch.allclose(new_logits[..., 1], old_logits[..., 2], atol=1e-6)  # Coat
    assert torch.allclose(new_logits[..., 2], old_logits[..., 0], atol=1e-6)  # Bag
    dets = model.predict(images, None, targets)
    assert all(int(d["labels"].max()) < 4 for d in dets)


def test_a_checkpoint_needs_no_encoder():
    model = _model().eval()
    state = model.state_dict()
    # An unknown encoder name proves nothing is encoded when the cached embeddings are given.
    kw = {**TINY, "num_classes": 3, "class_head": "text", "text_encoder": "none-installed"}
    loaded = boxer.create_model("boxer2d_r18_lite", text_embeddings=state[TEXT_KEY], **kw)
    loaded.load_state_dict(state)
    images, targets = _batch()
    a, b = model.predict(images, None, targets), loaded.predict(images, None, targets)
    assert torch.equal(a[0]["scores"], b[0]["scores"]) and torch.equal(a[0]["labels"], b[0]["labels"])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"class_names": None}, "needs class_names"),
        ({"class_names": ["Bag", "Coat"]}, "2 names for num_classes=3"),
        ({"class_head": "mlp"}, "expected 'linear' or 'text'"),
        ({"with_masks": True}, "box models"),
        ({"enc_class_aware": True}, "class-agnostic encoder"),
        ({"class_names": None, "text_embeddings": torch.randn(2, 8)}, "2 rows for num_classes=3"),
    ],
)
def test_bad_text_head_settings(kw, match):
    with pytest.raises(BoxerError, match=match):
        _model(**kw)


def test_renaming_a_linear_head_is_refused():
    model = boxer.create_model("boxer2d_r18_lite", num_classes=3, **TINY)
    assert model.text_head is None
    with pytest.raises(BoxerError, match="not a text head"):
        model.set_text_embeddings(F.normalize(torch.randn(2, 8), dim=-1))
