"""Activation checkpointing of one layer (`torch.utils.checkpoint`, non-reentrant), used by the
BoxeR-2D encoder / decoder layers (`checkpoint_layers`) and the ResNet stages (`checkpoint_stages`);
docs/boxer2d.md, "Variants".

Only in training with gradients recorded: the layer keeps its inputs, not its activations, and runs
its forward again during backward. Exact where the layer is deterministic and draws no random
numbers (dropout 0, CPU ops): the recomputation repeats the same ops on the same inputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def run_layer(layer: nn.Module, *args: Any, checkpointed: bool) -> Any:
    """`layer(*args)`, checkpointed when `checkpointed`, `layer.training` and grad mode are all on."""
    if checkpointed and layer.training and torch.is_grad_enabled():
        return checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)
