"""Recipe: collate per-image detection samples, augment whole batches on the GPU.

CPU workers decode and collate (``augpatch.data.collate_objects``: padded images,
flat boxes, ``obj_to_img``, per-object masks and labels, pinned memory); the main
process moves each batch to the GPU and runs the per-object augmentation there
with ``augpatch.data.BatchAugment``. CUDA is never touched inside a worker.

    python recipes/gpu_collate.py                 # CUDA if available
    python recipes/gpu_collate.py --smoke         # seconds, CPU

Needs only torch.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

from augpatch.data import BatchAugment, collate_objects, seed_worker
from augpatch.transforms import PatchSequential, RandomPatchAffine, RandomPatchHorizontalFlip


class VariableSizeDetection(Dataset):
    """Images of different sizes, 0 to 5 objects each, with labels and instance masks."""

    def __init__(self, length: int, size: int) -> None:
        self.length, self.size = length, size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        h = self.size - int(torch.randint(0, self.size // 4, (1,), generator=g))
        w = self.size - int(torch.randint(0, self.size // 4, (1,), generator=g))
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
        n = i % 6
        x1 = torch.randint(0, w // 2, (n,), generator=g).float()
        y1 = torch.randint(0, h // 2, (n,), generator=g).float()
        boxes = torch.stack([x1, y1, x1 + w // 4, y1 + h // 4], -1).reshape(n, 4)
        masks = torch.zeros(n, h, w, dtype=torch.bool)
        for k, (a, b, c, d) in enumerate(boxes.long().tolist()):
            masks[k, b:d, a:c] = True
        return image, {"boxes": boxes, "labels": torch.arange(n), "masks": masks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds, CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    length, size, batch = (4, 40, 2) if args.smoke else (512, 512, 16)
    device = "cpu" if args.smoke else args.device

    augment = BatchAugment(
        PatchSequential(
            RandomPatchAffine(degrees=15.0, scale=(0.8, 1.2), p=0.8),
            RandomPatchHorizontalFlip(p=0.5),
        ),
        device=device,
    )
    loader = DataLoader(
        VariableSizeDetection(length, size),
        batch_size=batch,
        num_workers=args.workers,
        collate_fn=collate_objects,  # workers only collate: no CUDA in them
        pin_memory=device != "cpu",
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=args.workers > 0,
    )
    start = time.perf_counter()
    objects = 0
    for data in loader:
        data = augment(data)  # main process: .to(device) + one warp for the whole batch
        assert data["images"].device.type == torch.device(device).type
        assert data["masks"].shape[0] == data["boxes"].shape[0] == data["obj_to_img"].shape[0]
        objects += data["boxes"].shape[0]
    print(
        f"gpu collate recipe: {length} images, {objects} objects on {device}, "
        f"{time.perf_counter() - start:.2f}s"
    )


if __name__ == "__main__":
    main()
