"""augpatch inside Kornia containers (real Kornia, no mocks)."""

from __future__ import annotations

import pytest
import torch

K = pytest.importorskip("kornia.augmentation")  # the kornia extra is installed in CI

from kornia.geometry.boxes import Boxes  # noqa: E402
from kornia.geometry.keypoints import Keypoints  # noqa: E402

import augpatch.transforms as T  # noqa: E402
from augpatch.integrations.kornia import (  # noqa: E402
    PatchAffine,
    PatchAugmentationSequential,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
    RandomPatchTranslate,
    RandomPatchVerticalFlip,
)

H, W = 40, 48
# Kornia's inclusive xyxy boxes of 2 images, 2 objects each (non-overlapping)
KBOXES = torch.tensor(
    [
        [[3.0, 4.0, 18.0, 17.0], [24.0, 6.0, 41.0, 30.0]],
        [[5.0, 20.0, 22.0, 35.0], [28.0, 2.0, 44.0, 15.0]],
    ]
)


def _blobs() -> tuple[torch.Tensor, torch.Tensor]:
    """Zero images with a 3x3 bright blob at each object's centre; the blob centres (x, y)."""
    images = torch.zeros(2, 3, H, W)
    centres = torch.zeros(2, 2, 2)
    for b in range(2):
        for n in range(2):
            x1, y1, x2, y2 = KBOXES[b, n].tolist()
            cx, cy = int((x1 + x2) // 2), int((y1 + y2) // 2)
            images[b, :, cy - 1 : cy + 2, cx - 1 : cx + 2] = 1.0
            centres[b, n] = torch.tensor([cx, cy])
    return images, centres


def _inside(point: torch.Tensor, box: torch.Tensor, tol: float = 0.0) -> bool:
    x, y = point.tolist()
    x1, y1, x2, y2 = box.tolist()
    return x1 - tol <= x <= x2 + tol and y1 - tol <= y <= y2 + tol


def test_generated_classes_are_core_classes() -> None:
    for cls, core in (
        (RandomPatchAffine, T.RandomPatchAffine),
        (RandomPatchRotation, T.RandomPatchRotation),
        (RandomPatchHorizontalFlip, T.RandomPatchHorizontalFlip),
        (RandomPatchVerticalFlip, T.RandomPatchVerticalFlip),
        (PatchAffine, T.PatchAffine),
    ):
        assert issubclass(cls, core) and cls.__module__ == "augpatch.integrations.kornia"
    # called directly, an adapter is the core transform
    images, _ = _blobs()
    boxes = torch.tensor([[3.0, 4.0, 19.0, 18.0], [24.0, 6.0, 42.0, 31.0]])
    a = RandomPatchRotation(30.0, p=1.0, generator=torch.Generator().manual_seed(1))
    b = T.RandomPatchRotation(30.0, p=1.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a(images[:1], boxes).images, b(images[:1], boxes).images)


def test_composition_with_kornia_keeps_objects_in_their_boxes() -> None:
    torch.manual_seed(0)
    images, centres = _blobs()
    aug = PatchAugmentationSequential(
        K.RandomHorizontalFlip(p=1.0),
        RandomPatchAffine(degrees=40.0, scale=(0.8, 1.1), p=1.0),
        K.RandomAffine(degrees=10.0, p=1.0),
        K.ColorJitter(0.05, 0.05, p=1.0),
        data_keys=["input", "bbox_xyxy", "keypoints"],
    )
    out_img, out_boxes, out_pts = aug(images, KBOXES, centres)
    assert out_boxes.shape == KBOXES.shape and isinstance(out_pts, torch.Tensor)
    for b in range(2):
        for n in range(2):
            box = out_boxes[b, n]
            # the blob's centre (moved as a keypoint) stays inside its object's box ...
            assert _inside(out_pts[b, n], box, tol=1.0)
            # ... and so does the brightest pixel near it
            x1, y1, x2, y2 = box.round().long().tolist()
            region = out_img[b, 0, max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1]
            assert region.max() > 0.3


def test_inclusive_boxes_are_converted_exactly() -> None:
    """A per-object flip of Kornia box (x1, y1, x2, y2) mirrors exactly img[y1:y2+1, x1:x2+1]."""
    images = torch.rand(2, 3, H, W)
    aug = PatchAugmentationSequential(
        RandomPatchHorizontalFlip(p=1.0), data_keys=["input", "bbox_xyxy"]
    )
    out, boxes = aug(images, KBOXES)
    assert torch.allclose(boxes, KBOXES, atol=1e-4)  # a flip keeps the box
    expected = images.clone()
    for b in range(2):
        for n in range(2):
            x1, y1, x2, y2 = KBOXES[b, n].long().tolist()
            expected[b, :, y1 : y2 + 1, x1 : x2 + 1] = images[b, :, y1 : y2 + 1, x1 : x2 + 1].flip(
                -1
            )
    assert torch.allclose(out, expected, atol=1e-6)


def test_replay_through_container_params_is_bit_identical() -> None:
    images, centres = _blobs()
    masks = (images[:, :1] > 0).float()
    aug = PatchAugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        RandomPatchAffine(degrees=30.0, translate=0.1, scale=(0.8, 1.2), p=0.7),
        K.ColorJitter(0.1, 0.1, p=1.0),
        data_keys=["input", "bbox_xyxy", "mask", "keypoints"],
    )
    first = aug(images, KBOXES, masks, centres)
    names = [p.name for p in aug._params]
    patch_param = aug._params[names.index("RandomPatchAffine_1")].data
    assert {"theta", "batch_prob", "patches"} <= set(patch_param)
    again = aug(images, KBOXES, masks, centres, params=aug._params)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    fresh = aug(images, KBOXES, masks, centres)
    assert not all(torch.equal(a, b) for a, b in zip(first, fresh))


