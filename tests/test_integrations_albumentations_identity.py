"""albumentations adapter: identity parameters are bit-exact (issue 22, item 12)."""

from __future__ import annotations

import numpy as np
import pytest

A = pytest.importorskip("albumentations")

import augpatch.integrations.albumentations as AA  # noqa: E402


@pytest.mark.parametrize(
    "make",
    [
        lambda: AA.PatchAffine(p=1.0),
        lambda: AA.PatchAffine(angle=0.0, translate=(0.0, 0.0), scale=1.0, shear=0.0, p=1.0),
        lambda: AA.RandomPatchAffine(degrees=0.0, translate=0.0, scale=(1.0, 1.0), p=1.0),
    ],
)
def test_identity_parameters_are_bit_exact(make) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((60, 80, 3), dtype=np.float32)
    masks = (rng.random((2, 60, 80)) > 0.5).astype(np.uint8)
    bboxes = np.array([[0.1, 0.13, 0.55, 0.71], [0.5, 0.2, 0.93, 0.9]], dtype=np.float32)
    keypoints = np.array([[10.3, 12.7], [51.1, 30.9]], dtype=np.float32)
    pipeline = A.Compose(
        [make()],
        bbox_params=A.BboxParams(format="albumentations", label_fields=["labels"]),
        keypoint_params=A.KeypointParams(format="xy"),
        seed=0,
    )
    out = pipeline(image=image, masks=masks, bboxes=bboxes, labels=[1, 2], keypoints=keypoints)
    assert np.array_equal(out["image"], image)
    assert np.array_equal(np.asarray(out["masks"]), masks)
    assert np.array_equal(np.asarray(out["bboxes"], dtype=np.float32), bboxes)
    assert np.array_equal(np.asarray(out["keypoints"], dtype=np.float32), keypoints)
