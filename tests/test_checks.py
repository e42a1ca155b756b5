"""The shared validation helpers of ``augpatch.functional.checks`` and the one home of
the small matrix helpers (``to3x3``, ``invert_theta``) used by every layer."""

from __future__ import annotations

import pytest
import torch

from augpatch.functional.checks import (
    check_bool,
    check_points,
    compute_dtype,
    parse_boxes,
)
from augpatch.functional.geometry import affine_inverse, invert_theta, to3x3

# --------------------------------------------------------------------------- check_bool


def test_check_bool_accepts_bools_only():
    assert check_bool("flag", True) is True
    assert check_bool("flag", False) is False
    for bad in (1, 0, "yes", None, torch.tensor(True)):
        with pytest.raises(TypeError, match="flag must be a bool"):
            check_bool("flag", bad)


# --------------------------------------------------------------------------- compute_dtype


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        ((torch.float32,), torch.float32),
        ((torch.float64,), torch.float64),
        ((torch.float16,), torch.float32),
        ((torch.bfloat16,), torch.float32),
        ((torch.uint8,), torch.float32),
        ((torch.int64, torch.float64), torch.float64),
        ((torch.float32, torch.int32), torch.float32),
    ],
)
def test_compute_dtype(dtypes, expected):
    assert compute_dtype(*(torch.zeros(1, dtype=d) for d in dtypes)) == expected


def test_compute_dtype_takes_dtypes_too():
    assert compute_dtype(torch.float64) == torch.float64
    assert compute_dtype(torch.uint8, torch.float16) == torch.float32
    assert compute_dtype(torch.zeros(1), torch.float64) == torch.float64


def test_compute_dtype_ignores_non_tensors():
    assert compute_dtype(None, 3.0, torch.zeros(1, dtype=torch.float64)) == torch.float64
    assert compute_dtype() == torch.float32


# --------------------------------------------------------------------------- check_points


def test_check_points_shapes():
    pts = torch.rand(3, 5, 2)
    assert check_points(pts, 3) is pts
    one = torch.rand(3, 2)
    assert check_points(one, 3, one_per_object=True).shape == (3, 1, 2)
    with pytest.raises(ValueError, match=r"points must have shape \[N, K, 2\]"):
        check_points(one, 3)
    with pytest.raises(ValueError, match="kp has 2 rows but there are 3 objects"):
        check_points(torch.rand(2, 5, 2), 3, "kp")


@pytest.mark.parametrize(
    ("points", "error", "match"),
    [
        (torch.zeros(1, 1, 2, dtype=torch.bool), TypeError, "real float or integer"),
        (torch.tensor([[[0.0, float("nan")]]]), ValueError, "NaN or Inf"),
        ([[[0.0, 0.0]]], TypeError, "must be a torch.Tensor"),
    ],
)
def test_check_points_bad_values(points, error, match):
    with pytest.raises(error, match=match):
        check_points(points, 1, "keypoints")


# --------------------------------------------------------------------------- parse_boxes


def test_parse_boxes_flat_and_list():
    boxes = torch.tensor([[0, 0, 2, 2], [1, 1, 3, 3]])
    flat, o2i, as_list = parse_boxes(boxes, torch.tensor([1, 0]), 2)
    assert flat is boxes and o2i.tolist() == [1, 0] and not as_list
    flat, o2i, as_list = parse_boxes(boxes, None, 1)
    assert o2i is None and not as_list
    flat, o2i, as_list = parse_boxes([boxes[:1], boxes[1:]], None, 2)
    assert torch.equal(flat, boxes) and o2i.tolist() == [0, 1] and as_list
    assert o2i.dtype == torch.int64


def test_parse_boxes_errors():
    boxes = torch.tensor([[0, 0, 2, 2]])
    with pytest.raises(ValueError, match="obj_to_img must be omitted"):
        parse_boxes([boxes], torch.tensor([0]), 1)
    with pytest.raises(ValueError, match="obj_to_img is required"):
        parse_boxes(boxes, None, 2)
    with pytest.raises(ValueError, match="list of 1 tensors but the batch has 2 images"):
        parse_boxes([boxes], None, 2)


# --------------------------------------------------------------------------- to3x3 / invert_theta


