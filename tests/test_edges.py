"""Property-based edge cases of every public entry point (issue 22).

Batches come from ``edge_batches``: images without objects beside images with many,
boxes outside their image or inverted, 1 x 1 images, C in {1, 3, 4}, every dtype, mixed
image sizes padded by ``collate_objects``. Each entry point must either work (inputs
unchanged, pixels outside every box unchanged where it promises that, every kept box
inside its own image, per-object fields aligned) or raise its documented error.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from edge_batches import (
    DTYPES,
    PROPS,
    assert_aligned,
    assert_boxes_inside,
    assert_same_tree,
    assert_unchanged_where,
    batches,
    box_pixels,
    clone_tree,
    padding,
    samples,
)
from hypothesis import given
from hypothesis import strategies as st

import augpatch.functional as AF
from augpatch import (
    PatchAffine,
    PatchSequential,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchVerticalFlip,
)
from augpatch.data import BatchAugment, collate_objects, to_detection_inputs
from augpatch.policies import DetectionAutoAugment
from augpatch.search import PatchPolicy

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _thetas(n: int, scale: float, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.eye(2, 3, dtype=dtype).repeat(n, 1, 1) + scale * torch.randn(n, 2, 3, generator=g,
                                                                               dtype=dtype)


# --------------------------------------------------------------------------- functional


warp_options = st.fixed_dictionaries({
    "padding_mode": st.sampled_from(["zeros", "border", "reflection", "image"]),
    "align_corners": st.booleans(),
    "overlap": st.sampled_from(["sequential", "parallel"]),
})


@PROPS
@given(b=batches(), mode=st.sampled_from(["bilinear", "nearest", "bicubic"]), kw=warp_options,
       scale=st.sampled_from([0.0, 0.3, 1.0]), seed=st.integers(0, 99))
def test_warp_patches_and_masks(b, mode, kw, scale, seed):
    """warp_patches / warp_masks / warp_patches_fill: pixels outside every box unchanged,
    inputs unchanged, dtype and shape kept; masks hold only values they held."""
    images, boxes, o2i = b.images, b.boxes, b.obj_to_img
    masks = b.batch["masks"]
    n = boxes.shape[0]
    theta = _thetas(n, scale, seed)
    before = clone_tree([images, boxes, theta, o2i, masks])
    outside = ~box_pixels(boxes, o2i, images.shape)

    out = AF.warp_patches(images, boxes, theta, o2i, mode=mode, **kw)
    assert_unchanged_where(out, images, outside, "warp_patches")
    if images.is_floating_point():
        assert bool(torch.isfinite(out).all())

    fill = 7 if images.dtype == torch.uint8 else [0.5] * images.shape[1]
    kw_fill = {k: v for k, v in kw.items() if k != "padding_mode"}
    out = AF.warp_patches_fill(images, boxes, theta, o2i, fill=fill, mode=mode, **kw_fill)
    assert_unchanged_where(out, images, outside, "warp_patches_fill")

    # per-object masks [N, H, W]: mask n moves with object n only
    per_object = torch.arange(n)
    for m in (masks, masks.bool()):
        moved = AF.warp_masks(m, boxes, theta, per_object, **kw)
        assert moved.dtype == m.dtype and moved.shape == m.shape
        own = ~box_pixels(boxes, per_object, (n, 1, *m.shape[1:]))[:, 0]
        assert torch.equal(moved[own], m[own])
        assert set(moved.unique().tolist()) <= set(m.unique().tolist()) | {0}
    # per-image masks [B, H, W]
    label_map = (images[:, 0] > images[:, 0].float().mean().to(images.dtype)).to(torch.int64) * 5
    moved = AF.warp_masks(label_map, boxes, theta, o2i, **kw)
    assert_unchanged_where(moved[:, None], label_map[:, None], outside, "warp_masks")
    assert set(moved.unique().tolist()) <= {0, 5}
    assert_same_tree(before, [images, boxes, theta, o2i, masks])


@PROPS
@given(b=batches(), data=st.data())
def test_warp_errors_name_the_argument(b, data):
    """Mismatched or bad arguments raise errors naming the argument."""
    images, boxes, o2i = b.images, b.boxes, b.obj_to_img
    n = boxes.shape[0]
    theta = _thetas(n, 0.1, 0)
    case = data.draw(st.sampled_from(["theta_rows", "o2i_rows", "o2i_range", "boxes_shape", "nan"]))
    if case == "theta_rows":
        args, word = (images, boxes, _thetas(n + 1, 0.1, 0), o2i), "theta"
    elif case == "o2i_rows":
        args, word = (images, boxes, theta, torch.zeros(n + 1, dtype=torch.long)), "obj_to_img"
    elif case == "o2i_range":
        bad = o2i.clone() if n else torch.zeros(1, dtype=torch.long)
        bad[0] = images.shape[0]
        args, word = (images, boxes if n else torch.zeros(1, 4), theta if n else _thetas(1, 0, 0),
                      bad), "obj_to_img"
    elif case == "boxes_shape":
        args, word = (images, boxes[:, :3], theta, o2i), "boxes"
    else:
        bad = boxes.clone() if n else torch.zeros(1, 4)
        bad[0, 0] = float("nan")
        args, word = (images, bad, theta if n else _thetas(1, 0, 0),
                      o2i if n else torch.zeros(1, dtype=torch.long)), "boxes"
    with pytest.raises((ValueError, TypeError, IndexError), match=word):
        AF.warp_patches(*args)


# --------------------------------------------------------------------------- transforms


TRANSFORMS = {
    "RandomPatchAffine": lambda g, pm: RandomPatchAffine(
        degrees=45.0, translate=0.3, scale=(0.6, 1.5), shear=10.0, p=0.8, padding_mode=pm,
        generator=g),
    "RandomPatchHorizontalFlip": lambda g, pm: RandomPatchHorizontalFlip(p=0.7, generator=g,
                                                                         padding_mode=pm),
    "RandomPatchVerticalFlip": lambda g, pm: RandomPatchVerticalFlip(p=0.7, generator=g),
    "PatchSequential": lambda g, pm: PatchSequential(
        RandomPatchHorizontalFlip(p=0.5, generator=g),
        RandomPatchAffine(degrees=90.0, scale=(0.5, 1.2), p=1.0, padding_mode=pm, generator=g)),
    "PatchAffine": lambda g, pm: PatchAffine(angle=30.0, translate=(0.2, -0.1), scale=0.8,
                                             padding_mode=pm),
    "PatchPolicy": lambda g, pm: PatchPolicy(num_sub_policies=3, operation_count=2,
                                             padding_mode=pm, generator=g),
}


def _check_result(res, b, images, boxes, o2i, masks, keypoints, *, sizes, drop, promise_outside):
    """The checks every transform's result must pass."""
    out, out_boxes = res.images, res.boxes
    assert out.shape == images.shape and out.dtype == images.dtype
    keep = res.keep
    n = boxes.shape[0]
    assert keep.shape == (n,) and keep.dtype == torch.bool
    m = int(keep.sum()) if drop else n
    assert_aligned(m, boxes=out_boxes, obj_to_img=res.obj_to_img, masks=res.masks,
                   keypoints=res.keypoints)
    kept_o2i = res.obj_to_img
    canvas = torch.tensor([list(images.shape[-2:])] * images.shape[0])
    limits = sizes if sizes is not None else canvas
    assert_boxes_inside(out_boxes, kept_o2i, limits, None if drop else keep)
    if drop:
        assert_boxes_inside(out_boxes, kept_o2i, limits, torch.ones(m, dtype=torch.bool))
    if sizes is not None:  # the padding is neither changed
        assert_unchanged_where(out, images, padding(sizes, images.shape), "padding")
    if promise_outside:
        outside = ~box_pixels(boxes, o2i, images.shape, sizes)
        assert_unchanged_where(out, images, outside, "outside every box")
    if res.masks is not None:
        assert res.masks.shape == (m, *images.shape[-2:]) and res.masks.dtype == masks.dtype


