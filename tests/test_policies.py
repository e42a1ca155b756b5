"""augpatch.policies: detection AutoAugment (level mappings, box-only ops, policies, replay)."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

import augpatch.functional as F
from augpatch.data import BatchAugment, collate_objects
from augpatch.policies import (
    BBOX_ONLY_PROB_DIVISOR,
    OPS,
    POLICIES,
    DetectionAutoAugment,
    check_policy,
    level_to_arg,
    scale_aware_box_prob,
)
from augpatch.policies._box_kernels import _compiled
from augpatch.policies.functional import (
    box_pixel_rects,
    equalize_boxes,
    fill_rects,
    solarize_boxes,
    warp_in_boxes,
)
from augpatch.testing.policy_loop import loop_autoaugment
from augpatch.transforms import params_from_json, params_to_json

BOX_OPS = [name for name, spec in OPS.items() if spec.box_only]
GEOMETRIC_BOX_OPS = [name for name, spec in OPS.items() if spec.kind == "box_geometric"]
PHOTOMETRIC_BOX_OPS = [name for name, spec in OPS.items() if spec.kind == "box_photometric"]
IMAGE_OPS = [name for name, spec in OPS.items() if not spec.box_only]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _grid_boxes(batch: int, size: int, cell: int, margin: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping integer boxes, one per grid cell of every image (sizes vary)."""
    boxes, o2i = [], []
    for b in range(batch):
        for i, y in enumerate(range(0, size - cell + 1, cell)):
            for j, x in enumerate(range(0, size - cell + 1, cell)):
                w = cell - margin - (i + j + b) % 4
                h = cell - margin - (i * 3 + j + b) % 5
                boxes.append([x + 1, y + 1, x + 1 + w - 1, y + 1 + h - 1])
                o2i.append(b)
    return torch.tensor(boxes, dtype=torch.float32), torch.tensor(o2i)


def _images(batch: int, size: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=_gen(seed))
    return x if dtype == torch.uint8 else x.to(dtype) / 255


