"""One-to-many assignment (MS-DETR): batched equals per-image, min(k, Q) positives per ground truth,
validity, and the criterion's o2m / encoder top-k terms."""

from __future__ import annotations

import pytest
import torch

import boxer
from boxer.models.boxer2d.criterion import SetCriterion, per_target
from boxer.models.boxer2d.one_to_many import match_quality, topk_assign


def _case(counts: list[int], q: int = 12, c: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    b = len(counts)
    logits = torch.randn(b, q, c, generator=gen)
    boxes = torch.cat(
        (torch.rand(b, q, 2, generator=gen) * 0.6 + 0.2, torch.rand(b, q, 2, generator=gen) * 0.3 + 0.05), -1
    )
    targets = [
        {
            "labels": torch.randint(0, c, (n,), generator=gen),
            "boxes": torch.cat(
                (torch.rand(n, 2, generator=gen) * 0.6 + 0.2, torch.rand(n, 2, generator=gen) * 0.3 + 0.05),
                -1,
            ),
        }
        for n in counts
    ]
    return logits, boxes, targets


@pytest.mark.parametrize("k", [1, 3, 50])
def test_batched_equals_per_image(k):
    logits, boxes, targets = _case([3, 0, 5, 1])
    quality = match_quality(logits, boxes, targets)
    batched = topk_assign(quality, [len(t["labels"]) for t in targets], k)
    for b, t in enumerate(targets):
        alone = match_quality(logits[b : b + 1], boxes[b : b + 1], [t])
        ((qi, ti),) = topk_assign(alone, [len(t["labels"])], k)
        assert torch.equal(qi, batched[b][0]) and torch.equal(ti, batched[b][1])


@pytest.mark.parametrize("k", [1, 4, 12, 30])
def test_every_ground_truth_gets_min_k_q_positives(k):
    logits, boxes, targets = _case([4, 2, 7], q=12)
    quality = match_quality(logits, boxes, targets)
    for (qi, ti), t in zip(topk_assign(quality, [len(t["labels"]) for t in targets], k), targets):
        counts = torch.bincount(ti, minlength=len(t["labels"]))
        assert counts.tolist() == [min(k, 12)] * len(t["labels"])
        pairs = set(zip(qi.tolist(), ti.tolist()))
        assert len(pairs) == len(qi), "no pair twice"


def test_the_best_predictions_are_taken_and_invalid_ones_never():
    logits, boxes, targets = _case([2], q=10)
    boxes[0, 7] = targets[0]["boxes"][0]  # query 7 sits exactly on target 0
    valid = torch.ones(1, 10, dtype=torch.bool)
    valid[0, :3] = False
    quality = match_quality(None, boxes, targets)
    ((qi, ti),) = topk_assign(quality, [2], 4, valid=valid)
    assert 7 in qi[ti == 0].tolist()
    assert not set(qi.tolist()) & {0, 1, 2}
    ((qi, ti),) = topk_assign(quality, [2], 20, valid=valid)
    assert torch.bincount(ti).tolist() == [7, 7], "at most the valid predictions"


def test_min_quality_keeps_each_targets_best():
    logits, boxes, targets = _case([3])
    quality = match_quality(logits, boxes, targets)
    ((qi, ti),) = topk_assign(quality, [3], 4, min_quality=2.0)  # nothing reaches 2
    assert sorted(ti.tolist()) == [0, 1, 2]


def test_criterion_adds_o2m_terms_and_encoder_topk():
    logits, boxes, targets = _case([2, 1], q=8, c=4)
    outputs = {
        "logits": logits[None],
        "boxes": boxes[None],
        "o2m_logits": logits[None],
        "o2m_boxes": boxes[None],
    }
    plain = SetCriterion(4)(dict(outputs), targets)
    assert not any("_o2m" in k for k in plain)
    losses = SetCriterion(4, o2m_topk=3)(dict(outputs), targets)
    assert {"loss_ce_o2m", "loss_bbox_o2m", "loss_giou_o2m"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    pairs = SetCriterion(4, o2m_topk=3).match_one_to_many(logits, boxes, targets)
    assert sum(len(q) for q, _ in pairs) == 9 == per_target(pairs, 3.0, torch.device("cpu"))
    enc = {
        **outputs,
        "enc_logits": torch.randn(2, 30, 1),
        "enc_boxes": torch.rand(2, 30, 4) * 0.5 + 0.2,
        "enc_valid": torch.ones(2, 30, dtype=torch.bool),
    }
    crit = SetCriterion(4, o2m_enc_topk=5)
    _, enc_idx = crit.match(enc, targets)
    assert [len(q) for q, _ in enc_idx] == [10, 5]


def test_o2m_branch_changes_nothing_at_inference():
    torch.manual_seed(0)
    kw = dict(num_classes=3, dim=32, enc_layers=1, dec_layers=2, ffn_dim=64, num_queries=10)
    plain = boxer.create_model("boxer2d_r18_lite", **kw).eval()
    torch.manual_seed(0)
    accel = boxer.create_model("boxer2d_r18_lite", o2m_topk=4, o2m_enc_topk=4, dn_groups=2, **kw).eval()
    accel.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(1, 3, 128, 128)
    a = plain.predict(x, None, [{"orig_size": (128, 128)}])[0]
    b = accel.predict(x, None, [{"orig_size": (128, 128)}])[0]
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])