@PROPS
@given(b=batches(), name=st.sampled_from(sorted(TRANSFORMS)),
       pm=st.sampled_from(["zeros", "border", "reflection", "image"]),
       padded=st.booleans(), drop=st.booleans(), as_list=st.booleans(), seed=st.integers(0, 99))
def test_transforms(b, name, pm, padded, drop, as_list, seed):
    """Every per-object transform on awkward batches, with masks and keypoints, padded or
    not, boxes flat or as a list."""
    images, boxes, o2i = b.images, b.boxes, b.obj_to_img
    masks, keypoints = b.batch["masks"], b.batch["keypoints"]
    aug = TRANSFORMS[name](torch.Generator().manual_seed(seed), pm)
    aug.drop_invalid = drop
    if name == "PatchSequential":
        for child in aug.children():
            child.drop_invalid = False
    sizes = b.sizes if padded else None
    before = clone_tree([images, boxes, o2i, masks, keypoints, b.sizes])
    call_boxes = AF.boxes_to_list(boxes, o2i, images.shape[0]) if as_list else boxes
    res = aug(images, call_boxes, None if as_list else o2i, masks=masks, keypoints=keypoints,
              image_sizes=sizes)
    if as_list:
        assert isinstance(res.boxes, list) and len(res.boxes) == images.shape[0]
        res = type(res)(res.images, torch.cat(res.boxes) if res.boxes else torch.zeros(0, 4),
                        masks=res.masks, keypoints=res.keypoints, keep=res.keep,
                        obj_to_img=res.obj_to_img, params=res.params)
    _check_result(res, b, images, boxes, o2i, masks, keypoints, sizes=sizes, drop=drop,
                  promise_outside=True)
    assert_same_tree(before, [images, boxes, o2i, masks, keypoints, b.sizes])
    # replay reproduces the call, and inverse runs on the result
    again = aug(images, call_boxes, None if as_list else o2i, masks=masks, keypoints=keypoints,
                image_sizes=sizes, params=aug._params)
    assert torch.equal(again.images, res.images)