def test_inverse_restores_boxes_and_keypoints() -> None:
    images, centres = _blobs()
    aug = PatchAugmentationSequential(
        K.RandomHorizontalFlip(p=1.0),
        RandomPatchScale((0.5, 0.9), p=1.0),  # shrinking: nothing is cut off, the inverse is exact
        data_keys=["input", "bbox_xyxy", "keypoints"],
    )
    out_img, out_boxes, out_pts = aug(images, KBOXES, centres)
    assert not torch.allclose(out_boxes, KBOXES)
    back_img, back_boxes, back_pts = aug.inverse(out_img, out_boxes, out_pts)
    assert torch.allclose(back_boxes, KBOXES, atol=1e-3)
    assert torch.allclose(back_pts, centres, atol=1e-3)
    assert back_img.shape == images.shape

    rot = PatchAugmentationSequential(
        RandomPatchRotation(45.0, p=1.0), data_keys=["input", "keypoints", "bbox_xyxy"]
    )
    _, pts, _ = rot(images, centres + 0.25, KBOXES)
    _, back, _ = rot.inverse(images, pts, KBOXES)
    assert torch.allclose(back, centres + 0.25, atol=1e-3)  # points: exact for rotations too


def test_box_forms_come_back_in_the_same_form_and_agree() -> None:
    images = torch.rand(2, 3, H, W)
    boxes_list = [KBOXES[0], KBOXES[1][:1]]
    padded = torch.zeros(2, 2, 4)
    padded[0], padded[1, 0] = KBOXES[0], KBOXES[1, 0]
    aug = PatchAugmentationSequential(
        RandomPatchAffine(degrees=20.0, scale=(0.7, 1.0), p=1.0), data_keys=["input", "bbox_xyxy"]
    )
    out_list = aug(images, boxes_list)
    params = aug._params
    assert isinstance(out_list[1], list) and [t.shape[0] for t in out_list[1]] == [2, 1]
    out_pad = aug(images, padded, params=params)
    assert torch.equal(out_pad[0], out_list[0])
    assert torch.equal(out_pad[1][0], out_list[1][0]) and torch.equal(
        out_pad[1][1, :1], out_list[1][1]
    )
    assert torch.equal(out_pad[1][1, 1], torch.zeros(4))  # padding stays zero
    out_obj = aug(images, Boxes.from_tensor(boxes_list, mode="xyxy_plus"), params=params)
    assert isinstance(out_obj[1], Boxes)
    got = out_obj[1].to_tensor("xyxy_plus")
    assert all(torch.allclose(g, e) for g, e in zip(got, out_list[1]))


def test_zero_rows_are_padding_unless_disabled() -> None:
    images = torch.ones(1, 1, 16, 16)
    padded = torch.tensor([[[4.0, 4.0, 11.0, 11.0], [0.0, 0.0, 0.0, 0.0]]])
    shift = RandomPatchTranslate(((0.4, 0.5), (0.4, 0.5)), p=1.0)
    aug = PatchAugmentationSequential(shift, data_keys=["input", "bbox_xyxy"])
    out, boxes = aug(images, padded)
    assert aug._params[0].data["theta"].shape[0] == 1  # one object, not two
    assert out[0, 0, 0, 0] == 1.0 and torch.equal(boxes[0, 1], torch.zeros(4))
    as_box = PatchAugmentationSequential(shift, data_keys=["input", "bbox_xyxy"], box_padding=None)
    out, _ = as_box(images, padded)
    assert as_box._params[0].data["theta"].shape[0] == 2
    assert out[0, 0, 0, 0] < 1.0  # Kornia's reading: a real 1-pixel box at (0, 0)
    # zero-size rows in xywh are padding too (Kornia would reject them)
    xywh = torch.tensor([[[4.0, 4.0, 8.0, 8.0], [0.0, 0.0, 0.0, 0.0]]])
    aug_xywh = PatchAugmentationSequential(shift, data_keys=["input", "bbox_xywh"])
    _, boxes = aug_xywh(images, xywh)
    assert torch.equal(boxes[0, 1], torch.zeros(4))


