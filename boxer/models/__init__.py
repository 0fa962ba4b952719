"""The model registry: user-facing names -> factories.

`@register_model` factories build a variant's defaults and accept keyword overrides. Families are
imported explicitly below so that their factories register; there is no directory scanning.
"""

from __future__ import annotations

from typing import Any

from boxer.registry import Registry

MODELS = Registry("model")
register_model = MODELS.register


def create_model(name: str, **overrides: Any):
    """Builds the registered model `name`; keyword overrides replace the variant's defaults."""
    return MODELS.create(name, **overrides)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return MODELS.names(pattern)


# Families register on import. Keep this list explicit.
from boxer.models import families  # noqa: E402,F401
