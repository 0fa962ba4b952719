"""The efficiency-table library and `boxer bench`: FLOPs (incl. CPU attention and box-attention),
timing, peak memory, reports."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from boxer.benchmarking import BenchConfig, benchmark
from boxer.benchmarking.flops import count_flops
from boxer.benchmarking.memory import peak_memory_bytes
from boxer.benchmarking.timing import median_seconds
from boxer.cli.main import main


def test_linear_and_attention_flops() -> None:
    lin = torch.nn.Linear(16, 8)
    assert count_flops(lambda: lin(torch.randn(4, 16))) == 2 * 4 * 16 * 8
    q = torch.randn(2, 4, 49, 32)
    expected = 2 * (2 * 2 * 4 * 49 * 49 * 32)  # q k^T and attn v, multiply-add = 2
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == expected
    mask = torch.zeros(1, 4, 49, 49)
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=mask)) == expected


def test_box_attention_mixer_counts_its_op() -> None:
    from boxer.layers import create_mixer

    mixer = create_mixer("box", 32, num_heads=4)
    x = torch.randn(1, 32, 8, 8)
    linears = sum(
        2 * 64 * m.in_features * m.out_features for m in mixer.modules() if isinstance(m, torch.nn.Linear)
    )
    assert count_flops(lambda: mixer(x)) > linears


def test_timing_and_memory() -> None:
    calls = []
    assert median_seconds(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=3) >= 0
    assert len(calls) == 5
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    small = peak_memory_bytes(lambda: conv(torch.randn(1, 8, 32, 32)), conv, torch.device("cpu"))
    large = peak_memory_bytes(lambda: conv(torch.randn(8, 8, 32, 32)), conv, torch.device("cpu"))
    assert small >= 2 * 8 * 32 * 32 * 4 and large > 4 * small


def test_benchmark_rows() -> None:
    cfg = BenchConfig(
        image_size=28, batch_size=2, warmup=0, repeats=1, mixer_dim=16, mixer_size=7, mixer_heads=2
    )
    rows = benchmark(["resnet_fm", "backbone:vit_fm", "mixer:window_shifted"], cfg, log=lambda _: None)
    assert [r["kind"] for r in rows] == ["classifier", "backbone", "mixer"]
    for r in rows:
        assert r["params_m"] > 0 and r["gflops"] > 0 and r["latency_ms"] > 0 and r["throughput"] > 0
        assert r["peak_mem_mib"] > 0
        assert r["gmacs"] == r["gflops"] / 2  # a multiply-add once (the efficient-ViT deck's convention)


def test_cli_writes_markdown_and_json(tmp_path, capsys) -> None:
    prefix = tmp_path / "table"
    argv = [
        "bench",
        "--models",
        "bot_fm",
        "--mixers",
        "conv3x3,mhsa_rel",
        "--image-size",
        "28",
        "--batch-size",
        "2",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--mixer-dim",
        "16",
        "--mixer-size",
        "7",
        "--out",
        str(prefix),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| bot_fm |" in out and "| mixer:mhsa_rel |" in out and "GFLOPs" in out
    report = json.loads(prefix.with_suffix(".json").read_text())
    assert report["method"]["repeats"] == 1 and len(report["rows"]) == 3
    assert "| mixer:conv3x3 |" in prefix.with_suffix(".md").read_text()


def test_cli_errors(capsys) -> None:
    assert main(["bench"]) == 1
    assert main(["bench", "--models", "nope"]) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_method_keeps_the_memory_switch_beside_its_description():
    from boxer.benchmarking.runner import BenchConfig, method

    m = method(BenchConfig(memory=False))
    assert m["memory"] is False and m["memory_method"].startswith("CUDA")
