"""The detection training path: padded batches, the references' (images, targets) format."""

from __future__ import annotations

import pytest
import torch

from augpatch.data import BatchAugment, collate_objects, to_detection_inputs
from augpatch.policies import DetectionAutoAugment
from augpatch.transforms import RandomPatchAffine

# three sizes on one canvas (the 100 x 100 image of issue 18 among larger ones)
PADDED_SIZES = [(100, 100), (160, 200), (220, 150)]


def _padded_samples(seed: int = 0) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Images drawn as the union of their objects' masks (object pixels 1, background 0),
    with objects near the right and bottom edges of each image; labels number the objects."""
    g = torch.Generator().manual_seed(seed)
    samples, label = [], 0
    for h, w in PADDED_SIZES:
        n = 6
        x1 = torch.randint(0, w - 30, (n,), generator=g)
        y1 = torch.randint(0, h - 30, (n,), generator=g)
        size = torch.randint(12, 30, (n, 2), generator=g)
        x1[:2] = w - size[:2, 0]  # touching the right edge
        y1[2:4] = h - size[2:4, 1]  # touching the bottom edge
        boxes = torch.stack([x1, y1, x1 + size[:, 0], y1 + size[:, 1]], 1).float()
        masks = torch.zeros(n, h, w, dtype=torch.uint8)
        for k, (a, b, c, d) in enumerate(boxes.long().tolist()):
            masks[k, b + 2 : d - 2, a + 2 : c - 2] = 1
        image = masks.amax(0, keepdim=True).expand(3, h, w).float()
        labels = torch.arange(label, label + n)
        label += n
        samples.append((image, {"boxes": boxes, "labels": labels, "masks": masks, "image_id": label}))
    return samples


TRANSFORMS = {
    "RandomPatchAffine": lambda: RandomPatchAffine(
        degrees=40.0, translate=0.3, scale=(0.7, 1.4), p=1.0, padding_mode="image",
        generator=torch.Generator().manual_seed(0),
    ),
    **{
        f"DetectionAutoAugment-{v}": (
            lambda v=v: DetectionAutoAugment(v, generator=torch.Generator().manual_seed(1))
        )
        for v in ("v0", "v1", "v2", "v3")
    },
    # image-level moves across the canvas on every call (the failure of issue 18)
    "DetectionAutoAugment-moves": lambda: DetectionAutoAugment(
        [[("TranslateY_BBox", 1.0, 6), ("Rotate_BBox", 1.0, 4)],
         [("TranslateX_BBox", 1.0, 6), ("ShearX_BBox", 1.0, 6)]],
        generator=torch.Generator().manual_seed(2),
    ),
}


def _check_kept_objects_inside_their_images(images: list, targets: list) -> int:
    """Every returned box inside its image with positive area, every mask non-empty, inside
    the image and (up to nearest resampling) inside its box. Returns the object count."""
    count = 0
    for image, target in zip(images, targets):
        h, w = image.shape[-2:]
        boxes, masks = target["boxes"], target["masks"]
        assert masks.shape[-2:] == (h, w)
        assert boxes.shape[0] == masks.shape[0] == target["labels"].shape[0]
        assert bool((boxes[:, :2] >= 0).all()), boxes
        assert bool((boxes[:, 2] <= w).all()) and bool((boxes[:, 3] <= h).all()), (h, w, boxes)
        assert bool(((boxes[:, 2:] - boxes[:, :2]) > 0).all()), boxes
        for box, mask in zip(boxes, masks):
            rows, cols = torch.nonzero(mask, as_tuple=True)
            assert rows.numel() > 0, "a kept object has an empty mask"
            x1, y1, x2, y2 = box.tolist()
            assert cols.min() + 0.5 >= x1 - 1 and cols.max() + 0.5 <= x2 + 1, (box, cols)
            assert rows.min() + 0.5 >= y1 - 1 and rows.max() + 0.5 <= y2 + 1, (box, rows)
        count += boxes.shape[0]
    return count


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_padded_batch_objects_stay_inside_their_images(name: str) -> None:
    """A padded batch of three sizes: what BatchAugment marks kept, and what
    to_detection_inputs returns, lies inside its own image (issue 18)."""
    batch = collate_objects(_padded_samples())
    total = 0
    for trial in range(4):
        aug = BatchAugment(TRANSFORMS[name](), device=None)
        torch.manual_seed(trial)
        out = aug(batch)
        sizes = out["image_sizes"]
        assert torch.equal(sizes, batch["image_sizes"])
        keep = out["keep"]
        per_box = sizes[out["obj_to_img"]]  # (H, W) of each object's image
        kb, ks = out["boxes"][keep], per_box[keep]
        assert bool((kb[:, 2] <= ks[:, 1]).all()) and bool((kb[:, 3] <= ks[:, 0]).all())
        images, targets = to_detection_inputs(out)
        assert [tuple(im.shape[-2:]) for im in images] == PADDED_SIZES
        total += _check_kept_objects_inside_their_images(images, targets)
    assert total > 0  # the test checked objects


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_padded_batch_reads_nothing_from_the_padding_and_leaves_it_unchanged(name: str) -> None:
    """The transform itself sees image_sizes: each image's result does not depend on the
    padding's value, and the padding's pixels come back unchanged."""
    outs, batches = [], []
    for pad_value in (0.0, 0.25):
        batch = collate_objects(_padded_samples(), pad_value=pad_value)
        batches.append(batch)
        outs.append(BatchAugment(TRANSFORMS[name](), device=None)(batch))
    for b, (h, w) in enumerate(batches[0]["image_sizes"].tolist()):
        torch.testing.assert_close(
            outs[0]["images"][b, :, :h, :w], outs[1]["images"][b, :, :h, :w], atol=0, rtol=0
        )
        pad = torch.ones(batches[1]["images"].shape[-2:], dtype=torch.bool)
        pad[:h, :w] = False
        assert torch.equal(outs[1]["images"][b][:, pad], batches[1]["images"][b][:, pad])


def test_batch_augment_passes_image_sizes_only_to_transforms_that_take_it() -> None:
    seen: list = []

    def takes(images, boxes, obj_to_img=None, *, masks=None, image_sizes=None):
        seen.append(image_sizes)
        return images, boxes + 200.0  # pushes every box out of its image

    def plain(images, boxes, obj_to_img=None, *, masks=None):
        return images, boxes + torch.tensor([0.0, 0.0, 200.0, 200.0])

    batch = collate_objects(_padded_samples())
    out = BatchAugment(takes, device=None)(batch)
    assert torch.equal(seen[0], batch["image_sizes"])
    assert not bool(out["keep"].any())  # all left their images: clipped to degenerate boxes
    out = BatchAugment(plain, device=None)(batch)  # no image_sizes keyword: clipped here
    per_box = batch["image_sizes"][batch["obj_to_img"]]
    assert torch.equal(out["boxes"][:, 2:], per_box.flip(-1).float())
    assert bool(out["keep"].all())
    images, targets = to_detection_inputs(out)
    assert sum(t["boxes"].shape[0] for t in targets) == batch["boxes"].shape[0]


def test_to_detection_inputs_clips_boxes_and_drops_objects_that_left_their_image() -> None:
    """The 100 x 100 image of issue 18 in a batch with a larger one."""
    samples = [
        (torch.rand(3, 100, 100), {"boxes": torch.tensor([[10.0, 10.0, 30.0, 30.0]]),
                                   "labels": torch.tensor([1])}),
        (torch.rand(3, 400, 400), {"boxes": torch.tensor([[5.0, 5.0, 50.0, 50.0]]),
                                   "labels": torch.tensor([2])}),
    ]
    batch = collate_objects(samples)
    moved = dict(batch, boxes=torch.tensor([[310.0, 60.0, 345.0, 95.0], [350.0, 380.0, 420.0, 399.0]]))
    moved["masks"] = torch.zeros(2, 400, 400, dtype=torch.uint8)
    moved["masks"][0, 60:95, 310:345] = 1
    moved["masks"][1, 380:399, 350:400] = 1
    images, targets = to_detection_inputs(moved)
    assert targets[0]["boxes"].shape == (0, 4) and targets[0]["labels"].shape == (0,)
    assert targets[0]["masks"].shape == (0, 100, 100)
    assert targets[1]["boxes"].tolist() == [[350.0, 380.0, 400.0, 399.0]]
    assert targets[1]["labels"].tolist() == [2]
    # drop_invalid=False keeps every object, clipped (a degenerate box)
    _, targets = to_detection_inputs(moved, drop_invalid=False)
    assert targets[0]["boxes"].tolist() == [[100.0, 60.0, 100.0, 95.0]]
    # a mask with no pixel left in its image drops its object even when its box is fine
    masks = moved["masks"].clone()
    masks[1] = 0
    masks[1, 0:5, 0:5] = 1  # inside the canvas, but the box is elsewhere: still in the image
    masks[0] = 0
    masks[0, 50:60, 150:160] = 1  # only in the padding of image 0
    boxed = dict(moved, boxes=torch.tensor([[40.0, 40.0, 120.0, 70.0], [0.0, 0.0, 5.0, 5.0]]),
                 masks=masks)
    _, targets = to_detection_inputs(boxed)
    assert targets[0]["labels"].tolist() == [] and targets[1]["labels"].tolist() == [2]


@pytest.mark.parametrize(
    ("obj_to_img", "error", "words"),
    [
        (torch.tensor([0, 2]), IndexError, "obj_to_img"),
        (torch.tensor([-1, 0]), IndexError, "obj_to_img"),
        (torch.tensor([0.0, 1.0]), TypeError, "integer"),
        (torch.tensor([0]), ValueError, "[N]"),
    ],
)
def test_to_detection_inputs_validates_obj_to_img(obj_to_img, error, words) -> None:
    batch = collate_objects(_padded_samples()[:2])
    batch = dict(batch, boxes=batch["boxes"][:2], obj_to_img=obj_to_img)
    batch = {k: v for k, v in batch.items() if k not in ("labels", "masks")}
    with pytest.raises(error, match="obj_to_img") as info:
        to_detection_inputs(batch)
    assert words in str(info.value)


def test_collate_refuses_a_per_object_key_whose_count_differs_from_the_boxes() -> None:
    samples = [
        (torch.zeros(3, 8, 8), {"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
                                "labels": torch.tensor([1])}),
        (torch.zeros(3, 8, 8), {"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
                                "labels": torch.tensor([1, 2])}),
    ]
    with pytest.raises(ValueError, match="sample 1") as info:
        collate_objects(samples)
    message = str(info.value)
    assert "'labels'" in message and "2 rows" in message and "1 boxes" in message
    assert "object_keys" in message
    # declaring the per-object keys collates labels as an image-level field, as asked
    batch = collate_objects(samples, object_keys=["boxes"])
    assert isinstance(batch["labels"], list)


def _references_batch() -> tuple[list, list]:
    """(images, targets) as torchvision's references/detection loop holds them."""
    from torchvision import tv_tensors

    images, targets = [], []
    for image, target in _padded_samples(seed=3):
        h, w = image.shape[-2:]
        images.append(tv_tensors.Image(image))
        targets.append(
            {
                "boxes": tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(h, w)),
                "labels": target["labels"],
                "masks": tv_tensors.Mask(target["masks"]),
                "image_id": target["image_id"],
                "area": (target["boxes"][:, 2:] - target["boxes"][:, :2]).prod(1),
                "iscrowd": torch.zeros(target["boxes"].shape[0], dtype=torch.long),
            }
        )
    return images, targets


