"""Tests of the per-object augmentation modules (augpatch.transforms)."""

from __future__ import annotations

import io
import json

import pytest
import torch

import augpatch
import augpatch.functional as F
from augpatch.transforms import (
    PatchAffine,
    PatchAugmentationBase,
    PatchResult,
    PatchSequential,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
    RandomPatchShear,
    RandomPatchTranslate,
    RandomPatchVerticalFlip,
    params_from_json,
    params_to_dict,
    params_to_json,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(seed: int = 0):
    """2 images 3x40x48, 5 non-overlapping boxes (one partly outside the canvas)."""
    g = _gen(seed)
    images = torch.rand(2, 3, 40, 48, generator=g)
    boxes = torch.tensor(
        [[2, 3, 18, 15], [20, 4, 44, 30], [1, 20, 15, 38], [5, 5, 25, 25], [30, 28, 60, 50]]
    )
    obj_to_img = torch.tensor([0, 0, 0, 1, 1])
    return images, boxes, obj_to_img


def _full_affine(**kw):
    kw.setdefault("p", 0.7)
    kw.setdefault("generator", _gen(1))
    return RandomPatchAffine(
        degrees=25, translate=(0.2, 0.1), scale=(0.7, 1.2), shear=(-10, 10, -5, 5), **kw
    )


def _assert_same(a: PatchResult, b: PatchResult) -> None:
    assert torch.equal(a.images, b.images)
    if isinstance(a.boxes, list):
        assert all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes))
    else:
        assert torch.equal(a.boxes, b.boxes)
    for name in ("masks", "image_masks", "keypoints", "keep"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or torch.equal(x, y), name


# --------------------------------------------------------------------------- exports / contract


def test_exported_from_package_and_result_unpacks():
    for name in ("RandomPatchAffine", "PatchSequential", "PatchAffine", "params_to_json"):
        assert getattr(augpatch, name) is getattr(augpatch.transforms, name)
    images, boxes, o2i = _data()
    res = RandomPatchRotation(10, p=1.0)(images, boxes, o2i)
    assert isinstance(res, tuple) and len(res) == 2
    out, new_boxes = res
    assert out is res.images and new_boxes is res.boxes
    assert res.masks is None and res.keypoints is None and res.image_masks is None
    assert res.keep.dtype == torch.bool and res.keep.shape == (5,)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert new_boxes.shape == (5, 4) and new_boxes.is_floating_point()


def test_params_contents():
    images, boxes, o2i = _data()
    aug = _full_affine()
    aug(images, boxes, o2i)
    p = aug._params
    assert p["theta"].shape == (5, 2, 3) and p["batch_prob"].dtype == torch.bool
    assert p["patches"].shape == (5, 4) and torch.equal(p["obj_to_img"], o2i)
    assert torch.equal(p["patches"], F.clip_boxes(boxes.float(), (40, 48)))
    assert p["angle"].shape == (5,) and p["translate"].shape == (5, 2)
    assert p["scale"].shape == (5, 2) and p["shear"].shape == (5, 2)
    assert all(not v.requires_grad for v in p.values())
    # the applied theta is the matrix of the human parameters where drawn, identity elsewhere
    wh = p["patches"][:, 2:] - p["patches"][:, :2]
    expected = F.patch_affine_matrix(
        p["patches"], p["angle"], p["translate"] * wh, p["scale"], p["shear"]
    )
    eye = torch.eye(2, 3).expand(5, 2, 3)
    bp = p["batch_prob"]
    assert torch.equal(p["theta"][bp], expected[bp])
    assert torch.equal(p["theta"][~bp], eye[~bp])
    assert 0 < int(bp.sum()) < 5  # this seed mixes applied and skipped objects


def test_human_parameters_within_ranges():
    boxes = torch.tensor([[0, 0, 8, 8]]).repeat(500, 1)
    aug = RandomPatchAffine(
        degrees=(5, 25),
        translate=((0.1, 0.2), (-0.3, -0.2)),
        scale=(0.5, 0.6, 1.5, 2.0),
        shear=(3, 4),
        p=1.0,
        generator=_gen(3),
    )
    p = aug.forward_parameters((1, 1, 8, 8), boxes)
    assert p["angle"].min() >= 5 and p["angle"].max() <= 25
    assert p["translate"][:, 0].min() >= 0.1 and p["translate"][:, 0].max() <= 0.2
    assert p["translate"][:, 1].min() >= -0.3 and p["translate"][:, 1].max() <= -0.2
    assert p["scale"][:, 0].min() >= 0.5 and p["scale"][:, 0].max() <= 0.6
    assert p["scale"][:, 1].min() >= 1.5 and p["scale"][:, 1].max() <= 2.0
    assert p["shear"][:, 0].min() >= 3 and p["shear"][:, 0].max() <= 4
    assert torch.equal(p["shear"][:, 1], torch.zeros(500))
    # a single number is a symmetric range; a number for scale is (1 - s, 1 + s)
    q = RandomPatchAffine(degrees=10, scale=0.25, p=1.0, generator=_gen(4)).forward_parameters(
        (1, 1, 8, 8), boxes
    )
    assert q["angle"].min() < -5 and q["angle"].max() > 5 and q["angle"].abs().max() <= 10
    assert q["scale"].min() >= 0.75 and q["scale"].max() <= 1.25
    assert torch.equal(q["scale"][:, 0], q["scale"][:, 1])  # isotropic


# --------------------------------------------------------------------------- replay


def test_replay_is_bit_identical_with_masks_and_keypoints():
    images, boxes, o2i = _data()
    masks = torch.rand(5, 40, 48, generator=_gen(5)) > 0.5
    image_masks = torch.randint(0, 7, (2, 1, 40, 48), generator=_gen(6))
    kps = torch.rand(5, 3, 2, generator=_gen(7)) * 40
    aug = _full_affine()
    first = aug(images, boxes, o2i, masks=masks, image_masks=image_masks, keypoints=kps)
    params = aug._params
    assert not torch.equal(first.images, images)

    # a fresh draw differs ...
    other = aug(images, boxes, o2i, masks=masks, image_masks=image_masks, keypoints=kps)
    assert not torch.equal(other.images, first.images)
    # ... the replay does not, also on copies of the inputs
    again = aug(
        images.clone(),
        boxes.clone(),
        o2i.clone(),
        masks=masks.clone(),
        image_masks=image_masks.clone(),
        keypoints=kps.clone(),
        params=params,
    )
    _assert_same(first, again)
    assert first.masks.dtype == torch.bool and first.image_masks.dtype == image_masks.dtype

    # through torch.save / torch.load
    buf = io.BytesIO()
    torch.save(params, buf)
    buf.seek(0)
    loaded = torch.load(buf)
    _assert_same(
        first,
        aug(images, boxes, o2i, masks=masks, image_masks=image_masks, keypoints=kps, params=loaded),
    )

    # through plain JSON (exact float round trip)
    text = params_to_json(params)
    decoded = params_from_json(json.loads(json.dumps(json.loads(text))))
    for k, v in params.items():
        assert decoded[k].dtype == v.dtype and torch.equal(decoded[k], v), k
    _assert_same(
        first,
        aug(
            images, boxes, o2i, masks=masks, image_masks=image_masks, keypoints=kps, params=decoded
        ),
    )

    # a new module of the same class with hand-made params (no theta): recomputed, same bits
    human = {k: params[k] for k in ("angle", "translate", "scale", "shear", "batch_prob")}
    _assert_same(
        first,
        _full_affine()(
            images, boxes, o2i, masks=masks, image_masks=image_masks, keypoints=kps, params=human
        ),
    )


def test_json_float_round_trip_is_exact_for_all_dtypes():
    params = {
        "a": torch.tensor([0.1, -1e-30, 3.4e38, float("inf")], dtype=torch.float32),
        "b": torch.tensor([[1 / 3, 2.0**-1070]], dtype=torch.float64),
        "c": torch.tensor([0.1, 65504.0], dtype=torch.float16),
        "d": torch.tensor([0.1], dtype=torch.bfloat16),
        "e": torch.tensor([True, False]),
        "f": torch.tensor([2**40, -3]),
        "g": torch.zeros(0, 2, 3),
    }
    back = params_from_json(params_to_json(params))
    for k, v in params.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert torch.equal(back[k], v), k
    assert params_to_dict(params)["format"] == "augpatch.params"
    with pytest.raises(ValueError):
        params_from_json('{"something": 1}')
    with pytest.raises(TypeError):
        params_to_json({"x": 1.0})


def test_replay_params_are_validated():
    images, boxes, o2i = _data()
    aug = RandomPatchRotation(10, p=1.0)
    aug(images, boxes, o2i)
    with pytest.raises(ValueError, match="objects"):
        aug(images, boxes[:3], o2i[:3], params=aug._params)
    with pytest.raises(ValueError, match="rows"):
        aug(images, boxes[:3], o2i[:3], params={"theta": aug._params["theta"]})
    with pytest.raises(TypeError):
        aug(images, boxes, o2i, params=[1, 2])


# --------------------------------------------------------------------------- randomness


def test_generators_reproduce_and_differ():
    images, boxes, o2i = _data()
    a = _full_affine(generator=_gen(11))
    b = _full_affine(generator=_gen(11))
    c = _full_affine(generator=_gen(12))
    ra, rb, rc = a(images, boxes, o2i), b(images, boxes, o2i), c(images, boxes, o2i)
    _assert_same(ra, rb)
    for k in a._params:
        assert torch.equal(a._params[k], b._params[k]), k
    assert not torch.equal(a._params["angle"], c._params["angle"])
    assert not torch.equal(ra.images, rc.images)
    # the private generator does not touch the global RNG
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _full_affine(generator=_gen(11))(images, boxes, o2i)
    assert torch.equal(torch.rand(3), expected)


def test_global_rng_without_generator():
    images, boxes, o2i = _data()
    aug = RandomPatchAffine(degrees=30, scale=(0.8, 1.2), p=0.5)
    torch.manual_seed(123)
    first = aug(images, boxes, o2i)
    p1 = aug._params
    torch.manual_seed(123)
    second = aug(images, boxes, o2i)
    _assert_same(first, second)
    assert torch.equal(p1["angle"], aug._params["angle"])


def test_p0_identity_and_p1_transforms_every_object():
    images, boxes, o2i = _data()
    boxes_in = boxes[:4]
    kps = torch.rand(4, 2, 2) * 30
    masks = torch.rand(4, 40, 48) > 0.5
    res = RandomPatchRotation((10, 20), p=0.0)(
        images, boxes_in, o2i[:4], masks=masks, keypoints=kps
    )
    assert torch.equal(res.images, images) and res.images is not images
    assert torch.equal(res.boxes, boxes_in.float())
    assert torch.equal(res.keypoints, kps) and torch.equal(res.masks, masks)
    assert res.keep.all()

    aug = RandomPatchRotation((10, 20), p=1.0)
    res = aug(images, boxes_in, o2i[:4])
    assert aug._params["batch_prob"].all()
    eye = torch.eye(2, 3)
    for n in range(4):
        assert not torch.allclose(aug._params["theta"][n], eye)
        x1, y1, x2, y2 = boxes_in[n].tolist()
        b = o2i[n]
        assert not torch.allclose(res.images[b, :, y1:y2, x1:x2], images[b, :, y1:y2, x1:x2])


def test_p_half_transforms_about_half_of_10000_objects():
    # 10,000 one-pixel boxes in one 100x100 image: cheap, and each flip of a single pixel
    # must leave the image unchanged
    ys, xs = torch.meshgrid(torch.arange(100), torch.arange(100), indexing="ij")
    boxes = torch.stack((xs, ys, xs + 1, ys + 1), -1).reshape(-1, 4)
    images = torch.rand(1, 1, 100, 100, generator=_gen(0))
    aug = RandomPatchHorizontalFlip(p=0.5, generator=_gen(2), overlap="parallel")
    res = aug(images, boxes)
    bp = aug._params["batch_prob"]
    frac = bp.float().mean().item()
    assert 0.47 < frac < 0.53  # 6 standard deviations
    flip = torch.tensor([[-1.0, 0, 0], [0, 1, 0]])
    assert torch.equal(aug._params["theta"][bp], flip.expand(int(bp.sum()), 2, 3))
    assert torch.equal(aug._params["theta"][~bp], torch.eye(2, 3).expand(int((~bp).sum()), 2, 3))
    assert torch.allclose(res.images, images)
    assert torch.allclose(res.boxes, boxes.float())


def test_same_on_batch_and_same_on_image_share_draws():
    images, boxes, o2i = _data()
    aug = RandomPatchAffine(
        degrees=30, translate=0.2, scale=(0.5, 1.5), p=0.5, same_on_batch=True, generator=_gen(0)
    )
    for _ in range(4):  # the p coin is shared too: all or nothing
        aug(images, boxes, o2i)
        p = aug._params
        assert p["batch_prob"].all() or not p["batch_prob"].any()
        for k in ("angle", "translate", "scale", "shear"):
            assert torch.equal(p[k], p[k][:1].expand_as(p[k])), k

    aug = RandomPatchAffine(degrees=30, translate=0.2, p=1.0, same_on_image=True, generator=_gen(0))
    o2i_mixed = torch.tensor([1, 0, 1, 0, 1])  # not sorted
    aug(images, boxes, o2i_mixed)
    p = aug._params
    for k in ("angle", "translate"):
        v = p[k]
        assert torch.equal(v[0], v[2]) and torch.equal(v[0], v[4]) and torch.equal(v[1], v[3])
        assert not torch.equal(v[0], v[1])
    # relative sharing: the same fraction of each box, so same-size boxes get the same theta
    same = torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30], [0, 20, 10, 30]])
    aug(images, same, torch.tensor([0, 0, 1]))
    th = aug._params["theta"]
    assert torch.allclose(th[0], th[1], atol=1e-6) and not torch.allclose(th[0], th[2])

    # independent draws by default
    aug = RandomPatchAffine(degrees=30, p=1.0, generator=_gen(0))
    aug(images, boxes, o2i)
    assert aug._params["angle"].unique().numel() == 5