def test_probability_gates_objects() -> None:
    images = torch.rand(2, 3, H, W)
    never = PatchAugmentationSequential(
        RandomPatchAffine(degrees=45.0, p=0.0), data_keys=["input", "bbox_xyxy"]
    )
    out, boxes = never(images, KBOXES)
    assert torch.equal(out, images) and torch.equal(boxes, KBOXES)
    torch.manual_seed(3)
    many = torch.tensor(
        [[[x, y, x + 4.0, y + 4.0] for x in range(0, 40, 8) for y in range(0, 32, 8)]]
    )
    half = PatchAugmentationSequential(
        RandomPatchHorizontalFlip(p=0.5), data_keys=["input", "bbox_xyxy"]
    )
    img = torch.rand(1, 1, H, W)
    out, _ = half(img, many)
    applied = half._params[0].data["batch_prob"]
    assert 0 < int(applied.sum()) < applied.numel()
    for n, flipped in enumerate(applied.tolist()):
        x1, y1, x2, y2 = many[0, n].long().tolist()
        patch = img[0, 0, y1 : y2 + 1, x1 : x2 + 1]
        expected = patch.flip(-1) if flipped else patch
        assert torch.allclose(out[0, 0, y1 : y2 + 1, x1 : x2 + 1], expected)


def test_masks_move_with_the_image() -> None:
    images, _ = _blobs()
    images = (images > 0).float()
    masks = images[:, :1].clone().to(torch.uint8)
    aug = PatchAugmentationSequential(
        K.RandomVerticalFlip(p=1.0),
        RandomPatchAffine(degrees=35.0, translate=0.1, p=1.0, resample="nearest"),
        data_keys=["input", "bbox_xyxy", "mask"],
    )
    out, out_boxes, out_mask = aug(images, KBOXES, masks)
    assert out_mask.dtype == torch.uint8
    assert torch.equal(out_mask.float(), out[:, :1])
    back, _, back_mask = aug.inverse(out, out_boxes, out_mask)
    assert back_mask.shape == masks.shape and back_mask.dtype == torch.uint8
    # the masks go back through the same path as the (nearest-resampled) images
    assert torch.equal(back_mask.float(), back[:, :1])


def test_dict_inputs_and_keypoints_objects() -> None:
    images, centres = _blobs()
    aug = PatchAugmentationSequential(RandomPatchRotation(20.0, p=1.0), data_keys=None)
    out = aug({"input": images, "bbox_xyxy": KBOXES, "keypoints": Keypoints(centres)})
    assert set(out) == {"input", "bbox_xyxy", "keypoints"}
    assert isinstance(out["keypoints"], Keypoints)


def test_clear_errors_where_boxes_cannot_reach_the_module() -> None:
    images = torch.rand(2, 3, H, W)
    plain = K.AugmentationSequential(
        RandomPatchAffine(degrees=10.0), data_keys=["input", "bbox_xyxy"]
    )
    with pytest.raises(RuntimeError, match="PatchAugmentationSequential"):
        plain(images, KBOXES)
    with pytest.raises(ValueError, match="nested"):
        PatchAugmentationSequential(K.ImageSequential(RandomPatchAffine(degrees=10.0)))
    no_boxes = PatchAugmentationSequential(RandomPatchAffine(degrees=10.0), data_keys=["input"])
    with pytest.raises(RuntimeError, match="no box key"):
        no_boxes(images)
    with pytest.raises(RuntimeError, match="image only"):
        RandomPatchAffine(degrees=10.0)(images)


def test_core_transforms_and_patch_sequential_work_in_the_container() -> None:
    images = torch.rand(2, 3, H, W)
    seq = T.PatchSequential(
        T.RandomPatchRotation(15.0, p=1.0), T.RandomPatchScale((0.8, 1.0), p=1.0)
    )
    aug = PatchAugmentationSequential(
        K.RandomHorizontalFlip(p=0.5), seq, data_keys=["input", "bbox_xyxy"]
    )
    out, boxes = aug(images, KBOXES)
    again = aug(images, KBOXES, params=aug._params)
    assert torch.equal(out, again[0]) and torch.equal(boxes, again[1])
