"""Library entry points behind `boxer train / eval / predict`: build from a config or a checkpoint.

`train(cfg)` runs a whole training job (distributed setup, doctor, datasets, model, `--init`,
trainer, resume); `load_detector(ckpt)` rebuilds a trained detector from its checkpoint directory;
`evaluate_checkpoint` and `predict_images` are the eval and predict jobs.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from boxer.engine import checkpoint as ckpt
from boxer.engine.config import TrainConfig, apply_overrides
from boxer.engine.data import build_datasets, check_split, coco_dataset, resolve_split
from boxer.engine.distributed import DistInfo, barrier, cleanup, gather_objects, init_distributed
from boxer.engine.logging import LOG
from boxer.engine.rng import seed_everything
from boxer.errors import BoxerError


def build_model(name: str, *, num_classes: int, model_kwargs: dict[str, Any]) -> nn.Module:
    """`boxer.create_model(name, num_classes=..., **model_kwargs)` with user errors as BoxerError."""
    from boxer.models import MODELS
    from boxer.models.classifiers import is_classifier

    if name not in MODELS:
        raise BoxerError(f"--model: unknown model {name!r}; registered: {', '.join(MODELS.names())}")
    if is_classifier(name):
        raise BoxerError(
            f"--model: {name} is an image classifier, not a detector; train it with "
            f"`boxer train-cls --model {name}` (`boxer models` lists both kinds)"
        )
    try:
        return MODELS.create(name, num_classes=num_classes, **model_kwargs)
    except TypeError as err:
        raise BoxerError(f"model {name}: bad keyword in model.* settings ({err})") from None


def _detector_meta(train_set, model: nn.Module) -> dict[str, Any]:
    return {
        "num_classes": train_set.num_classes,
        "cat_ids": list(train_set.cat_ids),
        "class_names": list(train_set.class_names),
        "with_masks": bool(getattr(model, "with_masks", False)),
    }


def _on_main(info: DistInfo, fn) -> Any:
    """Runs `fn` on the main process; a BoxerError there is raised on every process."""
    result, message = None, None
    if info.is_main:
        try:
            result = fn()
        except BoxerError as err:
            message = str(err)
    message = gather_objects(message)[0]
    if message:
        raise BoxerError(message)
    return result


def train(cfg: TrainConfig, *, resume: str | None = None, output=None) -> dict[str, Any]:
    """Runs a training job; returns the last epoch's record (metrics on the main process).

    Nothing is written to the run directory before the data, the model and the `resume`
    checkpoint are all known to be good. `output` (a `boxer.engine.logging.OutputLog`) starts
    copying what is printed into `RUN/log.txt` then.
    """
    from boxer.engine.stopping import TrainingInterrupted

    info = init_distributed(cfg.device)
    try:
        record = _train(cfg, info, resume=resume, output=output)
    except KeyboardInterrupt:  # before the trainer's own handlers are in place
        cleanup(failed=True)
        raise TrainingInterrupted(f"interrupted; {ckpt.describe_last(cfg.out)}") from None
    except BaseException:
        cleanup(failed=True)
        raise
    cleanup()
    return record


def _train(cfg: TrainConfig, info: DistInfo, *, resume: str | None, output) -> dict[str, Any]:
    from boxer.data import collate_detection
    from boxer.engine.detection import detection_trainer
    from boxer.engine.evaluate import evaluate_detector

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    _on_main(info, lambda: build_datasets(cfg, with_masks=False, check=True) and None)
    train_set, val_set = build_datasets(cfg, with_masks=False, check=False)
    kwargs = dict(cfg.model_kwargs)
    if kwargs.get("class_head") == "text":  # the text head encodes the training classes' names
        kwargs.setdefault("class_names", list(train_set.class_names))
    model = build_model(cfg.model, num_classes=train_set.num_classes, model_kwargs=kwargs)
    if getattr(model, "with_masks", False):  # mask models need the decoded segmentations too
        train_set, val_set = build_datasets(cfg, with_masks=True, check=False)
    if cfg.init and not resume:
        ckpt.init_from(model, cfg.init, log=print if info.is_main else (lambda *_: None))
    evaluate_fn = None
    if val_set is not None:
        evaluate_fn = partial(
            evaluate_detector, dataset=val_set, info=info, collate_fn=collate_detection,
            batch_size=cfg.batch_size, workers=cfg.workers, amp=cfg.amp, progress=cfg.progress,
        )  # fmt: skip
    run_dir = Path(cfg.out)
    meta = _detector_meta(train_set, model)
    trainer = detection_trainer(
        cfg, model, train_set, collate_fn=collate_detection, run_dir=run_dir, info=info,
        evaluate_fn=evaluate_fn, meta=meta, figure_fn=_attention_figure(model, val_set, meta),
    )  # fmt: skip
    if resume:  # a checkpoint that does not fit stops here, with the run folder untouched
        trainer.resume(resume)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if output is not None:
            output.attach(run_dir / LOG)
        cfg.save(run_dir / "config.json", **meta)
        _banner(cfg, trainer, train_set, val_set, info)
    barrier()
    return trainer.fit()


def _attention_figure(model: nn.Module, val_set, meta: dict[str, Any]):
    """TensorBoard's box-attention picture of the first val image (BoxeR-2D only), or None."""
    from boxer.viz.tensorboard import attention_image, is_box_attention_model

    if val_set is None or not is_box_attention_model(model):
        return None
    return partial(attention_image, dataset=val_set, class_names=meta.get("class_names"))


