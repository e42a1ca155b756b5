"""Edge cases of the transforms and the search (issues 18 and 22)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

import augpatch
import augpatch.functional as F
from augpatch import PatchAffine, PatchSequential, RandomPatchAffine, RandomPatchRotation
from augpatch.search import PatchPolicy, attack

# ------------------------------------------------------------------ errors that point the way


@pytest.mark.parametrize("name", ["RandomPatchAffine", "RandomPatchHorizontalFlip"])
def test_core_transform_in_v2_compose_points_to_the_adapter(name: str) -> None:
    core = getattr(augpatch, name)(p=1.0) if "Flip" in name else getattr(augpatch, name)(10)
    compose = v2.Compose([core])
    with pytest.raises(TypeError, match="images must be a torch.Tensor, got Image") as err:
        compose(Image.new("RGB", (512, 512)))
    assert f"augpatch.integrations.torchvision.{name}" in str(err.value)
    with pytest.raises(ValueError, match=r"images must have shape \[B, C, H, W\], got \(3, 512, 512\)") as err:
        compose(torch.rand(3, 512, 512))
    assert f"augpatch.integrations.torchvision.{name}" in str(err.value)
    assert "v2 transforms" in str(err.value)


def test_custom_transform_is_pointed_to_patch_transform() -> None:
    class Mine(RandomPatchAffine):
        pass

    with pytest.raises(TypeError, match=r"integrations\.torchvision\.PatchTransform\(Mine"):
        Mine(10)(Image.new("RGB", (8, 8)), torch.zeros(0, 4))


def test_missing_boxes_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="needs boxes"):
        RandomPatchAffine(10)(torch.rand(1, 3, 8, 8))


# ------------------------------------------------------------------ identity objects

_IMG = torch.rand(2, 3, 32, 40)
_BOXES = torch.tensor([[3.25, 5.5, 27.75, 19.0], [10.0, 2.0, 38.5, 30.25]])
_O2I = torch.tensor([0, 1])


def _identities() -> list[torch.nn.Module]:
    return [
        PatchAffine(),
        PatchAffine(angle=0.0, scale=1.0),
        RandomPatchAffine(degrees=0, scale=(1, 1), p=1.0),
        PatchSequential(),
        PatchSequential(RandomPatchRotation(0, p=1.0), RandomPatchAffine(translate=0, p=1.0)),
        RandomPatchRotation(30, p=0.0),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identity_parameters_are_the_identity_bit_for_bit(dtype: torch.dtype) -> None:
    for aug in _identities():
        images = _IMG.to(dtype).requires_grad_()
        kps = torch.tensor([[[4.3, 6.1]], [[20.7, 11.9]]], dtype=dtype)
        masks = torch.rand(2, 32, 40) > 0.5
        out = aug(images, _BOXES.to(dtype), _O2I, keypoints=kps, masks=masks)
        name = repr(aug)
        assert torch.equal(out.images, images), name
        assert torch.equal(out.boxes, _BOXES.to(dtype)), name
        assert torch.equal(out.keypoints, kps) and torch.equal(out.masks, masks), name
        (grad,) = torch.autograd.grad((out.images * 3).sum(), images)
        assert torch.equal(grad, torch.full_like(images, 3)), name
        back = aug.inverse(out.images, out.boxes, keypoints=out.keypoints)
        assert torch.equal(back.images, images) and torch.equal(back.boxes, out.boxes), name
        assert torch.equal(back.keypoints, kps), name


def test_integer_boxes_do_not_drift_through_an_identity() -> None:
    boxes = torch.tensor([[3, 5, 27, 19], [10, 2, 38, 30]])
    for aug in _identities():
        out = aug(_IMG, boxes, _O2I)
        assert torch.equal(out.boxes, boxes.float()), repr(aug)


def test_nothing_applied_costs_a_clone_only() -> None:
    images = _IMG.clone().requires_grad_()
    out = RandomPatchAffine(degrees=30, p=0.0)(images, _BOXES, _O2I)
    # no warp in the graph: the output is a clone of the input
    assert out.images.grad_fn is not None and out.images.grad_fn.name() == "CloneBackward0"
    assert out.images.data_ptr() != images.data_ptr()


def test_mixed_identity_and_moved_objects() -> None:
    theta = torch.stack((torch.eye(2, 3), torch.tensor([[0.0, -1, 0], [1, 0, 0]])))
    out = PatchAffine(theta=theta)(_IMG, _BOXES, _O2I)
    ref = F.warp_patches(_IMG, _BOXES, theta, _O2I)
    # object 0 untouched bit for bit, object 1 exactly the warp
    assert torch.equal(out.images[0], _IMG[0]) and torch.equal(out.images[1], ref[1])
    assert torch.equal(out.boxes[0], _BOXES[0])


def test_identity_theta_that_requires_grad_still_gets_its_gradient() -> None:
    # a spatial transformer initialised at the identity must learn from the first step
    theta = torch.eye(2, 3, dtype=torch.float64).repeat(2, 1, 1).requires_grad_()
    images = _IMG.double().requires_grad_()
    out = PatchAffine(theta=theta)(images, _BOXES.double(), _O2I)
    assert torch.equal(out.images, images)
    weight = torch.rand_like(images)
    g_theta, g_img = torch.autograd.grad((out.images * weight).sum(), (theta, images))
    theta_ref = theta.detach().clone().requires_grad_()
    ref = F.warp_patches(images.detach(), _BOXES.double(), theta_ref, _O2I)
    (g_ref,) = torch.autograd.grad((ref * weight).sum(), theta_ref)
    assert g_theta.abs().sum() > 0
    assert torch.allclose(g_theta, g_ref, atol=1e-10)
    assert torch.equal(g_img, weight)


# ------------------------------------------------------------------ PatchPolicy / attack edges

_MODES = [("train", False), ("eval", False), ("train", True)]


@pytest.mark.parametrize(("mode", "straight_through"), _MODES)
def test_policy_without_objects(mode: str, straight_through: bool) -> None:
    policy = PatchPolicy(num_sub_policies=2, operation_count=2, straight_through=straight_through)
    getattr(policy, mode)()
    images = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = policy(images, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert torch.equal(out.images, images) and out.boxes.shape == (0, 4)
    assert out.keep.shape == (0,) and policy._params["theta"].shape == (0, 2, 3)
    out.images.sum().backward()
    assert torch.equal(images.grad, torch.ones_like(images))


@pytest.mark.parametrize(("mode", "straight_through"), _MODES)
def test_policy_images_without_objects_beside_many(mode: str, straight_through: bool) -> None:
    policy = PatchPolicy(num_sub_policies=2, operation_count=2, straight_through=straight_through,
                         generator=torch.Generator().manual_seed(0))
    getattr(policy, mode)()
    images = torch.rand(3, 3, 32, 32)
    boxes = torch.tensor([[1, 1, 9, 9], [10, 10, 20, 22], [22, 2, 31, 12]] * 2)
    o2i = torch.tensor([0, 0, 0, 2, 2, 2])
    out = policy(images, boxes, o2i)
    assert torch.equal(out.images[1], images[1])  # the image without objects
    assert out.boxes.shape == (6, 4) and out.keep.shape == (6,)
    if mode == "train":
        out.images.square().mean().backward()
        assert policy.magnitude.grad is not None


def test_attack_policy_without_objects() -> None:
    images = torch.rand(2, 3, 16, 16)
    adv = attack(PatchPolicy(num_sub_policies=2, operation_count=1),
                 lambda r: r.images.square().mean(), images, torch.zeros(0, 4),
                 torch.zeros(0, dtype=torch.long), steps=2)
    assert adv["op_value"].shape[0] == 0 and adv["theta"].shape == (0, 2, 3)


@pytest.mark.parametrize("name", ["weights", "magnitude", "probability"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_policy_names_the_non_finite_parameter(name: str, mode: str) -> None:
    policy = PatchPolicy(["rotate", "scale", "hflip"], 2, 2)
    getattr(policy, mode)()
    with torch.no_grad():
        getattr(policy, name)[1, 0, 1] = float("nan")
    with pytest.raises(ValueError, match=rf"PatchPolicy\.{name}\[1, 0, 1\].*'scale'.* is nan"):
        policy(torch.rand(1, 3, 16, 16), torch.tensor([[1, 1, 12, 12]]))


def test_attack_names_the_dtype_of_a_non_float_loss() -> None:
    with pytest.raises(TypeError, match=r"floating point tensor, got a tensor of dtype torch\.int64"):
        attack(RandomPatchRotation(10.0), lambda r: (r.images.sum() * 100).long(),
               torch.rand(1, 3, 16, 16), torch.tensor([[1, 1, 12, 12]]), steps=1)