@PROPS
@given(b=batches(), name=st.sampled_from([*sorted(TRANSFORMS), "DetectionAutoAugment"]),
       data=st.data())
def test_transform_errors_name_the_argument(b, name, data):
    """Mismatched targets, bad image sizes and (for the policies) float images outside
    [0, 1] raise errors naming the argument."""
    images, boxes, o2i = b.images, b.boxes, b.obj_to_img
    n = boxes.shape[0]
    if name == "DetectionAutoAugment":
        aug = DetectionAutoAugment("v3", generator=torch.Generator().manual_seed(0))
    else:
        aug = TRANSFORMS[name](torch.Generator().manual_seed(0), "zeros")
    h, w = images.shape[-2:]
    cases = ["masks", "keypoints", "image_sizes", "obj_to_img"]
    if name == "DetectionAutoAugment" and images.is_floating_point():
        cases.append("images")
    case = data.draw(st.sampled_from(cases))
    kw = {}
    if case == "images":
        images = images * 255 + 2
    if case == "masks":
        kw["masks"] = torch.zeros(n + 1, h, w)
    elif case == "keypoints":
        kw["keypoints"] = torch.zeros(n + 1, 2, 2)
    elif case == "image_sizes":
        kw["image_sizes"] = torch.tensor([[h + 1, w]] * images.shape[0])
    else:
        o2i = torch.zeros(n + 1, dtype=torch.long)
    with pytest.raises((ValueError, TypeError, IndexError), match=case):
        aug(images, boxes, o2i, **kw)


# --------------------------------------------------------------------------- policies


FLOAT_OR_BYTE = (torch.uint8, torch.float32, torch.float64, torch.float16, torch.bfloat16)


@PROPS
@given(b=batches(), policy=st.sampled_from(["v0", "v1", "v2", "v3"]), padded=st.booleans(),
       drop=st.booleans(), pm=st.sampled_from(["fill", "zeros", "border", "image"]),
       move_boxes=st.booleans(), seed=st.integers(0, 999))