def _banner(cfg: TrainConfig, trainer, train_set, val_set, info: DistInfo) -> None:
    from boxer.engine.allocator import status

    params = sum(p.numel() for p in trainer.model.parameters())
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    global_batch = cfg.batch_size * info.world_size * cfg.accum_steps
    print(f"model      {cfg.model}: {params / 1e6:.2f}M parameters ({trainable / 1e6:.2f}M trainable)")
    print(f"data       train {len(train_set)} images, val {len(val_set) if val_set else 0}, "
          f"{train_set.num_classes} classes")  # fmt: skip
    print(f"schedule   {_schedule_text(cfg, trainer)}, global batch {global_batch}")
    print(f"images     short side {cfg.image_size}, long side <= {cfg.max_size}, augment {cfg.augment}")
    print(f"device     {info.device} x {info.world_size}, amp {cfg.amp}, allocator {status()}")
    print(f"run        {cfg.out} (TensorBoard: tensorboard --logdir {cfg.out}/tb)")


def _schedule_text(cfg: TrainConfig, trainer) -> str:
    """`12 epochs x 500 iterations = 6000 iterations`, or what max_iters / max_minutes cut it to."""
    per_epoch = trainer.iters_per_epoch
    if cfg.max_iters:
        epochs = cfg.max_iters / per_epoch
        text = f"{cfg.max_iters} iterations (max_iters; {epochs:.3g} epochs of {per_epoch} iterations)"
    else:
        text = f"{trainer.epochs} epochs x {per_epoch} iterations = {trainer.epochs * per_epoch} iterations"
    return text + (f", stopping after {cfg.max_minutes:g} min at most" if cfg.max_minutes else "")


# ---------------------------------------------------------------- checkpoints -> detectors


