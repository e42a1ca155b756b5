"""Targets follow their pixels (SPEC): every transform's masks move exactly as its pixels.

Each image is drawn as the union of its objects' masks, each in its own colour; after the
transform (with the masks) the image equals the moved masks painted the same way, wherever
no boxes overlap (the boxes here do not overlap at all).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as tnf

from augpatch import (
    PatchAffine,
    PatchSequential,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
    RandomPatchShear,
    RandomPatchTranslate,
    RandomPatchVerticalFlip,
)
from augpatch.search import PatchPolicy

H, W = 48, 56
BOXES = torch.tensor(
    [[2, 3, 22, 21], [26, 2, 53, 20], [4, 25, 30, 46], [33, 24, 54, 45], [6, 5, 40, 40]]
)
O2I = torch.tensor([0, 0, 0, 0, 1])


def _masks() -> torch.Tensor:
    """An ellipse inside each box (not the box: its shape must move with the content)."""
    rows, cols = torch.arange(H)[:, None] + 0.5, torch.arange(W)[None] + 0.5
    out = []
    for x1, y1, x2, y2 in BOXES.double().tolist():
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2.2, (y2 - y1) / 2.6
        out.append(((cols - cx) / rx) ** 2 + ((rows - cy - 0.2 * (cols - cx)) / ry) ** 2 < 1)
    return torch.stack(out)


def _paint(masks: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` float64: object ``n`` in colour ``n + 1`` (0 elsewhere)."""
    colour = torch.arange(1, masks.shape[0] + 1, dtype=torch.float64)[:, None, None]
    img = torch.zeros(2, 1, H, W, dtype=torch.float64)
    return img.index_add(0, O2I, (masks.double() * colour)[:, None])


def _transforms(resample: str) -> list[torch.nn.Module]:
    kw = {"p": 1.0, "resample": resample}
    gen = {"generator": torch.Generator().manual_seed(11)}
    return [
        RandomPatchAffine(degrees=40, translate=0.2, scale=(0.6, 1.3), shear=15, **kw, **gen),
        RandomPatchRotation(90, **kw, **gen),
        RandomPatchTranslate(0.3, **kw, **gen),
        RandomPatchScale((0.5, 1.5, 0.7, 1.2), **kw, **gen),
        RandomPatchShear((-20, 20, -10, 10), **kw, **gen),
        RandomPatchHorizontalFlip(**kw, **gen),
        RandomPatchVerticalFlip(**kw, **gen),
        RandomPatchAffine(degrees=30, p=0.5, resample=resample, **gen),  # some not drawn
        PatchAffine(angle=torch.tensor([20.0, -35, 0, 90, 10]), scale=0.8, **kw),
        PatchSequential(RandomPatchRotation(25, p=1.0), RandomPatchScale((0.6, 1.2), p=1.0),
                        resample=resample),
        PatchPolicy(num_sub_policies=2, operation_count=2, resample=resample, **gen).eval(),
    ]


@pytest.mark.parametrize("resample", ["nearest", "bilinear"])
def test_masks_follow_their_pixels(resample: str) -> None:
    masks = _masks()
    images = _paint(masks)
    for aug in _transforms(resample):
        name = type(aug).__name__
        # masks in the images' dtype: both are sampled at the same float64 locations
        # (bool masks are sampled in float32, where a nearest tie may round the other way)
        out = aug(images, BOXES, O2I, masks=masks.double())
        painted = _paint(out.masks)
        if resample == "nearest":
            # the same sampling locations: every colour exactly where its mask went
            assert torch.equal(out.images, painted), name
            continue
        # bilinear: thresholding at half of each colour's neighbourhood can differ from the
        # nearest mask only next to a mask border (a pixel whose 3x3 neighbourhood holds
        # both inside and outside of the moved union)
        union = painted[:, 0] > 0
        got = out.images[:, 0] > 0.5
        ring = _border(union)
        assert not bool(((got != union) & ~ring).any()), name
        assert int((got != union).sum()) <= 0.25 * int(ring.sum()), name


def _border(union: torch.Tensor) -> torch.Tensor:
    u = union[:, None].double()
    grown = tnf.max_pool2d(u, 3, 1, 1) > 0
    shrunk = -tnf.max_pool2d(-u, 3, 1, 1) > 0
    return (grown & ~shrunk)[:, 0]
