"""augpatch as torchvision.transforms.v2 transforms (real torchvision, no mocks)."""

from __future__ import annotations

import pytest
import torch

tv_tensors = pytest.importorskip("torchvision.tv_tensors")  # torchvision extra installed in CI

from PIL import Image  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

import augpatch.transforms as T  # noqa: E402
from augpatch.functional import patch_affine_matrix, transform_points  # noqa: E402
from augpatch.integrations.torchvision import (  # noqa: E402
    PatchAffine,
    PatchTransform,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
    RandomPatchVerticalFlip,
    labels_getter,
)

H, W = 40, 48
XYXY = torch.tensor([[3.0, 4.0, 19.0, 18.0], [24.0, 6.0, 42.0, 31.0], [6.0, 24.0, 20.0, 37.0]])


def _sample(dtype: torch.dtype = torch.float32, fmt: str = "XYXY") -> tuple[object, dict]:
    """A zero image with a blob at each box centre, per-instance masks, labels and keypoints."""
    image = torch.zeros(3, H, W)
    masks = torch.zeros(3, H, W, dtype=torch.uint8)
    centres = []
    for n, (x1, y1, x2, y2) in enumerate(XYXY.long().tolist()):
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        image[:, cy - 1 : cy + 2, cx - 1 : cx + 2] = 1.0
        masks[n, y1:y2, x1:x2] = n + 1
        centres.append([[cx, cy]])
    if dtype == torch.uint8:
        image = (image * 255).to(torch.uint8)
    boxes = TF.convert_bounding_box_format(XYXY.clone(), old_format="XYXY", new_format=fmt)
    target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format=fmt, canvas_size=(H, W)),
        "labels": torch.tensor([1, 2, 3]),
        "masks": tv_tensors.Mask(masks),
        "keypoints": tv_tensors.KeyPoints(
            torch.tensor(centres, dtype=torch.float32), canvas_size=(H, W)
        ),
    }
    return tv_tensors.Image(image), target


def test_compose_with_torchvision_keeps_objects_in_their_boxes() -> None:
    torch.manual_seed(0)
    pipeline = v2.Compose(
        [
            v2.RandomHorizontalFlip(p=1.0),
            RandomPatchAffine(degrees=40.0, scale=(0.8, 1.1), p=1.0),
            v2.RandomAffine(degrees=5.0),
            v2.SanitizeBoundingBoxes(),
        ]
    )
    image, target = _sample()
    out_image, out = pipeline(image, target)
    assert isinstance(out_image, tv_tensors.Image) and isinstance(out["masks"], tv_tensors.Mask)
    assert out["labels"].tolist() == [1, 2, 3]
    for n, box in enumerate(out["boxes"]):
        x1, y1, x2, y2 = box.tolist()
        x, y = out["keypoints"][n, 0].tolist()  # the blob centre, moved as a keypoint
        assert x1 - 1 <= x <= x2 and y1 - 1 <= y <= y2
        region = out_image[0, int(y1) : int(y2) + 1, int(x1) : int(x2) + 1]
        assert region.max() > 0.3
        ys, xs = torch.nonzero(out["masks"][n] == n + 1, as_tuple=True)
        assert xs.min() >= x1 - 1 and xs.max() <= x2 and ys.min() >= y1 - 1 and ys.max() <= y2


def test_sanitize_keeps_labels_masks_aligned() -> None:
    image, target = _sample(torch.uint8)
    target["boxes"] = tv_tensors.BoundingBoxes(
        torch.cat([XYXY, torch.tensor([[30.0, 34.0, 32.0, 36.0]])]),
        format="XYXY",
        canvas_size=(H, W),
    )
    target["labels"] = torch.tensor([1, 2, 3, 4])
    masks = torch.cat([target["masks"], torch.zeros(1, H, W, dtype=torch.uint8)])
    masks[3, 34:36, 30:32] = 4
    target["masks"] = tv_tensors.Mask(masks)
    del target["keypoints"]
    pipeline = v2.Compose(
        [RandomPatchScale((0.2, 0.4), p=1.0), v2.SanitizeBoundingBoxes(min_size=1.0)]
    )
    _, out = pipeline(image, target)
    assert out["labels"].tolist() == [1, 2, 3]  # the 2x2 object became smaller than a pixel
    assert out["masks"].shape[0] == 3
    for n, label in enumerate(out["labels"].tolist()):
        assert set(out["masks"][n].unique().tolist()) <= {0, label}


