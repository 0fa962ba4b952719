"""Neural-network layers: BoxeR's attention modules, position embeddings and token mixers."""

from __future__ import annotations

from boxer.layers.box_attention import BoxAttention
from boxer.layers.instance_attention import InstanceAttention

__all__ = ["BoxAttention", "InstanceAttention"]
from boxer.layers.mixers import create_mixer, list_mixers  # noqa: F401
