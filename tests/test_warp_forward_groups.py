"""The compiled kernel's forward warps the batch image by image (``forward_impl`` in
``csrc/warp_cpu.cpp``: it copies one image into the output, runs every level of that image's
objects, then goes on to the next) when every level lists its objects by image, and all images
level by level otherwise. Both give the reference loop's values and gradients, and the same
output bits and kept values (what the location gradient of the levels after the first reads)."""

from __future__ import annotations

import pytest
import torch
from reference import reference_warp

from augpatch.functional import warp_patches
from augpatch.ops import settings as _kernel
from augpatch.testing.kernel_calls import compiled_kernel_calls

D64 = torch.float64

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _ops():
    ops = _kernel.compiled_ops(torch.device("cpu"))
    assert ops is not None, "the compiled kernel is not active"
    return ops


def _batch(seed: int, dtype=D64, channels_last: bool = False):
    """Four images, the second without objects; overlapping boxes (several levels) on the rest."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(4, 3, 20, 26, generator=g, dtype=dtype)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    n = 15
    xy = torch.rand(n, 2, generator=g, dtype=D64) * torch.tensor([14.0, 10.0], dtype=D64)
    wh = torch.rand(n, 2, generator=g, dtype=D64) * 8 + 4
    boxes = torch.cat([xy, xy + wh], 1).round()
    a = (torch.rand(n, generator=g, dtype=D64) - 0.5) * 0.6
    theta = torch.stack([torch.stack([a.cos(), -a.sin(), 0.1 * torch.randn(n, generator=g, dtype=D64)], 1),
                         torch.stack([a.sin(), a.cos(), 0.1 * torch.randn(n, generator=g, dtype=D64)], 1)], 1)
    obj = torch.tensor([0, 2, 3] * 5)
    return images, boxes, theta.to(dtype), obj


INTS = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.uint8}


def _bits(t: torch.Tensor) -> torch.Tensor:
    """``t``'s bits (kept1 holds int64 words in a float tensor: some read as NaN)."""
    return t.detach().contiguous().view(INTS[t.element_size()])


@pytest.mark.parametrize("dtype", [D64, torch.float32])
@pytest.mark.parametrize("channels_last", [False, True])
def test_image_by_image_matches_the_reference_loop(dtype, channels_last):
    images, boxes, theta, obj = _batch(0, dtype, channels_last)
    weight = torch.randn(images.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    results = []
    for fn in (warp_patches, reference_warp):
        img = images.clone().requires_grad_()
        th = theta.clone().requires_grad_()
        out = fn(img, boxes, th, obj)
        results.append((out.detach(), *torch.autograd.grad((out * weight).sum(), [img, th])))
    tol = {"atol": 1e-10, "rtol": 1e-9} if dtype == D64 else {"atol": 1e-4, "rtol": 1e-4}
    for name, a, b in zip(("output", "images' gradient", "theta's gradient"), *results):
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"{name}: {m}")
    assert torch.equal(results[0][0][1], images[1])  # the image without objects is copied as it is
    assert results[0][2].abs().sum() > 0


def test_levels_not_listed_by_image_give_the_same_outputs_and_kept_values():
    """The kernel called with each level's objects in reverse (images descending): it warps
    all images level by level; the output bits equal the sorted call's, and so does every
    object's part of the backward (its kept values)."""
    ops = _ops()
    images, boxes, theta, obj = _batch(2)
    images.requires_grad_()
    theta.requires_grad_()
    imgs, params, objects, levels, options, need_loc = compiled_kernel_calls(images, boxes, theta, obj)[0]
    assert need_loc and len(levels) - 1 >= 2  # the location gradient of levels reading earlier writes
    order = torch.cat([torch.arange(levels[i], levels[i + 1]).flip(0) for i in range(len(levels) - 1)])
    assert not all((objects[order][a:b, 4].diff() >= 0).all() for a, b in zip(levels[:-1], levels[1:]))
    sorted_call = ops.warp_forward(imgs, params, objects, levels, options, True)
    reversed_call = ops.warp_forward(imgs, params[order].contiguous(), objects[order].contiguous(), levels,
                                     options, True)
    assert torch.equal(_bits(sorted_call[0]), _bits(reversed_call[0]))
    assert sorted_call[1].numel() > 0 and sorted_call[1].numel() == reversed_call[1].numel()
    grad = torch.randn(imgs.shape, generator=torch.Generator().manual_seed(3), dtype=D64)
    g_sorted = ops.warp_backward(grad, imgs.detach(), params, objects, levels, sorted_call[1], sorted_call[2],
                                 options, True, True)
    g_reversed = ops.warp_backward(grad, imgs.detach(), params[order].contiguous(), objects[order].contiguous(),
                                   levels, reversed_call[1], reversed_call[2], options, True, True)
    torch.testing.assert_close(g_reversed[0], g_sorted[0], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(g_reversed[1], g_sorted[1][order], atol=1e-12, rtol=1e-12)
    assert g_sorted[1].abs().sum() > 0