def load_detector(path: str | Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The trained detector of a checkpoint directory (weights must match exactly) and its config."""
    loaded = ckpt.load_checkpoint(path, with_state=False)
    config = loaded.config
    for key in ("model", "num_classes", "cat_ids", "class_names"):
        if key not in config:
            raise BoxerError(f"{loaded.path / ckpt.CONFIG}: missing {key!r}; not a boxer detector checkpoint")
    # The checkpoint holds every weight: a pretrained-backbone file named at training time is not needed.
    kwargs = {k: v for k, v in config.get("model_kwargs", {}).items() if k != "pretrained_backbone"}
    if kwargs.get("class_head") == "text":  # its cached text embeddings: no text encoder needed
        from boxer.engine.vocabulary import TEXT_KEY

        if TEXT_KEY not in loaded.weights:
            raise BoxerError(f"{loaded.path}: a text-head model without {TEXT_KEY!r}")
        kwargs = {k: v for k, v in kwargs.items() if k != "class_names"}
        kwargs["text_embeddings"] = loaded.weights[TEXT_KEY]
    model = build_model(config["model"], num_classes=config["num_classes"], model_kwargs=kwargs)
    ckpt.load_model_weights(model, loaded.weights, loaded.path, config["model"])
    return model.to(device).eval(), config


def _sizes_of(config: dict[str, Any]) -> TrainConfig:
    """The saved config of a checkpoint, with the recipe sizes where it recorded none."""
    from boxer.engine.data import MAX_SIZE, RECIPE_SIZE

    cfg = TrainConfig.from_dict(config, strict=False)
    cfg.image_size = cfg.image_size or RECIPE_SIZE
    cfg.max_size = cfg.max_size or round(MAX_SIZE * cfg.image_size / RECIPE_SIZE)
    return cfg


def evaluate_checkpoint(
    path: str | Path,
    *,
    data: str = "",
    split: str = "val",
    images: str = "",
    ann_file: str = "",
    batch_size: int = 1,
    workers: int = 0,
    device: str = "auto",
    results: str | None = None,
    overwrite: bool = False,
    classes: list[str] | None = None,
) -> dict[str, float]:
    """COCO metrics of a checkpoint on a split (tables printed); refuses untrained checkpoints.

    `classes` (a text-head checkpoint) names the categories of the split to detect, by name only:
    the model's classes become these names and only their categories are evaluated.

    `results` (the COCO results JSON) is checked before any work: not a folder, not an input,
    writable, and an existing file only with `overwrite`.
    """
    from boxer.data import collate_detection
    from boxer.engine.evaluate import evaluate_detector, require_ground_truth
    from boxer.engine.outputs import check_output_file

    info = init_distributed(device)
    try:
        chosen = resolve_split(data, split, images=images, ann_file=ann_file, overrides=("--images", "--ann"))
        if results:
            inputs = [chosen.ann_file, chosen.images, path, ckpt.checkpoint_dir(path)]
            check_output_file(results, flag="--results", inputs=inputs, overwrite=overwrite)
        model, config = load_detector(path, info.device)
        cfg = _sizes_of(config)
        _on_main(info, lambda: check_split(chosen))
        dataset = coco_dataset(
            chosen, train=False, image_size=cfg.image_size, max_size=cfg.max_size, with_masks=model.with_masks
        )
        cat_ids = _named_classes(model, config, dataset, classes, checkpoint=str(path))
        require_ground_truth(dataset)
        metrics = evaluate_detector(
            model, dataset, info=info, collate_fn=collate_detection, batch_size=batch_size,
            workers=workers, amp=cfg.amp, results_path=results, cat_ids=cat_ids,
        )  # fmt: skip
    except BaseException:
        cleanup(failed=True)
        raise
    cleanup()
    return metrics


def _named_classes(
    model: nn.Module, config: dict[str, Any], dataset, classes, *, checkpoint: str
) -> list[int]:
    """The category ids evaluated: the checkpoint's own (they must be the split's), or those of
    `classes`, which then become the model's classes."""
    if not classes:
        if list(dataset.cat_ids) != list(config["cat_ids"]):
            hint = (
                " (a text-head checkpoint can name them: --classes)"
                if getattr(model, "text_head", None)
                else ""
            )
            raise BoxerError(
                f"{dataset.ann_file}: categories {dataset.cat_ids} differ from "
                f"the checkpoint's {config['cat_ids']}{hint}"
            )
        return list(dataset.cat_ids)
    from boxer.engine.vocabulary import category_ids, name_classes, require_text_head

    require_text_head(model, checkpoint, flag="--classes")
    cats = {c: {"name": n} for c, n in zip(dataset.cat_ids, dataset.class_names)}
    ids = category_ids(classes, cats, flag="--classes", source=str(dataset.ann_file))
    names = [str(cats[i]["name"]) for i in ids]
    name_classes(model, config, names, checkpoint=checkpoint, flag="--classes")
    return ids


