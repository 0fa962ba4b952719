"""Frequency analyses of feature maps and attention, as in the efficient-ViT deck (docs/zoo.md, "The
efficient-ViT deck beside ours"; docs/viz.md).

- Amplitude spectrum (the deck's ViT / ConvNeXt / EMS comparison, after Park and Kim, "How do vision
transformers work?", ICLR 2022): the 2-D FFT of each channel of a feature map, its amplitude averaged over
channels and images, centred (`fftshift`) and taken as a log. The curve is the relative log amplitude along
the diagonal from the centre (frequency 0) to the corner (pi): log A(f) - log A(0); a layer that weakens
high frequencies falls faster. - Attention redundancy (the deck's PartialFormer motivation): the mean cosine
similarity <a_i, a_j> / (|a_i| |a_j|), i != j, between the attention rows of different queries, per head and
window, averaged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def amplitude_spectrum(fmap: Tensor) -> Tensor:
    """Mean amplitude of the centred 2-D spectrum of Tensor[B, C, H, W]: Tensor[H, W] (not log).

    The zero frequency sits at (H // 2, W // 2); row offset +k from there is vertical frequency k
    cycles per map height (likewise for columns).
    """
    spec = torch.fft.fft2(fmap.float(), norm="forward").abs()  # B, C, H, W
    return torch.fft.fftshift(spec.mean((0, 1)), dim=(-2, -1))


def relative_log_amplitude(spectrum: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Relative log amplitude along the diagonal: frequencies in [0, pi] and log A(f) - log A(0).

    Args:
        spectrum: Tensor[H, W] from `amplitude_spectrum`.
    """
    h, w = spectrum.shape
    cy, cx = h // 2, w // 2
    idx = torch.arange(min(cy, cx) + 1)  # towards the top-left corner: -N/2 is the Nyquist frequency
    values = torch.log(spectrum[cy - idx, cx - idx] + eps)  # |A(-f)| = |A(f)| for real maps
    freqs = 2 * math.pi * idx.float() / min(h, w)  # radians per sample: pi at Nyquist (even sizes)
    return freqs, values - values[0]


def high_frequency_ratio(spectrum: Tensor) -> float:
    """Share of the amplitude (zero frequency left out) beyond half the Nyquist radius."""
    h, w = spectrum.shape
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    radius = torch.sqrt((yy / max(h / 2, 1)) ** 2 + (xx / max(w / 2, 1)) ** 2)
    s = spectrum.clone()
    s[h // 2, w // 2] = 0
    total = float(s.sum())
    return float(s[radius > 0.5].sum()) / total if total > 0 else 0.0


def attention_similarity(probs: Tensor) -> float:
    """Mean cosine similarity between different queries' attention rows.

    Args:
        probs: Tensor[..., Nq, Nk]; each leading index (image, window, head) is compared on its own.
    """
    rows = probs.float().reshape(-1, probs.shape[-2], probs.shape[-1])  # G, Nq, Nk
    if rows.shape[1] < 2:
        return float("nan")
    unit = rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sim = unit @ unit.transpose(1, 2)  # G, Nq, Nq
    n = rows.shape[1]
    off = sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(-1)
    return float((off / (n * (n - 1))).mean())