def _inside(boxes: torch.Tensor, o2i: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """[B, 1, H, W] bool: pixels of any box (augpatch's membership)."""
    mask = torch.zeros(shape[0], 1, shape[2], shape[3], dtype=torch.bool)
    for (j0, i0, j1, i1), b in zip(box_pixel_rects(boxes, shape[2:]).tolist(), o2i.tolist()):
        mask[b, 0, i0:i1, j0:j1] = True
    return mask


# --------------------------------------------------------------------------- the table


def test_every_level_mapping_is_the_reference_formula() -> None:
    # the reference's level_to_arg (tensorflow/tpu autoaugment_utils.py), written out here
    enhance = lambda lv: lv / 10 * 1.8 + 0.1  # noqa: E731
    formulas = {
        "AutoContrast": lambda lv: 0.0,
        "Equalize": lambda lv: 0.0,
        "Posterize": lambda lv: int(lv / 10 * 4),
        "Solarize": lambda lv: int(lv / 10 * 256),
        "SolarizeAdd": lambda lv: int(lv / 10 * 110),
        "Color": enhance,
        "Contrast": enhance,
        "Brightness": enhance,
        "Sharpness": enhance,
        "Cutout": lambda lv: int(lv / 10 * 100),
        "BBox_Cutout": lambda lv: lv / 10 * 0.75,
        "Rotate_BBox": lambda lv: lv / 10 * 30,
        "ShearX_BBox": lambda lv: lv / 10 * 0.3,
        "ShearY_BBox": lambda lv: lv / 10 * 0.3,
        "TranslateX_BBox": lambda lv: lv / 10 * 250,
        "TranslateY_BBox": lambda lv: lv / 10 * 250,
        "Rotate_Only_BBoxes": lambda lv: lv / 10 * 30,
        "ShearX_Only_BBoxes": lambda lv: lv / 10 * 0.3,
        "ShearY_Only_BBoxes": lambda lv: lv / 10 * 0.3,
        "TranslateX_Only_BBoxes": lambda lv: lv / 10 * 120,
        "TranslateY_Only_BBoxes": lambda lv: lv / 10 * 120,
        "Flip_Only_BBoxes": lambda lv: 0.0,
        "Equalize_Only_BBoxes": lambda lv: 0.0,
        "Solarize_Only_BBoxes": lambda lv: int(lv / 10 * 256),
        "Cutout_Only_BBoxes": lambda lv: int(lv / 10 * 50),
    }
    assert set(formulas) == set(OPS)
    signed = {"Rotate_BBox", "ShearX_BBox", "ShearY_BBox", "TranslateX_BBox", "TranslateY_BBox",
              "Rotate_Only_BBoxes", "ShearX_Only_BBoxes", "ShearY_Only_BBoxes",
              "TranslateX_Only_BBoxes", "TranslateY_Only_BBoxes"}
    for name, formula in formulas.items():
        assert OPS[name].signed == (name in signed), name
        assert OPS[name].box_only == name.endswith("_Only_BBoxes"), name
        for level in range(11):
            assert level_to_arg(name, level) == pytest.approx(formula(level), abs=1e-12), name
    assert BBOX_ONLY_PROB_DIVISOR == 3.0
    with pytest.raises(ValueError, match="unknown op"):
        level_to_arg("Rotate", 3)


def test_named_policies_and_the_magnitudes_a_call_uses() -> None:
    assert [len(POLICIES[k]) for k in ("v0", "v1", "v2", "v3")] == [5, 20, 15, 15]
    assert POLICIES["v1"][:5] == POLICIES["v0"]
    assert max(len(sub) for sub in POLICIES["v2"]) == 3  # up to three ops in v2
    for name in ("v2", "v3"):  # image-level ops only
        assert not any(OPS[op].box_only for sub in POLICIES[name] for op, _, _ in sub)
    aug = DetectionAutoAugment("v1", generator=_gen(1))
    images = _images(64, 24, torch.uint8)
    boxes, o2i = _grid_boxes(64, 24, 12)
    aug(images, boxes, o2i)
    p = aug._params
    for b in range(64):
        for k, (op, _, level) in enumerate(aug.policy[int(p["sub_policy"][b])]):
            mag = float(p["magnitude"][b, k])
            assert abs(mag) == pytest.approx(level_to_arg(op, level))
            if not OPS[op].signed:
                assert mag >= 0
    for n in range(boxes.shape[0]):
        b = int(o2i[n])
        for k, (op, _, level) in enumerate(aug.policy[int(p["sub_policy"][b])]):
            mag = float(p["box_magnitude"][n, k])
            assert abs(mag) == pytest.approx(level_to_arg(op, level) if OPS[op].box_only else 0)
    # signs are drawn: both occur
    signed = p["box_magnitude"][p["box_magnitude"] != 0]
    assert (signed > 0).any() and (signed < 0).any()


def test_custom_policies_are_validated_at_construction() -> None:
    assert check_policy([[("Equalize", 1, 0)]]) == ((("Equalize", 1.0, 0.0),),)
    with pytest.raises(ValueError, match=r"policy\[0\]\[1\]: unknown op 'Rotate'"):
        DetectionAutoAugment([[("Equalize", 0.5, 3), ("Rotate", 0.5, 3)]])
    with pytest.raises(ValueError, match=r"probability must be in \[0, 1\], got 1.5"):
        DetectionAutoAugment([[("Equalize", 0.5, 3)], [("Color", 1.5, 3)]])
    with pytest.raises(ValueError, match=r"probability must be in \[0, 1\], got -0.1"):
        DetectionAutoAugment([[("Color", -0.1, 3)]])
    with pytest.raises(ValueError, match=r"level must be in \[0, 10\], got 11"):
        DetectionAutoAugment([[("Rotate_Only_BBoxes", 0.5, 11)]])
    with pytest.raises(ValueError, match="level must be"):
        DetectionAutoAugment([[("Rotate_Only_BBoxes", 0.5, float("nan"))]])
    with pytest.raises(TypeError, match=r"policy\[0\]\[0\] must be a tuple"):
        DetectionAutoAugment([[("Equalize", 0.5)]])
    with pytest.raises(TypeError, match="non-empty"):
        DetectionAutoAugment([])
    with pytest.raises(TypeError, match=r"policy\[1\]"):
        DetectionAutoAugment([[("Equalize", 0.5, 3)], []])
    with pytest.raises(ValueError, match="'v0', 'v1', 'v2', 'v3'"):
        DetectionAutoAugment("v4")
    with pytest.raises(ValueError, match="padding_mode"):
        DetectionAutoAugment("v0", padding_mode="edge")
    with pytest.raises(ValueError, match="fill"):
        DetectionAutoAugment("v0", fill=(1, 2))(_images(1, 8, torch.uint8), torch.zeros(0, 4))


# --------------------------------------------------------------------------- box-only ops


@pytest.mark.parametrize("op", BOX_OPS)
def test_box_only_ops_change_nothing_outside_their_boxes(op: str) -> None:
    # boxes of more than 255 pixels: PIL's equalize leaves smaller crops unchanged
    images = _images(2, 64, torch.uint8, seed=3)
    boxes, o2i = _grid_boxes(2, 64, 32)
    aug = DetectionAutoAugment([[(op, 1.0, 7)]], bbox_prob_divisor=1.0, generator=_gen(2))
    out = aug(images, boxes, o2i)
    inside = _inside(boxes, o2i, images.shape)
    assert torch.equal(out.images.masked_select(~inside), images.masked_select(~inside))
    assert aug._params["box_apply"].all()
    assert not torch.equal(out.images, images)  # something happened inside
    assert torch.equal(out.boxes, boxes) and out.keep.all()  # boxes stay, as the reference


def test_box_only_ops_fire_on_about_prob_over_3_of_10000_boxes() -> None:
    # 10,000 one-pixel boxes on a 100 x 100 canvas; one sub-policy holds all nine ops, so one
    # draw decides 10,000 coins for each. The coins are the point: sample them only.
    ys, xs = torch.meshgrid(torch.arange(100.0), torch.arange(100.0), indexing="ij")
    boxes = torch.stack((xs, ys, xs + 1, ys + 1), -1).reshape(-1, 4)
    aug = DetectionAutoAugment([[(op, 0.6, 5) for op in BOX_OPS]], generator=_gen(4))
    coins = aug.forward_parameters((1, 3, 100, 100), boxes)["box_apply"]
    rates = coins.float().mean(0)
    sigma = math.sqrt(0.2 * 0.8 / 10000)
    assert rates.shape == (len(BOX_OPS),)
    assert ((rates - 0.6 / 3).abs() < 5 * sigma).all(), rates
    both = (coins[:, 0] & coins[:, 1]).float().mean()  # the ops' coins are independent
    assert abs(both.item() - 0.04) < 5 * math.sqrt(0.04 * 0.96 / 10000)
    # a call draws its coins the same way (a cheap op), and the divisor is exposed
    images = _images(1, 100, torch.uint8)
    for divisor, rate in ((3.0, 0.2), (1.5, 0.4)):
        aug = DetectionAutoAugment([[("Solarize_Only_BBoxes", 0.6, 10)]],
                                   bbox_prob_divisor=divisor, generator=_gen(5))
        aug(images, boxes)
        got = aug._params["box_apply"].float().mean().item()
        assert abs(got - rate) < 5 * math.sqrt(rate * (1 - rate) / 1e4)


def test_forward_parameters_are_what_a_call_draws_and_apply_to_targets() -> None:
    images = _images(8, 48, torch.uint8, seed=30)
    boxes, o2i = _grid_boxes(8, 48, 16)
    masks = torch.zeros(boxes.shape[0], 48, 48, dtype=torch.bool)
    for n, (j0, i0, j1, i1) in enumerate(box_pixel_rects(boxes, (48, 48)).tolist()):
        masks[n, i0:i1, j0:j1] = True
    keypoints = boxes[:, None, :2] + 1
    # geometric ops before box-only ops and cutouts: the plan follows the moved boxes
    policy = [[("ShearY_BBox", 1.0, 6), ("Cutout_Only_BBoxes", 0.9, 6)],
              [("TranslateX_BBox", 1.0, 1), ("BBox_Cutout", 0.9, 8)],
              [("Rotate_BBox", 0.9, 5), ("Rotate_Only_BBoxes", 1.0, 4), ("Cutout", 0.7, 3)]]
    planned = DetectionAutoAugment(policy, move_boxes=True, generator=_gen(31)).forward_parameters(
        images.shape, boxes, o2i
    )
    aug = DetectionAutoAugment(policy, move_boxes=True, generator=_gen(31))
    out = aug(images, boxes, o2i, masks=masks, keypoints=keypoints)
    assert set(planned) == set(aug._params)
    for key, value in planned.items():
        assert torch.equal(aug._params[key], value), key
    assert (planned["box_cutout_center"] >= 0).any() and (planned["cutout_center"] >= 0).any()
    again = aug(images, boxes, o2i, params=planned)
    assert torch.equal(again.images, out.images)
    targets = aug.apply_to_targets(images.shape, boxes, o2i, params=planned, masks=masks,
                                   keypoints=keypoints)
    assert targets.images is None
    assert torch.equal(targets.boxes, out.boxes) and torch.equal(targets.masks, out.masks)
    assert torch.equal(targets.keypoints, out.keypoints) and torch.equal(targets.keep, out.keep)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("op", PHOTOMETRIC_BOX_OPS)
def test_photometric_box_ops_equal_a_per_box_loop(op: str, dtype: torch.dtype) -> None:
    images = _images(3, 40, dtype, seed=5)
    g = _gen(6)
    xy = torch.randint(0, 30, (12, 2), generator=g).float()
    boxes = torch.cat((xy, xy + torch.randint(4, 14, (12, 2), generator=g)), 1)  # they overlap
    o2i = torch.arange(12) % 3
    aug = DetectionAutoAugment([[(op, 1.0, 4)], [(op, 0.9, 8)]], generator=_gen(7))
    out = aug(images, boxes, o2i)
    assert aug._params["box_apply"].any()
    ref, _ = loop_autoaugment(aug, images, boxes, o2i, aug._params)
    assert torch.equal(out.images, ref)


def test_box_kernels_equal_torchvision_on_each_crop() -> None:
    images = _images(2, 32, torch.uint8, seed=8)
    boxes = torch.tensor([[2.0, 3.0, 20.0, 17.0], [10.0, 10.0, 30.0, 28.0], [0.0, 0.0, 9.0, 31.0]])
    o2i = torch.tensor([0, 0, 1])
    eq = equalize_boxes(images, boxes, o2i)
    sol = solarize_boxes(images, boxes, torch.tensor([100.0, 30.0, 200.0]), o2i)
    ref_eq, ref_sol = images.clone(), images.clone()
    for n, ((j0, i0, j1, i1), b) in enumerate(zip(box_pixel_rects(boxes, (32, 32)).tolist(),
                                                  o2i.tolist())):
        ref_eq[b, :, i0:i1, j0:j1] = TF.equalize(ref_eq[b, :, i0:i1, j0:j1])
        ref_sol[b, :, i0:i1, j0:j1] = TF.solarize(ref_sol[b, :, i0:i1, j0:j1], [100, 30, 200][n])
    assert torch.equal(eq, ref_eq) and torch.equal(sol, ref_sol)
    # float images: equalize quantises as torchvision does, and stays in [0, 1]
    f = images.float() / 255
    eqf = equalize_boxes(f, boxes[:1], o2i[:1])
    assert torch.equal(eqf[0, :, 3:17, 2:20], TF.equalize(f[0, :, 3:17, 2:20]))
    # inputs are never modified
    assert torch.equal(images, _images(2, 32, torch.uint8, seed=8))
    filled = fill_rects(images, torch.tensor([[-2, 5, 4, 40]]), torch.tensor([1]), (1, 2, 3))
    assert filled[1, :, 5:, :4].flatten(1).unique(dim=1).tolist() == [[1], [2], [3]]
    assert torch.equal(filled[0], images[0])


@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_box_kernels_equal_the_torch_code(
    overlap: str, inplace: bool, channels_last: bool
) -> None:
    """The compiled uint8 CPU kernels (the default there) and the torch code agree exactly."""
    images = _images(3, 48, torch.uint8, seed=9)
    assert _compiled(images) is not None and _compiled(images.float()) is None
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    g = _gen(10)
    xy = torch.randint(-6, 44, (40, 2), generator=g).float()
    # overlapping boxes, some partly outside, some without a pixel, fractional edges
    boxes = torch.cat((xy, xy + torch.randint(0, 24, (40, 2), generator=g)), 1)
    boxes[::7] += 0.3
    o2i = torch.randint(0, 3, (40,), generator=g)
    thr = torch.randint(-10, 300, (40,), generator=g).double()
    rects = box_pixel_rects(boxes, (48, 48)) + torch.tensor([-3, 0, 5, 2])  # fill clips them
    theta = F.patch_affine_matrix(F.clip_boxes(boxes, (48, 48)),
                                  angle=torch.linspace(-40, 40, 40))
    calls = {  # name: (input, call, exact); "eager" also switches the warp's own kernel,
        # whose float64 results differ from the compiled one's in the last bits
        "equalize": (images, lambda x: equalize_boxes(x, boxes, o2i, overlap=overlap,
                                                      inplace=inplace), True),
        "solarize": (images, lambda x: solarize_boxes(x, boxes, thr, o2i, overlap=overlap,
                                                      inplace=inplace), True),
        "fill": (images, lambda x: fill_rects(x, rects, o2i, (7, 200, 255), inplace=inplace),
                 True),
        "warp fill": (images, lambda x: warp_in_boxes(x, boxes, theta, o2i, fill=(9, 99, 199),
                                                      mode="nearest", overlap=overlap,
                                                      inplace=inplace), True),
        "warp float": (images.double(), lambda x: warp_in_boxes(
            x, boxes, theta.double(), o2i, padding_mode="reflection", overlap=overlap,
            inplace=inplace), False),
    }
    for name, (given, call, exact) in calls.items():
        results = {}
        for kernel in ("compiled", "eager"):
            F.set_cpu_kernel(kernel)
            x = given.clone(memory_format=torch.preserve_format)
            out = call(x)
            assert (out is x) == inplace, name
            results[kernel] = out
        F.set_cpu_kernel("compiled")
        if exact:
            assert torch.equal(results["compiled"], results["eager"]), (name, overlap)
        else:
            torch.testing.assert_close(results["compiled"], results["eager"], rtol=0, atol=1e-9)
        assert not torch.equal(results["compiled"], given), name
    # overlap matters for these boxes (so both orders were really exercised)
    seq = equalize_boxes(images, boxes, o2i, overlap="sequential")
    assert not torch.equal(seq, equalize_boxes(images, boxes, o2i, overlap="parallel"))
    assert torch.equal(images, _images(3, 48, torch.uint8, seed=9))


def _reference_theta(op: str, patches: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The reference's crop ops as forward pixel maps about each box centre, then theta."""
    n = patches.shape[0]
    c = (patches[:, :2] + patches[:, 2:]) / 2
    a = torch.eye(3).repeat(n, 1, 1)
    if op == "Rotate_Only_BBoxes":  # counter-clockwise on screen (y down)
        r = torch.deg2rad(m)
        a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1] = r.cos(), r.sin(), -r.sin(), r.cos()
    elif op == "ShearX_Only_BBoxes":  # x -> x - s y
        a[:, 0, 1] = -m
    elif op == "ShearY_Only_BBoxes":  # y -> y - s x
        a[:, 1, 0] = -m
    elif op == "Flip_Only_BBoxes":
        a[:, 0, 0] = -1
    shift = torch.eye(3).repeat(n, 1, 1)
    shift[:, :2, 2] = c
    back = torch.eye(3).repeat(n, 1, 1)
    back[:, :2, 2] = -c
    a = shift @ a @ back
    if op == "TranslateX_Only_BBoxes":  # translate_x(image, pixels): content moves by -pixels
        a[:, 0, 2] -= m
    elif op == "TranslateY_Only_BBoxes":
        a[:, 1, 2] -= m
    return F.pixel_matrix_to_theta(a, patches)


@pytest.mark.parametrize("padding_mode", ["fill", "zeros", "reflection", "image"])
@pytest.mark.parametrize("op", GEOMETRIC_BOX_OPS)
def test_geometric_box_ops_equal_warp_patches_with_the_matching_theta(op: str, padding_mode: str) -> None:
    images = _images(2, 48, torch.float32, seed=9)
    boxes, o2i = _grid_boxes(2, 48, 16)
    aug = DetectionAutoAugment([[(op, 0.9, 6)]], padding_mode=padding_mode, fill=(10, 20, 30),
                               interpolation="bilinear", generator=_gen(10))
    out = aug(images, boxes, o2i)
    fired = aug._params["box_apply"][:, 0]
    assert fired.any() and not fired.all()
    m = aug._params["box_magnitude"][fired, 0].float()
    theta = _reference_theta(op, boxes[fired], m)
    kw = {"mode": "bilinear"}
    if padding_mode == "fill":
        fill = torch.tensor([10.0, 20.0, 30.0]) / 255
        expected = F.warp_patches_fill(images, boxes[fired], theta, o2i[fired], fill=fill, **kw)
    else:
        expected = F.warp_patches(images, boxes[fired], theta, o2i[fired],
                                  padding_mode=padding_mode, **kw)
    torch.testing.assert_close(out.images, expected, atol=2e-6, rtol=0)


@pytest.mark.parametrize("op", GEOMETRIC_BOX_OPS)
def test_geometric_box_ops_match_torchvision_on_each_crop(op: str) -> None:
    """uint8, nearest, fill 128: the per-box torchvision loop (the reference's ops on crops)."""
    images = _images(2, 64, torch.uint8, seed=11)
    g = _gen(12)
    xy = torch.randint(0, 44, (16, 2), generator=g).float()
    boxes = torch.cat((xy, xy + torch.randint(6, 20, (16, 2), generator=g)), 1)  # overlapping
    o2i = torch.arange(16) % 2
    aug = DetectionAutoAugment([[(op, 1.0, 7)]], bbox_prob_divisor=1.0, generator=_gen(13))
    out = aug(images, boxes, o2i)
    ref, _ = loop_autoaugment(aug, images, boxes, o2i, aug._params)
    # nearest-neighbour ties may round either way between the two grids
    assert (out.images != ref).float().mean() < 2e-3


def test_warp_in_boxes_equals_warp_patches() -> None:
    images = _images(2, 40, torch.float64, seed=14)
    g = _gen(15)
    xy = torch.rand(10, 2, generator=g, dtype=torch.float64) * 30 - 3
    boxes = torch.cat((xy, xy + 3 + torch.rand(10, 2, generator=g, dtype=torch.float64) * 12), 1)
    o2i = torch.arange(10) % 2
    theta = F.patch_affine_matrix(boxes, angle=torch.linspace(-40, 40, 10, dtype=torch.float64),
                                  scale=0.8, canvas_size=(40, 40))
    for overlap in ("sequential", "parallel"):
        for padding in ("zeros", "border", "reflection"):
            got = warp_in_boxes(images, boxes, theta, o2i, padding_mode=padding, overlap=overlap)
            want = F.warp_patches(images, boxes, theta, o2i, padding_mode=padding, overlap=overlap)
            torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
        got = warp_in_boxes(images, boxes, theta, o2i, fill=0.5, overlap=overlap)
        want = F.warp_patches_fill(images, boxes, theta, o2i, fill=0.5, overlap=overlap)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_fill_semantics() -> None:
    images = _images(1, 32, torch.uint8, seed=16)
    boxes = torch.tensor([[10.0, 4.0, 26.0, 12.0]])
    shift = [[("TranslateX_Only_BBoxes", 1.0, 10)]]  # 120 px: the whole box is emptied
    for fill, expected in ((128, [128, 128, 128]), ((0, 64, 255), [0, 64, 255])):
        aug = DetectionAutoAugment(shift, fill=fill, bbox_prob_divisor=1.0)
        out = aug(images, boxes)
        region = out.images[0, :, 4:12, 10:26].flatten(1)
        assert region.unique(dim=1).tolist() == [[v] for v in expected]
    # float images: fill is in uint8 units
    out = DetectionAutoAugment(shift, bbox_prob_divisor=1.0)(images.float() / 255, boxes)
    assert torch.allclose(out.images[0, :, 4:12, 10:26], torch.full((3, 8, 16), 128 / 255))
    # padding_mode="image": the real surroundings come in (a 5 px shift, nearest)
    aug = DetectionAutoAugment([[("TranslateX_Only_BBoxes", 1.0, 0.5)]], padding_mode="image",
                               bbox_prob_divisor=1.0, generator=_gen(0))
    out = aug(images, boxes)
    p = int(aug._params["box_magnitude"][0, 0])  # content moves by -p
    assert abs(p) == 6
    src = images[0, :, 4:12, 10 + p : 26 + p]
    assert torch.equal(out.images[0, :, 4:12, 10:26], src)


def test_scale_aware_probability_hook() -> None:
    hook = scale_aware_box_prob((1.5, 1.0, 0.0))
    prob = torch.full((3,), 0.6, dtype=torch.float64)
    areas = torch.tensor([[0.0, 0, 31, 31], [0, 0, 40, 40], [0, 0, 96, 96]])
    assert torch.allclose(hook("Flip_Only_BBoxes", prob, areas), torch.tensor([0.3, 0.2, 0.0]).double())
    # end to end: 400 small boxes fire with 0.6 / 3 * 1.5, 64 large ones never
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(20.0), indexing="ij")
    small = torch.stack((xs, ys, xs + 0.8, ys + 0.8), -1).reshape(-1, 4) * 10
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    large = torch.stack((xs, ys, xs + 1, ys + 1), -1).reshape(-1, 4) * 25
    boxes = torch.cat((small, large * 4 / 4))
    o2i = torch.cat((torch.zeros(400), torch.ones(64))).long()
    images = torch.zeros(2, 1, 200, 200, dtype=torch.uint8)
    aug = DetectionAutoAugment([[("Flip_Only_BBoxes", 0.6, 10)]],
                               box_prob=scale_aware_box_prob((1.5, 1.0, 0.0), area_thresholds=(64, 400)),
                               generator=_gen(3))
    aug(images, boxes, o2i)
    fired = aug._params["box_apply"][:, 0]
    assert not fired[400:].any()
    assert abs(fired[:400].float().mean().item() - 0.3) < 5 * math.sqrt(0.21 / 400)
    bad = DetectionAutoAugment([[("Solarize_Only_BBoxes", 0.6, 10)]],
                               box_prob=lambda op, p, b: p * 2)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        bad(images, boxes, o2i)


