"""DDP with 2 CPU processes (gloo) matches 1 process on the same global batch."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp
from fakes import TinyDetection, TinyDetector, collate

from boxer.engine.config import TrainConfig
from boxer.engine.detection import detection_trainer
from boxer.engine.distributed import ResumableDistributedSampler, cleanup, init_distributed
from boxer.engine.rng import seed_everything


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(out: Path, batch_size: int, info=None) -> None:
    """Trains the tiny detector; the main process writes its step losses and final weights."""
    cfg = TrainConfig(epochs=2, batch_size=batch_size, workers=0, lr=1e-2, progress=False, seed=3)
    seed_everything(cfg.seed)
    trainer = detection_trainer(
        cfg, TinyDetector(dropout=0.0), TinyDetection(8), collate_fn=collate, run_dir=out, info=info
    )
    losses = []
    original = trainer._check_finite
    trainer._check_finite = lambda *a: losses.append(original(*a)) or losses[-1]
    trainer.fit()
    if trainer.info.is_main:
        torch.save(trainer.model.state_dict(), out / "weights.pt")
        (out / "losses.json").write_text(json.dumps([x["loss"] for x in losses]))


def _worker(rank: int, world: int, port: int, out: str, batch_size: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    os.environ["LOCAL_RANK"] = str(rank)
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        _train(Path(out), batch_size, init_distributed("cpu"))
    finally:
        cleanup()


def _launch(tmp_path: Path, world: int, batch_size: int) -> tuple[list[float], dict]:
    out = tmp_path / f"world{world}"
    out.mkdir()
    if world == 1:
        _train(out, batch_size)
    else:
        mp.spawn(_worker, args=(world, _free_port(), str(out), batch_size), nprocs=world, join=True)
    losses = json.loads((out / "losses.json").read_text())
    return losses, torch.load(out / "weights.pt", weights_only=True)


def test_two_processes_match_one_on_the_same_global_batch(tmp_path):
    single_losses, single_weights = _launch(tmp_path, world=1, batch_size=4)
    ddp_losses, ddp_weights = _launch(tmp_path, world=2, batch_size=2)
    assert len(single_losses) == len(ddp_losses) == 4
    torch.testing.assert_close(torch.tensor(ddp_losses), torch.tensor(single_losses), rtol=1e-5, atol=1e-6)
    for k, v in single_weights.items():
        torch.testing.assert_close(ddp_weights[k], v, rtol=1e-4, atol=1e-6)


def test_sampler_shards_one_permutation_and_resumes_mid_epoch():
    data = list(range(10))
    full = ResumableDistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=False)
    full.set_epoch(3)
    order = [i for _, i in full]
    shards = []
    for rank in range(2):
        s = ResumableDistributedSampler(
            data, num_replicas=2, rank=rank, shuffle=True, seed=0, drop_last=False
        )
        s.set_epoch(3)
        shards.append([i for _, i in s])
    assert shards[0] == order[0::2] and shards[1] == order[1::2]
    full.set_epoch(3, start=4)
    assert [i for _, i in full] == order[4:] and len(full) == 6
    assert all(epoch == 3 for epoch, _ in full)