def test_detection_autoaugment(b, policy, padded, drop, pm, move_boxes, seed):
    """DetectionAutoAugment v0-v3 on awkward batches: kept boxes inside their images,
    the padding unchanged, fields aligned, values in range, inputs unchanged."""
    images, boxes, o2i = b.images, b.boxes, b.obj_to_img
    masks, keypoints = b.batch["masks"], b.batch["keypoints"]
    aug = DetectionAutoAugment(policy, generator=torch.Generator().manual_seed(seed),
                               drop_invalid=drop, padding_mode=pm, move_boxes=move_boxes)
    sizes = b.sizes if padded else None
    before = clone_tree([images, boxes, o2i, masks, keypoints])
    # every sub-policy in turn (the draws pick one per image)
    for _ in range(3):
        res = aug(images, boxes, o2i, masks=masks, keypoints=keypoints, image_sizes=sizes)
        _check_result(res, b, images, boxes, o2i, masks, keypoints, sizes=sizes, drop=drop,
                      promise_outside=False)
        if images.is_floating_point():
            assert bool((res.images >= 0).all() and (res.images <= 1).all())
    assert_same_tree(before, [images, boxes, o2i, masks, keypoints])


# --------------------------------------------------------------------------- data


@PROPS
@given(s=samples(), name=st.sampled_from(["v3", "affine", "flip"]), seed=st.integers(0, 99))
def test_batch_augment_and_detection_inputs(s, name, seed):
    """collate_objects -> BatchAugment -> to_detection_inputs, and the references'
    (images, targets) format: every key back, aligned, inside its image."""
    samples_, dtype = s
    g = torch.Generator().manual_seed(seed)
    core = {
        "v3": lambda: DetectionAutoAugment("v3", generator=g),
        "affine": lambda: RandomPatchAffine(degrees=60.0, translate=0.4, p=1.0, generator=g,
                                            padding_mode="image"),
        "flip": lambda: RandomPatchHorizontalFlip(p=1.0, generator=g, drop_invalid=True),
    }[name]()
    before = clone_tree(samples_)
    aug = BatchAugment(core, device=None)
    out = aug(samples_)
    batch = collate_objects(samples_)
    n = out["boxes"].shape[0]
    assert_aligned(n, obj_to_img=out["obj_to_img"], labels=out["labels"], masks=out["masks"],
                   keypoints=out["keypoints"], keep=out["keep"])
    assert_boxes_inside(out["boxes"], out["obj_to_img"], batch["image_sizes"], out["keep"])
    assert_unchanged_where(out["images"], batch["images"],
                           padding(batch["image_sizes"], batch["images"].shape), "padding")
    images, targets = to_detection_inputs(out, dtype=None)
    _check_detection_targets(images, targets, samples_, dtype)

    # the references' format
    ref_images = [im for im, _ in samples_]
    ref_targets = [t for _, t in samples_]
    images, targets = aug((ref_images, ref_targets))
    _check_detection_targets(images, targets, samples_, dtype)
    for t, src in zip(targets, ref_targets):
        assert list(t) == list(src)
        assert t["image_id"] == src["image_id"]
    assert_same_tree(before, samples_)


def _check_detection_targets(images, targets, samples_, dtype):
    assert len(images) == len(targets) == len(samples_)
    for im, t, (src, _) in zip(images, targets, samples_):
        assert im.shape == src.shape and im.dtype == dtype
        h, w = im.shape[-2:]
        n = t["boxes"].shape[0]
        assert_aligned(n, labels=t["labels"], masks=t["masks"], keypoints=t["keypoints"])
        assert t["masks"].shape[-2:] == (h, w)
        sizes = torch.tensor([[h, w]])
        assert_boxes_inside(t["boxes"], torch.zeros(n, dtype=torch.long), sizes,
                            torch.ones(n, dtype=torch.bool))
        assert bool(t["masks"].flatten(1).any(1).all()), "a kept mask is empty"


@PROPS
@given(s=samples(max_images=2), data=st.data())
def test_collate_refuses_mismatched_targets(s, data):
    samples_, _ = s
    i = data.draw(st.integers(0, len(samples_) - 1))
    key = data.draw(st.sampled_from(["labels", "masks", "keypoints"]))
    bad = [(im, dict(t)) for im, t in samples_]
    t = bad[i][1]
    t[key] = torch.cat([t[key], t[key][:1] if t[key].shape[0] else torch.zeros(1, *t[key].shape[1:],
                                                                                dtype=t[key].dtype)])
    with pytest.raises(ValueError, match=key):
        collate_objects(bad)


# --------------------------------------------------------------------------- adapters


