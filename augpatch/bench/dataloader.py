"""``--dataloader``: throughput of a training input pipeline with augpatch on the GPU."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from augpatch.bench.harness import sync


class _SyntheticDetection(torch.utils.data.Dataset):
    """``(image [3, S, S] uint8, {"boxes": [K, 4], "labels": [K]})`` samples, deterministic.

    Images come from a small pool generated once (no decoding: the pipeline's own cost is
    what is measured); boxes are random per sample, 16-96 px, inside the image.
    ``transform`` (e.g. torchvision v2 ``RandomAffine``) is applied to ``(image, target)``
    as ``tv_tensors`` in ``__getitem__`` (in the worker).
    """

    def __init__(self, length: int, size: int, objects: int, seed: int, transform: Any = None) -> None:
        g = torch.Generator().manual_seed(seed)
        self.pool = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8) for _ in range(4)]
        side = torch.randint(16, min(96, size) + 1, (length, objects, 2), generator=g)
        corner = (torch.rand(length, objects, 2, generator=g) * (size - side + 1)).floor()
        self.boxes = torch.cat([corner, corner + side], 2).float()
        self.length, self.size, self.transform = length, size, transform

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        image = self.pool[i % len(self.pool)]
        target = {"boxes": self.boxes[i], "labels": torch.zeros(self.boxes.shape[1], dtype=torch.long)}
        if self.transform is None:
            return image, target
        from torchvision import tv_tensors

        image, boxes = self.transform(
            tv_tensors.Image(image),
            tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(self.size, self.size)),
        )
        return image.as_subclass(Tensor), {"boxes": boxes.as_subclass(Tensor), "labels": target["labels"]}


def dataloader_throughput(
    device: str | torch.device = "cuda", *, batch_size: int = 16, size: int = 512, objects: int = 8,
    workers: int | None = None, batches: int = 20, warmup: int = 3, seed: int = 0,
) -> dict[str, Any]:
    """Images per second of three input pipelines (a ``DataLoader`` over synthetic uint8
    images ``[3, size, size]`` with ``objects`` boxes each; ``pin_memory`` on CUDA):

    * ``loader_only``: workers collate (``collate_objects``); the batch goes to ``device``;
    * ``augpatch_batch``: the same, then ``BatchAugment(RandomPatchAffine(...), device)``
      in the main process (on the GPU for ``device="cuda"``: every object of the batch in
      one warp);
    * ``torchvision_workers``: torchvision v2 ``RandomAffine`` (whole image and boxes)
      per sample in the workers, then the batch goes to ``device``.

    Same ranges in both augmentations (±15 degrees, scale 0.85-1.15, shift 10 %). Each
    pipeline runs ``warmup`` batches (workers start, kernels compile), then ``batches``
    timed ones (synchronised at the end on CUDA). Meant for CUDA (``--dataloader``);
    any device works for a smoke test.
    """
    from torch.utils.data import DataLoader

    from augpatch.data import BatchAugment, collate_objects, seed_worker
    from augpatch.transforms import RandomPatchAffine

    dev = torch.device(device)
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    length = batch_size * (batches + warmup)
    ranges = {"degrees": 15.0, "translate": (0.1, 0.1), "scale": (0.85, 1.15)}
    res: dict[str, Any] = {"device": str(dev), "batch_size": batch_size, "image": [3, size, size],
                           "dtype": "uint8", "objects_per_image": objects, "workers": workers,
                           "timed_batches": batches, "augmentation": ranges}

    def run(transform: Any, step: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        dataset = _SyntheticDetection(length, size, objects, seed, transform)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_objects,
                            pin_memory=dev.type == "cuda", worker_init_fn=seed_worker)
        started = None
        for n, batch in enumerate(loader):
            if n == warmup:
                sync(dev)
                started = time.perf_counter()
            step(batch)
        sync(dev)
        elapsed = time.perf_counter() - started if started is not None else float("nan")
        return {"seconds": elapsed, "images_per_s": batch_size * batches / elapsed}

    def to_device(batch: dict[str, Any]) -> None:
        for v in batch.values():
            if isinstance(v, Tensor):
                v.to(dev, non_blocking=True)

    res["loader_only"] = run(None, to_device)
    augment = BatchAugment(RandomPatchAffine(**ranges), device=dev)
    res["augpatch_batch"] = run(None, augment)
    try:
        from torchvision.transforms import v2
    except ImportError as exc:
        res["torchvision_workers"] = {"skipped": f"torchvision not importable ({exc})"}
    else:
        res["torchvision_workers"] = run(v2.RandomAffine(**ranges), to_device)
    if "images_per_s" in res["torchvision_workers"]:
        res["augpatch_vs_torchvision"] = (res["augpatch_batch"]["images_per_s"]
                                          / res["torchvision_workers"]["images_per_s"])
    return res


def format_dataloader(res: dict[str, Any]) -> str:
    """The lines the CLI prints for :func:`dataloader_throughput`."""
    lines = [f"DataLoader throughput ({res['device']}, batches of {res['batch_size']} uint8 "
             f"{'x'.join(map(str, res['image']))} images, {res['objects_per_image']} objects each, "
             f"{res['workers']} workers):"]
    for key, text in (("loader_only", "loader only (collate + copy)"),
                      ("augpatch_batch", "augpatch BatchAugment on the device"),
                      ("torchvision_workers", "torchvision v2 RandomAffine in the workers")):
        e = res[key]
        lines.append(f"  {text:<44} " + (f"{e['images_per_s']:9.1f} images/s" if "images_per_s" in e
                                          else e.get("skipped", "")))
    if "augpatch_vs_torchvision" in res:
        lines.append(f"  augpatch / torchvision: {res['augpatch_vs_torchvision']:.2f}x")
    return "\n".join(lines)
