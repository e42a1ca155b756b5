"""Recipe: augpatch in a ``torchvision.transforms.v2`` detection pipeline.

Samples ``(image, {"boxes": BoundingBoxes, "labels", "masks": Mask})`` as
torchvision's detection datasets return them, per-object affines next to
torchvision's flips and photometric transforms, then ``SanitizeBoundingBoxes``;
a ``DataLoader`` with workers and ``augpatch.data.collate_objects`` batches them.

    python recipes/torchvision_pipeline.py           # a full synthetic epoch
    python recipes/torchvision_pipeline.py --smoke   # seconds, CPU

Needs ``pip install 'augpatch[torchvision]'``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from augpatch.data import collate_objects, seed_worker
from augpatch.integrations.torchvision import RandomPatchAffine, RandomPatchRotation


class SyntheticDetection(Dataset):
    """Random uint8 images with random boxes, labels and per-instance masks."""

    def __init__(self, length: int, size: int, transforms: v2.Transform) -> None:
        self.length, self.size, self.transforms = length, size, transforms

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        s = self.size
        image = tv_tensors.Image(torch.randint(0, 256, (3, s, s), dtype=torch.uint8, generator=g))
        n = 1 + i % 4
        xy = torch.randint(0, s // 2, (n, 2), generator=g)
        wh = torch.randint(s // 8, s // 3, (n, 2), generator=g)
        boxes = torch.cat([xy, xy + wh], -1).float()
        masks = torch.zeros(n, s, s, dtype=torch.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
            masks[k, y1:y2, x1:x2] = 1
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(s, s)),
            "labels": torch.randint(1, 10, (n,), generator=g),
            "masks": tv_tensors.Mask(masks),
        }
        return self.transforms(image, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds, CPU)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    length, size, batch = (4, 48, 2) if args.smoke else (256, 320, 8)

    transforms = v2.Compose(
        [
            v2.RandomHorizontalFlip(p=0.5),
            RandomPatchAffine(degrees=15.0, translate=0.1, scale=(0.8, 1.2), p=0.7),
            RandomPatchRotation(90.0, p=0.2, rotated_format=None),
            v2.RandomPhotometricDistort(p=0.5),
            v2.SanitizeBoundingBoxes(),
        ]
    )
    loader = DataLoader(
        SyntheticDetection(length, size, transforms),
        batch_size=batch,
        num_workers=args.workers,
        collate_fn=collate_objects,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(0),
    )
    start = time.perf_counter()
    objects = 0
    for data in loader:
        assert data["boxes"].shape[0] == data["labels"].shape[0] == data["masks"].shape[0]
        objects += data["boxes"].shape[0]
    print(
        f"torchvision recipe: {length} images, {objects} objects kept, "
        f"{time.perf_counter() - start:.2f}s"
    )


if __name__ == "__main__":
    main()