@PROPS
@given(s=samples(max_images=1),
       name=st.sampled_from(["RandomPatchAffine", "RandomPatchHorizontalFlip", "DetectionAutoAugment"]),
       seed=st.integers(0, 99))
def test_torchvision_adapters(s, name, seed):
    """The v2 adapters on one sample: BoundingBoxes (maybe none), Mask, labels."""
    from torchvision import tv_tensors

    import augpatch.integrations.torchvision as tvp

    (image, target), = s[0]
    h, w = image.shape[-2:]
    sample = (tv_tensors.Image(image), {
        "boxes": tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(h, w)),
        "masks": tv_tensors.Mask(target["masks"]),
        "labels": target["labels"],
    })
    before = clone_tree(sample)
    torch.manual_seed(seed)
    kw = {"p": 1.0} if name != "DetectionAutoAugment" else {"policy": "v3"}
    t = getattr(tvp, name)(**kw)
    out_image, out_target = t(*sample)
    assert out_image.shape == image.shape and out_image.dtype == image.dtype
    n = target["boxes"].shape[0]
    assert_aligned(n, boxes=out_target["boxes"], masks=out_target["masks"],
                   labels=out_target["labels"])
    assert isinstance(out_target["boxes"], tv_tensors.BoundingBoxes)
    assert tuple(out_target["boxes"].canvas_size) == (h, w)
    out_boxes = out_target["boxes"].as_subclass(torch.Tensor)
    assert_boxes_inside(out_boxes, torch.zeros(n, dtype=torch.long), torch.tensor([[h, w]]))
    assert_same_tree(before, sample)


@PROPS
@given(s=samples(dtypes=(torch.uint8, torch.float32), channels=(1, 3), max_images=1),
       seed=st.integers(0, 99))
def test_albumentations_adapter(s, seed):
    """The albumentations adapter in A.Compose: bboxes of the image (albumentations
    validates them itself, so the degenerate and inverted ones are left out here)."""
    import albumentations as A

    from augpatch.integrations.albumentations import RandomPatchAffine as ARandomPatchAffine

    (image, target), = s[0]
    h, w = image.shape[-2:]
    arr = image.permute(1, 2, 0).numpy().copy()
    boxes = AF.clip_boxes(target["boxes"], (h, w))
    ok = ((boxes[:, 2] - boxes[:, 0]) > 0) & ((boxes[:, 3] - boxes[:, 1]) > 0)
    boxes, labels = boxes[ok].tolist(), target["labels"][ok].tolist()
    mask = (arr[..., 0] > arr[..., 0].mean()).astype(np.uint8)
    pipe = A.Compose([ARandomPatchAffine(degrees=45.0, translate=0.3, p=1.0, p_object=1.0)],
                     bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
                     seed=seed)
    before = (arr.copy(), mask.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pipe(image=arr, mask=mask, bboxes=boxes, labels=labels)
    assert out["image"].shape == arr.shape and out["image"].dtype == arr.dtype
    assert out["mask"].shape == mask.shape and set(np.unique(out["mask"])) <= {0, 1}
    assert len(out["bboxes"]) == len(out["labels"])
    for x1, y1, x2, y2 in np.asarray(out["bboxes"]).reshape(-1, 4).tolist():
        assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
    assert np.array_equal(before[0], arr) and np.array_equal(before[1], mask)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_is_taken_by_every_transform(dtype):
    """A fixed batch of each dtype through every entry point (the properties above draw
    dtypes at random; this makes sure each one is seen)."""
    g = torch.Generator().manual_seed(0)
    images = (torch.randint(0, 256, (2, 3, 9, 7), generator=g, dtype=torch.uint8)
              if dtype == torch.uint8 else torch.rand(2, 3, 9, 7, generator=g).to(dtype))
    boxes = torch.tensor([[1.0, 1.0, 6.0, 8.0], [0.0, 0.0, 7.0, 9.0], [5.0, 2.0, 3.0, 4.0]])
    o2i = torch.tensor([0, 1, 1])
    for name, make in TRANSFORMS.items():
        res = make(torch.Generator().manual_seed(1), "zeros")(images, boxes, o2i)
        assert res.images.dtype == dtype, name
    res = DetectionAutoAugment("v3")(images, boxes, o2i)
    assert res.images.dtype == dtype