def test_batch_augment_takes_and_returns_the_references_format() -> None:
    from torchvision import tv_tensors

    images, targets = _references_batch()
    aug = BatchAugment(
        DetectionAutoAugment("v1", generator=torch.Generator().manual_seed(0)), device=None
    )
    out_images, out_targets = aug((images, targets))
    assert isinstance(out_images, list) and isinstance(out_targets, list)
    assert [im.shape for im in out_images] == [im.shape for im in images]
    assert all(im.dtype == torch.float32 for im in out_images)
    _check_kept_objects_inside_their_images(out_images, out_targets)
    for src, dst, im in zip(targets, out_targets, out_images):
        assert list(dst) == list(src)  # every key, in order
        assert dst["image_id"] == src["image_id"]
        assert isinstance(dst["boxes"], tv_tensors.BoundingBoxes)
        assert tuple(dst["boxes"].canvas_size) == tuple(im.shape[-2:])
        assert isinstance(dst["masks"], tv_tensors.Mask)
        n = dst["boxes"].shape[0]
        assert all(dst[k].shape[0] == n for k in ("labels", "masks", "area", "iscrowd"))
        # kept objects are a subset of the input's, in order, with their own fields
        kept = [src["labels"].tolist().index(v) for v in dst["labels"].tolist()]
        assert kept == sorted(kept)
        assert torch.equal(dst["area"], src["area"][kept])
    # inputs untouched, and a list of samples still gives the collated dict
    assert _references_batch()[1][0]["boxes"].tolist() == targets[0]["boxes"].tolist()
    assert isinstance(aug(list(zip(images, targets))), dict)