def predict_images(
    path: str | Path,
    inputs: list[str],
    out_dir: str | Path,
    *,
    score: float | str = 0.3,
    score_images: int = 64,
    top: int | None = None,
    gt: str | None = None,
    grid: str | None = None,
    batch_size: int = 1,
    device: str = "auto",
    log=print,
    text: list[str] | None = None,
) -> dict[str, Any]:
    """Runs a checkpoint on image files; writes PNGs, results.json, images.json (and a grid).

    `text` (a text-head checkpoint) replaces the trained classes by these names or phrases: label i
    is `text[i]`, category id i + 1 (`boxer.engine.vocabulary`).

    `score="auto"` picks the best-F1 threshold on `score_images` images of the run's training split
    (`boxer.engine.threshold`); `gt` adds ground-truth panels (images matched by file name).
    The returned dict (`boxer.engine.predict.write_outputs`) also holds the `score` used.
    """
    from boxer.data import collate_detection
    from boxer.engine import predict as P
    from boxer.engine.distributed import pick_device
    from boxer.engine.evaluate import predict_batches

    paths = P.list_images(inputs)
    ids = P.assign_image_ids(paths)
    P.refuse_overwrite(paths, P.output_paths(paths, ids, Path(out_dir)), "--out")
    P.refuse_overwrite(paths, [Path(grid)] if grid else [], "--grid")
    model, config = load_detector(path, pick_device(device))
    if text:
        from boxer.engine.vocabulary import name_classes

        name_classes(model, config, text, checkpoint=str(path), flag="--text")
        config = {**config, "class_names": list(text), "cat_ids": list(range(1, len(text) + 1))}
    cfg = _sizes_of(config)
    truth = P.ground_truth_of(paths, gt, config["cat_ids"]) if gt else None
    if score == "auto":
        score = P.choose_score(model, cfg, config["cat_ids"], run=_run_name(path), images=score_images,
                               batch_size=batch_size, log=log)  # fmt: skip
    dataset = P.ImageFiles(paths, ids, image_size=cfg.image_size, max_size=cfg.max_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_detection)
    predictions = predict_batches(model, loader, next(model.parameters()).device, cfg.amp)
    out = P.write_outputs(
        Path(out_dir), dataset, predictions, cat_ids=config["cat_ids"], class_names=config["class_names"],
        score=float(score), top=top, truth=truth, ann_name=Path(gt).name if gt else "",
        grid=Path(grid) if grid else None,
    )  # fmt: skip
    return {**out, "score": float(score)}


def _run_name(checkpoint: str | Path) -> Path:
    """The run directory of a checkpoint path as given (RUN/best -> RUN)."""
    given = Path(checkpoint)
    return given.parent if given.name in ("last", "best") else given


def resume_config(checkpoint: str | Path, overrides: dict[str, Any]) -> tuple[TrainConfig, Path]:
    """The config saved with a checkpoint, with explicit `overrides`; and the run directory."""
    loaded = ckpt.load_checkpoint(checkpoint, with_state=False)
    cfg = TrainConfig.from_dict(loaded.config, strict=False)
    apply_overrides(cfg, overrides, source="resume overrides")
    given = Path(checkpoint)
    run_dir = given.parent if given.name in ("last", "best") else loaded.path.parent.parent
    if given.is_dir() and (given / "last").exists():
        run_dir = given
    cfg.out = str(run_dir)
    return cfg.validate(), run_dir


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "config.json").read_text())
