"""Recipe: augpatch inside a Kornia ``AugmentationSequential`` (GPU-friendly batches).

Per-object affines next to Kornia's own flips, affines and colour jitter, with
boxes, masks and keypoints kept in sync, exact replay and the inverse.

    python recipes/kornia_pipeline.py            # a few hundred synthetic batches
    python recipes/kornia_pipeline.py --smoke    # seconds, CPU

Needs ``pip install 'augpatch[kornia]'``.
"""

from __future__ import annotations

import argparse
import time

import kornia.augmentation as K
import torch

from augpatch.integrations.kornia import (
    PatchAugmentationSequential,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
)


def synthetic_batch(batch: int, size: int, objects: int, generator: torch.Generator):
    """Images [B, 3, S, S], Kornia (inclusive) boxes [B, N, 4] with zero padding rows,
    per-image masks [B, 1, S, S] and one keypoint per object [B, N, 2]."""
    images = torch.rand(batch, 3, size, size, generator=generator)
    xy = torch.randint(0, size // 2, (batch, objects, 2), generator=generator).float()
    wh = torch.randint(size // 8, size // 3, (batch, objects, 2), generator=generator).float()
    boxes = torch.cat([xy, (xy + wh).clamp(max=size - 1)], -1)
    boxes[1::2, -1] = 0.0  # every other image has one object less: a zero padding row
    masks = torch.zeros(batch, 1, size, size)
    for b in range(batch):
        for x1, y1, x2, y2 in boxes[b].long().tolist():
            masks[b, 0, y1 : y2 + 1, x1 : x2 + 1] = 1.0
    keypoints = (boxes[..., :2] + boxes[..., 2:]) / 2
    return images, boxes, masks, keypoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds, CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    batches, batch, size, objects = (2, 2, 48, 3) if args.smoke else (args.batches, 16, 256, 8)
    device = torch.device("cpu" if args.smoke else args.device)

    aug = PatchAugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        RandomPatchAffine(degrees=20.0, translate=0.1, scale=(0.8, 1.2), p=0.8),
        RandomPatchHorizontalFlip(p=0.5),
        K.RandomAffine(degrees=5.0, p=0.5),
        K.ColorJitter(0.2, 0.2, 0.2, p=0.5),
        data_keys=["input", "bbox_xyxy", "mask", "keypoints"],
    ).to(device)

    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(batches):
        images, boxes, masks, points = (
            t.to(device) for t in synthetic_batch(batch, size, objects, g)
        )
        out_images, out_boxes, out_masks, out_points = aug(images, boxes, masks, points)
        # exact replay from the container's own parameters
        replayed = aug(images, boxes, masks, points, params=aug._params)
        assert torch.equal(replayed[0], out_images) and torch.equal(replayed[1], out_boxes)
        # padding rows stay zero; the inverse maps boxes back
        assert torch.equal(out_boxes[1::2, -1], torch.zeros_like(out_boxes[1::2, -1]))
        back_boxes = aug.inverse(out_images, out_boxes, out_masks, out_points)[1]
        assert back_boxes.shape == boxes.shape
    elapsed = time.perf_counter() - start
    print(
        f"kornia recipe: {batches} batches of {batch}x3x{size}x{size} on {device} "
        f"in {elapsed:.2f}s; last boxes {tuple(out_boxes.shape)}"
    )


if __name__ == "__main__":
    main()
