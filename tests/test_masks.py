"""``augpatch.functional.warp_masks``: the one mask path (core transforms and adapters).

The expected result is the SPEC's loop (``tests/reference.py``) with nearest resampling
on the masks in the dtype ``warp_patches`` computes them in, cast back to the mask dtype.
"""

from __future__ import annotations

import pytest
import torch
from reference import reference_warp

from augpatch import PatchAffine, RandomPatchAffine
from augpatch.functional import patch_affine_matrix, warp_masks, warp_patches

B, H, W = 2, 24, 20
BOXES = torch.tensor([[2, 3, 14, 17], [6, 1, 19, 12], [0, 8, 11, 24]])
OBJ = torch.tensor([0, 1, 1])


def _theta() -> torch.Tensor:
    # non-trivial rotations, scales and shears; angles chosen away from nearest ties
    return patch_affine_matrix(
        BOXES,
        angle=torch.tensor([31.0, -17.0, 73.0]),
        scale=torch.tensor([[0.8, 1.1], [1.3, 0.9], [1.0, 1.0]]),
        shear=torch.tensor([[7.0, 0.0], [0.0, -5.0], [3.0, 2.0]]),
    )


def _labels(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    values = torch.randint(0, 6, shape, generator=gen)
    if dtype == torch.bool:
        return values > 2
    return values.to(dtype)


# the dtype warp_patches computes each mask dtype in (the reference runs in it)
_WORK = {
    torch.bool: torch.uint8,
    torch.uint8: torch.uint8,
    torch.int8: torch.float64,
    torch.int16: torch.float64,
    torch.int32: torch.float64,
    torch.int64: torch.float64,
    torch.float16: torch.float16,
    torch.bfloat16: torch.bfloat16,
    torch.float32: torch.float32,
    torch.float64: torch.float64,
}


@pytest.mark.parametrize("dtype", list(_WORK))
@pytest.mark.parametrize("shape", [(B, H, W), (B, 1, H, W), (B, 3, H, W)])
def test_warp_masks_equals_the_nearest_loop_and_keeps_dtype(dtype, shape):
    masks = _labels(shape, dtype)
    before = masks.clone()
    theta = _theta()
    out = warp_masks(masks, BOXES, theta, OBJ)
    assert out.dtype == dtype and out.shape == masks.shape
    assert torch.equal(masks, before)  # never modified in place
    work = masks.to(_WORK[dtype])
    work4 = work[:, None] if len(shape) == 3 else work
    ref = reference_warp(work4, BOXES, theta, OBJ, mode="nearest")
    ref = ref[:, 0] if len(shape) == 3 else ref
    expected = ref.bool() if dtype == torch.bool else ref.round().to(dtype)
    assert torch.equal(out, expected)
    # nearest: no new values; and the warp did move something
    assert set(out.unique().tolist()) <= set(masks.unique().tolist())
    assert not torch.equal(out, masks)


def test_large_integer_labels_are_exact():
    masks = torch.full((1, H, W), 2**40 + 3, dtype=torch.int64)
    masks[0, 5:15, 4:12] = -(2**45) - 1
    theta = patch_affine_matrix(BOXES[:1], angle=90.0)
    out = warp_masks(masks, BOXES[:1], theta)
    assert set(out.unique().tolist()) <= {0, 2**40 + 3, -(2**45) - 1}
    assert int((out == -(2**45) - 1).sum()) > 0


def test_padding_is_background_and_other_padding_modes_pass_through():
    masks = torch.ones(1, 1, H, W, dtype=torch.bool)
    box = torch.tensor([[4, 4, 16, 16]])
    theta = patch_affine_matrix(box, scale=0.5)  # the object shrinks: padding enters
    out = warp_masks(masks, box, theta)
    assert not bool(out[0, 0, 4, 4]) and bool(out[0, 0, 10, 10])
    assert bool(out[0, 0, 0, 0])  # outside every box: copied
    border = warp_masks(masks, box, theta, padding_mode="border")
    assert bool(border.all())


def test_per_object_masks_are_a_batch_of_one_object_each():
    masks = _labels((3, H, W), torch.bool)
    theta = _theta()
    out = warp_masks(masks, BOXES, theta, torch.arange(3))
    for n in range(3):
        alone = warp_masks(masks[n : n + 1], BOXES[n : n + 1], theta[n : n + 1])
        assert torch.equal(out[n], alone[0])


def test_list_boxes_and_memory_format():
    masks = _labels((B, 2, H, W), torch.uint8).contiguous(memory_format=torch.channels_last)
    theta = _theta()
    flat = warp_masks(masks, BOXES, theta, OBJ)
    listed = warp_masks(masks, [BOXES[:1], BOXES[1:]], theta)
    assert torch.equal(flat, listed)
    assert flat.is_contiguous(memory_format=torch.channels_last)


def test_float_masks_are_differentiable():
    masks = torch.rand(1, 1, H, W, requires_grad=True)
    theta = patch_affine_matrix(BOXES[:1], angle=20.0)
    out = warp_masks(masks, BOXES[:1], theta)
    out.sum().backward()
    assert masks.grad is not None and float(masks.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("masks", "error", "match"),
    [
        (torch.zeros(H, W), ValueError, r"masks must have shape \[B, H, W\] or \[B, K, H, W\]"),
        (torch.zeros(1, 1, 1, H, W), ValueError, "masks must have shape"),
        (torch.zeros(1, H, W, dtype=torch.complex64), TypeError, "masks must be a bool, integer"),
        ([[[0]]], TypeError, "masks must be a torch.Tensor"),
    ],
)
def test_bad_masks_raise_clear_errors(masks, error, match):
    with pytest.raises(error, match=match):
        warp_masks(masks, BOXES[:1], torch.eye(2, 3)[None])


# --------------------------------------------------------------------------- users of the path


def test_transforms_warp_image_masks_like_nearest_images_and_back():
    """The transforms' masks and inverse go through warp_masks: a mask that equals the
    image stays equal to the image warped with nearest resampling, forward and back."""
    images = _labels((B, 1, H, W), torch.uint8) * 40
    aug = RandomPatchAffine(degrees=40.0, scale=(0.7, 1.2), p=0.7, resample="nearest",
                            generator=torch.Generator().manual_seed(3))
    out = aug(images, BOXES, OBJ, image_masks=images[:, 0] > 0, masks=images[OBJ, 0] > 0)
    assert out.image_masks.dtype == torch.bool
    assert torch.equal(out.image_masks, out.images[:, 0] > 0)
    # per-object masks: mask n moves with object n only
    for n in range(3):
        alone = warp_masks(images[OBJ[n] : OBJ[n] + 1, 0] > 0, BOXES[n : n + 1],
                           aug._params["theta"][n : n + 1])
        assert torch.equal(out.masks[n], alone[0])
    back = aug.inverse(out.images, out.boxes, image_masks=out.image_masks.to(torch.int32))
    assert back.image_masks.dtype == torch.int32
    assert torch.equal(back.image_masks, (back.images[:, 0] > 0).to(torch.int32))


def test_transform_masks_of_gated_objects_are_untouched():
    masks = _labels((1, H, W), torch.int16)
    aug = PatchAffine(angle=45.0, p=0.0)
    out = aug(torch.rand(1, 1, H, W), BOXES[:1], image_masks=masks)
    assert torch.equal(out.image_masks, masks)
    assert out.image_masks is not masks


def test_warp_masks_matches_warp_patches_for_float_masks():
    masks = torch.rand(B, 2, H, W, dtype=torch.float64)
    theta = _theta()
    expected = warp_patches(masks, BOXES, theta, OBJ, mode="nearest")
    assert torch.equal(warp_masks(masks, BOXES, theta, OBJ), expected)