# --------------------------------------------------------------------------- geometry


def test_flips_and_rotation_match_tensor_ops():
    img = torch.rand(1, 2, 12, 16, generator=_gen(0))
    box = torch.tensor([[2, 3, 10, 11]])  # 8 x 8
    crop = img[0, :, 3:11, 2:10]
    out = RandomPatchHorizontalFlip(p=1.0)(img, box).images
    assert torch.allclose(out[0, :, 3:11, 2:10], crop.flip(-1), atol=1e-6)
    out = RandomPatchVerticalFlip(p=1.0)(img, box).images
    assert torch.allclose(out[0, :, 3:11, 2:10], crop.flip(-2), atol=1e-6)
    # +90 degrees is counter-clockwise on screen, like torch.rot90 on (H, W)
    out = RandomPatchRotation((90, 90), p=1.0)(img, box).images
    assert torch.allclose(out[0, :, 3:11, 2:10], torch.rot90(crop, 1, (1, 2)), atol=1e-5)
    outside = torch.ones_like(img, dtype=torch.bool)
    outside[..., 3:11, 2:10] = False
    assert torch.equal(out[outside], img[outside])


def test_translate_is_a_fraction_of_the_box():
    img = torch.zeros(1, 1, 20, 40)
    img[0, 0, 5, 10] = 1.0
    boxes = torch.tensor([[0, 0, 40, 20]])  # 40 wide, 20 high
    aug = RandomPatchTranslate(((0.25, 0.25), (0.5, 0.5)), p=1.0, resample="nearest")
    res = aug(img, boxes, keypoints=torch.tensor([[[10.5, 5.5]]]))
    assert res.images[0, 0, 15, 20] == 1.0 and res.images.sum() == 1.0  # +10 px, +10 px
    assert torch.allclose(res.keypoints, torch.tensor([[[20.5, 15.5]]]))
    assert torch.allclose(res.boxes, torch.tensor([[10.0, 10.0, 40.0, 20.0]]))  # cut at the patch


