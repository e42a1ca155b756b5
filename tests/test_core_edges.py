"""Edges of the core (issue 22): exact copies outside the boxes, and SPEC's pixel
membership ``x1 <= j + 0.5 < x2`` where a box edge lies exactly on a pixel centre."""

from __future__ import annotations

import pytest
import torch

from augpatch.functional import set_cpu_kernel, warp_masks, warp_patches, warp_patches_fill
from augpatch.ops.plan import pixel_rects
from augpatch.policies.functional import box_pixel_rects

BIG = 2**60 + 1  # not a float64: a round trip through float64 changes it


def _theta(n: int) -> torch.Tensor:
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])  # a quarter turn
    return rot.repeat(n, 1, 1)


@pytest.mark.parametrize("num", [0, 2])
def test_int64_labels_above_2_53_are_copied_exactly_outside_the_boxes(num):
    masks = torch.arange(6 * 7, dtype=torch.int64).view(1, 6, 7) + BIG
    boxes = torch.tensor([[0, 0, 3, 3], [3, 2, 7, 6]])[:num]
    out = warp_masks(masks, boxes, _theta(num))
    outside = torch.ones(6, 7, dtype=torch.bool)
    for x1, y1, x2, y2 in boxes.tolist():
        outside[y1:y2, x1:x2] = False
    assert torch.equal(out[0][outside], masks[0][outside])
    if num == 0:
        assert torch.equal(out, masks)


@pytest.mark.parametrize("shape", [(2, 9, 8), (2, 3, 9, 8)])
def test_int64_labels_above_2_53_are_moved_exactly_inside_the_boxes(shape):
    """The big labels move exactly as small ones do (which float64 holds exactly)."""
    gen = torch.Generator().manual_seed(0)
    small = torch.randint(0, 5, shape, generator=gen)
    big = small * (2**55) + BIG  # an exact relabelling of each value
    boxes = torch.tensor([[1, 1, 7, 6], [0, 2, 8, 9], [2, 0, 6, 5]])
    obj = torch.tensor([0, 1, 1])
    theta = torch.tensor([[0.6, -0.8, 0.1], [0.8, 0.6, -0.2]]).repeat(3, 1, 1)
    for padding_mode in ("zeros", "border", "image"):
        moved_small = warp_masks(small, boxes, theta, obj, padding_mode=padding_mode)
        moved_big = warp_masks(big, boxes, theta, obj, padding_mode=padding_mode)
        # where the padding was read, the result is 0 (a mask of ones tells where)
        read_zero = warp_masks(torch.ones_like(small), boxes, theta, obj, padding_mode=padding_mode) == 0
        expected = torch.where(read_zero, 0, moved_small * (2**55) + BIG)
        assert torch.equal(moved_big, expected)
        assert moved_big.dtype == torch.int64


def test_int32_masks_keep_memory_format_and_values():
    masks = torch.randint(-(2**31), 2**31 - 1, (1, 4, 6, 6), dtype=torch.int32).contiguous(
        memory_format=torch.channels_last)
    out = warp_masks(masks, torch.tensor([[0, 0, 6, 6]]), torch.tensor([[[-1.0, 0, 0], [0, 1, 0]]]))
    assert out.dtype == torch.int32 and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, masks.flip(-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_fill_copies_negative_zero_outside_the_boxes_bit_for_bit(dtype, mode):
    images = torch.full((1, 2, 6, 8), -0.0, dtype=dtype)
    images[0, :, 0, 0] = 1.5
    boxes = torch.tensor([[2, 1, 6, 5]])
    theta = torch.tensor([[[1.0, 0.0, 0.7], [0.0, 1.0, 0.0]]], dtype=dtype)
    out = warp_patches_fill(images, boxes, theta, fill=3.0, mode=mode)
    outside = torch.ones(6, 8, dtype=torch.bool)
    outside[1:5, 2:6] = False
    assert torch.equal(torch.signbit(out[0][:, outside]), torch.signbit(images[0][:, outside]))
    assert torch.equal(out[0][:, outside], images[0][:, outside])
    assert (out[0][:, ~outside] == 3.0).any()  # the fill arrived inside the box


# ---------------------------------------------------------------- pixel membership on centres

_CENTRE_BOX = [1.5, 2.5, 6.5, 5.5]  # x1 on pixel 1's centre, x2 on pixel 6's; y: rows 2, 5


def _membership(kernel: str, monkeypatch) -> torch.Tensor:
    """Which pixels a warp with a box whose edges lie on pixel centres changes."""
    if kernel == "triton":
        pytest.importorskip("triton")
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    set_cpu_kernel(kernel)
    try:
        images = torch.rand(1, 1, 8, 9, dtype=torch.float64) + 1  # no zero anywhere
        far = torch.tensor([[[1.0, 0.0, 9.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)  # reads padding
        out = warp_patches(images, torch.tensor([_CENTRE_BOX], dtype=torch.float64), far)
    finally:
        set_cpu_kernel("auto")
    return out[0, 0] == 0


@pytest.mark.parametrize("kernel", ["compiled", "eager", "triton"])
def test_box_edges_on_pixel_centres_follow_spec(kernel, monkeypatch):
    """``x1 <= j + 0.5 < x2``: x1 = 1.5 includes pixel 1, x2 = 6.5 excludes pixel 6; the same
    in y (y1 = 2.5 includes row 2, y2 = 5.5 excludes row 5)."""
    changed = _membership(kernel, monkeypatch)
    expected = torch.zeros(8, 9, dtype=torch.bool)
    expected[2:5, 1:6] = True
    assert torch.equal(changed, expected), changed.int()


def test_pixel_rects_on_pixel_centres():
    box = torch.tensor([_CENTRE_BOX], dtype=torch.float64)
    assert pixel_rects(box, 8, 9).tolist() == [[1, 2, 6, 5]]
    assert box_pixel_rects(box, (8, 9)).tolist() == [[1, 2, 6, 5]]
