"""The compiled backward's dense patch path (``backward_impl`` in ``csrc/warp_cpu.cpp``):
in ``sequential`` with patch-relative padding and contiguous rows, each patch's scatter is
summed in a dense zeroed array that then replaces the patch in the gradient buffer, and the
derivatives read a dense copy of the patch's box. It must give the per-pixel loop's bits
(``augpatch_cpu::warp_backward_per_pixel``) on plans like the benchmark's: patches of 8-40
pixels a side (rows longer than the AVX2 blocks), overlap chains of several levels, patches
partly outside the image, scales near 1 (taps shared by neighbouring pixels), the location
gradient alone (the images' gradient not needed: the patch is zeroed, not summed), and
infinite input values (the NaNs their zero weights give reach the same outputs).
"""

from __future__ import annotations

import pytest
import torch
from reference import reference_warp
from test_warp_backward_rows import _assert_rows_equal_per_pixel, _theta

from augpatch.functional import warp_patches

D64 = torch.float64

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _plan(seed: int, n: int = 14, size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` boxes of 8-40 pixels a side on 2 images of ``size`` x ``size`` (many overlap,
    some reach outside the image)."""
    g = torch.Generator().manual_seed(seed)
    side = torch.randint(8, 41, (n, 2), generator=g)
    x1 = torch.randint(-4, size - 4, (n,), generator=g)
    y1 = torch.randint(-4, size - 4, (n,), generator=g)
    boxes = torch.stack([x1, y1, x1 + side[:, 0], y1 + side[:, 1]], 1)
    return boxes, torch.randint(0, 2, (n,), generator=g)


def _batch(dtype: torch.dtype, seed: int, size: int = 48, non_finite: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, size, size, generator=g, dtype=D64) * 4 - 2
    if non_finite:
        x[0, 1, 10:13, 5:40:7] = float("inf")
        x[1, 0, 20, 3:45:5] = float("inf")
        x[0, 2, 30, 8:44:6] = -float("inf")
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, D64])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_dense_patches_equal_per_pixel(dtype, mode, padding_mode):
    for seed, scale in ((0, 0.05), (1, 0.15), (2, 0.4)):
        boxes, obj = _plan(seed)
        _assert_rows_equal_per_pixel(_batch(dtype, seed), boxes, _theta(len(obj), seed, scale, dtype), obj,
                                     seed=seed, mode=mode, padding_mode=padding_mode, align_corners=seed == 1,
                                     overlap="sequential")


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_dense_patches_non_finite_values(mode):
    boxes, obj = _plan(3)
    images = _batch(torch.float32, 3, non_finite=True)
    _assert_rows_equal_per_pixel(images, boxes, _theta(len(obj), 3, 0.1, torch.float32), obj, seed=3, nonzero=False,
                                 mode=mode, padding_mode="zeros", overlap="sequential")


@pytest.mark.parametrize("need", ["both", "images", "theta"])
def test_dense_patches_match_the_reference_loop(need):
    """The whole call (float64) against SPEC's reference loop: images', boxes' and theta's
    gradients, each needed alone or together."""
    boxes, obj = _plan(4, n=10, size=40)
    images = _batch(D64, 4, size=40).requires_grad_(need in ("both", "images"))
    theta = _theta(len(obj), 4, 0.1, D64).requires_grad_(need in ("both", "theta"))
    weight = torch.randn(images.shape, generator=torch.Generator().manual_seed(5), dtype=D64)
    out = warp_patches(images, boxes, theta, obj, mode="bilinear", padding_mode="zeros", overlap="sequential")
    ref = reference_warp(images, boxes, theta, obj, mode="bilinear", padding_mode="zeros", overlap="sequential")
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    leaves = [t for t in (images, theta) if t.requires_grad]
    got = torch.autograd.grad((out * weight).sum(), leaves)
    want = torch.autograd.grad((ref * weight).sum(), leaves)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
        assert a.abs().sum() > 0