def test_to3x3_appends_the_affine_row():
    theta = torch.rand(4, 2, 3, dtype=torch.float64)
    m = to3x3(theta)
    assert m.shape == (4, 3, 3)
    assert torch.equal(m[:, :2], theta)
    assert torch.equal(m[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(4, 3))


def test_invert_theta_matches_linalg_inv_and_is_differentiable():
    gen = torch.Generator().manual_seed(0)
    theta = torch.eye(2, 3, dtype=torch.float64) + 0.3 * torch.randn(
        5, 2, 3, dtype=torch.float64, generator=gen
    )
    theta.requires_grad_()
    inv = invert_theta(theta)
    expected = torch.linalg.inv(to3x3(theta.detach()))[:, :2]
    torch.testing.assert_close(inv.detach(), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        affine_inverse(to3x3(theta.detach())), torch.linalg.inv(to3x3(theta.detach())),
        rtol=0, atol=1e-12,
    )
    inv.sum().backward()
    assert theta.grad is not None and bool(torch.isfinite(theta.grad).all())


def test_invert_theta_singular_names_the_objects():
    theta = torch.eye(2, 3).repeat(3, 1, 1)
    theta[1, :, :2] = 0
    with pytest.raises(ValueError, match=r"theta is singular.*\[1\].*inverse is undefined"):
        invert_theta(theta)


# --------------------------------------------------------------------------- Python lists as boxes

_SAYS_WHAT_TO_PASS = r"torch\.tensor\(.*obj_to_img.*list of B tensors \[N_i, 4\]"


@pytest.mark.parametrize(
    ("boxes", "what"),
    [
        ([[1, 2, 3, 4], [5, 6, 7, 8], [0, 0, 4, 4]], "Python list of 3 lists of numbers"),
        ([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], "Python list of 2 lists of numbers"),
        ([1, 2, 3, 4], "Python list of 4 numbers"),
        (((1, 2, 3, 4),), "Python list of 1 lists of numbers"),
        ([torch.zeros(1, 4), [0, 0, 4, 4]], "item 1 is a list, not a tensor"),
    ],
)
def test_plain_python_boxes_say_what_to_pass(boxes, what):
    from augpatch import RandomPatchRotation
    from augpatch.functional import list_to_boxes, warp_patches

    images = torch.rand(2, 1, 10, 10)
    n = 3
    for call in (
        lambda: warp_patches(images, boxes, torch.eye(2, 3).repeat(n, 1, 1)),
        lambda: RandomPatchRotation(10.0)(images, boxes),
        lambda: RandomPatchRotation(10.0)(images, boxes, torch.zeros(n, dtype=torch.long)),
        lambda: list_to_boxes(boxes),
        lambda: parse_boxes(boxes, None, 2),
    ):
        with pytest.raises(TypeError, match=what) as info:
            call()
        assert "torch.tensor(" in str(info.value)
        with pytest.raises(TypeError, match=_SAYS_WHAT_TO_PASS):
            call()


# ------------------------------------------------------------------ image_sizes


def test_check_image_sizes_accepts_tensor_and_pairs():
    from augpatch.functional.checks import check_image_sizes

    sizes = check_image_sizes(torch.tensor([[4, 6], [8, 8]]), 2, (8, 8))
    assert sizes.dtype == torch.long and sizes.tolist() == [[4, 6], [8, 8]]
    assert check_image_sizes([(4, 6), (8, 8)], 2, (8, 8)).tolist() == [[4, 6], [8, 8]]
    # every image fills the canvas: nothing to do
    assert check_image_sizes([(8, 8), (8, 8)], 2, (8, 8)) is None
    assert check_image_sizes(None, 2, (8, 8)) is None


@pytest.mark.parametrize(
    "sizes, match",
    [
        (torch.tensor([[4.0, 6.0], [8.0, 8.0]]), "integers"),
        (torch.tensor([[4, 6]]), r"\[B, 2\] = \[2, 2\]"),
        ([(4, 6), (9, 8)], "canvas"),
        ([(0, 6), (8, 8)], "canvas"),
        ("big", "sequence of \\(H, W\\) pairs"),
        ([(4, 6.5), (8, 8)], "pairs \\(H, W\\) of ints"),
    ],
)
def test_check_image_sizes_errors_name_the_argument(sizes, match):
    from augpatch.functional.checks import check_image_sizes

    with pytest.raises((TypeError, ValueError), match=match) as info:
        check_image_sizes(sizes, 2, (8, 8))
    assert "image_sizes" in str(info.value)