def test_keep_reports_objects_that_left_their_patch_and_drop_invalid():
    images, boxes, o2i = _data()
    boxes = boxes[:3]
    o2i = o2i[:3]
    aug = RandomPatchTranslate(((1.0, 1.0), (0.0, 0.0)), p=1.0)  # exactly one box width
    res = aug(images, boxes, o2i, keypoints=torch.zeros(3, 1, 2))
    assert not res.keep.any()
    assert torch.isfinite(res.boxes).all()
    widths = res.boxes[:, 2] - res.boxes[:, 0]
    assert widths.abs().max() < 1e-4

    mixed = torch.tensor([[2, 3, 18, 15], [60, 4, 70, 30], [1, 20, 15, 38]])  # #1 off-canvas
    aug = RandomPatchRotation(5, p=1.0, drop_invalid=True)
    masks = torch.zeros(3, 40, 48)
    res = aug(images, mixed, o2i, masks=masks, keypoints=torch.zeros(3, 2, 2))
    assert res.keep.tolist() == [True, False, True]
    assert res.boxes.shape == (2, 4) and res.masks.shape[0] == 2 and res.keypoints.shape[0] == 2
    assert res.obj_to_img.tolist() == [0, 0]
    # list form with dropping: per-image lists hold the kept boxes only
    res = aug(images, [mixed[:2], mixed[2:]])
    assert [b.shape[0] for b in res.boxes] == [1, 1]


