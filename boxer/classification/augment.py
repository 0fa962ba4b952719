"""Batch augmentations on float Tensor[B, C, H, W] (applied after normalisation, on the whole batch).

- random translation: zero-pad by `pad` pixels (the normalised background value), then crop back
  at a random offset per image (the classic "pad 2-4 + random crop" of MNIST/CIFAR recipes);
- horizontal flip with probability 1/2 (Fashion-MNIST garments are left-right symmetric classes);
- random erasing (Zhong et al., AAAI 2020): one rectangle per image with probability `p`, filled
  with the background value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Augment:
    """Configured batch augmentation.

    Args:
        pad: maximum translation in pixels (0 = off).
        flip: random horizontal flips.
        erase: probability of erasing one random rectangle (0 = off).
        background: the value padding and erasing fill with (normalised black).
    """

    pad: int = 2
    flip: bool = True
    erase: float = 0.0
    background: float = 0.0

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.pad:
            x = random_translate(x, self.pad, self.background, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.erase:
            x = random_erase(x, self.erase, self.background, generator)
        return x


def random_translate(x: Tensor, pad: int, fill: float, generator: torch.Generator | None = None) -> Tensor:
    """Shifts each image by up to `pad` pixels in x and y, filling with `fill`."""
    B, C, H, W = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=fill)  # B, C, H+2p, W+2p
    off = torch.randint(0, 2 * pad + 1, (2, B), generator=generator)
    off = off.to(x.device)  # random numbers come from the (CPU) generator, indices live with x
    rows = off[0, :, None] + torch.arange(H, device=x.device)  # B, H
    cols = off[1, :, None] + torch.arange(W, device=x.device)  # B, W
    batch = torch.arange(B, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # B, H, W, C
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Flips each image left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_erase(x: Tensor, p: float, fill: float, generator: torch.Generator | None = None) -> Tensor:
    """Erases one rectangle (2-25% of the area, aspect 0.3-3.3) per image with probability `p`."""
    B, _, H, W = x.shape
    area = torch.empty(B).uniform_(0.02, 0.25, generator=generator) * H * W
    aspect = torch.exp(torch.empty(B).uniform_(-1.2, 1.2, generator=generator))
    h = (area * aspect).sqrt().round().clamp(1, H).long()
    w = (area / aspect).sqrt().round().clamp(1, W).long()
    top = (torch.rand(B, generator=generator) * (H - h + 1)).long()
    left = (torch.rand(B, generator=generator) * (W - w + 1)).long()
    ys, xs = torch.arange(H)[None, :], torch.arange(W)[None, :]
    inside_y = (ys >= top[:, None]) & (ys < (top + h)[:, None])  # B, H
    inside_x = (xs >= left[:, None]) & (xs < (left + w)[:, None])  # B, W
    on = torch.rand(B, generator=generator) < p
    mask = inside_y[:, :, None] & inside_x[:, None, :] & on[:, None, None]  # B, H, W
    return x.masked_fill(mask[:, None].to(x.device), fill)