@pytest.mark.parametrize("fmt", ["XYXY", "XYWH", "CXCYWH"])
def test_formats_round_trip_and_metadata_are_kept(fmt: str) -> None:
    image, target = _sample(fmt=fmt)
    target["boxes"] = tv_tensors.BoundingBoxes(
        target["boxes"], format=fmt, canvas_size=(H, W), clamping_mode="hard"
    )
    t = RandomPatchAffine(degrees=30.0, scale=(0.6, 0.9), p=1.0)
    params = {
        "theta": patch_affine_matrix(XYXY, angle=25.0, scale=0.7),
        "batch_prob": torch.ones(3, dtype=torch.bool),
    }
    _, out = t(image, target, params=params)
    boxes = out["boxes"]
    assert (
        boxes.format.name == fmt and boxes.canvas_size == (H, W) and boxes.clamping_mode == "hard"
    )
    reference = T.RandomPatchAffine(degrees=1.0)(image[None], XYXY, params=params).boxes
    got = TF.convert_bounding_box_format(
        boxes.as_subclass(torch.Tensor), old_format=fmt, new_format="XYXY"
    )
    assert torch.allclose(got, reference, atol=1e-4)
    identity = RandomPatchAffine(degrees=30.0, p=0.0)
    _, same = identity(image, target)
    assert torch.equal(same["boxes"], target["boxes"])


def test_pil_images_come_back_as_pil() -> None:
    image, target = _sample(torch.uint8)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    t = RandomPatchRotation(30.0, p=1.0)
    out_pil, out_t = t(pil, target)
    assert isinstance(out_pil, Image.Image) and out_pil.mode == "RGB" and out_pil.size == (W, H)
    out_tensor, _ = t(image, target, params=t.last_params)
    assert torch.equal(TF.pil_to_tensor(out_pil), out_tensor.as_subclass(torch.Tensor))
    gray = Image.fromarray(image[0].numpy(), mode="L")
    out_gray, _ = t(gray, target, params=t.last_params)
    assert out_gray.mode == "L"


def test_replay_with_last_params_is_bit_identical() -> None:
    image, target = _sample()
    t = RandomPatchAffine(degrees=30.0, translate=0.2, scale=(0.5, 1.5), shear=10.0, p=0.7)
    first = t(image, target)
    assert {"theta", "batch_prob", "patches"} <= set(t.last_params)
    again = t(image, target, params=t.last_params)
    for key in ("boxes", "masks", "keypoints"):
        assert torch.equal(first[1][key], again[1][key])
    assert torch.equal(first[0], again[0])


def test_batched_images_with_obj_to_img_and_sanitize() -> None:
    images = tv_tensors.Image(torch.rand(2, 3, H, W))
    boxes = torch.cat([XYXY, torch.tensor([[40.0, 30.0, 42.0, 32.0]])])
    target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(H, W)),
        "labels": torch.tensor([10, 11, 12, 13]),
        "obj_to_img": torch.tensor([0, 1, 1, 0]),
    }
    pipeline = v2.Compose(
        [
            RandomPatchScale((0.3, 0.4), p=1.0),
            v2.SanitizeBoundingBoxes(
                min_size=1.0, labels_getter=labels_getter("labels", "obj_to_img")
            ),
        ]
    )
    out_images, out = pipeline(images, target)
    assert out_images.shape == images.shape
    assert out["labels"].tolist() == [10, 11, 12] and out["obj_to_img"].tolist() == [0, 1, 1]
    # each object moved in its own image only
    core = pipeline.transforms[0].core
    single = T.RandomPatchScale((0.3, 0.4))(
        images[1:2],
        boxes[1:3],
        params={"theta": core._params["theta"][1:3], "batch_prob": core._params["batch_prob"][1:3]},
    )
    # same object, same parameters: equal to float rounding (a batch of 3 and of 2 objects
    # may take different warp_patches execution paths, see its docstring)
    torch.testing.assert_close(out_images[1], single.images[0], rtol=1e-5, atol=1e-6)


