"""One rule, one parser for the human parameters of ``patch_affine_matrix`` and
``PatchAffine`` (angle, translate, scale, shear): a tensor's number of dimensions decides
its meaning, never the number of objects."""

from __future__ import annotations

import pytest
import torch

from augpatch import PatchAffine
from augpatch.functional import patch_affine_matrix
from augpatch.functional.parameters import parse_angle, parse_scale, parse_shear, parse_translate

IMAGES = torch.rand(1, 1, 40, 40)
BOXES2 = torch.tensor([[2.0, 4.0, 18.0, 20.0], [20.0, 10.0, 38.0, 36.0]])
BOXES3 = torch.tensor([[2.0, 4.0, 18.0, 20.0], [20.0, 10.0, 38.0, 36.0], [1.0, 22.0, 15.0, 39.0]])


def _module_theta(boxes: torch.Tensor, **kwargs) -> torch.Tensor:
    aug = PatchAffine(**kwargs)
    aug(IMAGES, boxes)
    return aug._params["theta"]


def _per_object(boxes: torch.Tensor, name: str, values: list) -> torch.Tensor:
    """Reference: each object alone with its own (Python) value."""
    return torch.cat(
        [patch_affine_matrix(boxes[i : i + 1], **{name: v}) for i, v in enumerate(values)]
    )


# --------------------------------------------------------------------------- the ambiguous case


def test_two_boxes_1d_scale_tensor_is_per_object_for_function_and_module():
    scale = torch.tensor([0.5, 2.0])
    expected = _per_object(BOXES2, "scale", [0.5, 2.0])  # isotropic, one per object
    torch.testing.assert_close(patch_affine_matrix(BOXES2, scale=scale), expected)
    torch.testing.assert_close(_module_theta(BOXES2, scale=scale), expected)
    assert torch.equal(parse_scale(scale, 2), torch.tensor([[0.5, 0.5], [2.0, 2.0]]))


@pytest.mark.parametrize("pair", [(0.5, 2.0), [0.5, 2.0], torch.tensor([[0.5, 2.0]])])
def test_a_python_pair_or_a_1x2_tensor_is_sx_sy_for_every_object(pair):
    expected = _per_object(BOXES2, "scale", [(0.5, 2.0), (0.5, 2.0)])
    torch.testing.assert_close(patch_affine_matrix(BOXES2, scale=pair), expected)
    torch.testing.assert_close(_module_theta(BOXES2, scale=pair), expected)
    # and it is anisotropic: not what the per-object reading gives
    assert not torch.allclose(expected, _per_object(BOXES2, "scale", [0.5, 2.0]))


