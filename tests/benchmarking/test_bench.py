"""The efficiency-table library and `boxer bench`: FLOPs (incl. CPU attention and box-attention),
timing, peak memory, reports."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from boxer.benchmarking import BenchConfig, benchmark, markdown_table
from boxer.benchmarking.flops import count_flops
from boxer.benchmarking.memory import peak_memory_bytes
from boxer.benchmarking.runner import method
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
    cfg.flops_per_mac = 2  # torch.utils.flop_counter's convention (the default counts a multiply-add once)
    rows = benchmark(["resnet_fm", "backbone:vit_fm", "mixer:window_shifted"], cfg, log=lambda _: None)
    assert [r["kind"] for r in rows] == ["classifier", "backbone", "mixer"]
    for r in rows:
        assert r["params_m"] > 0 and r["gflops"] > 0 and r["latency_ms"] > 0 and r["throughput"] > 0
        assert r["peak_mem_mib"] > 0
        assert r["gmacs"] == r["gflops"] / 2  # a multiply-add once (the papers' convention)


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


def test_default_flops_count_a_multiply_add_once() -> None:
    cfg = BenchConfig(image_size=28, batch_size=1, warmup=0, repeats=1, memory=False)
    (row,) = benchmark(["resnet_fm"], cfg, log=lambda _: None)
    assert row["gflops"] == row["gmacs"]
    assert (
        "1 MAC = 1 FLOP" in markdown_table([row], cfg) and "1 multiply-add = 1 FLOP" in method(cfg)["flops"]
    )
    cfg.flops_per_mac = 2
    assert "1 MAC = 2 FLOPs" in markdown_table([row], cfg)


def test_resnet50_reads_like_torchvision() -> None:
    """ResNet-50 at 224: 4.1 GFLOPs as torchvision's model card counts them (a multiply-add once)."""
    from torchvision.models import ResNet50_Weights

    cfg = BenchConfig(batch_size=1, warmup=0, repeats=1, memory=False)
    (row,) = benchmark(["resnet50"], cfg, log=lambda _: None)
    assert abs(row["gflops"] - ResNet50_Weights.IMAGENET1K_V1.meta["_ops"]) < 0.05  # 4.09 in both


def test_cli_prints_the_table_once(tmp_path, capsys) -> None:
    argv = ["bench", "--mixers", "conv3x3", "--mixer-dim", "8", "--mixer-size", "7", "--batch-size", "1",
            "--warmup", "0", "--repeats", "1", "--no-memory", "--out", str(tmp_path / "t")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("| mixer:conv3x3 |") == 1 and out.count("| model |") == 1
    assert "GFLOPs (1 MAC = 1 FLOP)" in out and "1 multiply-add = 1 FLOP" in out
    assert main([*argv, "--flops-per-mac", "2", "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "GFLOPs (1 MAC = 2 FLOPs)" in out and "amp bf16" in out


def test_cli_errors(capsys) -> None:
    assert main(["bench"]) == 1
    assert main(["bench", "--models", "nope"]) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_method_keeps_the_memory_switch_beside_its_description():
    from boxer.benchmarking.runner import BenchConfig, method

    m = method(BenchConfig(memory=False))
    assert m["memory"] is False and m["memory_method"].startswith("CUDA")