# --------------------------------------------------------------------------- the transform


@pytest.mark.parametrize("policy", ["v0", "v1", "v2", "v3"])
def test_uint8_stays_uint8_and_float_stays_in_0_1(policy: str) -> None:
    boxes, o2i = _grid_boxes(8, 40, 20)
    for dtype in (torch.uint8, torch.float32, torch.float64):
        images = _images(8, 40, dtype, seed=17)
        out = DetectionAutoAugment(policy, generator=_gen(18))(images, boxes, o2i)
        assert out.images.dtype == dtype and out.images.shape == images.shape
        if dtype != torch.uint8:
            assert out.images.min() >= 0 and out.images.max() <= 1
        assert not torch.equal(out.images, images)
        assert out.boxes.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        assert (out.boxes[:, 2:] >= out.boxes[:, :2]).all()  # never inverted


def test_sub_policies_are_drawn_uniformly() -> None:
    batch = 6000
    aug = DetectionAutoAugment("v1", generator=_gen(19))
    aug(torch.zeros(batch, 3, 2, 2, dtype=torch.uint8), torch.zeros(0, 4), torch.zeros(0).long())
    counts = torch.bincount(aug._params["sub_policy"], minlength=20).double()
    expected = batch / 20
    sigma = math.sqrt(expected * (1 - 1 / 20))
    assert (counts - expected).abs().max() < 5 * sigma
    # and each image-level op fires with its probability
    sub, apply = aug._params["sub_policy"], aug._params["apply"]
    rows = sub == 0  # [("TranslateX_BBox", 0.6, 4), ("Equalize", 0.8, 10)]
    n = int(rows.sum())
    for k, prob in enumerate((0.6, 0.8)):
        rate = apply[rows, k].double().mean().item()
        assert abs(rate - prob) < 5 * math.sqrt(prob * (1 - prob) / n)


