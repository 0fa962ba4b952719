"""Backend choice of the box-attention ops: argument, environment variable, logging, no silent fallback."""

from __future__ import annotations

import logging

import pytest
import torch

from boxer.ops import box_attention, dispatch


@pytest.fixture(autouse=True)
def fresh_log(monkeypatch):
    monkeypatch.setattr(dispatch, "_logged", set())
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)


def _inputs():
    value = torch.randn(1, 5, 2, 3)
    boxes = torch.rand(1, 2, 2, 1, 4)
    return value, torch.tensor([[1, 5]]), boxes, torch.rand(1, 2, 2, 1, 2, 2)


def test_auto_picks_cpu_default_and_triton_for_cuda(monkeypatch):
    assert dispatch.resolve_backend(None, torch.device("cpu")) == dispatch.CPU_DEFAULT
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    assert dispatch.resolve_backend("auto", torch.device("cuda")) == "triton"
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    assert dispatch.resolve_backend("auto", torch.device("cuda")) == dispatch.CPU_DEFAULT


def test_env_var_forces_a_backend_and_the_argument_wins(monkeypatch, caplog):
    monkeypatch.setenv(dispatch.ENV_VAR, "reference")
    with caplog.at_level(logging.INFO, logger="boxer.ops"):
        box_attention(*_inputs())
        box_attention(*_inputs())
        box_attention(*_inputs(), backend="gather")
    messages = [r.getMessage() for r in caplog.records if r.name == "boxer.ops"]
    assert messages == [
        "box-attention backend: reference on cpu (requested reference)",
        "box-attention backend: gather on cpu (requested gather)",
    ]


def test_unknown_backend_names_its_source(monkeypatch):
    with pytest.raises(ValueError, match="^backend: unknown"):
        box_attention(*_inputs(), backend="cuda-ext")
    monkeypatch.setenv(dispatch.ENV_VAR, "fast")
    with pytest.raises(ValueError, match=f"^{dispatch.ENV_VAR}: unknown"):
        box_attention(*_inputs())


def test_forced_triton_without_triton_raises(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    with pytest.raises(RuntimeError, match="triton package is not installed"):
        box_attention(*_inputs(), backend="triton")


def test_forced_triton_on_cpu_without_interpreter_raises(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        box_attention(*_inputs(), backend="triton")
