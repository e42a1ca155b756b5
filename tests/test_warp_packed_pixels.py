"""The compiled forward on uint8 images whose pixels are C consecutive bytes (channels-last,
Pillow's 4-byte pixels): nearest moves each pixel whole (``nearest_pixels`` in
``csrc/warp_rows.h``) and the levels that read earlier levels' writes keep their values
pixel-major before writing them back (``forward_impl``'s ``packed`` result). Both give the
same bytes as the planar (channel-major) layout and as the reference loop, for C = 1, 3, 4,
nearest and bilinear, every overlap and padding, several levels, and a non-dense input."""

from __future__ import annotations

import itertools

import pytest
import torch
from reference import reference_warp

from augpatch.functional import warp_patches
from augpatch.ops import settings as _kernel
from augpatch.testing.kernel_calls import compiled_kernel_calls

D64 = torch.float64
# overlapping boxes on two images (several levels), some partly outside the frame
BOXES = torch.tensor([[1, 1, 15, 11], [6, 4, 22, 17], [0, 0, 26, 19], [12, 5, 25, 16], [-3, -2, 7, 6],
                      [9, 8, 30, 22], [3, 10, 14, 21]])
OBJ = torch.tensor([0, 0, 1, 0, 1, 0, 1])
PADDINGS = ("zeros", "border", "reflection", "image")

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _theta(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(BOXES.shape[0], generator=g, dtype=D64) - 0.5) * 0.8
    s = 0.9 + 0.3 * torch.rand(BOXES.shape[0], generator=g, dtype=D64)
    shift = 0.1 * torch.randn(BOXES.shape[0], 2, generator=g, dtype=D64)
    t = torch.stack([torch.stack([a.cos() * s, -a.sin() * s, shift[:, 0]], 1),
                     torch.stack([a.sin() * s, a.cos() * s, shift[:, 1]], 1)], 1)
    return t.float()


def _planar(channels: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (2, channels, 23, 29), generator=g, dtype=torch.uint8)


def _pillow_like(planar: torch.Tensor) -> torch.Tensor:
    """``planar``'s pixels as Pillow holds them: ``[H, W, 4]`` bytes a pixel, viewed
    ``[B, 4, H, W]`` (the adapter's ``_pil_pixels``); channels beyond C are padding."""
    b, c, h, w = planar.shape
    memory = torch.randint(0, 256, (b, h, w, 4), generator=torch.Generator().manual_seed(9), dtype=torch.uint8)
    memory[..., :c] = planar.permute(0, 2, 3, 1)
    return memory.permute(0, 3, 1, 2)


def _levels(images, theta, **kw) -> int:
    calls = compiled_kernel_calls(images, BOXES, theta, OBJ, **kw)
    assert calls, "the compiled kernel was not called"
    return len(calls[0][3]) - 1


@pytest.fixture(autouse=True)
def _compiled():
    assert _kernel.compiled_ops(torch.device("cpu")) is not None, "the compiled kernel is not active"


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
def test_channels_last_bytes_equal_planar_and_the_reference_loop(channels, mode, overlap):
    planar = _planar(channels)
    packed = planar.contiguous(memory_format=torch.channels_last)
    for seed, padding_mode, align in itertools.product((1, 2), PADDINGS, (False, True)):
        theta = _theta(seed)
        kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": align, "overlap": overlap}
        assert _levels(packed, theta, **kw) >= 2
        before = packed.clone()
        out = warp_patches(packed, BOXES, theta, OBJ, **kw)
        assert torch.equal(packed, before)  # the input is not modified
        assert out.is_contiguous(memory_format=torch.channels_last)
        expected = warp_patches(planar, BOXES, theta, OBJ, **kw)
        assert torch.equal(out, expected), (seed, padding_mode, align)
        assert not torch.equal(out, packed)
        if mode == "nearest" and padding_mode != "image":  # the loop's ties with "image": see test_warp_compiled_rows
            assert torch.equal(out, reference_warp(planar, BOXES, theta, OBJ, **kw)), (seed, padding_mode, align)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
def test_pillow_pixels_equal_planar(mode, overlap):
    """Pillow's 4-byte pixels (RGBX / RGBA) as the adapter hands them to the warp: the same
    bytes as the planar warp of the same four channels, and the image is not modified."""
    planar = _planar(4, seed=3)
    pillow = _pillow_like(planar)
    assert pillow.stride() == (23 * 29 * 4, 1, 29 * 4, 4)
    before = pillow.clone()
    for seed, padding_mode in itertools.product((4, 5), ("zeros", "image")):
        theta = _theta(seed)
        kw = {"mode": mode, "padding_mode": padding_mode, "overlap": overlap}
        out = warp_patches(pillow, BOXES, theta, OBJ, **kw)
        assert torch.equal(out, warp_patches(planar, BOXES, theta, OBJ, **kw)), (seed, padding_mode)
    assert torch.equal(pillow, before)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
def test_three_of_four_bytes_a_pixel_equal_planar(mode, overlap):
    """A non-dense input (3 channels of Pillow's 4-byte pixels): the kernel warps a dense
    channels-last copy, every level through its result buffer; the same bytes as planar."""
    planar = _planar(3, seed=6)
    strided = _pillow_like(planar)[:, :3]
    assert not strided.is_contiguous(memory_format=torch.channels_last)
    for seed in (7, 8):
        theta = _theta(seed)
        out = warp_patches(strided, BOXES, theta, OBJ, mode=mode, overlap=overlap)
        assert torch.equal(out, warp_patches(planar, BOXES, theta, OBJ, mode=mode, overlap=overlap)), seed