def test_replay_is_bit_identical_also_through_json() -> None:
    images = _images(6, 48, torch.uint8, seed=20)
    boxes, o2i = _grid_boxes(6, 48, 16)
    masks = torch.zeros(boxes.shape[0], 48, 48, dtype=torch.bool)
    for n, (j0, i0, j1, i1) in enumerate(box_pixel_rects(boxes, (48, 48)).tolist()):
        masks[n, i0:i1, j0:j1] = True
    keypoints = boxes[:, None, :2] + 2
    policy = [*POLICIES["v1"], [("Equalize_Only_BBoxes", 0.9, 3), ("BBox_Cutout", 1.0, 6)]]
    aug = DetectionAutoAugment(policy, move_boxes=True, generator=_gen(21))
    out = aug(images, boxes, o2i, masks=masks, keypoints=keypoints)
    again = aug(images, boxes, o2i, masks=masks, keypoints=keypoints, params=aug._params)
    loaded = params_from_json(params_to_json(out.params))
    third = aug(images, boxes, o2i, masks=masks, keypoints=keypoints, params=loaded)
    for other in (again, third):
        assert torch.equal(other.images, out.images) and torch.equal(other.boxes, out.boxes)
        assert torch.equal(other.masks, out.masks) and torch.equal(other.keypoints, out.keypoints)
        assert torch.equal(other.keep, out.keep)
    fresh = aug(images, boxes, o2i)
    assert not torch.equal(fresh.images, out.images)  # a new call draws anew
    with pytest.raises(ValueError, match="box_apply"):
        aug(images, boxes[:-1], o2i[:-1], params=out.params)


