"""torchvision v2 adapters: placement warning, samples without objects, masks of another size."""

from __future__ import annotations

import warnings

import pytest
import torch

tv_tensors = pytest.importorskip("torchvision.tv_tensors")

from torchvision.transforms import v2  # noqa: E402

from augpatch.integrations.torchvision import (  # noqa: E402
    DetectionAutoAugment,
    RandomPatchAffine,
)

H, W = 40, 48


def _sample(n: int = 2) -> tuple:
    image = tv_tensors.Image(torch.randint(0, 256, (3, H, W), dtype=torch.uint8))
    boxes = torch.tensor([[3.0, 4.0, 19.0, 18.0], [24.0, 6.0, 42.0, 31.0]])[:n]
    target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(H, W)),
        "labels": torch.arange(n),
        "masks": tv_tensors.Mask(torch.zeros(n, H, W, dtype=torch.uint8)),
    }
    return image, target


def test_after_to_pure_tensor_warns_once_what_it_found_and_where_to_go() -> None:
    t = RandomPatchAffine(degrees=30.0, p=1.0)
    pipeline = v2.Compose([v2.ToPureTensor(), t])
    image, target = _sample()
    with pytest.warns(UserWarning) as record:
        out_image, out_target = pipeline(image, target)
    message = str(record[0].message)
    assert "no tv_tensors.BoundingBoxes" in message
    assert "plain Tensor of shape (2, 4)" in message
    assert "before v2.ToPureTensor()" in message and "did nothing" in message
    assert torch.equal(out_image, image.as_subclass(torch.Tensor))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per transform instance
        pipeline(image, target)
    # in the right place: no warning, and the objects move
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moved, _ = v2.Compose([RandomPatchAffine(degrees=30.0, p=1.0), v2.ToPureTensor()])(
            image, target
        )
    assert not torch.equal(moved, image.as_subclass(torch.Tensor))


def test_detection_autoaugment_after_to_pure_tensor_says_only_image_ops_ran() -> None:
    image, target = _sample()
    with pytest.warns(UserWarning, match="ran its image-level ops only"):
        v2.Compose([v2.ToPureTensor(), DetectionAutoAugment("v1")])(image, target)


def _image_ops_policy() -> list:
    return [[("Equalize", 1.0, 10), ("Rotate_BBox", 1.0, 10)]]


@pytest.mark.parametrize("kind", ["image only", "target without boxes", "empty boxes"])
def test_detection_autoaugment_runs_image_ops_without_objects(kind: str) -> None:
    image, target = _sample()
    if kind == "image only":
        sample = image
    elif kind == "target without boxes":
        sample = (image, {"labels": torch.zeros(0, dtype=torch.long)})
    else:
        sample = (image, _sample(0)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no boxes key or real BoundingBoxes: no warning
        out = DetectionAutoAugment(_image_ops_policy())(sample)
    out_image = out if kind == "image only" else out[0]
    assert out_image.shape == image.shape
    assert not torch.equal(out_image, image)  # equalized and rotated


def test_detection_autoaugment_keypoints_with_no_objects() -> None:
    image, target = _sample(0)
    target["keypoints"] = tv_tensors.KeyPoints(torch.zeros(0, 1, 2), canvas_size=(H, W))
    out_image, out_target = DetectionAutoAugment(_image_ops_policy())(image, target)
    assert out_target["keypoints"].shape == (0, 1, 2)
    assert not torch.equal(out_image, image)


@pytest.mark.parametrize("make", [lambda: RandomPatchAffine(degrees=30.0, p=1.0),
                                  lambda: DetectionAutoAugment("v1")])
def test_a_mask_of_another_size_is_refused_naming_both_sizes(make) -> None:
    image, target = _sample()
    target["masks"] = tv_tensors.Mask(torch.zeros(2, H + 8, W, dtype=torch.uint8))
    with pytest.raises(ValueError, match="Mask") as info:
        make()(image, target)
    assert f"{(H + 8, W)}" in str(info.value) and f"{(H, W)}" in str(info.value)
