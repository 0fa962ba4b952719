"""Post-processing: top-k over queries x classes and boxes back in original image pixels."""

from __future__ import annotations

import torch

from boxer.models.boxer2d.postprocess import postprocess, select_topk


def test_topk_decodes_query_and_class():
    logits = torch.full((1, 5, 3), -9.0)
    logits[0, 4, 2] = 3.0
    logits[0, 1, 0] = 2.0
    logits[0, 4, 0] = 1.0  # the same query with a second class
    scores, queries, labels = select_topk(logits, 3)
    assert queries[0].tolist() == [4, 1, 4] and labels[0].tolist() == [2, 0, 0]
    assert torch.allclose(scores[0], torch.sigmoid(torch.tensor([3.0, 2.0, 1.0])))


def test_boxes_map_to_original_pixels():
    """The transformed image (resized to 200 x 300, then padded) saw an object at known pixels; the
    prediction is normalised to the unpadded transformed image; the result must be the object's box
    in the original 400 x 600 image."""
    orig_h, orig_w, h, w = 400, 600, 200, 300
    obj_orig = torch.tensor([60.0, 100.0, 240.0, 300.0])  # xyxy in the original image
    obj_transformed = obj_orig * torch.tensor([w / orig_w, h / orig_h] * 2)
    x1, y1, x2, y2 = obj_transformed / torch.tensor([w, h, w, h])
    pred = torch.tensor([[(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]])[None]  # 1, 1, 4 cxcywh
    logits = torch.tensor([[[5.0, -5.0]]])
    target = {"size": torch.tensor([h, w]), "orig_size": torch.tensor([orig_h, orig_w])}
    det = postprocess(logits, pred, [target], num_select=2)[0]
    assert torch.allclose(det["boxes"][0], obj_orig, atol=1e-3)
    assert det["labels"].tolist() == [0, 1] and det["boxes"].shape == (2, 4)


def test_num_select_larger_than_pairs():
    logits = torch.randn(2, 3, 2)
    dets = postprocess(
        logits, torch.rand(2, 3, 4), [{"orig_size": torch.tensor([10, 20])}] * 2, num_select=100
    )
    assert all(len(d["scores"]) == 6 for d in dets)
    assert all(torch.all(d["scores"][:-1] >= d["scores"][1:]) for d in dets)