def test_image_level_geometric_ops_move_boxes_with_the_content_and_keep() -> None:
    images = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0], [40.0, 8.0, 60.0, 30.0], [5.0, 5.0, 20.0, 60.0]])
    o2i = torch.tensor([0, 0, 1])
    for n, (j0, i0, j1, i1) in enumerate(boxes.long().tolist()):
        images[o2i[n], :, i0:i1, j0:j1] = 255
    masks = torch.zeros(3, 64, 64, dtype=torch.bool)
    for n, (j0, i0, j1, i1) in enumerate(boxes.long().tolist()):
        masks[n, i0:i1, j0:j1] = True
    for op, level in (("Rotate_BBox", 7), ("ShearX_BBox", 8), ("ShearY_BBox", 5),
                      ("TranslateX_BBox", 1), ("TranslateY_BBox", 1)):
        aug = DetectionAutoAugment([[(op, 1.0, level)]], fill=0, generator=_gen(22))
        out = aug(images, boxes, o2i, masks=masks)
        for n in range(3):
            ys, xs = torch.nonzero(out.masks[n], as_tuple=True)
            envelope = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert torch.allclose(out.boxes[n], torch.tensor(envelope).float(), atol=1.5), op
            # the white content is where the mask went
            assert torch.equal(out.images[o2i[n], 0][out.masks[n]] == 255,
                               torch.ones(int(out.masks[n].sum()), dtype=torch.bool))
    # TranslateX_BBox level 10 = 250 px: everything leaves the 64 px image
    aug = DetectionAutoAugment([[("TranslateX_BBox", 1.0, 10)]], generator=_gen(0))
    out = aug(images, boxes, o2i)
    assert not out.keep.any() and (out.boxes[:, 2] == out.boxes[:, 0]).all()
    assert (out.images == 128).all()
    aug = DetectionAutoAugment([[("TranslateX_BBox", 1.0, 10)]], drop_invalid=True)
    out = aug(images, boxes, o2i, masks=masks)
    assert out.boxes.shape == (0, 4) and out.masks.shape == (0, 64, 64)
    assert out.obj_to_img.shape == (0,) and out.keep.shape == (3,)


def test_calls_do_not_grow_with_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = TF.adjust_brightness

    def counting(*args, **kwargs):
        calls.append(args[0].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(TF, "adjust_brightness", counting)
    policy = [[("Brightness", 1.0, 10)], [("Brightness", 1.0, 4)], [("Equalize", 1.0, 0)]]
    for batch in (6, 60):
        calls.clear()
        aug = DetectionAutoAugment(policy, generator=_gen(23))
        aug(_images(batch, 8, torch.uint8), torch.zeros(0, 4), torch.zeros(0).long())
        assert len(calls) == 2  # one call per magnitude, whatever the batch
        chosen = (aug._params["sub_policy"] < 2).sum()
        assert sum(calls) == int(chosen)


def test_batch_augment_with_detection_autoaugment_keeps_labels_aligned() -> None:
    g = _gen(24)
    samples = []
    for i in range(4):
        n = 3 + i
        xy = torch.randint(0, 40, (n, 2), generator=g).float()
        samples.append((torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g),
                        {"boxes": torch.cat((xy, xy + 12), 1), "labels": torch.arange(n) + 10 * i}))
    aug = DetectionAutoAugment([[("TranslateX_BBox", 1.0, 1)]], drop_invalid=True,
                               generator=_gen(25))
    out = BatchAugment(aug, device=None)(samples)
    keep = aug._params["keep"]
    assert 0 < int(keep.sum()) < keep.numel()
    raw = collate_objects(samples)
    assert torch.equal(out["labels"], raw["labels"][keep])
    assert torch.equal(out["obj_to_img"], raw["obj_to_img"][keep])
    assert out["boxes"].shape[0] == out["labels"].shape[0] == out["keep"].shape[0]


