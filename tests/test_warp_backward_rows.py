"""The compiled kernel's backward row by row (``backward_row`` in ``csrc/warp_rows_bwd.h``)
gives the same bits as its per-pixel loop (``augpatch_cpu::warp_backward_per_pixel``: every
pixel through ``locate`` + ``Grid`` + ``derivatives`` + the scatter, the kernel's backward
before the row path): the images' gradient and the parameters' (location) gradient, with
and without each, for every mode, padding, ``align_corners``, overlap, dtype, channel count
and layout, on overlap chains (levels that read earlier levels' writes: the kept pixels),
random, tie-heavy and far-outside thetas, and gradients holding zeros of both signs."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import reference_warp
from test_warp_compiled_rows import _bits, _images, _ops, _random_boxes

from augpatch.functional import warp_patches
from augpatch.testing.kernel_calls import compiled_kernel_calls

D64 = torch.float64
PADDINGS = ("zeros", "border", "reflection", "image")
MODES = ("nearest", "bilinear", "bicubic")
# overlap chains: several levels per image, boxes partly outside the frame
BOXES = torch.tensor([[1, 1, 9, 7], [4, 2, 17, 15], [0, 0, 20, 16], [12, 5, 19, 14], [6, 9, 7, 10], [-3, -2, 5, 4],
                      [15, 11, 25, 19], [2, 3, 12, 13], [3, 4, 11, 12]])
OBJ = torch.tensor([0, 1, 0, 0, 1, 1, 0, 0, 0])
N = BOXES.shape[0]

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _theta(n, seed, scale, dtype):
    g = torch.Generator().manual_seed(seed)
    return (torch.eye(2, 3, dtype=D64) + scale * torch.randn(n, 2, 3, generator=g, dtype=D64)).to(dtype)


def _upstream(out: torch.Tensor, compute: torch.dtype, seed: int) -> torch.Tensor:
    """A random output gradient with exact zeros of both signs (their signs reach the bits)."""
    g = torch.Generator().manual_seed(seed)
    grad = torch.randn(out.shape, generator=g, dtype=D64).to(compute)
    grad[..., ::5] = 0.0
    grad[..., 2::7] = -0.0
    return torch.empty_like(out, dtype=compute).copy_(grad)  # the output's layout


def _assert_rows_equal_per_pixel(images, boxes, theta, obj, seed=0, required=True, nonzero=True, **kw) -> int:
    """Both backward paths on the kernel arguments of this call: the same bits."""
    ops = _ops()
    calls = compiled_kernel_calls(images, boxes, theta, obj, **kw)
    assert calls or not required, "the compiled kernel was not called"
    before = images.clone()
    for args in calls:
        imgs, params, objects, levels, options = args[:5]
        out, kept0, kept1 = ops.warp_forward(imgs, params, objects, levels, options, True)
        grad = _upstream(out, params.dtype, seed)
        grad_before = grad.clone()
        for need_img, need_loc in ((True, True), (True, False), (False, True)):
            rows = ops.warp_backward(grad, imgs, params, objects, levels, kept0, kept1, options, need_img, need_loc)
            pixels = ops.warp_backward_per_pixel(grad, imgs, params, objects, levels, kept0, kept1, options,
                                                 need_img, need_loc)
            for a, b in zip(rows, pixels):
                assert a.dtype == b.dtype and a.shape == b.shape
                assert torch.equal(_bits(a), _bits(b)), (need_img, need_loc)
            if nonzero and need_loc and options[0] != 0:  # a gradient that can differ (nearest: zero)
                assert rows[1].abs().sum() > 0
        # the in-place variant (the output gradient becomes the images' gradient)
        if imgs.dtype == params.dtype:
            into = grad.clone(memory_format=torch.preserve_format)
            if into.stride() == out.stride():
                g_params = ops.warp_backward_into(into, imgs, params, objects, levels, kept0, kept1, options, True)
                expected = ops.warp_backward_per_pixel(grad, imgs, params, objects, levels, kept0, kept1, options,
                                                       True, True)
                assert torch.equal(_bits(into), _bits(expected[0]))
                assert torch.equal(_bits(g_params), _bits(expected[1]))
        assert torch.equal(_bits(grad), _bits(grad_before))  # the output gradient untouched
    assert torch.equal(images, before)
    return len(calls)


@pytest.mark.parametrize("dtype", [torch.float32, D64, torch.uint8, torch.bfloat16])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_rows_equal_per_pixel(dtype, mode, padding_mode):
    compute = D64 if dtype == D64 else torch.float32
    variants = list(itertools.product([("contiguous", 3), ("channels_last", 3), ("contiguous", 1),
                                       ("channels_last", 4)], (False, True), ("sequential", "parallel")))
    thetas = [(1, 0.3), (2, 1.5), (3, 0.0), (4, 0.05), (5, 3.0), (6, 0.6), (7, 0.2), (8, 1.0)]
    for i, (seed, scale) in enumerate(thetas):  # every variant on one theta
        for (layout, channels), align, overlap in variants[2 * i:2 * i + 2]:
            images = _images(dtype, channels, layout, seed=seed)
            _assert_rows_equal_per_pixel(images, BOXES, _theta(N, seed, scale, compute), OBJ, seed=seed, mode=mode,
                                         padding_mode=padding_mode, align_corners=align, overlap=overlap)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_half_pixel_ties_and_rotations(padding_mode):
    """Locations exactly on pixel centres and half-pixel ties (90-degree rotations, shifts
    by half a pixel, zooms by 2): the taps' in-frame decisions of both paths agree."""
    images = _images(torch.float32, 3, "contiguous", seed=9)
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    huge = torch.tensor([[1.0, 0, 3e9], [0, 1.0, -7e12]])  # every tap outside (zeros): no location gradient
    for theta in (rot, -rot, torch.tensor([[1.0, 0.0, 0.25], [0.0, 1.0, -0.5]]),
                  torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), huge):
        for mode, align in itertools.product(("nearest", "bilinear"), (False, True)):
            _assert_rows_equal_per_pixel(images, BOXES, theta.expand(N, 2, 3).clone(), OBJ, mode=mode,
                                         padding_mode=padding_mode, align_corners=align, nonzero=theta is not huge)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 4),
    n=st.integers(1, 6),
    dtype=st.sampled_from([torch.uint8, torch.float32, D64]),
    mode=st.sampled_from(["nearest", "bilinear"]),
    padding_mode=st.sampled_from(["zeros", "border", "reflection"]),
    align=st.booleans(),
    overlap=st.sampled_from(["sequential", "parallel"]),
    scale=st.sampled_from([0.0, 0.1, 0.5, 2.0]),
    channels_last=st.booleans(),
)
def test_rows_equal_per_pixel_property(seed, h, w, c, n, dtype, mode, padding_mode, align, overlap, scale,
                                       channels_last):
    g = torch.Generator().manual_seed(seed)
    boxes, obj = _random_boxes(g, h, w, n)
    images = _images(dtype, c, "channels_last" if channels_last else "contiguous", seed, (2, h, w))
    compute = D64 if dtype == D64 else torch.float32
    theta = _theta(n, seed, scale, compute)
    _assert_rows_equal_per_pixel(images, boxes, theta, obj, seed=seed, required=False, nonzero=False, mode=mode,
                                 padding_mode=padding_mode, align_corners=align, overlap=overlap)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
def test_row_backward_matches_the_reference_loop(mode, padding_mode, overlap):
    """The whole call (the row backward inside it) against the SPEC's reference loop, float64:
    images', boxes' and theta's gradients."""
    images = _images(D64, 3, "contiguous", seed=11).requires_grad_()
    boxes = (BOXES.to(D64) + 0.25).requires_grad_()
    theta = _theta(N, 12, 0.3, D64).requires_grad_()
    kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": False, "overlap": overlap}
    grad = torch.randn(images.shape, generator=torch.Generator().manual_seed(13), dtype=D64)
    got = torch.autograd.grad(warp_patches(images, boxes, theta, OBJ, **kw), (images, boxes, theta), grad)
    want = torch.autograd.grad(reference_warp(images, boxes, theta, OBJ, **kw), (images, boxes, theta), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