def test_list_boxes_come_back_as_a_list():
    images, boxes, o2i = _data()
    as_list = [boxes[:3], boxes[3:]]
    aug = _full_affine()
    res = aug(images, as_list)
    assert isinstance(res.boxes, list) and [b.shape for b in res.boxes] == [(3, 4), (2, 4)]
    flat = aug(images, boxes, o2i, params=aug._params)
    assert torch.equal(flat.images, res.images)
    assert torch.equal(torch.cat(res.boxes), flat.boxes)
    back = aug.inverse(res.images, res.boxes)
    assert isinstance(back.boxes, list) and len(back.boxes) == 2
    with pytest.raises(ValueError, match="obj_to_img"):
        aug(images, as_list, o2i)
    with pytest.raises(ValueError, match="obj_to_img"):
        aug(images, boxes)  # B == 2 needs obj_to_img


def test_uint8_and_float64_images():
    images, boxes, o2i = _data()
    u8 = (images * 255).round().to(torch.uint8)
    aug = RandomPatchRotation(20, p=1.0, generator=_gen(0))
    res = aug(u8, boxes, o2i)
    assert res.images.dtype == torch.uint8 and res.boxes.dtype == torch.float32
    res64 = aug(images.double(), boxes, o2i)
    assert res64.images.dtype == torch.float64 and res64.boxes.dtype == torch.float64
    assert aug._params["theta"].dtype == torch.float64


