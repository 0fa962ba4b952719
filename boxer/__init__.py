"""boxer: attention-based vision in PyTorch.

BoxeR (box-attention, CVPR 2022) detection and instance segmentation, and the attention
designs it is compared with, behind one registry and one CLI.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models"]


def create_model(name: str, **overrides):
    """Builds a registered model by name; keyword overrides replace the variant's defaults."""
    from boxer.models import create_model as _create

    return _create(name, **overrides)


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell-style pattern, sorted."""
    from boxer.models import list_models as _list

    return _list(pattern)
