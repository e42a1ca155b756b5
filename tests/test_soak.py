"""Soak: ``BatchAugment(DetectionAutoAugment("v3"))`` on many random small padded batches
(issue 22): images without boxes, 1 x 1 images, boxes outside or inverted, every dtype.

The 10,000-step run is ``slow`` (``pytest -m slow tests/test_soak.py``); a 300-step run
is part of the normal suite.
"""

from __future__ import annotations

import pytest
import torch
from edge_batches import (
    assert_aligned,
    assert_boxes_inside,
    assert_same_tree,
    assert_unchanged_where,
    clone_tree,
    padding,
    random_samples,
)

from augpatch.data import BatchAugment, collate_objects, to_detection_inputs
from augpatch.policies import DetectionAutoAugment


def soak(steps: int, seed: int = 0) -> dict[str, int]:
    """Run ``steps`` batches; every check on every step. Returns counts of what was seen."""
    g = torch.Generator().manual_seed(seed)
    aug = BatchAugment(DetectionAutoAugment("v3", generator=torch.Generator().manual_seed(seed)),
                       device=None)
    seen = {"objects": 0, "kept": 0, "images": 0, "images_without_objects": 0}
    for step in range(steps):
        samples = random_samples(g)
        before = clone_tree(samples)
        batch = collate_objects(samples)
        out = aug(samples)
        n = out["boxes"].shape[0]
        assert n == batch["boxes"].shape[0], step
        assert_aligned(n, obj_to_img=out["obj_to_img"], labels=out["labels"], masks=out["masks"],
                       keep=out["keep"])
        assert_boxes_inside(out["boxes"], out["obj_to_img"], batch["image_sizes"], out["keep"])
        assert_unchanged_where(out["images"], batch["images"],
                               padding(batch["image_sizes"], batch["images"].shape), "padding")
        if out["images"].is_floating_point():
            assert bool((out["images"] >= 0).all() and (out["images"] <= 1).all()), step
        images, targets = to_detection_inputs(out, dtype=None)
        for im, t, (src, _) in zip(images, targets, samples):
            assert im.shape == src.shape and im.dtype == src.dtype, step
            m = t["boxes"].shape[0]
            assert_aligned(m, labels=t["labels"], masks=t["masks"])
            h, w = im.shape[-2:]
            assert_boxes_inside(t["boxes"], torch.zeros(m, dtype=torch.long),
                                torch.tensor([[h, w]]), torch.ones(m, dtype=torch.bool))
        assert_same_tree(before, samples, f"step {step}: samples")
        seen["objects"] += n
        seen["kept"] += int(out["keep"].sum())
        seen["images"] += len(samples)
        seen["images_without_objects"] += sum(int(t["boxes"].shape[0] == 0) for _, t in samples)
    return seen


def test_soak_short() -> None:
    seen = soak(300)
    assert seen["images_without_objects"] > 0 and seen["kept"] > 0


@pytest.mark.slow
def test_soak_10000_steps() -> None:
    seen = soak(10_000, seed=1)
    assert seen["images_without_objects"] > 0 and seen["kept"] > 0