# --------------------------------------------------------------------------- masks / keypoints


def test_masks_keypoints_and_image_masks_follow_the_image():
    img = torch.zeros(1, 1, 30, 40)
    boxes = torch.tensor([[2, 2, 18, 18], [20, 5, 36, 21]])  # two 16x16 boxes
    marks = [(6, 13), (15, 24)]  # (row, col) of one marked pixel per object
    masks = torch.zeros(2, 30, 40, dtype=torch.bool)
    for n, (i, j) in enumerate(marks):
        img[0, 0, i, j] = n + 1.0
        masks[n, i, j] = True
    masks[0, 15, 24] = True  # object 0's mask, inside object 1's box: must not move
    kps = torch.tensor([[[13.5, 6.5]], [[24.5, 15.5]]])
    image_masks = (img > 0).to(torch.uint8)
    for aug in (
        RandomPatchRotation((90, 90), p=1.0, resample="nearest"),
        RandomPatchRotation((-90, -90), p=1.0, resample="nearest"),
        RandomPatchHorizontalFlip(p=1.0, resample="nearest"),
        PatchSequential(
            RandomPatchVerticalFlip(p=1.0), RandomPatchRotation((90, 90), p=1.0), resample="nearest"
        ),
        RandomPatchTranslate(((0.25, 0.25), (-0.125, -0.125)), p=1.0, resample="nearest"),
    ):
        res = aug(img, boxes, masks=masks, image_masks=image_masks, keypoints=kps)
        for n in range(2):
            where = (res.images[0, 0] == n + 1).nonzero()
            assert where.shape[0] == 1, aug
            i, j = where[0].tolist()
            x, y = res.keypoints[n, 0].tolist()
            assert (int(y), int(x)) == (i, j), aug  # the keypoint sits on the marked pixel
            assert res.masks[n, i, j]
        assert res.masks[0, 15, 24]  # untouched by object 1's warp
        assert res.masks.sum() == 3 and res.masks.dtype == torch.bool
        assert torch.equal(res.image_masks, (res.images > 0).to(torch.uint8))


def test_per_image_masks_3d_and_int_labels():
    images, boxes, o2i = _data()
    labels = torch.randint(0, 1000, (2, 40, 48), generator=_gen(1))
    aug = RandomPatchRotation(30, p=1.0, resample="nearest", generator=_gen(2))
    res = aug(images, boxes, o2i, image_masks=labels)
    assert res.image_masks.shape == labels.shape and res.image_masks.dtype == labels.dtype
    # nearest resampling only copies existing labels (or the zero padding)
    assert set(res.image_masks.unique().tolist()) <= set(labels.unique().tolist()) | {0}
    expected = F.warp_patches(
        labels[:, None].double(), boxes, aug._params["theta"], o2i, mode="nearest"
    )
    assert torch.equal(res.image_masks, expected[:, 0].long())


# --------------------------------------------------------------------------- inverse


def test_inverse_brings_boxes_and_keypoints_back():
    images, boxes, o2i = _data()
    boxes, o2i = boxes[:4], o2i[:4]  # all inside the canvas
    kps = torch.rand(4, 5, 2, generator=_gen(3)) * 20 + 5
    # scale < 1 (+ a small rotation / shift) keeps the content inside each patch: nothing cut off
    for aug in (
        RandomPatchAffine(degrees=8, translate=0.05, scale=(0.6, 0.75), p=1.0, generator=_gen(0)),
        RandomPatchScale((0.5, 0.9), p=1.0, generator=_gen(1)),
        PatchSequential(
            RandomPatchRotation(8, p=1.0),
            RandomPatchScale((0.6, 0.7), p=1.0),
            RandomPatchHorizontalFlip(p=0.5),
        ),
    ):
        res = aug(images, boxes, o2i, keypoints=kps)
        assert not torch.allclose(res.boxes, boxes.float())
        back = aug.inverse(res.images, res.boxes, o2i, keypoints=res.keypoints)
        assert torch.allclose(back.boxes, boxes.float(), atol=1e-4), aug
        assert torch.allclose(back.keypoints, kps, atol=1e-4)

    # axis-aligned maps (scale, shift): the inverse is exact on its own, even without clipping
    aug = RandomPatchAffine(translate=0.1, scale=(0.5, 0.8), p=1.0, generator=_gen(2))
    res = aug(images, boxes, o2i)
    back = F.inverse_transform_boxes(res.boxes, aug._params["patches"], aug._params["theta"])
    assert torch.allclose(back, boxes.float(), atol=1e-4)

    # where content was cut off the box cannot come back: inverse is the source of what is left
    aug = RandomPatchTranslate(((0.5, 0.5), (0.0, 0.0)), p=1.0)
    res = aug(images, boxes, o2i)
    back = aug.inverse(None, res.boxes, o2i)
    w = (boxes[:, 2] - boxes[:, 0]).float()
    assert torch.allclose(back.boxes[:, 2] - back.boxes[:, 0], w / 2)