def test_list_boxes_and_errors() -> None:
    images = _images(2, 32, torch.uint8)
    aug = DetectionAutoAugment("v0", generator=_gen(26))
    out = aug(images, [torch.tensor([[2.0, 2.0, 20.0, 20.0]]), torch.zeros(0, 4)])
    assert isinstance(out.boxes, list) and [b.shape[0] for b in out.boxes] == [1, 0]
    with pytest.raises(ValueError, match="obj_to_img"):
        aug(images, torch.tensor([[2.0, 2.0, 20.0, 20.0]]))
    with pytest.raises(ValueError, match="masks"):
        aug(images, torch.zeros(1, 4), torch.tensor([0]), masks=torch.zeros(2, 32, 32))
    with pytest.raises(TypeError, match="images"):
        aug(images.long(), torch.zeros(1, 4), torch.tensor([0]))
    assert "policy='v0'" in repr(aug)


# --------------------------------------------------------------------------- torchvision v2


def test_torchvision_adapter_follows_the_v2_contract() -> None:
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from augpatch.integrations.torchvision import DetectionAutoAugment as V2DetectionAutoAugment

    g = _gen(40)
    image = tv_tensors.Image(torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8, generator=g))
    xyxy = torch.tensor([[4, 4, 30, 40], [40, 10, 76, 60], [10, 44, 30, 62]])
    boxes = v2.ConvertBoundingBoxFormat("XYWH")(
        tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=(64, 80))
    )
    masks = torch.zeros(3, 64, 80, dtype=torch.bool)
    for n, (x1, y1, x2, y2) in enumerate(xyxy.tolist()):
        masks[n, y1:y2, x1:x2] = True
    kps = tv_tensors.KeyPoints(xyxy[:, None, :2].float() + 2, canvas_size=(64, 80))
    target = {"boxes": boxes, "labels": torch.tensor([1, 2, 3]), "masks": tv_tensors.Mask(masks),
              "keypoints": kps}
    policy = [[("TranslateX_BBox", 1.0, 2), ("Rotate_Only_BBoxes", 1.0, 6)],
              [("ShearY_BBox", 1.0, 7), ("Equalize_Only_BBoxes", 1.0, 4)]]
    t = V2DetectionAutoAugment(policy, move_boxes=True, bbox_prob_divisor=1.0, generator=_gen(41))
    out_image, out = t(image, target)
    assert isinstance(out_image, tv_tensors.Image) and out_image.dtype == torch.uint8
    assert out["boxes"].format.name == "XYWH" and out["boxes"].dtype == boxes.dtype
    assert isinstance(out["masks"], tv_tensors.Mask) and out["masks"].dtype == torch.bool
    # the same parameters through the core, on the whole sample at once
    p = t.last_params
    core = t.core(image[None], xyxy, params=p, masks=masks,
                  keypoints=xyxy[:, None, :2].float() + 2.5)
    assert torch.equal(out_image, core.images[0])
    expected = TF.convert_bounding_box_format(core.boxes, old_format="XYXY", new_format="XYWH")
    assert torch.equal(out["boxes"], expected.round().to(boxes.dtype))
    assert torch.equal(out["masks"], core.masks)
    assert torch.allclose(out["keypoints"], core.keypoints - 0.5)
    # replay, and SanitizeBoundingBoxes drops labels with their boxes
    again_image, again = t(image, target, params=p)
    assert torch.equal(again_image, out_image) and torch.equal(again["boxes"], out["boxes"])
    far = V2DetectionAutoAugment([[("TranslateX_BBox", 1.0, 10)]])  # 250 px: all leave
    _, gone = v2.Compose([far, v2.SanitizeBoundingBoxes()])(image, target)
    assert gone["labels"].numel() == 0 and gone["boxes"].shape == (0, 4)
    with pytest.raises(ValueError, match="SanitizeBoundingBoxes"):
        V2DetectionAutoAugment("v0", drop_invalid=True)


def test_warp_in_boxes_is_differentiable_like_warp_patches() -> None:
    """With a gradient to carry, warp_in_boxes takes the torch path (the compiled copies
    have no autograd) and its gradients are warp_patches' (images and theta)."""
    g = _gen(60)
    boxes = torch.tensor([[2.0, 3.0, 14.0, 20.0], [8.0, 1.5, 22.5, 17.0], [4.0, 6.0, 12.0, 16.0]],
                         dtype=torch.float64)
    o2i = torch.tensor([0, 1, 0])
    weight = torch.randn(2, 3, 24, 24, generator=g, dtype=torch.float64)
    for image_grad in (True, False):  # theta alone needs a gradient, or both
        grads = []
        for fn in (warp_in_boxes, F.warp_patches):
            images = torch.rand(2, 3, 24, 24, generator=_gen(61), dtype=torch.float64,
                                requires_grad=image_grad)
            theta = F.patch_affine_matrix(boxes, angle=torch.tensor([35.0, -60.0, 10.0]).double())
            theta.requires_grad_(True)
            out = fn(images, boxes, theta, o2i, mode="bilinear")
            wrt = (images, theta) if image_grad else (theta,)
            grads.append(torch.autograd.grad((out * weight).sum(), wrt))
        for got, want in zip(*grads):
            assert want.abs().sum() > 0
            torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_warp_patches_fill_is_the_zero_padded_warp_of_images_minus_fill() -> None:
    """Sampling is linear: warp(x) with fill f == warp(x - f, zeros) + f inside the boxes."""
    g = _gen(50)
    images = torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64)
    boxes = torch.tensor([[2.0, 3.0, 14.0, 20.0], [8.0, 1.5, 22.5, 17.0], [1.0, 1.0, 9.0, 9.0]],
                         dtype=torch.float64)
    o2i = torch.tensor([0, 1, 1])
    theta = F.patch_affine_matrix(boxes, angle=torch.tensor([35.0, -60.0, 10.0]).double(),
                                  scale=0.7)
    fill = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    images.requires_grad_(True)
    got = F.warp_patches_fill(images, boxes, theta, o2i, fill=fill, mode="bilinear")
    shifted = F.warp_patches(images - fill[:, None, None], boxes, theta, o2i) + fill[:, None, None]
    inside = _inside(boxes, o2i, images.shape)
    want = torch.where(inside, shifted, images)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    assert torch.equal(got.detach().masked_select(~inside), images.detach().masked_select(~inside))
    got.sum().backward()  # differentiable
    assert images.grad is not None and torch.isfinite(images.grad).all()
    # uint8 with nearest: exactly the source or exactly the fill
    u8 = _images(1, 24, torch.uint8, seed=51)
    out = F.warp_patches_fill(u8, boxes[:1], theta[:1].float(), fill=(1, 2, 3), mode="nearest")
    region = out[0, :, 3:20, 2:14].flatten(1)
    is_fill = (region == torch.tensor([[1], [2], [3]], dtype=torch.uint8)).all(0)
    assert is_fill.any() and not is_fill.all()
    with pytest.raises(ValueError, match="fill"):
        F.warp_patches_fill(u8, boxes[:1], theta[:1].float(), fill=(1, 2))