def test_references_format_trains_mask_rcnn_one_step() -> None:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    images, targets = _references_batch()
    aug = BatchAugment(RandomPatchAffine(degrees=20.0, p=1.0), device=None)
    images, targets = aug((images, targets))  # the one line in engine.py's loop
    model = maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=32, min_size=128, max_size=128
    )
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    losses = model(images, targets)
    assert {"loss_classifier", "loss_box_reg", "loss_mask"} <= set(losses)
    assert all(bool(torch.isfinite(v)) for v in losses.values()), losses
    # one training step, as engine.py's loop takes it
    before = model.roi_heads.mask_predictor.mask_fcn_logits.weight.detach().clone()
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    after = model.roi_heads.mask_predictor.mask_fcn_logits.weight.detach()
    assert bool(torch.isfinite(after).all()) and not torch.equal(before, after)


def test_references_keypoints_with_visibility_move_and_keep_their_visibility() -> None:
    """Keypoint R-CNN targets: keypoints [N, K, 3] (x, y, visibility)."""
    images, targets = _references_batch()
    for t in targets:
        b = t["boxes"].as_subclass(torch.Tensor)
        centre = (b[:, None, :2] + b[:, None, 2:]) / 2
        vis = torch.tensor([2.0, 0.0]).expand(b.shape[0], 2)[..., None]
        t["keypoints"] = torch.cat([centre.expand(-1, 2, 2), vis], -1)
    aug = BatchAugment(RandomPatchAffine(translate=0.2, p=1.0), device=None)
    out_images, out_targets = aug((images, targets))
    moved = 0
    for src, dst in zip(targets, out_targets):
        kp = dst["keypoints"]
        assert kp.shape == (dst["boxes"].shape[0], 2, 3)
        assert torch.equal(kp[..., 2], torch.tensor([2.0, 0.0]).expand(kp.shape[0], 2))
        moved += int((kp[..., :2] != src["keypoints"][: kp.shape[0], :, :2]).any())
    assert moved > 0