def test_inverse_image_undoes_exact_maps_and_uses_last_params():
    images, boxes, o2i = _data()
    for aug in (
        RandomPatchHorizontalFlip(p=0.6, generator=_gen(0)),
        RandomPatchRotation((90, 90), p=1.0),
        PatchSequential(RandomPatchVerticalFlip(p=1.0), RandomPatchHorizontalFlip(p=1.0)),
    ):
        sq = torch.tensor([[2, 3, 18, 19], [20, 4, 44, 28], [5, 5, 25, 25]])
        res = aug(images, sq, torch.tensor([0, 0, 1]))
        assert not torch.allclose(res.images, images)
        back = aug.inverse(res.images, res.boxes, torch.tensor([0, 0, 1]))
        assert torch.allclose(back.images, images, atol=1e-4), aug
        assert torch.allclose(back.boxes, sq.float(), atol=1e-4)
    # lossy in general (documented): a zoom-out loses resolution
    aug = RandomPatchScale((0.5, 0.5), p=1.0)
    res = aug(images, boxes, o2i)
    back = aug.inverse(res.images, res.boxes, o2i)
    assert not torch.allclose(back.images, images, atol=1e-3)
    with pytest.raises(RuntimeError):
        RandomPatchScale((0.5, 0.5)).inverse(images, boxes, o2i)


def test_inverse_accepts_the_kept_boxes_of_drop_invalid():
    images, boxes, o2i = _data()
    aug = RandomPatchScale((0.6, 0.9), p=1.0, drop_invalid=True)
    mixed = torch.tensor([[2, 3, 18, 15], [60, 4, 70, 30], [1, 20, 15, 38]])
    res = aug(images, mixed, o2i[:3])
    back = aug.inverse(res.images, res.boxes)
    assert torch.allclose(back.boxes, mixed[[0, 2]].float(), atol=1e-4)
    assert back.obj_to_img.tolist() == [0, 0]


# --------------------------------------------------------------------------- PatchSequential


def _seq(**kw):
    return PatchSequential(
        RandomPatchRotation(30, p=1.0, generator=_gen(1)),
        RandomPatchScale((0.6, 1.3), p=0.7, generator=_gen(2)),
        RandomPatchTranslate(0.2, p=1.0, generator=_gen(3)),
        **kw,
    )


def test_sequential_is_one_warp_with_the_composed_matrix():
    images, boxes, o2i = _data()
    aug = _seq()
    res = aug(images, boxes, o2i)
    p = aug._params
    assert {
        "theta",
        "batch_prob",
        "patches",
        "0.angle",
        "0.theta",
        "1.batch_prob",
        "2.translate",
    } <= set(p)
    patches = p["patches"]
    # content moves by child 0 first: A = A2 @ A1 @ A0 in pixel space
    a = [F.theta_to_pixel_matrix(p[f"{k}.theta"], patches) for k in range(3)]
    expected = F.pixel_matrix_to_theta(a[2] @ a[1] @ a[0], patches)
    assert torch.allclose(p["theta"], expected, atol=1e-5)
    # one warp_patches call with that theta, and boxes mapped once with it
    assert torch.equal(res.images, F.warp_patches(images, boxes, p["theta"], o2i))
    assert torch.equal(res.boxes, F.transform_boxes(patches, p["theta"]))

    # the children one after another (each resampling, from its own result) is different
    chained = images
    for k, child in enumerate(aug):
        sub = {n[2:]: v for n, v in p.items() if n.startswith(f"{k}.")}
        step = child(chained, boxes, o2i, params=sub)
        chained = step.images
    assert (chained - res.images).abs().max() > 1e-2

    # replay: from the fused theta, or from the children's entries alone
    _assert_same(res, aug(images, boxes, o2i, params=p))
    children_only = {k: v for k, v in p.items() if k != "theta"}
    again = aug(images, boxes, o2i, params=children_only)
    assert torch.allclose(again.images, res.images, atol=1e-6)
    _assert_same(res, _seq()(images, boxes, o2i, params=params_from_json(params_to_json(p))))