def test_length_2_tensor_with_three_boxes_is_an_error_that_says_how_to_pass_a_pair():
    scale = torch.tensor([0.5, 2.0])
    with pytest.raises(ValueError, match=r"scale has 2 values but there are 3 objects.*\[1, 2\]"):
        patch_affine_matrix(BOXES3, scale=scale)
    aug = PatchAffine(scale=scale)  # N unknown at construction: checked at the call
    with pytest.raises(ValueError, match=r"scale has 2 values but there are 3 objects.*\[1, 2\]"):
        aug(IMAGES, BOXES3)


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, [[0.5, 0.5]] * 3),
        (torch.tensor(0.5), [[0.5, 0.5]] * 3),
        (torch.tensor([0.5]), [[0.5, 0.5]] * 3),
        (torch.tensor([0.5, 2.0, 3.0]), [[0.5, 0.5], [2.0, 2.0], [3.0, 3.0]]),
        (torch.tensor([[0.5], [2.0], [3.0]]), [[0.5, 0.5], [2.0, 2.0], [3.0, 3.0]]),
        ((0.5, 2.0), [[0.5, 2.0]] * 3),
        (torch.tensor([[0.5, 2.0]]), [[0.5, 2.0]] * 3),
        (torch.tensor([[0.5, 2.0], [1.0, 1.5], [3.0, 0.25]]), [[0.5, 2.0], [1.0, 1.5], [3.0, 0.25]]),
    ],
)
def test_scale_forms(value, expected):
    assert torch.equal(parse_scale(value, 3), torch.tensor(expected))
    torch.testing.assert_close(
        _module_theta(BOXES3, scale=value), patch_affine_matrix(BOXES3, scale=value)
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10.0, [[10.0, 0.0]] * 3),
        (torch.tensor([10.0, -5.0, 0.0]), [[10.0, 0.0], [-5.0, 0.0], [0.0, 0.0]]),
        (torch.tensor([[10.0], [-5.0], [0.0]]), [[10.0, 0.0], [-5.0, 0.0], [0.0, 0.0]]),
        ((10.0, 20.0), [[10.0, 20.0]] * 3),
        (torch.tensor([[10.0, 20.0]]), [[10.0, 20.0]] * 3),
    ],
)
def test_shear_forms(value, expected):
    assert torch.equal(parse_shear(value, 3), torch.tensor(expected))
    torch.testing.assert_close(
        _module_theta(BOXES3, shear=value), patch_affine_matrix(BOXES3, shear=value)
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30.0, [30.0] * 3),
        (torch.tensor([30.0]), [30.0] * 3),
        (torch.tensor([30.0, -10.0, 5.0]), [30.0, -10.0, 5.0]),
        ([30.0, -10.0, 5.0], [30.0, -10.0, 5.0]),
    ],
)
def test_angle_forms(value, expected):
    assert torch.equal(parse_angle(value, 3), torch.tensor(expected))
    torch.testing.assert_close(
        _module_theta(BOXES3, angle=value), patch_affine_matrix(BOXES3, angle=value)
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.25, [[0.25, 0.25]] * 3),
        ((0.25, -0.5), [[0.25, -0.5]] * 3),
        (torch.tensor([0.25, -0.5]), [[0.25, -0.5]] * 3),  # always (tx, ty), also for N == 2
        (torch.tensor([[0.25, -0.5]]), [[0.25, -0.5]] * 3),
        (torch.tensor([[0.25, -0.5], [0.0, 0.1], [-0.2, 0.0]]), [[0.25, -0.5], [0.0, 0.1], [-0.2, 0.0]]),
    ],
)
def test_translate_forms(value, expected):
    assert torch.equal(parse_translate(value, 3), torch.tensor(expected))
    # the module's translate is a fraction of the patch size, the function's in pixels
    size = BOXES3[:, 2:] - BOXES3[:, :2]
    pixels = torch.tensor(expected) * size
    torch.testing.assert_close(
        _module_theta(BOXES3, translate=value), patch_affine_matrix(BOXES3, translate=pixels)
    )
    assert torch.equal(parse_translate(torch.tensor([0.25, -0.5]), 2), torch.tensor([[0.25, -0.5]] * 2))


# --------------------------------------------------------------------------- errors, gradients


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scale": (0.5, 2.0, 3.0)}, ValueError, r"scale given as a sequence must be an \(x, y\) pair"),
        ({"shear": torch.ones(3, 3)}, ValueError, r"shear must be .*\[N, 2\]"),
        ({"scale": torch.ones(3, 2, 1)}, ValueError, "scale must be"),
        ({"angle": torch.ones(3, 1)}, ValueError, "angle must be"),
        ({"angle": torch.ones(2)}, ValueError, "angle has 2 values but there are 3 objects"),
        ({"translate": (1.0, 2.0, 3.0)}, ValueError, r"translate given as a sequence must be"),
        ({"translate": torch.ones(3)}, ValueError, "translate must be"),
        ({"translate": torch.ones(2, 2)}, ValueError, "translate has 2 values but there are 3"),
        ({"shear": torch.ones(2, 2)}, ValueError, "shear has 2 values but there are 3"),
        ({"scale": torch.tensor([float("nan")])}, ValueError, "scale contains NaN"),
        ({"scale": True}, TypeError, "scale must be"),
    ],
)
def test_same_errors_from_function_and_module(kwargs, error, match):
    with pytest.raises(error, match=match):
        patch_affine_matrix(BOXES3, **kwargs)
    with pytest.raises(error, match=match):
        PatchAffine(**kwargs)(IMAGES, BOXES3)


def test_per_object_learnable_scale_gets_gradients():
    scale = torch.tensor([0.8, 1.2], requires_grad=True)
    aug = PatchAffine(scale=scale)
    out = aug(torch.rand(1, 1, 40, 40), BOXES2)
    out.images.sum().backward()
    assert scale.grad is not None and scale.grad.shape == (2,)
    assert bool((scale.grad != 0).all())