def test_rotated_boxes_are_exact() -> None:
    image, target = _sample()
    t = PatchAffine(angle=30.0, rotated_format="CXCYWHR")
    _, out = t(image, target)
    boxes = out["boxes"]
    assert boxes.format.name == "CXCYWHR" and boxes.dtype == torch.float32
    wh = XYXY[:, 2:] - XYXY[:, :2]
    centre = (XYXY[:, :2] + XYXY[:, 2:]) / 2
    assert torch.allclose(boxes[:, 2:4], wh, atol=1e-4)  # not the envelope
    assert torch.allclose(boxes[:, :2], centre, atol=1e-4)
    assert torch.allclose(boxes[:, 4], torch.full((3,), 30.0), atol=1e-4)  # counter-clockwise
    # a rotated input stays rotated and turns further
    target["boxes"] = boxes
    _, twice = PatchAffine(angle=30.0)(image, target)
    assert twice["boxes"].format.name == "CXCYWHR"
    assert torch.allclose(twice["boxes"][:, 4], torch.full((3,), 60.0), atol=1e-3)
    # XYXYXYXY holds a sheared parallelogram exactly
    shear = PatchAffine(shear=(20.0, 0.0), rotated_format="XYXYXYXY")
    image, target = _sample()
    _, out = shear(image, target)
    x1, y1, x2, y2 = XYXY.unbind(-1)
    corners = torch.stack([x1, y1, x2, y1, x2, y2, x1, y2], -1).reshape(3, 4, 2)
    theta = patch_affine_matrix(XYXY, shear=(20.0, 0.0))
    expected = transform_points(corners, XYXY, theta).reshape(3, 8)
    assert torch.allclose(out["boxes"].as_subclass(torch.Tensor), expected, atol=1e-4)


def test_flips_map_pixel_index_keypoints_exactly() -> None:
    image, target = _sample()
    # keypoint on the left column of each box: a per-object flip moves it to the right column
    left = torch.stack([XYXY[:, 0], (XYXY[:, 1] + XYXY[:, 3]) / 2], -1)[:, None]
    target["keypoints"] = tv_tensors.KeyPoints(left, canvas_size=(H, W))
    _, out = RandomPatchHorizontalFlip(p=1.0)(image, target)
    assert torch.allclose(out["keypoints"][:, 0, 0], XYXY[:, 2] - 1, atol=1e-4)
    assert isinstance(out["keypoints"], tv_tensors.KeyPoints)
    # image-level points (not one group per box) move with the box that holds them
    image_level = tv_tensors.KeyPoints(
        torch.tensor([[3.0, 10.0], [45.0, 38.0]]), canvas_size=(H, W)
    )
    target["keypoints"] = image_level
    _, out = RandomPatchVerticalFlip(p=1.0)(image, target)
    expected = torch.tensor([[3.0, 4.0 + 18.0 - 1.0 - 10.0], [45.0, 38.0]])  # y1 + y2 - 1 - y
    assert torch.allclose(out["keypoints"].as_subclass(torch.Tensor), expected, atol=1e-4)


def test_semantic_masks_move_like_the_image() -> None:
    image, target = _sample(torch.uint8)
    target["masks"] = tv_tensors.Mask((image[0] > 0).to(torch.uint8))  # [H, W]: per image
    t = RandomPatchAffine(degrees=40.0, translate=0.1, p=1.0, resample="nearest")
    out_image, out = t(image, target)
    assert out["masks"].shape == (H, W)
    assert torch.equal(out["masks"].bool(), out_image[0] > 0)