def test_sequential_inverse_composition_and_options():
    images, boxes, o2i = _data()
    aug = PatchSequential(
        PatchAffine(angle=30.0, scale=0.8), PatchAffine(scale=1.25), PatchAffine(angle=-30.0)
    )
    res = aug(images, boxes, o2i)
    assert torch.allclose(aug._params["theta"], torch.eye(2, 3).expand(5, 2, 3), atol=1e-6)
    assert torch.allclose(res.images, images, atol=1e-5)
    # options: taken from the children when they agree, align_corners must agree
    s = PatchSequential(
        RandomPatchRotation(5, resample="nearest", padding_mode="border"),
        RandomPatchScale(0.1, resample="nearest", padding_mode="reflection"),
    )
    assert s.resample == "nearest" and s.padding_mode == "zeros" and s.p == 1.0
    with pytest.raises(ValueError, match="align_corners"):
        PatchSequential(RandomPatchRotation(5, align_corners=True), RandomPatchScale(0.1))
    with pytest.raises(ValueError, match="align_corners"):
        PatchSequential(RandomPatchRotation(5), align_corners=True)
    with pytest.raises(TypeError):
        PatchSequential(RandomPatchRotation(5), torch.nn.Identity())
    assert len(s) == 2 and isinstance(s[1], RandomPatchScale)
    # sequence-level p gates the whole composition
    off = PatchSequential(RandomPatchRotation(30, p=1.0), p=0.0)
    assert torch.equal(off(images, boxes, o2i).images, images)
    # nesting
    nested = PatchSequential(PatchSequential(PatchAffine(angle=10.0)), PatchAffine(angle=-10.0))
    nested(images, boxes, o2i)
    assert "0.0.angle" in nested._params
    assert torch.allclose(nested._params["theta"], torch.eye(2, 3).expand(5, 2, 3), atol=1e-6)


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "make, exc",
    [
        (lambda: RandomPatchScale((-0.5, 1.0)), ValueError),
        (lambda: RandomPatchScale((0.0, 1.0)), ValueError),
        (lambda: RandomPatchScale(1.5), ValueError),
        (lambda: RandomPatchScale((1.2, 0.8)), ValueError),
        (lambda: RandomPatchRotation((20, 10)), ValueError),
        (lambda: RandomPatchRotation(-5), ValueError),
        (lambda: RandomPatchRotation("10"), TypeError),
        (lambda: RandomPatchRotation((1, 2, 3)), ValueError),
        (lambda: RandomPatchRotation(float("nan")), ValueError),
        (lambda: RandomPatchRotation(10, p=1.5), ValueError),
        (lambda: RandomPatchRotation(10, p=-0.1), ValueError),
        (lambda: RandomPatchRotation(10, p="0.5"), TypeError),
        (lambda: RandomPatchRotation(10, resample="foo"), ValueError),
        (lambda: RandomPatchRotation(10, padding_mode="wrap"), ValueError),
        (lambda: RandomPatchRotation(10, overlap="random"), ValueError),
        (lambda: RandomPatchRotation(10, align_corners=1), TypeError),
        (lambda: RandomPatchRotation(10, generator=0), TypeError),
        (lambda: RandomPatchRotation(10, same_on_batch="yes"), TypeError),
        (lambda: RandomPatchTranslate(1.5), ValueError),
        (lambda: RandomPatchTranslate((0.1, -0.2)), ValueError),
        (lambda: RandomPatchShear(90), ValueError),
        (lambda: RandomPatchShear((-10, 10, 20, 5)), ValueError),
        (lambda: RandomPatchRotation(torch.tensor([30.0, 10.0])), ValueError),
        (lambda: PatchAffine(theta=torch.eye(2, 3), angle=3.0), ValueError),
        (lambda: PatchAffine(theta=torch.eye(3)), ValueError),
        (lambda: PatchAffine(scale=0.0), ValueError),
        (lambda: PatchAffine(angle=1.0, same_on_batch=True), ValueError),
        (lambda: PatchAffine(angle="x"), TypeError),
    ],
)
def test_bad_arguments_fail_at_construction(make, exc):
    with pytest.raises(exc):
        make()


def test_resample_accepts_case_and_enums():
    import enum

    class InterpolationMode(enum.Enum):  # torchvision's enum, without importing torchvision
        BICUBIC = "bicubic"

    assert RandomPatchRotation(5, resample="NEAREST").resample == "nearest"
    assert RandomPatchRotation(5, resample=InterpolationMode.BICUBIC).resample == "bicubic"


