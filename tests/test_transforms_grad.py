"""Gradients through the augmentation modules: learnable magnitudes, theta, boxes."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from augpatch.transforms import (
    PatchAffine,
    PatchSequential,
    RandomPatchAffine,
    RandomPatchRotation,
    RandomPatchScale,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _small(dtype=torch.float64):
    img = torch.rand(1, 2, 9, 10, generator=_gen(0), dtype=dtype)
    # non-overlapping boxes (gradients through overlaps are warp_patches' own business)
    boxes = torch.tensor([[1.0, 1.0, 8.0, 6.0], [0.0, 6.0, 4.0, 9.0]], dtype=dtype)
    return img, boxes


def test_gradcheck_rotation_magnitude_and_images():
    img, boxes = _small()
    deg = torch.tensor(20.0, dtype=torch.float64, requires_grad=True)
    img = img.requires_grad_()

    def fn(d, x=img):
        # a fresh equally seeded generator: the same u every evaluation
        return RandomPatchRotation(d, p=1.0, generator=_gen(3))(x, boxes).images

    assert gradcheck(fn, (deg,), eps=1e-6, atol=1e-5)
    assert gradcheck(fn, (deg, img), eps=1e-6, atol=1e-5, fast_mode=True)  # 180 pixels


def test_gradcheck_affine_range_bounds_and_float_boxes():
    img, boxes = _small()
    lo = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    hi = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    tr = torch.tensor([0.1, 0.05], dtype=torch.float64, requires_grad=True)
    # integer-free boxes away from pixel-centre thresholds: membership stays constant
    fboxes = (boxes + torch.tensor([0.2, 0.3, -0.2, -0.1], dtype=torch.float64)).requires_grad_()

    def fn(a, b, t, bx):
        aug = RandomPatchAffine(degrees=10, translate=t, scale=(a, b), p=1.0, generator=_gen(5))
        res = aug(img, bx)
        return res.images, res.boxes

    assert gradcheck(fn, (lo, hi, tr, fboxes), eps=1e-6, atol=1e-5)


def test_gradcheck_patch_affine_theta():
    img, boxes = _small()
    theta = torch.tensor(
        [[[0.9, 0.15, 0.05], [-0.1, 1.1, -0.03]], [[-0.8, 0.05, 0.1], [0.02, 0.95, 0.07]]],
        dtype=torch.float64,
        requires_grad=True,
    )

    def fn(th):
        res = PatchAffine(theta=th)(img, boxes)
        return res.images, res.boxes

    assert gradcheck(fn, (theta,), eps=1e-6, atol=1e-5)

    # the per-call route for a spatial transformer: params={"theta": ...}
    def per_call(th):
        return PatchAffine()(img, boxes, params={"theta": th}).images

    assert gradcheck(per_call, (theta,), eps=1e-6, atol=1e-5)


def test_gradcheck_sequential_of_learnable_children():
    img, boxes = _small()
    deg = torch.tensor(15.0, dtype=torch.float64, requires_grad=True)
    ang = torch.tensor([12.0, -7.0], dtype=torch.float64, requires_grad=True)

    def fn(d, a):
        seq = PatchSequential(
            RandomPatchRotation(d, p=1.0, generator=_gen(1)),
            PatchAffine(angle=a, scale=0.9),
        )
        return seq(img, boxes).images

    assert gradcheck(fn, (deg, ang), eps=1e-6, atol=1e-5)


def test_learnable_magnitudes_are_registered_and_receive_gradients():
    img, boxes = _small(torch.float32)
    deg = torch.nn.Parameter(torch.tensor(25.0))
    scale = (torch.nn.Parameter(torch.tensor(0.6)), torch.nn.Parameter(torch.tensor(0.9)))
    shear = torch.tensor(5.0, requires_grad=True)  # a plain tensor: kept as a buffer
    aug = RandomPatchAffine(degrees=deg, scale=scale, shear=shear, p=1.0, generator=_gen(0))
    names = {n for n, _ in aug.named_parameters()}
    assert names == {"degrees", "scale_min", "scale_max"}
    assert aug.shear is shear and dict(aug.named_buffers())["shear"] is shear
    res = aug(img, boxes)
    (res.images.square().sum() + res.boxes.sum()).backward()
    for t in (deg, *scale, shear):
        assert t.grad is not None and torch.isfinite(t.grad) and t.grad != 0
    # parameters move with the module (.to / .double); the module still works
    aug.double()
    assert aug.degrees.dtype == torch.float64
    out = aug(img.double(), boxes.double())
    assert out.images.dtype == torch.float64
    # state_dict holds the learnable magnitudes; repr shows their current range
    assert {"degrees", "scale_min", "scale_max", "shear"} <= set(aug.state_dict())
    assert "degrees=(-25.0, 25.0)" in repr(aug)


def test_reparameterised_draw_scales_with_the_magnitude():
    img, boxes = _small(torch.float32)
    a = RandomPatchRotation(torch.tensor(10.0), p=1.0, generator=_gen(9))
    b = RandomPatchRotation(torch.tensor(30.0), p=1.0, generator=_gen(9))
    a(img, boxes)
    b(img, boxes)
    torch.testing.assert_close(b._params["angle"], 3 * a._params["angle"])
    s = RandomPatchScale((torch.tensor(0.5), torch.tensor(1.5)), p=1.0, generator=_gen(9))
    s(img, boxes)
    u = (a._params["angle"] / 10 + 1) / 2  # the same u01 draws
    torch.testing.assert_close(s._params["scale"][:, 0], 0.5 + u, atol=1e-6, rtol=0)


def test_gradients_flow_to_images_not_through_skipped_objects():
    img, boxes = _small(torch.float32)
    theta = torch.eye(2, 3).repeat(2, 1, 1) + 0.05
    theta.requires_grad_()
    aug = PatchAffine(theta=theta, p=0.0)
    out = aug(img, boxes)
    assert torch.equal(out.images, img)
    assert not out.images.requires_grad


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection", "image"])
def test_padding_modes_run_and_are_differentiable(padding_mode):
    img, boxes = _small(torch.float32)
    img.requires_grad_()
    deg = torch.nn.Parameter(torch.tensor(30.0))
    aug = RandomPatchRotation(deg, p=1.0, padding_mode=padding_mode, generator=_gen(2))
    aug(img, boxes).images.sum().backward()
    assert img.grad is not None and deg.grad is not None and torch.isfinite(deg.grad)