def test_channels_last_images_give_the_same_result() -> None:
    images = _images(4, 48, torch.uint8, seed=52)
    boxes, o2i = _grid_boxes(4, 48, 16)
    aug = DetectionAutoAugment("v1", generator=_gen(53))
    out = aug(images, boxes, o2i)
    cl = aug(images.contiguous(memory_format=torch.channels_last), boxes, o2i, params=aug._params)
    assert torch.equal(cl.images, out.images) and torch.equal(cl.boxes, out.boxes)


# --------------------------------------------------------------------------- issue 21 / 23


def test_box_theta_of_several_ops_equals_each_ops_own_theta() -> None:
    """One ``theta`` computation for every box-only geometric op of a slot: bit for bit."""
    from augpatch.policies._table import box_theta_of_ops

    g = _gen(40)
    for dtype in (torch.float32, torch.float64):
        for align_corners in (False, True):
            counts = torch.randint(0, 9, (len(GEOMETRIC_BOX_OPS),), generator=g).tolist()
            n = sum(counts)
            xy = torch.rand(n, 2, generator=g, dtype=dtype) * 300
            patches = torch.cat((xy, xy + 1 + torch.rand(n, 2, generator=g, dtype=dtype) * 90), 1)
            magnitude = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 60
            theta = box_theta_of_ops(GEOMETRIC_BOX_OPS, counts, patches, magnitude, align_corners)
            start = 0
            for name, count in zip(GEOMETRIC_BOX_OPS, counts):
                rows = slice(start, start + count)
                own = OPS[name].box_theta(patches[rows], magnitude[rows], align_corners)
                assert torch.equal(theta[rows], own), (name, dtype)
                start += count


def test_box_theta_host_path_equals_the_tensor_path(monkeypatch) -> None:
    """Without gradient on the CPU the box-only ops' theta is built in NumPy: the same values
    as ``patch_affine_matrix`` (the path taken when the patches need a gradient), for every
    mix of ops (arguments no op uses are left out there) and degenerate patches."""
    import augpatch.policies._table as table

    calls = []
    host = table._box_theta_host
    monkeypatch.setattr(table, "_box_theta_host", lambda *a: calls.append(1) or host(*a))
    g = _gen(41)
    for dtype in (torch.float32, torch.float64):
        for align_corners in (False, True):
            for k in range(1, len(GEOMETRIC_BOX_OPS) + 1):
                names = GEOMETRIC_BOX_OPS[:k] if k % 2 else GEOMETRIC_BOX_OPS[-k:]
                counts = torch.randint(1, 6, (len(names),), generator=g).tolist()
                n = sum(counts)
                xy = torch.rand(n, 2, generator=g, dtype=dtype) * 300
                size = torch.rand(n, 2, generator=g, dtype=dtype) * 90
                size[::3, 0] = 0.0  # zero-width patches: an axis without extent
                patches = torch.cat((xy, xy + size), 1)
                magnitude = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 60
                before = len(calls)
                fast = table.box_theta_of_ops(names, counts, patches, magnitude, align_corners)
                assert len(calls) == before + 1  # the NumPy path ran
                slow = table.box_theta_of_ops(names, counts, patches.requires_grad_(), magnitude,
                                              align_corners)
                assert len(calls) == before + 1  # a gradient: the tensor path
                assert fast.dtype == slow.dtype == dtype
                assert torch.equal(fast, slow.detach()), (names, dtype, align_corners)


def test_cutouts_are_described_by_their_op_objects() -> None:
    """Issue 23: the cutouts' behaviour lives on ``OpSpec`` (no op names in ``_apply.py``)."""
    import inspect

    import augpatch.policies._apply as apply_module

    assert {name: spec.cutout for name, spec in OPS.items() if spec.cutout} == {
        "Cutout": "image", "BBox_Cutout": "chosen_box", "Cutout_Only_BBoxes": "box"}
    source = inspect.getsource(apply_module)
    named = [name for name in OPS if f'"{name}"' in source or f"'{name}'" in source]
    assert named == []
    center = torch.tensor([[10, 20], [3, 4]])
    region = torch.tensor([[0, 0, 100, 100], [2, 2, 12, 6]])
    assert OPS["Cutout"].cutout_rects(center, torch.tensor([5.0, 5.0]), region).tolist() == [
        [5, 15, 15, 25], [-2, -1, 8, 9]]
    # BBox_Cutout: half-sides are the fraction of the region (the chosen box)
    assert OPS["BBox_Cutout"].cutout_rects(center, torch.tensor([0.5, 0.5]), region).tolist() == [
        [-15, -5, 35, 45], [1, 3, 5, 5]]
    # Cutout_Only_BBoxes: inside its box
    assert OPS["Cutout_Only_BBoxes"].cutout_rects(center, torch.tensor([5.0, 5.0]),
                                                  region).tolist() == [[5, 15, 15, 25],
                                                                       [2, 2, 8, 6]]
    with pytest.raises(ValueError, match="not a cutout"):
        OPS["Equalize"].cutout_rects(center, torch.ones(2), region)
    assert OPS["Equalize"].cutout is None


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_box_only_ops_of_a_slot_run_together_as_each_image_alone(dtype: torch.dtype) -> None:
    """Every box-only op of a slot runs in one pass; each image gets what it gets alone."""
    policy = [[(name, 1.0, 7), ("Rotate_Only_BBoxes", 1.0, 4)] for name in BOX_OPS]
    batch = len(policy)
    images = _images(batch, 40, dtype, seed=41)
    g = _gen(42)
    xy = torch.randint(0, 30, (6 * batch, 2), generator=g).float()
    boxes = torch.cat((xy, xy + torch.randint(4, 16, (6 * batch, 2), generator=g)), 1)  # overlap
    o2i = torch.arange(6 * batch) % batch
    aug = DetectionAutoAugment(policy, bbox_prob_divisor=1.5, generator=_gen(43))
    params = aug.forward_parameters(images.shape, boxes, o2i)
    params["sub_policy"] = torch.arange(batch)  # every op in the batch at once
    out = aug(images, boxes, o2i, params=params)
    assert len({OPS[name].kind for name in BOX_OPS}) == 2 and params["box_apply"][:, 0].any()
    for b in range(batch):
        objs = torch.nonzero(o2i == b).flatten()
        one = {key: (v[b : b + 1] if v.shape[0] == batch and key not in ("box_apply",
                     "box_magnitude", "box_cutout_center") else v[objs])
               for key, v in params.items()}
        alone = aug(images[b : b + 1], boxes[objs], torch.zeros_like(objs), params=one)
        assert torch.equal(out.images[b : b + 1], alone.images), OPS[policy[b][0][0]].name