def test_nearest_moves_whole_pixels_with_zeros_outside():
    """A zoom out by 2 (taps outside every patch's frame) on 4-byte pixels: inside a tap's
    frame the output pixel is an input pixel, all four bytes; outside, all four bytes 0."""
    planar = _planar(4, seed=11)
    packed = planar.contiguous(memory_format=torch.channels_last)
    theta = (torch.eye(2, 3) * 2).expand(BOXES.shape[0], 2, 3)
    out = warp_patches(packed, BOXES, theta, OBJ, mode="nearest")
    assert torch.equal(out, reference_warp(planar, BOXES, theta, OBJ, mode="nearest"))
    pixels = out.permute(0, 2, 3, 1)
    zero = (pixels == 0).all(-1)
    assert zero.any() and (pixels[~zero] != 0).any()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_a_batch_of_one_with_any_batch_stride(dtype, mode):
    """``image[None]`` of a channels-last ``[C, H, W]`` image has batch stride C, not
    ``C * H * W``: the kernel reads it in place all the same (its size-1 batch dimension
    places no element); the same output as the dense batch, values and, for floats, the
    gradients of the reference loop."""
    planar = _planar(4, seed=12)[:1]
    if dtype != torch.uint8:
        planar = planar.to(dtype) / 255
    image = planar[0].permute(1, 2, 0).contiguous().permute(2, 0, 1)  # [4, H, W] channels-last
    batch = image[None]
    assert batch.stride(0) == 4 and batch.stride()[1:] == (1, 4 * 29, 4)
    keep = BOXES[OBJ == 0]
    theta = _theta(13)[OBJ == 0]
    obj = torch.zeros(keep.shape[0], dtype=torch.long)
    before = batch.clone()
    out = warp_patches(batch, keep, theta, obj, mode=mode)
    assert torch.equal(batch, before)
    assert torch.equal(out, warp_patches(planar, keep, theta, obj, mode=mode))
    if dtype == torch.uint8:
        return
    expected = reference_warp(planar, keep, theta, obj, mode=mode)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    x = batch.clone().requires_grad_()
    y = planar.clone().requires_grad_()
    weight = torch.randn(planar.shape, generator=torch.Generator().manual_seed(14))
    (g_x,) = torch.autograd.grad((warp_patches(x, keep, theta, obj, mode=mode) * weight).sum(), [x])
    (g_y,) = torch.autograd.grad((reference_warp(y, keep, theta, obj, mode=mode) * weight).sum(), [y])
    torch.testing.assert_close(g_x, g_y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_a_batch_of_one_view_with_theta_gradient(mode):
    """The backward reads ``image[None]`` (batch stride C) in place for the location
    gradient as well: theta's and the image's gradients equal the reference loop's on the
    dense planar batch (float64), and the image is left as it was."""
    planar = (_planar(4, seed=15)[:1].to(torch.float64) / 255)
    leaf = planar[0].permute(1, 2, 0).contiguous().permute(2, 0, 1).requires_grad_()  # channels-last
    batch = leaf[None]
    assert batch.stride(0) == 4
    keep = BOXES[OBJ == 0]
    theta = _theta(16)[OBJ == 0].to(torch.float64).requires_grad_()
    obj = torch.zeros(keep.shape[0], dtype=torch.long)
    before = leaf.detach().clone()
    weight = torch.randn(planar.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(17))
    out = warp_patches(batch, keep, theta, obj, mode=mode)
    g_img, g_theta = torch.autograd.grad((out * weight).sum(), [leaf, theta])
    y = planar.clone().requires_grad_()
    t = theta.detach().clone().requires_grad_()
    expected = reference_warp(y, keep, t, obj, mode=mode)
    e_img, e_theta = torch.autograd.grad((expected * weight).sum(), [y, t])
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(g_img, e_img[0], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(g_theta, e_theta, atol=1e-10, rtol=1e-10)
    assert torch.equal(leaf.detach(), before)
    assert compiled_kernel_calls(batch.detach(), keep, theta.detach(), obj, mode=mode), "not the compiled kernel"


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
def test_in_place_warp_of_packed_pixels_equals_planar(mode, overlap):
    """The kernel in place on a batch the caller owns (``warp_forward_`` / ``box_warp_``,
    as the policies' box-only ops and ``warp_in_boxes(..., inplace=True)`` run it): every
    level through the pixel-major result buffer; the same bytes as the planar warp."""
    from augpatch.policies.functional import warp_in_boxes

    planar = _planar(4, seed=15)
    packed = planar.contiguous(memory_format=torch.channels_last)
    for seed in (16, 17):
        theta = _theta(seed)
        expected = warp_patches(planar, BOXES, theta, OBJ, mode=mode, overlap=overlap)
        work = packed.clone()
        out = warp_in_boxes(work, BOXES, theta, OBJ, mode=mode, overlap=overlap, inplace=True)
        assert out.data_ptr() == work.data_ptr()
        assert torch.equal(work, expected), seed
