"""Hungarian matcher: batched equals per image, empty targets, excluded predictions, float32 costs."""

from __future__ import annotations

import torch
from torchvision.ops import box_convert

from boxer.models.boxer2d.matcher import HungarianMatcher


def _random_targets(gen: torch.Generator, counts: list[int], num_classes: int) -> list[dict]:
    targets = []
    for n in counts:
        xy = torch.rand(n, 2, generator=gen) * 0.6
        wh = torch.rand(n, 2, generator=gen) * 0.3 + 0.05
        boxes = box_convert(torch.cat((xy, xy + wh), 1), "xyxy", "cxcywh")
        targets.append({"labels": torch.randint(num_classes, (n,), generator=gen), "boxes": boxes})
    return targets


def _predictions(gen: torch.Generator, b: int, q: int, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.randn(b, q, c, generator=gen)
    boxes = torch.cat(
        (torch.rand(b, q, 2, generator=gen), torch.rand(b, q, 2, generator=gen) * 0.4 + 0.02), -1
    )
    return logits, boxes


def test_batched_equals_per_image():
    gen = torch.Generator().manual_seed(0)
    matcher = HungarianMatcher()
    logits, boxes = _predictions(gen, 3, 20, 7)
    targets = _random_targets(gen, [4, 0, 9], 7)
    batched = matcher(logits, boxes, targets)
    for b in range(3):
        (q1, t1), (q2, t2) = batched[b], matcher(logits[b : b + 1], boxes[b : b + 1], targets[b : b + 1])[0]
        assert torch.equal(q1, q2) and torch.equal(t1, t2)
        assert len(q1) == len(targets[b]["labels"])
        assert torch.all(q1[1:] > q1[:-1])  # sorted, one-to-one
        assert sorted(t1.tolist()) == list(range(len(targets[b]["labels"])))


def test_empty_targets_give_empty_indices():
    gen = torch.Generator().manual_seed(1)
    logits, boxes = _predictions(gen, 2, 5, 3)
    out = HungarianMatcher()(logits, boxes, _random_targets(gen, [0, 0], 3))
    assert all(len(q) == 0 and len(t) == 0 and q.dtype == torch.long for q, t in out)


def test_perfect_predictions_are_matched_to_their_targets():
    gen = torch.Generator().manual_seed(2)
    targets = _random_targets(gen, [5], 4)
    logits = torch.full((1, 12, 4), -8.0)
    boxes = torch.rand(1, 12, 4) * 0.1 + 0.45
    slots = torch.tensor([7, 2, 10, 0, 5])
    boxes[0, slots] = targets[0]["boxes"]
    logits[0, slots, targets[0]["labels"]] = 8.0
    q, t = HungarianMatcher()(logits, boxes, targets)[0]
    assert torch.equal(slots[t], q)


def test_invalid_predictions_are_never_matched():
    gen = torch.Generator().manual_seed(3)
    logits, boxes = _predictions(gen, 1, 30, 1)
    targets = _random_targets(gen, [6], 1)
    valid = torch.zeros(1, 30, dtype=torch.bool)
    valid[0, 10:20] = True
    q, _ = HungarianMatcher()(logits, boxes, targets, valid)[0]
    assert len(q) == 6 and bool(((q >= 10) & (q < 20)).all())


def test_costs_in_float32_under_autocast():
    gen = torch.Generator().manual_seed(4)
    logits, boxes = _predictions(gen, 2, 16, 5)
    targets = _random_targets(gen, [3, 4], 5)
    ref = HungarianMatcher()(logits, boxes, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = HungarianMatcher()(logits, boxes, targets)
        cost = HungarianMatcher().cost_matrix(logits[0].bfloat16(), boxes[0].bfloat16(), *targets[0].values())
    assert cost.dtype == torch.float32 and cost.shape == (16, 3)
    for (q1, t1), (q2, t2) in zip(ref, low):
        assert torch.equal(q1, q2) and torch.equal(t1, t2)


def test_non_finite_predictions_do_not_crash_the_matcher():
    logits = torch.full((1, 4, 2), float("nan"))
    boxes = torch.full((1, 4, 4), float("nan"))
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}]
    q, t = HungarianMatcher()(logits, boxes, targets)[0]
    assert len(q) == len(t) == 1
