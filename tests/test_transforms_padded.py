"""Padded batches (issue 18): each image is only its own region of the canvas."""

from __future__ import annotations

import pytest
import torch

from augpatch import (
    PatchSequential,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
    RandomPatchTranslate,
    RandomPatchVerticalFlip,
)
from augpatch.transforms.base import image_regions

H, W = 40, 48
SIZES = torch.tensor([[40, 48], [24, 30], [32, 20]])  # (H_b, W_b): full, and two padded
SENTINEL = 1e30  # any read of the padding, at any weight, shows up as a huge value

# boxes: inside their image, reaching into the padding, and one entirely in the padding
BOXES = torch.tensor(
    [
        [2.0, 3.0, 20.0, 17.0],
        [25.0, 20.0, 46.0, 38.0],
        [1.0, 1.0, 14.0, 12.0],
        [18.0, 10.0, 40.0, 36.0],  # image 1 is 30 x 24: clipped to [18, 10, 30, 24]
        [2.0, 2.0, 16.0, 14.0],
        [12.0, 18.0, 30.0, 39.0],  # image 2 is 20 x 32: clipped to [12, 18, 20, 32]
        [24.0, 4.0, 40.0, 20.0],  # entirely in image 2's padding
    ]
)
O2I = torch.tensor([0, 0, 1, 1, 2, 2, 2])


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 2, H, W, generator=g, dtype=torch.float64)
    region = image_regions(SIZES, (H, W), None, torch.device("cpu"))
    images = torch.where(region, images, torch.full_like(images, SENTINEL))
    # each object's mask: its box inside its own image
    rows, cols = torch.arange(H)[:, None] + 0.5, torch.arange(W)[None] + 0.5
    masks = torch.stack(
        [
            (cols >= b[0]) & (cols < b[2]) & (rows >= b[1]) & (rows < b[3])
            for b in BOXES
        ]
    ) & region[O2I, 0]
    return images, masks, region


def _transforms(padding_mode: str) -> list[torch.nn.Module]:
    kw = {"p": 1.0, "padding_mode": padding_mode, "generator": torch.Generator().manual_seed(3)}
    return [
        RandomPatchAffine(degrees=40, translate=0.3, scale=(0.6, 1.4), shear=10, **kw),
        RandomPatchHorizontalFlip(**kw),
        RandomPatchVerticalFlip(**kw),
        RandomPatchTranslate(0.45, **kw),
        PatchSequential(
            RandomPatchRotation(30, p=1.0), RandomPatchScale((0.5, 1.5), p=1.0),
            padding_mode=padding_mode,
        ),
    ]


def _pixel_cover(box: torch.Tensor) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box.tolist()
    return int(torch.tensor(x1).floor()), int(torch.tensor(y1).floor()), int(
        torch.tensor(x2).ceil()
    ), int(torch.tensor(y2).ceil())


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection", "image"])
def test_padded_batch_every_transform(padding_mode: str) -> None:
    images, masks, region = _batch()
    for aug in _transforms(padding_mode):
        out = aug(images, BOXES, O2I, masks=masks, image_sizes=SIZES)
        name = f"{type(aug).__name__}/{padding_mode}"
        # the padding is returned unchanged, and nothing of it was read
        assert torch.equal(out.images[~region.expand_as(images)],
                           images[~region.expand_as(images)]), name
        assert bool((out.images[region.expand_as(images)].abs() <= 1.0 + 1e-9).all()), name
        # the object in the padding is reported; the others are kept
        assert out.keep.tolist() == [True] * 6 + [False], name
        sizes = SIZES[O2I]
        for n in torch.nonzero(out.keep).flatten().tolist():
            box = out.boxes[n]
            h_b, w_b = sizes[n].tolist()
            assert 0 <= box[0] < box[2] <= w_b and 0 <= box[1] < box[3] <= h_b, (name, n, box)
            m = out.masks[n]
            assert bool(m.any()), (name, n)
            assert not bool((m & ~region[O2I[n], 0]).any()), (name, n)
            if padding_mode in ("border", "reflection"):
                # the mask follows the replicated / mirrored pixels, which the box rule
                # (content moved forward) leaves out: only its patch bounds it
                box = out.params["patches"][n]
            x1, y1, x2, y2 = _pixel_cover(box)
            inside = torch.zeros_like(m)
            inside[y1:y2, x1:x2] = True
            assert not bool((m & ~inside).any()), (name, n, box)
        # the box in the padding: zero width on its image's right edge
        assert out.boxes[6, 0] == out.boxes[6, 2] == 20.0, name


