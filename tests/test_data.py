"""augpatch.data: collate, batch augmentation, worker seeding (real DataLoader workers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from augpatch.data import BatchAugment, collate_objects, seed_worker, to_detection_inputs
from augpatch.transforms import (
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchTranslate,
)

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


# --------------------------------------------------------------------------- detection path


def _shift_out(p: float, drop: bool) -> RandomPatchTranslate:
    """Moves the content of the drawn objects by exactly one box width: nothing is left."""
    return RandomPatchTranslate(
        ((1.0, 1.0), (0.0, 0.0)), p=p, drop_invalid=drop, generator=torch.Generator().manual_seed(3)
    )


def test_batch_augment_keeps_every_per_object_field_aligned_when_objects_are_dropped() -> None:
    ds = Detection()
    raw = collate_objects([ds[i] for i in range(5)])
    raw["area"] = (raw["boxes"][:, 2:] - raw["boxes"][:, :2]).prod(-1)
    aug = _shift_out(0.5, drop=True)
    out = BatchAugment(aug, device=None)(raw)
    keep = aug._params["keep"]
    assert 0 < int(keep.sum()) < keep.numel()  # some dropped, some kept
    assert torch.equal(keep, ~aug._params["batch_prob"])
    n_out = int(keep.sum())
    for key in ("boxes", "labels", "masks", "keypoints", "obj_to_img", "area", "keep"):
        assert out[key].shape[0] == n_out, key
    assert torch.equal(out["labels"], raw["labels"][keep])
    assert torch.equal(out["obj_to_img"], raw["obj_to_img"][keep])
    assert torch.equal(out["area"], raw["area"][keep])
    assert torch.equal(out["masks"], raw["masks"][keep])  # the kept objects did not move
    assert torch.equal(out["keypoints"], raw["keypoints"][keep])
    assert torch.equal(out["boxes"], raw["boxes"][keep])
    assert out["keep"].all()
    # image-level entries are untouched
    assert torch.equal(out["image_id"], raw["image_id"])
    assert torch.equal(out["image_sizes"], raw["image_sizes"])


def test_batch_augment_returns_keep_and_never_inverted_boxes() -> None:
    ds = Detection()
    raw = collate_objects([ds[i] for i in range(5)])
    aug = _shift_out(1.0, drop=False)
    out = BatchAugment(aug, device=None)(raw)
    assert out["keep"].shape == (raw["boxes"].shape[0],) and not out["keep"].any()
    assert out["labels"].shape == raw["labels"].shape
    # exactly zero width on the box's right edge, never x2 < x1
    assert torch.equal(out["boxes"][:, 0], out["boxes"][:, 2])
    assert torch.equal(out["boxes"][:, 2], raw["boxes"][:, 2])
    assert (out["boxes"][:, 3] > out["boxes"][:, 1]).all()


def test_batch_augment_object_keys_and_a_transform_without_keep() -> None:
    ds = Detection()
    raw = collate_objects([ds[i] for i in range(5)])
    aug = _shift_out(0.5, drop=True)
    out = BatchAugment(aug, device=None, object_keys=["labels"])(raw)
    keep = aug._params["keep"]
    assert torch.equal(out["labels"], raw["labels"][keep])
    with pytest.raises(ValueError, match="image_id"):
        BatchAugment(aug, device=None, object_keys=["image_id"])(raw)

    def drops_without_keep(images, boxes, obj_to_img=None, **kw):
        return images, boxes[:1]

    with pytest.raises(RuntimeError, match="keep"):
        BatchAugment(drops_without_keep, device=None)(raw)


def test_to_detection_inputs_crops_splits_and_drops_degenerate_objects() -> None:
    ds = Detection()
    raw = collate_objects([ds[i] for i in range(5)])
    raw["images"] = (raw["images"] * 255).round().to(torch.uint8)
    raw["keep"] = torch.ones(raw["boxes"].shape[0], dtype=torch.bool)
    raw["keep"][1] = False
    raw["file_name"] = [f"{i}.png" for i in range(5)]
    images, targets = to_detection_inputs(raw)
    assert len(images) == len(targets) == 5
    for b, (h, w) in enumerate(SIZES):
        assert images[b].shape == (3, h, w) and images[b].dtype == torch.float32
        assert torch.equal(images[b], raw["images"][b, :, :h, :w].float() / 255)
        sel = (raw["obj_to_img"] == b) & raw["keep"]
        assert torch.equal(targets[b]["boxes"], raw["boxes"][sel])
        assert torch.equal(targets[b]["labels"], raw["labels"][sel])
        assert torch.equal(targets[b]["masks"], raw["masks"][sel][:, :h, :w])
        assert torch.equal(targets[b]["keypoints"], raw["keypoints"][sel])
        assert int(targets[b]["image_id"]) == b and targets[b]["file_name"] == f"{b}.png"
        assert "keep" not in targets[b] and "obj_to_img" not in targets[b]
    assert targets[3]["boxes"].shape == (0, 4) and targets[3]["masks"].shape == (0, 12, 12)
    # everything kept when asked, float64 on request
    images, targets = to_detection_inputs(raw, dtype=torch.float64, drop_invalid=False)
    assert images[0].dtype == torch.float64 and targets[1]["boxes"].shape == (2, 4)
    with pytest.raises(TypeError, match="dtype"):
        to_detection_inputs(raw, dtype=torch.int32)


def _tiny_faster_rcnn(num_classes: int):
    """A real torchvision ``FasterRCNN`` with a one-layer backbone (fast on 2 cores)."""
    detection = pytest.importorskip("torchvision.models.detection")
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4, padding=1), torch.nn.ReLU())
    backbone.out_channels = 8
    return detection.FasterRCNN(
        backbone,
        rpn_anchor_generator=AnchorGenerator(((8, 16),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        box_head=TwoMLPHead(8 * 49, 32),
        box_predictor=FastRCNNPredictor(32, num_classes),
        min_size=64,
        max_size=64,
    )


def test_to_detection_inputs_trains_a_torchvision_detector_one_step() -> None:
    torch.manual_seed(0)
    model = _tiny_faster_rcnn(num_classes=4).train()
    ds = Detection()
    batch = BatchAugment(_shift_out(0.5, drop=False), device=None)([ds[i] for i in range(5)])
    assert not batch["keep"].all()  # degenerate boxes that would crash the detector
    batch["labels"] = batch["labels"] % 3 + 1
    images, targets = to_detection_inputs(batch, drop_invalid=False)
    with pytest.raises(AssertionError, match="positive height and width"):
        model(images, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
    images, targets = to_detection_inputs(batch)
    losses = model(images, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_collate_keeps_keypoints_points_whatever_the_image_size() -> None:
    """Keypoints [N, K, 2] are not spatial: with no object in the batch they stayed
    [0, K, 2] only by chance (they became [0, H, W]), and on a K x 2 image they were
    padded like masks (found by tests/test_edges.py)."""
    empty = {"boxes": torch.zeros(0, 4), "keypoints": torch.zeros(0, 2, 2),
             "masks": torch.zeros(0, 1, 1, dtype=torch.uint8)}
    batch = collate_objects([(torch.zeros(3, 1, 1), empty), (torch.zeros(3, 3, 4), dict(empty))])
    assert batch["keypoints"].shape == (0, 2, 2)
    assert batch["masks"].shape == (0, 3, 4)  # masks of no object: the canvas' size
    kps = torch.tensor([[[0.5, 0.5], [1.5, 1.0]]])
    one = {"boxes": torch.tensor([[0.0, 0.0, 2.0, 2.0]]), "keypoints": kps,
           "masks": torch.ones(1, 2, 2, dtype=torch.uint8)}
    batch = collate_objects([(torch.zeros(3, 2, 2), one), (torch.zeros(3, 5, 6), dict(empty))])
    assert torch.equal(batch["keypoints"], kps)
    assert batch["masks"].shape == (1, 5, 6) and int(batch["masks"].sum()) == 4