def test_repr_shows_configuration():
    r = repr(
        RandomPatchAffine(
            degrees=10,
            translate=(0.1, 0.2),
            scale=(0.8, 1.2),
            shear=(-5, 5, -2, 2),
            p=0.3,
            padding_mode="image",
        )
    )
    assert r.startswith("RandomPatchAffine(")
    for part in (
        "degrees=(-10.0, 10.0)",
        "translate=((-0.1, 0.1), (-0.2, 0.2))",
        "scale=(0.8, 1.2)",
        "shear=(-5.0, 5.0, -2.0, 2.0)",
        "p=0.3",
        "padding_mode='image'",
        "same_on_batch=False",
        "overlap='sequential'",
    ):
        assert part in r, part
    assert "angle=30.0" in repr(PatchAffine(angle=30.0))
    assert "RandomPatchHorizontalFlip(p=0.5" in repr(RandomPatchHorizontalFlip())
    seq = repr(PatchSequential(RandomPatchRotation(5), RandomPatchVerticalFlip()))
    assert (
        "(0): RandomPatchRotation(degrees=(-5.0, 5.0)" in seq
        and "(1): RandomPatchVerticalFlip" in seq
    )


def test_custom_subclass_needs_only_parameters_and_matrix():
    from augpatch.transforms.sampling import uniform01

    class RandomZoom(PatchAugmentationBase):
        def generate_parameters(self, patches, obj_to_img, batch_size, generator):
            u = uniform01((patches.shape[0],), generator, patches.device)
            return {"zoom": 1 + u.to(patches.dtype)}

        def compute_matrix(self, params, patches):
            return F.patch_affine_matrix(patches, scale=params["zoom"])

    images, boxes, o2i = _data()
    aug = RandomZoom(p=1.0, same_on_image=True, generator=_gen(0))
    res = aug(images, boxes, o2i)
    z = aug._params["zoom"]
    assert torch.equal(z[0], z[1]) and torch.equal(z[3], z[4]) and not torch.equal(z[0], z[3])
    _assert_same(res, aug(images, boxes, o2i, params=aug._params))


def test_empty_inputs_and_images_without_objects():
    images = torch.rand(2, 1, 8, 8)
    for aug in (
        RandomPatchAffine(10, translate=0.1, same_on_image=True),
        RandomPatchHorizontalFlip(same_on_batch=True),
        PatchSequential(RandomPatchRotation(5)),
    ):
        res = aug(
            images,
            torch.zeros(0, 4),
            torch.zeros(0, dtype=torch.long),
            masks=torch.zeros(0, 8, 8),
            keypoints=torch.zeros(0, 3, 2),
        )
        assert torch.equal(res.images, images) and res.boxes.shape == (0, 4)
        assert res.keep.shape == (0,) and res.masks.shape == (0, 8, 8)
        res = aug(images, [torch.zeros(0, 4), torch.tensor([[1.0, 1.0, 5.0, 5.0]])])
        assert [b.shape[0] for b in res.boxes] == [0, 1]
        assert torch.equal(res.images[0], images[0])


def test_patch_affine_per_object_values_must_match_n():
    images, boxes, o2i = _data()
    aug = PatchAffine(angle=torch.tensor([10.0, 20.0]))
    with pytest.raises(ValueError, match="objects"):
        aug(images, boxes, o2i)
    res = PatchAffine(angle=torch.arange(5.0), translate=(0.1, 0.0), scale=torch.ones(5, 1))(
        images, boxes, o2i
    )
    assert res.params["angle"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert torch.equal(res.params["scale"], torch.ones(5, 2))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_replay_on_another_device():
    images, boxes, o2i = _data()
    aug = _full_affine()
    cpu = aug(images, boxes, o2i)
    params = params_from_json(params_to_json(aug._params))  # CPU tensors
    dev = aug.cuda()(images.cuda(), boxes.cuda(), o2i.cuda(), params=params)
    assert dev.images.device.type == "cuda" and aug._params["theta"].device.type == "cuda"
    assert torch.equal(aug._params["theta"].cpu(), params["theta"])
    torch.testing.assert_close(dev.images.cpu(), cpu.images, atol=1e-5, rtol=0)
    torch.testing.assert_close(dev.boxes.cpu(), cpu.boxes)
    # a CPU generator (or the global CPU RNG) draws the same parameters for CUDA inputs
    a, b = _full_affine(generator=_gen(5)), _full_affine(generator=_gen(5))
    a(images, boxes, o2i)
    b(images.cuda(), boxes.cuda(), o2i.cuda())
    assert torch.equal(a._params["angle"], b._params["angle"].cpu())
    # learnable magnitudes follow .cuda() and get gradients there
    deg = torch.nn.Parameter(torch.tensor(20.0))
    rot = RandomPatchRotation(deg, p=1.0).cuda()
    rot(images.cuda(), boxes.cuda(), o2i.cuda()).images.sum().backward()
    assert rot.degrees.grad is not None and rot.degrees.device.type == "cuda"