def test_padded_batch_drop_invalid_and_inverse() -> None:
    images, _, region = _batch()
    aug = RandomPatchAffine(degrees=30, p=1.0, padding_mode="image", drop_invalid=True)
    out = aug(images, BOXES, O2I, image_sizes=SIZES)
    assert out.boxes.shape[0] == 6 and out.obj_to_img.tolist() == O2I[:6].tolist()
    back = aug.inverse(out.images, out.boxes, image_sizes=SIZES)
    pad = ~region.expand_as(images)
    assert torch.equal(back.images[pad], images[pad])
    assert bool((back.images[~pad].abs() <= 1.0 + 1e-9).all())


def test_without_padding_image_sizes_changes_nothing() -> None:
    images, masks, _ = _batch()
    images = images.clamp(max=1.0)
    full = torch.tensor([[H, W]] * 3)
    aug = RandomPatchAffine(degrees=30, translate=0.2, p=1.0, padding_mode="image")
    a = aug(images, BOXES, O2I, masks=masks)
    b = aug(images, BOXES, O2I, masks=masks, image_sizes=full, params=a.params)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert torch.equal(a.masks, b.masks)


def test_inverted_boxes_with_image_sizes_are_zero_width_and_not_kept() -> None:
    images, _, _ = _batch()
    boxes = torch.tensor([[20.0, 4.0, 6.0, 18.0], [4.0, 20.0, 18.0, 6.0]])  # x2 < x1, y2 < y1
    o2i = torch.tensor([1, 2])
    out = RandomPatchAffine(degrees=20, p=1.0)(images, boxes, o2i, image_sizes=SIZES)
    assert out.keep.tolist() == [False, False]
    assert out.boxes[0, 2] == out.boxes[0, 0] and out.boxes[1, 3] == out.boxes[1, 1]
    # not drawn: the box as given (clipped to its image), still reported
    out = RandomPatchAffine(degrees=20, p=0.0)(images, boxes, o2i, image_sizes=SIZES)
    assert out.keep.tolist() == [False, False]


def test_image_sizes_errors_name_the_argument() -> None:
    images, _, _ = _batch()
    with pytest.raises(ValueError, match="image_sizes"):
        RandomPatchAffine(degrees=10)(images, BOXES, O2I, image_sizes=SIZES[:2])
    with pytest.raises(TypeError, match="image_sizes"):
        RandomPatchAffine(degrees=10)(images, BOXES, O2I, image_sizes=SIZES.float())


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_padded_batch_image_masks_and_dtypes(dtype: torch.dtype) -> None:
    images, _, region = _batch()
    pad = ~region
    src = torch.where(region, images * 200, torch.full_like(images, 255)).to(dtype)
    seg = torch.where(region[:, 0], 1, 7).to(torch.uint8)  # [B, H, W], 7 in the padding
    seg4 = seg[:, None].expand(3, 2, H, W)
    aug = RandomPatchAffine(degrees=45, translate=0.3, p=1.0, padding_mode="image")
    out = aug(src, BOXES, O2I, image_masks=seg, image_sizes=SIZES)
    assert out.images.dtype == dtype
    assert torch.equal(out.images[pad.expand_as(src)], src[pad.expand_as(src)])
    assert int(out.images[region.expand_as(src)].max()) <= 200  # no 255 read from padding
    assert torch.equal(out.image_masks[pad[:, 0]], seg[pad[:, 0]])
    assert not bool((out.image_masks[region[:, 0]] == 7).any())
    out4 = aug(src, BOXES, O2I, image_masks=seg4, image_sizes=SIZES, params=out.params)
    assert torch.equal(out4.image_masks[:, 1], out.image_masks)


def test_padded_batch_gradients_reach_image_pixels_only_through_the_image() -> None:
    images, _, region = _batch()
    images = images.clamp(max=1.0).requires_grad_()
    aug = RandomPatchAffine(degrees=30, scale=(0.7, 1.3), p=1.0, padding_mode="image")
    out = aug(images, BOXES, O2I, image_sizes=SIZES)
    (grad,) = torch.autograd.grad(out.images.sum(), images)
    pad = ~region.expand_as(images)
    assert torch.equal(grad[pad], torch.ones_like(grad[pad]))  # the padding passes through
    assert bool(torch.isfinite(grad).all())
