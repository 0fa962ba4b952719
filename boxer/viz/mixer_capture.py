"""Attention weights of the mixer zoo, captured on the shared attention core.

Every attention mixer computes its weights in `AttentionCore.attend(q, k, v, bias, content=...)`
(`boxer/layers/mixers/core.py`); that method is not a module call, so a forward hook cannot see it.
`AttentionCapture` wraps `attend` on each core *instance* for the duration of a `with` block (the
class and the model's code are untouched, the wrapper is removed on exit) and recomputes the
probabilities the core's `F.scaled_dot_product_attention` uses: softmax(q k^T / sqrt(d) + bias), or
softmax(bias) when `content=False`. The forward's own result is returned unchanged.

`LocalAttention` switches to an unfold path, which does not go through `attend`, above
`dense_max_tokens`; the capture raises that limit while it is active so every map goes through the core.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore


@dataclass
class CoreCall:
    """One `attend` call: probabilities Tensor[*, h, Nq, Nk] (float32, CPU)."""

    probs: Tensor


def attention_probs(core: AttentionCore, q: Tensor, k: Tensor, bias: Tensor | None, content: bool) -> Tensor:
    """softmax(q k^T * d^-1/2 + bias) per head, as `AttentionCore.attend` has it: Tensor[*, h, Nq, Nk]."""
    logits = torch.zeros((), device=q.device)
    if content:
        logits = (q.float() @ k.float().transpose(-2, -1)) * q.shape[-1] ** -0.5
    if bias is not None:
        if bias.dtype == torch.bool:  # SDPA's boolean masks: True = may attend
            bias = torch.zeros(bias.shape, device=q.device).masked_fill(~bias, float("-inf"))
        logits = logits + bias.float()
    logits = logits.expand(*q.shape[:-1], k.shape[-2])
    return logits.softmax(-1)


class AttentionCapture:
    """Records the attention probabilities of every `AttentionCore` inside `model`.

    `calls[name]` lists the calls of the core `name` (`model.named_modules()`), in order; `owners[name]`
    is the mixer module holding it (its parent), whose class tells how tokens map onto the map.
    """

    def __init__(self, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        self.cores = {n: m for n, m in modules.items() if isinstance(m, AttentionCore)}
        self.owners = {n: modules[n.rpartition(".")[0]] for n in self.cores}
        self.calls: dict[str, list[CoreCall]] = {n: [] for n in self.cores}
        self._saved: list = []

    def __enter__(self) -> AttentionCapture:
        for name, core in self.cores.items():
            core.attend = self._wrap(name, core, core.attend)
            owner = self.owners[name]
            if hasattr(owner, "dense_max_tokens"):
                self._saved.append((owner, owner.dense_max_tokens))
                owner.dense_max_tokens = 1 << 30
        return self

    def __exit__(self, *exc) -> None:
        for core in self.cores.values():
            core.__dict__.pop("attend", None)
        for owner, value in self._saved:
            owner.dense_max_tokens = value
        self._saved.clear()

    def _wrap(self, name: str, core: AttentionCore, attend):
        def recorded(q, k, v, bias=None, *, content=True):
            with torch.no_grad():
                self.calls[name].append(CoreCall(attention_probs(core, q, k, bias, content).cpu()))
            return attend(q, k, v, bias, content=content)

        return recorded