def test_collate_takes_per_object_lists_and_refuses_a_scalar() -> None:
    image = torch.zeros(3, 8, 8)
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 5.0]])
    batch = collate_objects([(image, {"boxes": boxes, "labels": [3, 4]})])
    assert torch.equal(batch["labels"], torch.tensor([3, 4]))
    with pytest.raises(ValueError, match=r"'labels' has no rows \(a int\) but the sample has 2 boxes"):
        collate_objects([(image, {"boxes": boxes, "labels": 3})])


def _same_size_references(seed: int = 5) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(3, 3, 48, 64, generator=g)
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 2.0, 60.0, 24.0]]),
         "labels": torch.tensor([1, 2]), "image_id": 0},
        {"boxes": torch.tensor([[10.0, 10.0, 40.0, 44.0]]), "labels": torch.tensor([3]), "image_id": 1},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": 2},
    ]
    return images, targets


def _seeded_affine(seed: int = 0) -> BatchAugment:
    return BatchAugment(
        RandomPatchAffine(degrees=25.0, translate=0.1, p=1.0,
                          generator=torch.Generator().manual_seed(seed)),
        device=None,
    )


def test_references_format_with_stacked_images_comes_back_stacked() -> None:
    """A stacking collate_fn gives (images [B, C, H, W], targets): the same augmentation
    as the list of its images, returned stacked."""
    images, targets = _same_size_references()
    before = images.clone()
    out_images, out_targets = _seeded_affine()((images, targets))
    want_images, want_targets = _seeded_affine()((list(images.unbind(0)), targets))
    assert isinstance(out_images, torch.Tensor) and out_images.shape == images.shape
    assert torch.equal(out_images, torch.stack(want_images))
    assert not torch.equal(out_images, images)  # it did augment
    assert torch.equal(images, before)  # the input is not modified
    assert len(out_targets) == len(targets)
    for got, want in zip(out_targets, want_targets):
        assert list(got) == list(want) and got["image_id"] == want["image_id"]
        assert torch.equal(got["boxes"], want["boxes"]) and torch.equal(got["labels"], want["labels"])


def test_references_format_with_stacked_tv_tensor_images_keeps_their_class() -> None:
    from torchvision import tv_tensors

    images, targets = _same_size_references()
    out_images, _ = _seeded_affine()((tv_tensors.Image(images), targets))
    assert type(out_images) is tv_tensors.Image and out_images.shape == images.shape


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(3, 48, 64), r"stacked batch \[B, C, H, W\], got shape \(3, 48, 64\)"),
        (torch.rand(2, 3, 48, 64), r"images has 2 images .* targets has 3 dicts"),
        (torch.rand(1, 1, 3, 48, 64), r"stacked batch \[B, C, H, W\]"),
    ],
)
def test_references_format_with_an_ambiguous_images_tensor_is_refused(images, message) -> None:
    """A 3-D tensor (one image? B grey images?) or a batch size that does not match the
    targets is an error naming ``images`` and ``targets``, not a guess."""
    _, targets = _same_size_references()
    with pytest.raises(ValueError, match=message):
        _seeded_affine()((images, targets))