def test_wrapping_any_core_transform_and_guards() -> None:
    image, target = _sample()
    seq = PatchTransform(
        T.PatchSequential(T.RandomPatchRotation(10.0, p=1.0), T.RandomPatchScale((0.8, 1.0), p=1.0))
    )
    out_image, _ = seq(image, target)
    assert out_image.shape == image.shape
    # several images in one sample get the same per-object transform
    first, second, _ = seq(image, image.clone(), target)
    assert torch.equal(first, second) and not torch.equal(first, image)
    with pytest.raises(ValueError, match="SanitizeBoundingBoxes"):
        RandomPatchAffine(degrees=10.0, drop_invalid=True)
    with pytest.raises(ValueError, match="rotated_format"):
        RandomPatchAffine(degrees=10.0, rotated_format="XYXY")
    assert torch.equal(RandomPatchAffine(degrees=10.0)(image), image)  # no boxes: nothing moves


def test_v2_contract_make_params_samples_and_transform_applies_per_input() -> None:
    """make_params samples once; transform applies them to each input alone, in any order,
    with no per-call state on the module (torchvision's own Transform.forward works too)."""
    image, target = _sample()
    t = RandomPatchAffine(degrees=30.0, scale=(0.7, 1.1), p=1.0)
    flat = [image, target["boxes"], target["masks"], target["keypoints"]]
    params = t.make_params(flat)
    assert set(params["augpatch"]) >= {"theta", "batch_prob", "patches", "angle", "scale"}
    state = dict(vars(t))
    # any order: boxes, masks and keypoints do not depend on the image having run first
    boxes = t.transform(target["boxes"], params)
    masks = t.transform(target["masks"], params)
    points = t.transform(target["keypoints"], params)
    out_image = t.transform(image, params)
    assert t.transform("a caption", params) == "a caption"  # other types pass through
    assert {k for k in vars(t) if k != "_modules"} == {k for k in state if k != "_modules"}
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and isinstance(masks, tv_tensors.Mask)
    # the same as a whole call replaying these parameters
    again_image, again = t(image, target, params=t.last_params)
    assert torch.equal(out_image, again_image)
    assert torch.equal(boxes, again["boxes"]) and torch.equal(masks, again["masks"])
    assert torch.equal(points, again["keypoints"])
    # and equal to the core on its own
    core = T.RandomPatchAffine(degrees=1.0)(
        image[None], XYXY, params={"theta": params["augpatch"]["theta"]},
        masks=target["masks"].as_subclass(torch.Tensor),
    )
    assert torch.equal(out_image, core.images[0]) and torch.equal(masks, core.masks)
    assert torch.allclose(boxes.as_subclass(torch.Tensor), core.boxes)
    # torchvision's own forward (no replay, no obj_to_img) drives the same hooks
    plain_image, plain = v2.Transform.forward(t, image, target)
    assert plain_image.shape == image.shape and plain["boxes"].shape == (3, 4)


def test_clear_errors_for_inconsistent_samples() -> None:
    image, target = _sample()
    t = RandomPatchRotation(20.0, p=1.0)
    with pytest.raises(ValueError, match="same batch size and size"):
        t(image, tv_tensors.Image(torch.rand(3, H + 2, W)), target)
    images = tv_tensors.Image(torch.rand(2, 3, H, W))
    target["obj_to_img"] = torch.tensor([0, 1, 1])
    target["masks"] = tv_tensors.Mask(torch.zeros(5, H, W))  # neither per box nor per image
    del target["keypoints"]
    with pytest.raises(ValueError, match=r"a Mask must be \[N, H, W\]"):
        t(images, target)
    del target["obj_to_img"], target["masks"]
    with pytest.raises(ValueError, match="obj_to_img is required"):
        t(images, target)
