"""Set criterion: invariants with no / one ground truth, loss names and weights, encoder loss masking."""

from __future__ import annotations

import pytest
import torch

from boxer.models.boxer2d.criterion import DEFAULT_WEIGHTS, SetCriterion, layer_suffixes


def _outputs(layers: int = 3, b: int = 2, q: int = 8, c: int = 4, s: int = 40, *, grad: bool = False) -> dict:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(layers, b, q, c, generator=gen)
    boxes = torch.cat(
        (
            torch.rand(layers, b, q, 2, generator=gen) * 0.5 + 0.25,
            torch.rand(layers, b, q, 2, generator=gen) * 0.3 + 0.1,
        ),
        -1,
    )
    enc_logits = torch.randn(b, s, 1, generator=gen)
    enc_boxes = torch.cat(
        (torch.rand(b, s, 2, generator=gen), torch.rand(b, s, 2, generator=gen) * 0.3 + 0.1), -1
    )
    valid = torch.ones(b, s, dtype=torch.bool)
    if b > 1:
        valid[1, s // 2 :] = False  # image 1: second half of its tokens excluded
    out = {
        "logits": logits,
        "boxes": boxes,
        "enc_logits": enc_logits,
        "enc_boxes": enc_boxes,
        "enc_valid": valid,
    }
    return {k: v.requires_grad_(grad) if v.is_floating_point() else v for k, v in out.items()}


def _targets(counts: list[int]) -> list[dict]:
    return [
        {"labels": torch.arange(n) % 4, "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3]] * n).reshape(n, 4)}
        for n in counts
    ]


def test_no_ground_truth_gives_class_loss_only():
    losses = SetCriterion(4)(_outputs(), _targets([0, 0]))
    for key, value in losses.items():
        if key.startswith("loss_ce") or key == "loss":
            assert value.item() > 0, key
        else:
            assert value.item() == 0, key


def test_one_box_makes_every_loss_positive():
    losses = SetCriterion(4)(_outputs(), _targets([1, 0]))
    assert all(v.item() > 0 for v in losses.values()), losses


def test_loss_names_and_total():
    losses = SetCriterion(4)(_outputs(layers=3), _targets([2, 1]))
    bases = ["loss_ce", "loss_bbox", "loss_giou"]
    expected = {b + s for b in bases for s in [*layer_suffixes(3), "_enc_0"]} | {"loss"}
    assert set(losses) == expected
    assert layer_suffixes(3) == ["_0", "_1", ""]
    total = sum(v for k, v in losses.items() if k != "loss")
    assert torch.allclose(losses["loss"], total)


def test_weights_scale_their_terms():
    out, tgt = _outputs(), _targets([2, 1])
    base = SetCriterion(4)(out, tgt)
    doubled = SetCriterion(4, weights={"loss_giou": 2 * DEFAULT_WEIGHTS["loss_giou"]})(out, tgt)
    assert torch.allclose(doubled["loss_giou_0"], 2 * base["loss_giou_0"])
    assert torch.allclose(doubled["loss_ce"], base["loss_ce"])


def test_invalid_encoder_tokens_do_not_matter():
    out, tgt = _outputs(), _targets([2, 3])
    ref = SetCriterion(4)(out, tgt)
    out["enc_logits"] = out["enc_logits"].clone()
    out["enc_logits"][~out["enc_valid"]] = 50.0  # confident garbage on excluded tokens
    out["enc_boxes"] = out["enc_boxes"].clone()
    out["enc_boxes"][~out["enc_valid"]] = 0.5
    again = SetCriterion(4)(out, tgt)
    for k in ("loss_ce_enc_0", "loss_bbox_enc_0", "loss_giou_enc_0"):
        assert torch.allclose(ref[k], again[k]), k


def test_losses_are_normalised_by_num_boxes():
    """A batch holding the same image twice has twice the sums and twice num_boxes: equal losses."""
    out = _outputs(b=1)
    single = SetCriterion(4)(out, _targets([3]))
    twice = {k: torch.cat([v, v], dim=1 if k in ("logits", "boxes") else 0) for k, v in out.items()}
    double = SetCriterion(4)(twice, _targets([3, 3]))
    for k, v in single.items():
        assert torch.allclose(v, double[k], rtol=1e-5), k


@pytest.mark.parametrize("counts", [[0, 0], [3, 1]])
def test_gradients_reach_every_output(counts):
    out = _outputs(grad=True)
    SetCriterion(4)(out, _targets(counts))["loss"].backward()
    assert out["logits"].grad is not None and out["enc_logits"].grad is not None
    assert out["boxes"].grad is not None  # connected even without matches (DDP needs every path)
