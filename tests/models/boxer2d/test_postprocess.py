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


def test_mask_model_pastes_with_the_unclipped_boxes_then_clips_them(monkeypatch):
    """BoxeR2D.predict hands the full boxes to the mask paste and returns them clipped."""
    import boxer
    from boxer.models.boxer2d import model as model_module
    from boxer.models.boxer2d.masks import paste_and_rescore
    from boxer.models.boxer2d.postprocess import clip_boxes

    torch.manual_seed(0)
    tiny = dict(dim=32, enc_layers=1, dec_layers=1, ffn_dim=64, num_queries=10, num_classes=3)
    net = boxer.create_model("boxer2d_r18_lite_mask", **tiny).eval()
    torch.nn.init.constant_(
        net.head.bbox_embed.layers[-1].bias[2:], 2.0
    )  # large boxes: many cross the border
    head_out, pasted = [], []
    net.head.register_forward_hook(lambda mod, args, out: head_out.append(out))
    monkeypatch.setattr(
        model_module, "paste_and_rescore", lambda *a, **k: pasted.append(a) or paste_and_rescore(*a, **k)
    )
    target = {"orig_size": torch.tensor([60, 90]), "size": torch.tensor([64, 96])}
    det = net.predict(torch.randn(1, 3, 64, 96), None, [target])[0]
    full = postprocess(*head_out[0], [target], num_select=net.num_select, clip=False)[0]["boxes"]
    crossing = (full[:, :2] < 0).any(1) | (full[:, 2] > 90) | (full[:, 3] > 60)
    assert int(crossing.sum()) >= 5
    logits, boxes, scores = pasted[0][:3]
    assert torch.equal(boxes, full)  # the paste saw the unclipped boxes
    assert torch.equal(det["boxes"], clip_boxes(full, 60, 90))
    masks, rescored = paste_and_rescore(logits, full, scores, 60, 90)
    assert torch.equal(det["masks"], masks) and torch.equal(det["scores"], rescored)


def test_suppress_duplicates_is_class_wise():
    from boxer.models.boxer2d.postprocess import suppress_duplicates

    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10], [50, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([0, 0, 1, 0])
    # box 1 overlaps box 0 (IoU 0.82) in the same class: dropped; box 2 is another class; box 3 is apart
    assert suppress_duplicates(boxes, scores, labels, 0.5).tolist() == [0, 2, 3]
    assert suppress_duplicates(boxes, scores, labels, 0.9).tolist() == [0, 1, 2, 3]


def test_postprocess_nms_leaves_no_same_class_overlap():
    """With `nms_iou`, no two kept detections of one class overlap by more than it; the kept ones are
    the plain top-k's, in the same order, with the same boxes."""
    from torchvision.ops import box_iou

    torch.manual_seed(0)
    logits = torch.randn(2, 30, 3)
    centres = torch.rand(2, 30, 2) * 0.2 + 0.4  # crowded: many overlaps
    boxes = torch.cat((centres, torch.full((2, 30, 2), 0.3)), dim=-1)
    targets = [{"orig_size": torch.tensor([100, 120])}] * 2
    plain = postprocess(logits, boxes, targets, num_select=50)
    for det, ref in zip(postprocess(logits, boxes, targets, num_select=50, nms_iou=0.5), plain):
        assert 0 < len(det["scores"]) < len(ref["scores"])
        for c in det["labels"].unique():
            b = det["boxes"][det["labels"] == c]
            iou = box_iou(b, b).fill_diagonal_(0)
            assert float(iou.max()) <= 0.5
        pairs = zip(det["queries"], det["labels"])
        pos = [int(((ref["queries"] == q) & (ref["labels"] == c)).nonzero()) for q, c in pairs]
        assert pos == sorted(pos)
        assert torch.equal(det["boxes"], ref["boxes"][pos])


def test_model_nms_keyword_reaches_predict_and_is_checked():
    import pytest

    import boxer
    from boxer.errors import BoxerError

    tiny = dict(dim=32, enc_layers=1, dec_layers=1, ffn_dim=64, num_queries=10, num_classes=3)
    torch.manual_seed(0)
    net = boxer.create_model("boxer2d_r18_lite", nms_iou=0.5, **tiny).eval()
    assert net.nms_iou == 0.5
    with torch.no_grad():
        det = net.predict(torch.randn(1, 3, 128, 128), None, [{"orig_size": torch.tensor([128, 128])}])[0]
    assert len(det["scores"]) < net.num_select  # 30 pairs from 10 queries: duplicates removed
    with pytest.raises(BoxerError, match="nms_iou"):
        boxer.create_model("boxer2d_r18_lite", nms_iou=1.5, **tiny)
