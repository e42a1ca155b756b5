"""What the compiled forward keeps for the location gradient when a patch meets several
earlier patches (``Keeper`` compares only where a patch meets an earlier level's patch of
the same image): each overwritten pixel is kept once, however many earlier patches cover
it, and patches of other images never count. The gradients stay the reference loop's."""

from __future__ import annotations

import pytest
import torch
from reference import reference_warp

from augpatch.functional import warp_patches
from augpatch.ops import warp_op

D64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _case():
    g = torch.Generator().manual_seed(5)
    images = torch.rand(2, 3, 16, 16, generator=g, dtype=D64)
    boxes = torch.tensor([
        [0.0, 0.0, 8.0, 8.0],    # A, image 0, level 0
        [4.0, 4.0, 12.0, 12.0],  # B, image 0, meets A on [4, 8)^2
        [2.0, 2.0, 10.0, 10.0],  # C, image 0, meets A on [2, 8)^2 and B on [4, 10)^2
        [0.0, 0.0, 8.0, 8.0],    # D, image 1 (same place as A)
        [4.0, 4.0, 12.0, 12.0],  # E, image 1, meets D on [4, 8)^2
    ], dtype=D64)
    obj = torch.tensor([0, 0, 0, 1, 1])
    a, s = 0.3, 0.9
    c, si = torch.cos(torch.tensor(a, dtype=D64)) / s, torch.sin(torch.tensor(a, dtype=D64)) / s
    theta = torch.tensor([[c, -si, 0.05], [si, c, -0.1]], dtype=D64).expand(5, 2, 3).clone()
    return images, boxes, theta, obj


@pytest.mark.parametrize("channels_last", [False, True])
def test_each_overwritten_pixel_is_kept_once(channels_last):
    images, boxes, theta, obj = _case()
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    out = warp_op(images, boxes, theta, obj, "bilinear", "zeros", False, "sequential", True)
    values = out[4]
    # B: 16 pixels of A; C: the union of A's 36 and B's 36, less their common 16 = 56;
    # E: 16 pixels of D (A, B and C are of another image)
    assert values.numel() == 3 * (16 + 56 + 16)


def test_gradients_match_the_reference_loop():
    images, boxes, theta, obj = _case()
    weight = torch.randn(images.shape, generator=torch.Generator().manual_seed(7), dtype=D64)
    got_in = [images.clone().requires_grad_(), theta.clone().requires_grad_()]
    ref_in = [images.clone().requires_grad_(), theta.clone().requires_grad_()]
    got = torch.autograd.grad((warp_patches(got_in[0], boxes, got_in[1], obj) * weight).sum(), got_in)
    ref = torch.autograd.grad((reference_warp(ref_in[0], boxes, ref_in[1], obj) * weight).sum(), ref_in)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
    assert got[1].abs().sum() > 0
