"""augpatch.data: collate, batch augmentation, worker seeding (real DataLoader workers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from augpatch.data import BatchAugment, collate_objects, seed_worker
from augpatch.transforms import RandomPatchHorizontalFlip, RandomPatchRotation

SIZES = [(20, 24), (16, 30), (24, 18), (12, 12), (18, 22)]


class Detection(Dataset):
    """Images of varying size with a varying number of objects (image 3 has none)."""

    def __len__(self) -> int:
        return len(SIZES)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h, w = SIZES[i]
        g = torch.Generator().manual_seed(i)
        image = torch.rand(3, h, w, generator=g)
        n = 0 if i == 3 else 1 + i % 3
        boxes = torch.tensor([[1.0 + k, 2.0, 6.0 + 2 * k, 9.0] for k in range(n)]).reshape(n, 4)
        masks = torch.zeros(n, h, w, dtype=torch.bool)
        for k in range(n):
            masks[k, 2:9, 1 + k : 6 + 2 * k] = True
        keypoints = boxes[:, None, :2] + 1.0
        return image, {
            "boxes": boxes,
            "labels": torch.arange(n) + 10 * i,
            "masks": masks,
            "keypoints": keypoints,
            "image_id": torch.tensor(i),
        }


class Drawing(Dataset):
    """Each item draws an angle from a generator held by the dataset (as a transform would)."""

    def __init__(self) -> None:
        self.rotate = RandomPatchRotation(45.0, p=1.0, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        self.rotate(torch.zeros(1, 1, 8, 8), torch.tensor([[0.0, 0.0, 8.0, 8.0]]))
        return self.rotate._params["angle"]


class CudaInWorker(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return torch.zeros(3, 8, 8), {"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]])}


def test_collate_pads_images_and_concatenates_objects() -> None:
    ds = Detection()
    batch = collate_objects([ds[i] for i in range(5)])
    assert batch["images"].shape == (5, 3, 24, 30)
    assert batch["image_sizes"].tolist() == [list(s) for s in SIZES]
    counts = [1, 2, 3, 0, 2]
    assert batch["obj_to_img"].tolist() == [b for b, n in enumerate(counts) for _ in range(n)]
    assert batch["boxes"].shape == (8, 4) and batch["labels"].shape == (8,)
    assert batch["masks"].shape == (8, 24, 30) and batch["masks"].dtype == torch.bool
    assert batch["keypoints"].shape == (8, 1, 2)
    assert batch["image_id"].tolist() == [0, 1, 2, 3, 4]  # image-level: stacked
    for b, (h, w) in enumerate(SIZES):
        image, target = ds[b]
        assert torch.equal(batch["images"][b, :, :h, :w], image)
        assert (
            batch["images"][b, :, h:].abs().sum() == 0
            and batch["images"][b, :, :, w:].abs().sum() == 0
        )
        sel = batch["obj_to_img"] == b
        assert torch.equal(batch["boxes"][sel], target["boxes"])
        assert torch.equal(batch["masks"][sel][:, :h, :w], target["masks"])


def test_collate_accepts_pil_tv_tensors_dicts_and_empty_batches() -> None:
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")
    pil = Image.fromarray(np.full((10, 12, 3), 7, np.uint8))
    boxes = tv_tensors.BoundingBoxes([[1, 2, 4, 5]], format="XYWH", canvas_size=(10, 12))
    image = tv_tensors.Image(torch.full((3, 8, 8), 9, dtype=torch.uint8))
    batch = collate_objects(
        [(pil, {"boxes": boxes}), {"image": image, "boxes": torch.zeros(0, 4)}, image],
        size_divisible=4,
    )
    assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (3, 3, 12, 12)
    assert type(batch["images"]) is torch.Tensor
    assert batch["boxes"].tolist() == [[1.0, 2.0, 5.0, 7.0]]  # XYWH -> xyxy
    assert batch["obj_to_img"].tolist() == [0]
    empty = collate_objects([torch.zeros(3, 4, 4)])
    assert empty["boxes"].shape == (0, 4) and empty["obj_to_img"].shape == (0,)
    with pytest.raises(ValueError, match="channels"):
        collate_objects([torch.zeros(3, 4, 4), torch.zeros(1, 4, 4)])


@pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning")
def test_dataloader_with_two_workers_and_pinned_memory() -> None:
    ds = Detection()
    loader = DataLoader(
        ds, batch_size=3, num_workers=2, collate_fn=collate_objects, pin_memory=True
    )
    batches = list(loader)
    expected = [collate_objects([ds[i] for i in range(0, 3)]), collate_objects([ds[3], ds[4]])]
    for got, want in zip(batches, expected):
        assert set(got) == set(want)
        for key, value in want.items():
            assert torch.equal(got[key], value), key


def test_batch_augment_as_collate_fn_and_after_the_loader() -> None:
    ds = Detection()
    flip = RandomPatchHorizontalFlip(p=1.0)
    as_collate = DataLoader(ds, batch_size=5, collate_fn=BatchAugment(flip, device="cpu"))
    (batch,) = list(as_collate)
    raw = collate_objects([ds[i] for i in range(5)])
    x1, y1, x2, y2 = raw["boxes"][0].long().tolist()  # image 0 holds a single object
    mirrored = raw["images"][0, :, y1:y2, x1:x2].flip(-1)
    assert torch.allclose(batch["images"][0, :, y1:y2, x1:x2], mirrored, atol=1e-5)
    for n in range(raw["boxes"].shape[0]):
        x1, y1, x2, y2 = raw["boxes"][n].long().tolist()
        assert torch.equal(batch["masks"][n, y1:y2, x1:x2], raw["masks"][n, y1:y2, x1:x2].flip(-1))
    # keypoints moved with their objects (augpatch coordinates)
    moved_x = raw["boxes"][:, 0] + raw["boxes"][:, 2] - raw["keypoints"][:, 0, 0]
    assert torch.allclose(batch["keypoints"][:, 0, 0], moved_x)
    # pixel-index keypoints (torchvision convention) are shifted by half a pixel and back
    step = BatchAugment(flip, device=None, pixel_index_keypoints=True)
    after = step(raw)
    assert torch.allclose(after["keypoints"][:, 0, 0], moved_x - 1)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_objects)
    for batch in loader:
        out = BatchAugment(flip, device="cpu")(batch)
        assert out["images"].shape == batch["images"].shape and out is not batch


def test_cuda_inside_a_worker_fails_with_a_clear_message() -> None:
    loader = DataLoader(
        CudaInWorker(),
        batch_size=2,
        num_workers=1,
        collate_fn=BatchAugment(RandomPatchHorizontalFlip(), device="cuda"),
    )
    with pytest.raises(RuntimeError, match="main process") as err:
        next(iter(loader))
    assert "collate_objects" in str(err.value)


def _angles(loader: DataLoader) -> list[float]:
    return [float(a) for batch in loader for a in batch.flatten()]


def test_seed_worker_gives_workers_distinct_reproducible_streams() -> None:
    ds = Drawing()
    kw = {"batch_size": 1, "num_workers": 2}
    plain = _angles(DataLoader(ds, **kw))
    # forked workers copy the dataset's generator: both draw the same first angles
    assert plain[0] == plain[1] and plain[2] == plain[3]
    seeded = _angles(
        DataLoader(ds, worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(1), **kw)
    )
    assert seeded[0] != seeded[1]
    again = _angles(
        DataLoader(ds, worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(1), **kw)
    )
    assert seeded == again
    other = _angles(
        DataLoader(ds, worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(2), **kw)
    )
    assert other != seeded
