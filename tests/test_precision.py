"""What "equal to the loop" means in each precision (the contract of docs/guides/backends-precision.md, as tested).

float64: values and gradients equal the reference loop to about 1e-12. float32: to float
rounding. In both, a nearest-neighbour location within rounding of a tie (x.5) may pick
either neighbour, because the loop's ``affine_grid`` (a batched matrix product) and the
kernels may round the location differently by an ulp.
"""

from __future__ import annotations

import pytest
import torch
from reference import reference_warp

from augpatch.functional import warp_patches


def _case(dtype: torch.dtype):
    """The case a user reported: three 40 x 40 boxes, ``theta = eye + 0.05``."""
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    boxes = torch.tensor([[5, 5, 45, 45]] * 3)
    theta = (torch.eye(2, 3, dtype=dtype) + 0.05).expand(3, 2, 3)
    return images, boxes, theta, torch.arange(3)


def _tie_distance(theta: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Distance (in pixels, float64) of the sampled location of output pixel (row, col) of
    the box [5, 5, 45, 45] to the nearest rounding tie, along either axis."""
    t = theta[0].double()
    u = 2 * (cols.double() + 0.5 - 5) / 40 - 1
    v = 2 * (rows.double() + 0.5 - 5) / 40 - 1
    ix = ((t[0, 0] * u + t[0, 1] * v + t[0, 2] + 1) * 40 - 1) / 2
    iy = ((t[1, 0] * u + t[1, 1] * v + t[1, 2] + 1) * 40 - 1) / 2
    return torch.minimum((ix - ix.floor() - 0.5).abs(), (iy - iy.floor() - 0.5).abs())


@pytest.mark.parametrize("cpu_kernel", ["compiled", "eager"], indirect=True)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_float64_interpolation_equals_the_loop_to_1e12(cpu_kernel, mode):
    images, boxes, theta, obj = _case(torch.float64)
    got = warp_patches(images, boxes, theta, obj, mode=mode)
    torch.testing.assert_close(got, reference_warp(images, boxes, theta, obj, mode=mode), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cpu_kernel", ["compiled", "eager"], indirect=True)
@pytest.mark.parametrize(("dtype", "tie"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_nearest_differs_from_the_loop_only_at_ties(cpu_kernel, dtype, tie):
    """Also in float64: ``0.05`` is not a binary fraction, so some locations of this case lie
    within an ulp of x.5, and the loop and the kernels may round them apart."""
    images, boxes, theta, obj = _case(dtype)
    got = warp_patches(images, boxes, theta, obj, mode="nearest")
    ref = reference_warp(images, boxes, theta, obj, mode="nearest")
    _, _, rows, cols = (got != ref).nonzero().unbind(1)
    # every differing pixel samples within rounding of a tie
    assert bool((_tie_distance(theta, rows, cols) < tie).all())
    # such ties are rare (here at most 4 pixels of each 40 x 40 box)
    assert (got != ref).double().mean() < 0.01


@pytest.mark.parametrize("cpu_kernel", ["compiled", "eager"], indirect=True)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_float32_interpolation_agrees_with_the_loop_to_float_rounding(cpu_kernel, mode):
    images, boxes, theta, obj = _case(torch.float32)
    got = warp_patches(images, boxes, theta, obj, mode=mode)
    ref = reference_warp(images, boxes, theta, obj, mode=mode)
    # locations differ by an ulp (about 4e-6 pixel at x = 40) times the image's slope
    torch.testing.assert_close(got, ref, rtol=0, atol=3e-5)
    exact = reference_warp(images.double(), boxes, theta.double(), obj, mode=mode)
    torch.testing.assert_close(got.double(), exact, rtol=0, atol=3e-5)
