"""Backbone pretraining by Fashion-MNIST classification (`boxer pretrain-backbone`).

What an ImageNet-pretrained ResNet is to COCO, this is to FashionScenes on a CPU: the backbone learns
to tell the ten Fashion-MNIST classes apart on items rendered in the scenes' style
(`boxer.data.fashion_items`), then BoxeR-2D starts from it (`model.pretrained_backbone=PATH`).
Only Fashion-MNIST's train split is used (minus a held-out validation part); FashionScenes val is
drawn from its test split, so the detector's evaluation stays unseen. `exclude_classes` drops the
items of some classes from training and validation (the classifier then has one output per kept
class), so that an open-vocabulary check's held-out classes are unseen by the backbone too
(docs/open_vocabulary.md).

The weights are written as safetensors under the backbone's loadable names (torchvision names for
the torchvision ResNets), with BatchNorm statistics, which the detector then freezes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from boxer.engine.logging import Progress
from boxer.engine.pretrain_config import PretrainConfig
from boxer.errors import BoxerError


class _Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int = 10) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.backbone(x)[-1]  # B, C, h, w
        return self.fc(feat.mean(dim=(2, 3)))  # B, classes


def export_names(backbone: nn.Module) -> dict[str, Tensor]:
    """The backbone's state dict under the names its `pretrained=PATH` loader expects."""
    from boxer.models.backbones.resnet import TorchvisionResNet

    state = {k: v.detach().clone().contiguous() for k, v in backbone.state_dict().items()}
    if not isinstance(backbone, TorchvisionResNet):
        return state
    renamed = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head == "stem":  # stem.0 = conv1, stem.1 = bn1
            idx, _, leaf = rest.partition(".")
            renamed[f"{'conv1' if idx == '0' else 'bn1'}.{leaf}"] = value
        elif head == "layers":  # layers.i = layer{i+1}
            idx, _, leaf = rest.partition(".")
            renamed[f"layer{int(idx) + 1}.{leaf}"] = value
        else:
            renamed[key] = value
    return renamed


@torch.no_grad()
def _accuracy(model: nn.Module, loader, amp: str) -> float:
    model.eval()
    right = seen = 0
    for images, labels in loader:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            logits = model(images)  # B, 10
        right += int((logits.argmax(-1) == labels).sum())
        seen += len(labels)
    model.train()
    return 100.0 * right / max(seen, 1)


def _without_classes(images: Tensor, labels: Tensor, exclude: str) -> tuple[Tensor, Tensor, int]:
    """Items `[N, 28, 28]` and labels `[N]` without the `exclude` classes, labels renumbered 0..K-1
    over the kept classes; and K."""
    from boxer.data.fashion_mnist import FASHION_MNIST_CLASSES, class_indices

    dropped = class_indices(exclude) if exclude else []
    kept = [i for i in range(len(FASHION_MNIST_CLASSES)) if i not in dropped]
    if not dropped:
        return images, labels, len(kept)
    remap = torch.full((len(FASHION_MNIST_CLASSES),), -1, dtype=torch.long)
    remap[kept] = torch.arange(len(kept))
    keep = remap[labels.long()] >= 0
    return images[keep], remap[labels.long()[keep]], len(kept)


def pretrain_backbone(cfg: PretrainConfig) -> dict[str, Any]:
    """Trains the classifier, writes the backbone weights and a report; returns the report."""
    from safetensors.torch import save_file

    from boxer.data.fashion_items import FashionItems
    from boxer.data.fashion_mnist import FASHION_MNIST_CLASSES, class_indices, load_fashion_mnist
    from boxer.engine.optim import warmup_cosine, weight_decay_groups
    from boxer.models.backbones import BACKBONES, create_backbone

    out = Path(cfg.out)
    if out.suffix != ".safetensors":
        raise BoxerError(f"--out {out}: the weights file must end in .safetensors")
    if cfg.backbone not in BACKBONES and not cfg.backbone.startswith("timm:"):
        raise BoxerError(
            f"--backbone: unknown backbone {cfg.backbone!r}; registered: {', '.join(BACKBONES.names())}"
        )
    if cfg.amp not in ("bf16", "none"):
        raise BoxerError(f"--amp: expected bf16 or none, got {cfg.amp!r}")
    if cfg.epochs <= 0 or cfg.batch_size < 1 or cfg.size < 16:
        raise BoxerError("pretrain: need epochs > 0, batch_size >= 1 and size >= 16")
    torch.manual_seed(cfg.seed)
    images, labels = load_fashion_mnist("train", cfg.fashion_root)  # 60000, 28, 28
    images, labels, num_classes = _without_classes(images, labels, cfg.exclude_classes)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(cfg.seed))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    train_set = FashionItems(images[train_idx], labels[train_idx], size=cfg.size, seed=cfg.seed)
    val_set = FashionItems(images[val_idx], labels[val_idx], size=cfg.size, seed=cfg.seed + 1, augment=False)
    try:
        backbone = create_backbone(cfg.backbone, frozen_bn=False)
    except TypeError as err:
        raise BoxerError(
            f"--backbone {cfg.backbone}: cannot be built with trainable BatchNorm ({err})"
        ) from None
    model = _Classifier(backbone, num_classes)
    opt = torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr)
    steps_per_epoch = len(train_set) // cfg.batch_size
    total = max(int(cfg.epochs * steps_per_epoch), 1)
    factor = warmup_cosine(total, max(total // 33, 1), 0.01)  # by steps or time, whichever is further
    loader_kw = dict(batch_size=cfg.batch_size, num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=256, num_workers=cfg.workers)
    start, step, losses = time.monotonic(), 0, []
    bar = Progress(total, desc="pretrain") if cfg.progress else None  # plain lines off a terminal
    epoch = 0
    while step < total:
        train_set.set_epoch(epoch)
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        loader = torch.utils.data.DataLoader(
            train_set, shuffle=True, drop_last=True, generator=g, **loader_kw
        )
        for images_b, labels_b in loader:
            spent = (time.monotonic() - start) / (60 * cfg.max_minutes) if cfg.max_minutes else 0.0
            for group in opt.param_groups:
                group["lr"] = cfg.lr * factor(step, spent)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
                logits = model(images_b)  # B, 10
            loss = F.cross_entropy(logits.float(), labels_b, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(1, loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
            if step >= total or (cfg.max_minutes and time.monotonic() - start >= 60 * cfg.max_minutes):
                total = step
                break
        epoch += 1
    if bar is not None:
        bar.close()
    train_s = time.monotonic() - start
    val_top1 = _accuracy(model, val_loader, cfg.amp)
    report = {
        "backbone": cfg.backbone,
        "steps": step,
        "images_seen": step * cfg.batch_size,
        "train_seconds": round(train_s, 1),
        "final_loss": round(sum(losses[-20:]) / max(len(losses[-20:]), 1), 4),
        "val_top1": round(val_top1, 2),
        "val_items": len(val_set),
        "excluded_classes": [FASHION_MNIST_CLASSES[i] for i in class_indices(cfg.exclude_classes)]
        if cfg.exclude_classes
        else [],
        "config": asdict(cfg),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(
        export_names(backbone), str(tmp), metadata={"backbone": cfg.backbone, "val_top1": f"{val_top1:.2f}"}
    )
    os.replace(tmp, out)
    report_path = out.with_suffix(".json")
    tmp = report_path.with_name(f".{report_path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, report_path)
    return report
