"""augpatch as albumentations DualTransforms (real albumentations, no mocks)."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

A = pytest.importorskip("albumentations")  # the albumentations extra is installed in CI

import augpatch.integrations.albumentations as AA  # noqa: E402
from augpatch.integrations._common import CORE_CLASS_NAMES  # noqa: E402

H, W = 48, 64
PASCAL = np.array([[4.0, 6.0, 24.0, 30.0], [34.0, 8.0, 60.0, 26.0], [10.0, 34.0, 30.0, 46.0]])
LABELS = ["cat", "dog", "bird"]


def _to_format(boxes: np.ndarray, fmt: str) -> np.ndarray:
    x1, y1, x2, y2 = boxes.T
    if fmt == "pascal_voc":
        return boxes.copy()
    if fmt == "coco":
        return np.stack([x1, y1, x2 - x1, y2 - y1], 1)
    if fmt == "albumentations":
        return boxes / [W, H, W, H]
    if fmt == "yolo":
        return np.stack([(x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H], 1)
    raise ValueError(fmt)


def _from_format(boxes: np.ndarray, fmt: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    a, b, c, d = boxes.T
    if fmt == "pascal_voc":
        return boxes
    if fmt == "coco":
        return np.stack([a, b, a + c, b + d], 1)
    if fmt == "albumentations":
        return boxes * [W, H, W, H]
    return np.stack([(a - c / 2) * W, (b - d / 2) * H, (a + c / 2) * W, (b + d / 2) * H], 1)


def _blob_image() -> tuple[np.ndarray, np.ndarray]:
    """uint8 image, zeros but a 3x3 blob at each box centre; the blob centres."""
    image = np.zeros((H, W, 3), np.uint8)
    centres = []
    for x1, y1, x2, y2 in PASCAL.astype(int):
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        image[cy - 1 : cy + 2, cx - 1 : cx + 2] = 255
        centres.append([cx, cy])
    return image, np.array(centres, dtype=np.float64)


def _pipeline(fmt: str, seed: int = 7, **kwargs: object) -> A.Compose:
    return A.Compose(
        [
            A.HorizontalFlip(p=1.0),
            AA.RandomPatchAffine(degrees=30, scale=(0.7, 1.0), p=1.0, p_object=1.0, **kwargs),
            A.Affine(rotate=(-5, 5), p=1.0),
        ],
        bbox_params=A.BboxParams(format=fmt, label_fields=["labels"]),
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=seed,
    )


@pytest.mark.parametrize("fmt", ["pascal_voc", "coco", "yolo", "albumentations"])
def test_every_bbox_format_composes_with_albumentations(fmt: str) -> None:
    image, centres = _blob_image()
    out = _pipeline(fmt)(
        image=image, bboxes=_to_format(PASCAL, fmt), labels=LABELS, keypoints=centres
    )
    assert list(out["labels"]) == LABELS
    boxes = _from_format(out["bboxes"], fmt)
    reference = _pipeline("pascal_voc")(
        image=image, bboxes=PASCAL, labels=LABELS, keypoints=centres
    )
    np.testing.assert_allclose(boxes, np.asarray(reference["bboxes"]), atol=1e-3)
    for box, (x, y) in zip(boxes, np.asarray(out["keypoints"])):
        x1, y1, x2, y2 = box
        # the blob centre (a keypoint) stays inside its object's box, and so does the blob
        assert x1 - 1 <= x <= x2 + 1 and y1 - 1 <= y <= y2 + 1
        region = out["image"][int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))]
        assert region.max() > 80


def test_seeded_compose_reproduces_and_draws_only_from_its_generator() -> None:
    image, centres = _blob_image()
    kw = {"image": image, "bboxes": PASCAL, "labels": LABELS, "keypoints": centres}
    a = _pipeline("pascal_voc", seed=3)(**kw)
    np.random.seed(123)  # global state has no effect
    b = _pipeline("pascal_voc", seed=3)(**kw)
    c = _pipeline("pascal_voc", seed=4)(**kw)
    assert np.array_equal(a["image"], b["image"]) and np.allclose(a["bboxes"], b["bboxes"])
    assert not np.array_equal(a["image"], c["image"])


@pytest.mark.parametrize("name", CORE_CLASS_NAMES)
def test_every_init_argument_is_declared_and_kept(name: str) -> None:
    cls = getattr(AA, name)
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert set(params) <= set(cls.InitSchema.model_fields)
    kw = {"padding_mode": "border", "resample": "nearest", "p_object": 0.25, "p": 0.75}
    needed = {
        "RandomPatchRotation": {"degrees": 10.0},
        "RandomPatchTranslate": {"translate": 0.1},
        "RandomPatchScale": {"scale": (0.5, 0.9)},
        "RandomPatchShear": {"shear": 5.0},
    }
    t = cls(**needed.get(name, {}), **kw)
    assert (t.p, t._core.p, t._core.padding_mode, t._core.resample) == (
        0.75,
        0.25,
        "border",
        "nearest",
    )
    for key, value in needed.get(name, {}).items():
        assert getattr(t, key) == value


def test_replay_compose_and_serialisation_round_trip() -> None:
    image, centres = _blob_image()
    kw = {"image": image, "bboxes": PASCAL, "labels": LABELS, "keypoints": centres}
    replay = A.ReplayCompose(
        [AA.RandomPatchRotation(40, p=1.0, p_object=0.6, padding_mode="reflection")],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
    )
    replay.set_random_seed(11)
    first = replay(**kw)
    again = A.ReplayCompose.replay(first["replay"], **kw)
    assert np.array_equal(first["image"], again["image"])
    np.testing.assert_array_equal(first["bboxes"], again["bboxes"])
    np.testing.assert_array_equal(first["keypoints"], again["keypoints"])

    pipeline = _pipeline("coco", seed=5, padding_mode="border")
    restored = A.from_dict(json.loads(json.dumps(A.to_dict(pipeline))))
    restored.set_random_seed(5)
    kw["bboxes"] = _to_format(PASCAL, "coco")
    x, y = pipeline(**kw), restored(**kw)
    assert restored.transforms[1]._core.padding_mode == "border"
    assert np.array_equal(x["image"], y["image"]) and np.allclose(x["bboxes"], y["bboxes"])


def test_labels_masks_keypoints_stay_aligned_after_filtering() -> None:
    image = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)
    boxes = np.vstack([PASCAL, [[40.0, 36.0, 42.0, 38.0]]])  # a tiny 4th object
    labels = ["cat", "dog", "bird", "ant"]
    masks = np.zeros((4, H, W), np.uint8)
    for n, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        masks[n, y1:y2, x1:x2] = n + 1
    # keypoint of object n at its box's left column: a per-object flip sends it to the right column
    kps = np.array([[x1, (y1 + y2) / 2] for x1, y1, x2, y2 in boxes])
    pipeline = A.Compose(
        [
            AA.RandomPatchHorizontalFlip(p=1.0, p_object=1.0),
            AA.RandomPatchScale((0.1, 0.2), p=1.0, p_object=1.0),
        ],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_area=2.0),
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=0,
    )
    flip_only = A.Compose(
        pipeline.transforms[:1],
        keypoint_params=A.KeypointParams(format="xy"),
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
    )
    flipped = flip_only(image=image, bboxes=boxes, labels=labels, masks=masks, keypoints=kps)
    np.testing.assert_allclose(np.asarray(flipped["keypoints"])[:, 0], boxes[:, 2] - 1, atol=1e-4)
    for n, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        assert np.array_equal(flipped["image"][y1:y2, x1:x2], image[y1:y2, x1:x2][:, ::-1])
        assert np.array_equal(flipped["masks"][n], masks[n])  # a flipped box mask is itself

    out = pipeline(image=image, bboxes=boxes, labels=labels, masks=masks, keypoints=kps)
    assert list(out["labels"]) == ["cat", "dog", "bird"]  # the ant shrank below min_area
    assert len(out["bboxes"]) == 3 and len(out["keypoints"]) == 4
    for n, (x1, y1, x2, y2) in enumerate(np.asarray(out["bboxes"])):
        ys, xs = np.nonzero(out["masks"][n])
        assert xs.min() >= np.floor(x1) and xs.max() < np.ceil(x2)
        assert ys.min() >= np.floor(y1) and ys.max() < np.ceil(y2)


def test_keypoint_angle_and_scale_follow_the_object() -> None:
    image = np.zeros((H, W), np.float32)  # grayscale float32 image
    pipeline = A.Compose(
        [AA.PatchAffine(angle=90.0, scale=0.5)],  # PatchAffine: p_object defaults to 1
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
        keypoint_params=A.KeypointParams(format="xyas", angle_in_degrees=True),
        seed=0,
    )
    pipeline.transforms[0].p = 1.0
    box = np.array([[10.0, 10.0, 30.0, 30.0]])
    out = pipeline(image=image, bboxes=box, labels=["a"], keypoints=[[24.5, 19.5, 10.0, 2.0]])
    x, y, angle, scale = out["keypoints"][0]
    # +90 degrees counter-clockwise about (20, 20), half size: 5 px right -> 2.5 px up
    assert (x, y) == pytest.approx((19.5, 17.0), abs=1e-4)
    assert angle == pytest.approx(280.0, abs=1e-3) and scale == pytest.approx(1.0, abs=1e-4)
    assert out["image"].dtype == np.float32 and out["image"].shape == (H, W)


def test_no_boxes_means_nothing_moves() -> None:
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    out = A.Compose([AA.RandomPatchAffine(degrees=30, p=1.0, p_object=1.0)])(image=image)
    assert np.array_equal(out["image"], image)


def test_the_removed_benchmark_names_its_replacement() -> None:
    with pytest.raises(ImportError, match="augpatch.bench.adapters.albumentations_per_image"):
        from augpatch.integrations.albumentations import benchmark_against_affine  # noqa: F401
    assert not hasattr(AA, "no_such_name") and "benchmark_against_affine" not in AA.__all__
