"""EMS: the branches are what the efficient-ViT deck describes (docs/zoo.md, "The efficient-ViT deck beside
ours") (coarse scales by depthwise patch embedding, C-MHSA local, G-MHSA global, propagation back to full
resolution)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from boxer.layers import create_mixer
from boxer.layers.mixers.ems import ConvMHSA, GlobalMHSA, PatchEmbedDW, PatchPropagateDW


def test_branches_are_local_then_global() -> None:
    mixer = create_mixer("ems", 16, num_heads=2)
    assert mixer.patch_sizes == (2, 4)
    assert isinstance(mixer.mixers[0], ConvMHSA) and isinstance(mixer.mixers[1], GlobalMHSA)
    assert [e.patch for e in mixer.embeds] == [2, 4] and [e.patch for e in mixer.propagate] == [2, 4]


def test_patch_embedding_and_propagation_are_depthwise_convs() -> None:
    torch.manual_seed(0)
    embed, prop = PatchEmbedDW(6, 2), PatchPropagateDW(6, 2)
    x = torch.randn(2, 6, 4, 6)
    w, b = embed.weight[:, None], embed.bias
    torch.testing.assert_close(embed(x), F.conv2d(x, w, b, stride=2, groups=6))
    y = torch.randn(2, 6, 3, 5)
    w, b = prop.weight[:, None], prop.bias
    torch.testing.assert_close(prop(y), F.conv_transpose2d(y, w, b, stride=2, groups=6))


def test_conv_mhsa_sees_only_its_neighbourhood() -> None:
    torch.manual_seed(0)
    attn = ConvMHSA(8, num_heads=2, kernel_size=3)
    x = torch.randn(1, 8, 6, 7, requires_grad=True)
    attn(x)[..., 2, 3].sum().backward()
    touched = x.grad.abs().sum(1)[0] > 0
    expected = torch.zeros(6, 7, dtype=torch.bool)
    expected[1:4, 2:5] = True
    assert torch.equal(touched, expected)


def test_global_branch_reaches_the_whole_map() -> None:
    """Without the global branch a far token cannot reach (0, 0); with it, it can."""
    torch.manual_seed(0)
    mixer = create_mixer("ems", 8, num_heads=2)
    x = torch.randn(1, 8, 16, 16, requires_grad=True)
    mixer(x)[..., 0, 0].sum().backward()
    assert x.grad[..., 15, 15].abs().sum() > 0
    x.grad = None
    mixer.mixers[1] = torch.nn.Identity()  # the coarse branch no longer mixes
    mixer(x)[..., 0, 0].sum().backward()
    assert x.grad[..., 15, 15].abs().sum() == 0


def _conv_mhsa_reference(attn: ConvMHSA, x: torch.Tensor) -> torch.Tensor:
    """C-MHSA written out with F.unfold: softmax over the k*k neighbours of q . M, border masked."""
    B, C, H, W = x.shape
    k, h, d = attn.kernel_size, attn.num_heads, attn.head_dim
    tokens = x.flatten(2).transpose(1, 2)
    q = attn.query(tokens).view(B, H * W, h, d).transpose(1, 2)
    logits = torch.einsum("bnqd,ndk->bnqk", q / d**0.5, attn.key_matrix)
    inside = F.unfold(torch.ones(1, 1, H, W), k, padding=k // 2)[0].t() > 0
    weights = logits.masked_fill(~inside, float("-inf")).softmax(-1)
    v = attn.value(tokens).transpose(1, 2).reshape(B, C, H, W)
    neighbours = F.unfold(v, k, padding=k // 2).view(B, h, d, k * k, H * W)
    out = torch.einsum("bnqk,bndkq->bnqd", weights, neighbours).transpose(1, 2).flatten(2)
    return attn.proj(out).transpose(1, 2).reshape(B, C, H, W)


def test_conv_mhsa_matches_the_unfold_reference() -> None:
    torch.manual_seed(0)
    for k, size in ((3, (5, 7)), (5, (6, 4))):
        attn = ConvMHSA(8, num_heads=2, kernel_size=k)
        x = torch.randn(2, 8, *size)
        torch.testing.assert_close(attn(x), _conv_mhsa_reference(attn, x), rtol=1e-5, atol=1e-5)
