"""DETR matcher (batched == per image, empty targets, softmax class cost) and set criterion."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert

from boxer.models.detr import DETRCriterion, DETRMatcher

C = 4  # classes; the logits have C + 1 columns, the last is "no object"


def _targets(gen: torch.Generator, counts: list[int]) -> list[dict]:
    targets = []
    for n in counts:
        xy = torch.rand(n, 2, generator=gen) * 0.6
        wh = torch.rand(n, 2, generator=gen) * 0.3 + 0.05
        boxes = box_convert(torch.cat((xy, xy + wh), 1), "xyxy", "cxcywh")
        targets.append({"labels": torch.randint(C, (n,), generator=gen), "boxes": boxes})
    return targets


def _predictions(gen: torch.Generator, b: int, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.randn(b, q, C + 1, generator=gen)
    boxes = torch.cat(
        (torch.rand(b, q, 2, generator=gen), torch.rand(b, q, 2, generator=gen) * 0.4 + 0.02), -1
    )
    return logits, boxes


def _perfect(targets: list[dict], q: int, slots: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and boxes that put each target exactly on its slot; other queries say "no object"."""
    logits = torch.full((len(targets), q, C + 1), -10.0)
    logits[..., C] = 10.0
    boxes = torch.full((len(targets), q, 4), 0.5)
    for b, (t, s) in enumerate(zip(targets, slots)):
        boxes[b, s] = t["boxes"]
        logits[b, s, C] = -10.0
        logits[b, s, t["labels"]] = 10.0
    return logits, boxes


def test_batched_equals_per_image():
    gen = torch.Generator().manual_seed(0)
    matcher = DETRMatcher()
    logits, boxes = _predictions(gen, 3, 20)
    targets = _targets(gen, [4, 0, 9])
    batched = matcher(logits, boxes, targets)
    for b in range(3):
        (q1, t1), (q2, t2) = batched[b], matcher(logits[b : b + 1], boxes[b : b + 1], targets[b : b + 1])[0]
        assert torch.equal(q1, q2) and torch.equal(t1, t2)
        assert len(q1) == len(targets[b]["labels"]) and torch.all(q1[1:] > q1[:-1])
        assert sorted(t1.tolist()) == list(range(len(targets[b]["labels"])))


def test_empty_targets_give_empty_indices():
    gen = torch.Generator().manual_seed(1)
    logits, boxes = _predictions(gen, 2, 5)
    out = DETRMatcher()(logits, boxes, _targets(gen, [0, 0]))
    assert all(len(q) == 0 and len(t) == 0 and q.dtype == torch.long for q, t in out)


def test_class_cost_is_minus_the_softmax_probability():
    gen = torch.Generator().manual_seed(2)
    logits, boxes = _predictions(gen, 1, 6)
    (target,) = _targets(gen, [3])
    only_class = DETRMatcher(cost_class=1.0, cost_bbox=0.0, cost_giou=0.0)
    cost = only_class.cost_matrix(logits[0], boxes[0], target["labels"], target["boxes"])
    torch.testing.assert_close(cost, -logits[0].softmax(-1)[:, target["labels"]])


def test_perfect_predictions_are_matched_to_their_targets():
    gen = torch.Generator().manual_seed(3)
    targets = _targets(gen, [5])
    slots = torch.tensor([7, 2, 10, 0, 5])
    logits, boxes = _perfect(targets, 12, [slots])
    q, t = DETRMatcher()(logits, boxes, targets)[0]
    assert torch.equal(slots[t], q)


def _stack(logits: torch.Tensor, boxes: torch.Tensor, layers: int = 2) -> dict[str, torch.Tensor]:
    return {"logits": logits.expand(layers, *logits.shape), "boxes": boxes.expand(layers, *boxes.shape)}


def test_losses_have_layer_suffixes_and_weights():
    gen = torch.Generator().manual_seed(4)
    logits, boxes = _predictions(gen, 2, 8)
    targets = _targets(gen, [3, 1])
    crit = DETRCriterion(C)
    losses = crit(_stack(logits, boxes, 3), targets)
    bases = ("loss_ce", "loss_bbox", "loss_giou")
    assert set(losses) == {b + s for b in bases for s in ("_0", "_1", "")} | {"loss"}
    torch.testing.assert_close(losses["loss"], sum(v for k, v in losses.items() if k != "loss"))
    indices = crit.match(_stack(logits, boxes, 1), targets)[0]
    raw = crit.layer_losses(logits, boxes, targets, indices, 4.0)
    for k, w in (("loss_ce", 1.0), ("loss_bbox", 5.0), ("loss_giou", 2.0)):
        torch.testing.assert_close(losses[k], raw[k] * w)


def test_no_object_class_is_down_weighted():
    """With no targets every query is "no object": the weighted mean is the plain mean of its CE."""
    gen = torch.Generator().manual_seed(5)
    logits, boxes = _predictions(gen, 2, 8)
    targets = _targets(gen, [0, 0])
    losses = DETRCriterion(C, eos_coef=0.1)(_stack(logits, boxes, 1), targets)
    expected = F.cross_entropy(logits.reshape(-1, C + 1), torch.full((16,), C))
    torch.testing.assert_close(losses["loss_ce"], expected)
    assert float(losses["loss_bbox"]) == 0.0 and float(losses["loss_giou"]) == 0.0
    # one matched query: its CE counts 1 / 0.1 = 10 times as much as each "no object" query
    one = _targets(gen, [1])
    lg, bx = _perfect(one, 3, [torch.tensor([1])])
    lg[0, 1] = 0.0  # uniform over classes: CE log(C + 1)
    loss = DETRCriterion(C, eos_coef=0.1)(_stack(lg, bx, 1), one)["loss_ce"]
    bg = F.cross_entropy(lg[0, [0, 2]], torch.tensor([C, C]), reduction="sum")
    assert float(loss) == pytest.approx(
        (float(torch.tensor(C + 1.0).log()) + 0.1 * float(bg)) / 1.2, rel=1e-5
    )


def test_perfect_predictions_have_near_zero_losses():
    gen = torch.Generator().manual_seed(6)
    targets = _targets(gen, [2, 3])
    logits, boxes = _perfect(targets, 6, [torch.tensor([4, 1]), torch.tensor([0, 5, 2])])
    losses = DETRCriterion(C)(_stack(logits, boxes), targets)
    assert all(float(v) < 1e-3 for v in losses.values()), losses