def test_warp_in_boxes_does_not_depend_on_where_a_box_sits_in_the_canvas() -> None:
    """Fractional float32 boxes: equal to warp_patches to float rounding (the parameters are
    those of the boxes in the images, not of their shifted copies in the canvas)."""
    g = _gen(44)
    images = torch.rand(4, 3, 120, 300, generator=g)
    xy = torch.rand(60, 2, generator=g) * torch.tensor([280.0, 100.0])
    boxes = torch.cat((xy, xy + 3 + torch.rand(60, 2, generator=g) * 40), 1)
    o2i = torch.randint(0, 4, (60,), generator=g)
    patches = F.clip_boxes(boxes, (120, 300))
    theta = F.patch_affine_matrix(patches, angle=torch.rand(60, generator=g) * 60 - 30)
    got = warp_in_boxes(images, patches, theta, o2i)
    torch.testing.assert_close(got, F.warp_patches(images, patches, theta, o2i), atol=1e-6, rtol=0)
    got = warp_in_boxes(images, patches, theta, o2i, fill=0.5)
    want = F.warp_patches_fill(images, patches, theta, o2i, fill=0.5)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kernel", ["eager", "triton"])
def test_box_only_uint8_fill_pass_is_the_same_on_every_warp_kernel(
        kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The uint8 nearest box-only pass warps the canvas less the fill (mod 256) with zero
    padding and adds the fill back: it relies on the kernel copying a uint8 value exactly
    and padding with exact zeros. Every warp kernel must give the compiled kernel's
    images, bit for bit (Triton in its interpreter on the CPU, as the GPU would run it)."""
    pytest.importorskip("triton")
    policy = [[("Rotate_Only_BBoxes", 1.0, 8), ("ShearX_Only_BBoxes", 1.0, 6)],
              [("TranslateY_Only_BBoxes", 1.0, 9), ("Flip_Only_BBoxes", 1.0, 5)]]
    images = _images(2, 24, torch.uint8, seed=51)
    g = _gen(52)
    xy = torch.randint(0, 14, (6, 2), generator=g).float()
    boxes = torch.cat((xy, xy + torch.randint(4, 10, (6, 2), generator=g)), 1)
    o2i = torch.arange(6) % 2
    aug = DetectionAutoAugment(policy, bbox_prob_divisor=1, fill=128, generator=_gen(53))
    params = aug.forward_parameters(images.shape, boxes, o2i)
    params["sub_policy"] = torch.arange(2)
    try:
        F.set_cpu_kernel("compiled")
        want = aug(images, boxes, o2i, params=params)
        if kernel == "triton":
            monkeypatch.setenv("TRITON_INTERPRET", "1")
        F.set_cpu_kernel(kernel)
        got = aug(images, boxes, o2i, params=params)
    finally:
        F.set_cpu_kernel("auto")
    assert params["box_apply"].any() and not torch.equal(want.images, images)
    assert torch.equal(got.images, want.images)
    assert torch.equal(got.boxes, want.boxes)


@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
def test_warp_in_boxes_in_place_equals_the_operator_over_levels_and_chunks(overlap: str) -> None:
    """The compiled path warps the boxes in the batch itself (no canvas): level by level,
    a level in cache-sized chunks of boxes (``box_warp_``), the uint8 nearest fill by the
    values less the fill. Overlapping boxes (several levels) and levels of more than one
    chunk (over 65 536 values) give the operator's images exactly, uint8 and float."""
    g = _gen(61)
    images = torch.randint(0, 256, (3, 3, 160, 200), dtype=torch.uint8, generator=g)
    xy = torch.rand(90, 2, generator=g) * torch.tensor([170.0, 130.0])
    boxes = torch.cat((xy, xy + 8 + torch.rand(90, 2, generator=g) * 40), 1).round()
    o2i = torch.randint(0, 3, (90,), generator=g)
    patches = F.clip_boxes(boxes, (160, 200))
    theta = F.patch_affine_matrix(patches, angle=torch.rand(90, generator=g) * 80 - 40,
                                  scale=0.9)
    assert _compiled(images) is not None  # the compiled kernel serves this call
    rects = box_pixel_rects(patches, (160, 200))
    level0 = (rects[:, 2:] - rects[:, :2]).prod(1).sum() * 3
    assert level0 > 2 * 65536  # levels of several chunks (and overlaps: several levels)
    before = images.clone()
    last = images.contiguous(memory_format=torch.channels_last)  # strided rows (s_w = C)
    for fill, batch in (((0, 64, 255), images), (128.0, images), ((0, 64, 255), last)):
        if overlap == "sequential":
            got = warp_in_boxes(batch, patches, theta, o2i, fill=fill, mode="nearest",
                                overlap=overlap)
            want = F.warp_patches_fill(images, patches, theta, o2i, fill=torch.tensor(fill),
                                       mode="nearest", overlap=overlap)
            assert torch.equal(got, want) and not torch.equal(got, images)
    for padding in ("zeros", "border", "reflection"):
        got = warp_in_boxes(images, patches, theta, o2i, padding_mode=padding, mode="nearest",
                            overlap=overlap)
        want = F.warp_patches(images, patches, theta, o2i, padding_mode=padding, mode="nearest",
                              overlap=overlap)
        assert torch.equal(got, want)
        floats = images.float() / 255
        got = warp_in_boxes(floats, patches, theta, o2i, padding_mode=padding, overlap=overlap)
        want = F.warp_patches(floats, patches, theta, o2i, padding_mode=padding, overlap=overlap)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert torch.equal(images, before)  # the input is never written


def test_box_warp_kernel_refuses_malformed_arguments() -> None:
    """The in-place box warp (``augpatch_cpu::box_warp_``) says which argument is wrong."""
    work = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    ops = _compiled(work)
    assert ops is not None
    params, options = torch.zeros(1, 14), [0] * 14
    fill = torch.tensor([1, 2, 3], dtype=torch.uint8)
    inside = torch.tensor([[0, 0, 4, 4, 1]])
    with pytest.raises(RuntimeError, match="a rect outside the images"):
        ops.box_warp_(work, params, torch.tensor([[6, 0, 4, 4, 0]]), [0, 1], options, fill)
    with pytest.raises(RuntimeError, match="a rect outside the images"):
        ops.box_warp_(work, params, torch.tensor([[0, 0, 4, 4, 2]]), [0, 1], options, fill)
    with pytest.raises(RuntimeError, match="params must be"):
        ops.box_warp_(work, torch.zeros(2, 14), inside, [0, 1], options, fill)
    with pytest.raises(RuntimeError, match="level_objects must run from 0 to K"):
        ops.box_warp_(work, params, inside, [0, 2], options, fill)
    with pytest.raises(RuntimeError, match="fill must be"):
        ops.box_warp_(work, params, inside, [0, 1], options, fill[:2])
    with pytest.raises(RuntimeError, match="fill must be"):
        ops.box_warp_(work.float(), params, inside, [0, 1], options, fill)
    assert not work.any()  # nothing was written
