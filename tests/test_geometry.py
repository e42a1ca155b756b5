"""Tests for augpatch.functional.geometry (theta <-> pixel matrices, human parameters,
boxes and points through the transform).

Expected values are derived independently of the implementation: from the SPEC's
normalisation formulas written out here, from torchvision / Kornia, or by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from augpatch.functional.geometry import (
    inverse_transform_boxes,
    inverse_transform_points,
    patch_affine_matrix,
    pixel_matrix_to_theta,
    theta_to_pixel_matrix,
    transform_boxes,
    transform_points,
)

D64 = torch.float64
FAST = settings(max_examples=40, deadline=None)


# --------------------------------------------------------------------------- references


def normalise(points: torch.Tensor, boxes: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """SPEC: pixel (x, y) -> normalised (u, v) of each box. points [N, K, 2], boxes [N, 4]."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    off = 1.0 if align_corners else 0.0
    c = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2), -1)[:, None]
    s = torch.stack(((x2 - x1 - off) / 2, (y2 - y1 - off) / 2), -1)[:, None]
    return (points - c) / s


def denormalise(uv: torch.Tensor, boxes: torch.Tensor, align_corners: bool) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    off = 1.0 if align_corners else 0.0
    c = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2), -1)[:, None]
    s = torch.stack(((x2 - x1 - off) / 2, (y2 - y1 - off) / 2), -1)[:, None]
    return uv * s + c


def apply_theta(theta: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """theta [N, 2, 3] applied to normalised points [N, K, 2]."""
    return uv @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]


def forward_reference(theta, points, boxes, align_corners):
    """Forward map by the definition: normalise, apply theta^-1 (torch.linalg.inv), back."""
    t3 = torch.cat(
        (theta, torch.tensor([0.0, 0, 1], dtype=theta.dtype).expand(len(theta), 1, 3)), 1
    )
    inv = torch.linalg.inv(t3)[:, :2]
    return denormalise(
        apply_theta(inv, normalise(points, boxes, align_corners)), boxes, align_corners
    )


def random_boxes(n: int, gen: torch.Generator, min_size: float = 2.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen, dtype=D64) * 50
    wh = min_size + torch.rand(n, 2, generator=gen, dtype=D64) * 40
    return torch.cat((xy, xy + wh), -1)


def random_affine(n: int, gen: torch.Generator) -> torch.Tensor:
    """Well-conditioned random [N, 3, 3] affine matrices."""
    lin = torch.eye(2, dtype=D64) + 0.4 * (torch.rand(n, 2, 2, generator=gen, dtype=D64) - 0.5)
    t = 10 * (torch.rand(n, 2, 1, generator=gen, dtype=D64) - 0.5)
    top = torch.cat((lin, t), -1)
    return torch.cat((top, torch.tensor([0.0, 0, 1], dtype=D64).expand(n, 1, 3)), 1)


def square_corners(cx: float, cy: float, half: float) -> torch.Tensor:
    return torch.tensor(
        [
            [
                [cx - half, cy - half],
                [cx + half, cy - half],
                [cx + half, cy + half],
                [cx - half, cy + half],
            ]
        ],
        dtype=D64,
    )


def assert_square(corners: torch.Tensor, side: float) -> None:
    """corners [4, 2] in order: all sides equal to ``side`` and a right angle."""
    sides = [(corners[(i + 1) % 4] - corners[i]) for i in range(4)]
    for s in sides:
        assert float(s.norm()) == pytest.approx(side, abs=1e-9)
    assert float(sides[0] @ sides[1]) == pytest.approx(0.0, abs=1e-9)


# --------------------------------------------------------------------------- theta <-> pixel matrix


@pytest.mark.parametrize("align_corners", [False, True])
def test_pixel_matrix_theta_round_trip(align_corners):
    gen = torch.Generator().manual_seed(0)
    boxes = random_boxes(16, gen)
    a = random_affine(16, gen)
    theta = pixel_matrix_to_theta(a, boxes, align_corners=align_corners)
    assert theta.shape == (16, 2, 3) and theta.dtype == D64
    back = theta_to_pixel_matrix(theta, boxes, align_corners=align_corners)
    torch.testing.assert_close(back, a)
    # the other way round, starting from theta, and with [N, 6] / [N, 2, 3] inputs
    theta2 = pixel_matrix_to_theta(back[:, :2], boxes, align_corners=align_corners)
    torch.testing.assert_close(theta2, theta)
    torch.testing.assert_close(
        theta_to_pixel_matrix(theta.reshape(16, 6), boxes, align_corners=align_corners), back
    )


@pytest.mark.parametrize("align_corners", [False, True])
def test_pixel_matrix_to_theta_matches_definition(align_corners):
    """theta must read, at output location A p, the input location p (SPEC formulas)."""
    gen = torch.Generator().manual_seed(1)
    boxes = random_boxes(8, gen)
    a = random_affine(8, gen)
    theta = pixel_matrix_to_theta(a, boxes, align_corners=align_corners)
    p = torch.rand(8, 5, 2, generator=gen, dtype=D64) * 60
    ap = p @ a[:, :2, :2].transpose(1, 2) + a[:, None, :2, 2]
    read = apply_theta(theta, normalise(ap, boxes, align_corners))
    torch.testing.assert_close(read, normalise(p, boxes, align_corners))


def test_theta_to_pixel_matrix_zoom_by_hand():
    # theta = 0.5 I reads the central half: content is magnified x2 about the centre (2, 2)
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    theta = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]])
    a = theta_to_pixel_matrix(theta, boxes)
    expected = torch.tensor([[[2.0, 0.0, -2.0], [0.0, 2.0, -2.0], [0.0, 0.0, 1.0]]])
    torch.testing.assert_close(a, expected)


def test_canvas_size_clips_before_converting():
    boxes = torch.tensor([[-10.0, 0.0, 10.0, 20.0]])
    a = torch.tensor([[[1.0, 0.0, 5.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    theta = pixel_matrix_to_theta(a, boxes, canvas_size=(20, 30))
    # patch is [0, 10] x [0, 20]: 5 px = half the patch width -> reads from u - 1
    torch.testing.assert_close(theta, torch.tensor([[[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]]))
    theta_unclipped = pixel_matrix_to_theta(a, boxes)
    torch.testing.assert_close(theta_unclipped, torch.tensor([[[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]]]))


# --------------------------------------------------------------------------- human parameters


@pytest.mark.parametrize("align_corners", [False, True])
def test_patch_affine_identity(align_corners):
    boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0], [3.5, 1.0, 4.0, 9.0], [5.0, 5.0, 5.0, 5.0]])
    eye = torch.eye(2, 3).expand(3, 2, 3)
    torch.testing.assert_close(patch_affine_matrix(boxes, align_corners=align_corners), eye)
    theta = patch_affine_matrix(
        boxes,
        angle=torch.zeros(3),
        translate=torch.zeros(3, 2),
        scale=torch.ones(3, 2),
        shear=torch.zeros(3, 2),
        align_corners=align_corners,
    )
    torch.testing.assert_close(theta, eye)
    assert theta.dtype == torch.float32


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("angle", [90.0, -90.0, 30.0, 137.0])
def test_rotation_keeps_square_square_in_tall_box(align_corners, angle):
    boxes = torch.tensor([[5.0, 7.0, 25.0, 47.0]], dtype=D64)  # 20 wide, 40 tall
    theta = patch_affine_matrix(boxes, angle=angle, align_corners=align_corners)
    sq = square_corners(17.0, 30.0, 3.0)
    moved = forward_reference(theta, sq, boxes, align_corners)[0]
    assert_square(moved, 6.0)
    # rotation about the box centre: distance to the centre is preserved
    c = torch.tensor([15.0, 27.0], dtype=D64)
    torch.testing.assert_close((moved - c).norm(dim=-1), (sq[0] - c).norm(dim=-1))
    # and the library's own forward map agrees with the definition
    torch.testing.assert_close(
        transform_points(sq, boxes, theta, align_corners=align_corners)[0], moved
    )


def test_rotation_of_square_image_content_in_tall_box():
    """Warp a 40 x 20 patch holding a 6 x 6 square with F.affine_grid/grid_sample and
    theta: after +90 degrees it is still a 6 x 6 square, where we computed by hand."""
    patch = torch.zeros(1, 1, 40, 20, dtype=D64)
    patch[..., 22:28, 8:14] = 1.0  # cols 8..13, rows 22..27 (local pixel coordinates)
    box = torch.tensor([[0.0, 0.0, 20.0, 40.0]], dtype=D64)
    theta = patch_affine_matrix(box, angle=90.0)
    grid = F.affine_grid(theta, list(patch.shape), align_corners=False)
    out = F.grid_sample(patch, grid, align_corners=False)
    # forward map about the centre (10, 20): (dx, dy) -> (dy, -dx)
    # x in [8, 14] -> y' = 20 - (x - 10) in [16, 22]
    # y in [22, 28] -> x' = 10 + (y - 20) in [12, 18]
    expected = torch.zeros_like(patch)
    expected[..., 16:22, 12:18] = 1.0
    torch.testing.assert_close(out, expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("align_corners", [False, True])
def test_positive_angle_is_counter_clockwise(align_corners):
    boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0]], dtype=D64)
    theta = patch_affine_matrix(boxes, angle=90.0, align_corners=align_corners)
    right = torch.tensor([[[15.0, 20.0]]], dtype=D64)  # 5 px right of the centre (10, 20)
    moved = transform_points(right, boxes, theta, align_corners=align_corners)
    torch.testing.assert_close(moved, torch.tensor([[[10.0, 15.0]]], dtype=D64))  # 5 px up
    # small positive angle: a point right of centre moves up (y decreases) a little
    theta = patch_affine_matrix(boxes, angle=10.0, align_corners=align_corners)
    moved = transform_points(right, boxes, theta, align_corners=align_corners)[0, 0]
    assert moved[1] < 20.0 and moved[0] < 15.0


def _smooth_image(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h, dtype=D64), torch.arange(w, dtype=D64), indexing="ij")
    img = torch.stack(
        (torch.sin(xx / 5) + torch.cos(yy / 7) + 0.01 * xx * yy, torch.cos(xx / 3 - yy / 9))
    )
    return img[None]


def _warp(img: torch.Tensor, theta: torch.Tensor, align_corners: bool) -> torch.Tensor:
    grid = F.affine_grid(theta, list(img.shape), align_corners=align_corners)
    return F.grid_sample(
        img, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners
    )


@pytest.mark.parametrize("angle", [30.0, -75.0, 90.0, 180.0])
def test_rotate_matches_torchvision_rotate(angle):
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    from torchvision.transforms.v2 import InterpolationMode

    img = _smooth_image(24, 32)
    box = torch.tensor([[0.0, 0.0, 32.0, 24.0]], dtype=D64)
    ours = _warp(img, patch_affine_matrix(box, angle=angle), False)
    ref = tvf.rotate(img, angle, interpolation=InterpolationMode.BILINEAR)
    torch.testing.assert_close(ours[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    "angle, translate, scale, shear",
    [
        (20.0, [3, -2], 1.3, [10.0, -5.0]),
        (-40.0, [0, 0], 0.7, [0.0, 15.0]),
        (0.0, [1, 1], 1.0, [25.0, 0.0]),
        (65.0, [-4, 2], 0.9, [-12.0, 8.0]),
    ],
)
def test_affine_matches_torchvision_affine(angle, translate, scale, shear):
    """torchvision's F.affine uses a clockwise angle: ours(angle) == tv.affine(-angle)."""
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    from torchvision.transforms.v2 import InterpolationMode

    img = _smooth_image(24, 32)
    box = torch.tensor([[0.0, 0.0, 32.0, 24.0]], dtype=D64)
    theta = patch_affine_matrix(
        box,
        angle=angle,
        translate=torch.tensor(translate, dtype=D64),
        scale=scale,
        shear=torch.tensor([shear], dtype=D64),
    )
    ref = tvf.affine(
        img,
        angle=-angle,
        translate=translate,
        scale=scale,
        shear=shear,
        interpolation=InterpolationMode.BILINEAR,
    )
    torch.testing.assert_close(
        _warp(img, theta, False)[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=1e-9, rtol=0
    )


def test_forward_matrix_matches_torchvision_matrix():
    tvf1 = pytest.importorskip("torchvision.transforms.functional")
    get = getattr(tvf1, "_get_inverse_affine_matrix", None)
    if get is None:
        pytest.skip("torchvision private helper not available")
    w, h = 40.0, 30.0
    box = torch.tensor([[0.0, 0.0, w, h]], dtype=D64)
    gen = torch.Generator().manual_seed(3)
    for _ in range(10):
        a, s = (
            float(torch.rand(1, generator=gen) * 360 - 180),
            float(0.5 + torch.rand(1, generator=gen)),
        )
        t = (torch.rand(2, generator=gen, dtype=D64) * 10 - 5).tolist()
        sh = (torch.rand(2, generator=gen, dtype=D64) * 60 - 30).tolist()
        theta = patch_affine_matrix(
            box,
            angle=a,
            translate=torch.tensor(t, dtype=D64),
            scale=s,
            shear=torch.tensor([sh], dtype=D64),
        )
        ours = theta_to_pixel_matrix(theta, box)[0]
        m = torch.tensor(get([0.0, 0.0], -a, t, s, sh, inverted=False), dtype=D64).reshape(2, 3)
        # torchvision's matrix is about the image centre; move it to pixel coordinates
        c = torch.tensor([w / 2, h / 2], dtype=D64)
        expected_t = m[:, 2] + c - m[:, :2] @ c
        torch.testing.assert_close(ours[:2, :2], m[:, :2])
        torch.testing.assert_close(ours[:2, 2], expected_t)


@pytest.mark.parametrize("angle", [30.0, -120.0])
def test_rotate_matches_kornia_align_corners(angle):
    kornia = pytest.importorskip("kornia")
    img = _smooth_image(24, 32)
    box = torch.tensor([[0.0, 0.0, 32.0, 24.0]], dtype=D64)
    ours = _warp(img, patch_affine_matrix(box, angle=angle, align_corners=True), True)
    ref = kornia.geometry.transform.rotate(
        img, torch.tensor([angle], dtype=D64), align_corners=True
    )
    torch.testing.assert_close(ours[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=1e-9, rtol=0)


def test_anisotropic_scale_and_shear_by_hand():
    boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0]], dtype=D64)  # centre (10, 20)
    pts = torch.tensor([[[12.0, 23.0]]], dtype=D64)  # offset (2, 3)
    th = patch_affine_matrix(boxes, scale=torch.tensor([[2.0, 0.5]], dtype=D64))
    torch.testing.assert_close(
        transform_points(pts, boxes, th), torch.tensor([[[14.0, 21.5]]], dtype=D64)
    )
    # x-shear of 45 degrees (torchvision SHx = [[1, -tan], [0, 1]]): (2, 3) -> (2 - 3, 3)
    th = patch_affine_matrix(boxes, shear=45.0)
    torch.testing.assert_close(
        transform_points(pts, boxes, th), torch.tensor([[[9.0, 23.0]]], dtype=D64)
    )
    # y-shear of 45 degrees (SHy = [[1, 0], [-tan, 1]]): (2, 3) -> (2, 3 - 2)
    th = patch_affine_matrix(boxes, shear=torch.tensor([[0.0, 45.0]], dtype=D64))
    torch.testing.assert_close(
        transform_points(pts, boxes, th), torch.tensor([[[12.0, 21.0]]], dtype=D64)
    )
    # a Python pair is (x-shear, y-shear), as in torchvision
    th2 = patch_affine_matrix(boxes, shear=(0.0, 45.0))
    torch.testing.assert_close(th2, th)
    # translate in pixels
    th = patch_affine_matrix(boxes, translate=(4.0, -1.0))
    torch.testing.assert_close(
        transform_points(pts, boxes, th), torch.tensor([[[16.0, 22.0]]], dtype=D64)
    )


def test_patch_affine_broadcasting_and_per_object_values():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 30.0, 20.0], [5.0, 5.0, 9.0, 25.0]])
    angles = torch.tensor([10.0, -20.0, 45.0])
    batched = patch_affine_matrix(
        boxes, angle=angles, scale=torch.tensor([1.0, 2.0, 0.5]), translate=torch.tensor([1.0, 2.0])
    )
    for i in range(3):
        single = patch_affine_matrix(
            boxes[i : i + 1], angle=float(angles[i]), scale=[1.0, 2.0, 0.5][i], translate=(1.0, 2.0)
        )
        torch.testing.assert_close(batched[i : i + 1], single)
    empty = patch_affine_matrix(torch.zeros(0, 4), angle=30.0, scale=torch.ones(0, 2))
    assert empty.shape == (0, 2, 3)


def test_patch_affine_dtype_and_int_boxes():
    boxes = torch.tensor([[0, 0, 20, 40]])
    assert patch_affine_matrix(boxes, angle=30.0).dtype == torch.float32
    assert patch_affine_matrix(boxes, angle=torch.tensor(30.0, dtype=D64)).dtype == D64
    assert patch_affine_matrix(boxes.double(), angle=30.0).dtype == D64


def test_gradients_reach_every_parameter():
    boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0], [5.0, 5.0, 15.0, 12.0]], requires_grad=True)
    angle = torch.tensor([30.0, -10.0], requires_grad=True)
    translate = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    scale = torch.tensor([[1.2, 0.8], [0.9, 1.1]], requires_grad=True)
    shear = torch.tensor([[5.0, -3.0], [2.0, 7.0]], requires_grad=True)
    theta = patch_affine_matrix(boxes, angle, translate, scale, shear)
    (theta * torch.randn_like(theta)).sum().backward()
    for t in (boxes, angle, translate, scale, shear):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


@pytest.mark.parametrize("align_corners", [False, True])
def test_gradcheck_patch_affine_matrix(align_corners):
    boxes = torch.tensor(
        [[0.0, 0.0, 20.0, 40.0], [5.0, 5.0, 15.0, 12.0]], dtype=D64, requires_grad=True
    )
    angle = torch.tensor([30.0, -10.0], dtype=D64, requires_grad=True)
    translate = torch.tensor([[1.0, 2.0], [0.0, -1.0]], dtype=D64, requires_grad=True)
    scale = torch.tensor([[1.2, 0.8], [0.9, 1.1]], dtype=D64, requires_grad=True)
    shear = torch.tensor([[5.0, -3.0], [2.0, 7.0]], dtype=D64, requires_grad=True)

    def f(b, a, t, s, sh):
        return patch_affine_matrix(b, a, t, s, sh, align_corners=align_corners)

    assert torch.autograd.gradcheck(f, (boxes, angle, translate, scale, shear))


def test_gradcheck_points_and_boxes():
    gen = torch.Generator().manual_seed(5)
    patches = random_boxes(3, gen).requires_grad_()
    theta = pixel_matrix_to_theta(random_affine(3, gen), patches.detach()).requires_grad_()
    pts = (torch.rand(3, 4, 2, generator=gen, dtype=D64) * 50).requires_grad_()
    assert torch.autograd.gradcheck(transform_points, (pts, patches, theta))
    assert torch.autograd.gradcheck(inverse_transform_points, (pts, patches, theta))
    assert torch.autograd.gradcheck(
        lambda b, t: transform_boxes(b, t, clip=False), (patches, theta)
    )
    a = random_affine(3, gen)[:, :2].clone().requires_grad_()  # [N, 2, 3] form
    assert torch.autograd.gradcheck(pixel_matrix_to_theta, (a, patches))


# --------------------------------------------------------------------------- points and boxes


@st.composite
def scene(draw):
    n = draw(st.integers(1, 4))
    align_corners = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    boxes = random_boxes(n, gen, min_size=2.0)
    angle = torch.rand(n, generator=gen, dtype=D64) * 360 - 180
    scale = 0.3 + torch.rand(n, 2, generator=gen, dtype=D64) * 2
    shear = torch.rand(n, 2, generator=gen, dtype=D64) * 80 - 40
    translate = torch.rand(n, 2, generator=gen, dtype=D64) * 20 - 10
    theta = patch_affine_matrix(boxes, angle, translate, scale, shear, align_corners=align_corners)
    points = torch.rand(n, 5, 2, generator=gen, dtype=D64) * 100 - 10
    return boxes, theta, points, align_corners


@FAST
@given(scene())
def test_points_round_trip(data):
    boxes, theta, points, ac = data
    fwd = transform_points(points, boxes, theta, align_corners=ac)
    torch.testing.assert_close(forward_reference(theta, points, boxes, ac), fwd)
    torch.testing.assert_close(
        inverse_transform_points(fwd, boxes, theta, align_corners=ac), points
    )
    back = inverse_transform_points(points, boxes, theta, align_corners=ac)
    torch.testing.assert_close(transform_points(back, boxes, theta, align_corners=ac), points)


@FAST
@given(scene(), st.booleans())
def test_transform_boxes_is_aabb_of_forward_corners(data, clip):
    boxes, theta, _, ac = data
    out = transform_boxes(boxes, theta, clip=clip, align_corners=ac)
    x1, y1, x2, y2 = boxes.unbind(-1)
    corners = torch.stack(
        (
            torch.stack((x1, y1), -1),
            torch.stack((x2, y1), -1),
            torch.stack((x2, y2), -1),
            torch.stack((x1, y2), -1),
        ),
        1,
    )
    moved = forward_reference(theta, corners, boxes, ac)
    expected = torch.cat((moved.amin(1), moved.amax(1)), -1)
    if clip:
        expected = torch.cat(
            (
                torch.maximum(expected[:, :2], boxes[:, :2]),
                torch.minimum(expected[:, 2:], boxes[:, 2:]),
            ),
            -1,
        )
    torch.testing.assert_close(out, expected)
    # the inverse of the unclipped box covers the original patch
    if not clip:
        back = inverse_transform_boxes(out, boxes, theta, align_corners=ac)
        assert (back[:, :2] <= boxes[:, :2] + 1e-6).all() and (
            back[:, 2:] >= boxes[:, 2:] - 1e-6
        ).all()


@pytest.mark.parametrize("align_corners", [False, True])
def test_boxes_by_hand_and_inverse_restores(align_corners):
    boxes = torch.tensor(
        [[0.0, 0.0, 20.0, 40.0], [10.0, 10.0, 30.0, 30.0], [0.0, 0.0, 8.0, 6.0]], dtype=D64
    )
    theta = patch_affine_matrix(
        boxes,
        angle=torch.tensor([0.0, 90.0, 180.0], dtype=D64),
        translate=torch.tensor([[2.0, -3.0], [0.0, 0.0], [0.0, 0.0]], dtype=D64),
        scale=torch.tensor([0.5, 0.5, 1.0], dtype=D64),
        align_corners=align_corners,
    )
    out = transform_boxes(boxes, theta, align_corners=align_corners)
    expected = torch.tensor(
        [[7.0, 7.0, 17.0, 27.0], [15.0, 15.0, 25.0, 25.0], [0.0, 0.0, 8.0, 6.0]], dtype=D64
    )
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(
        inverse_transform_boxes(out, boxes, theta, align_corners=align_corners), boxes
    )
    # [N, 6] theta is accepted too
    torch.testing.assert_close(
        transform_boxes(boxes, theta.reshape(3, 6), align_corners=align_corners), out
    )


def test_transform_boxes_clip_and_canvas():
    boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0]])
    theta = patch_affine_matrix(boxes, translate=(15.0, 0.0))
    torch.testing.assert_close(
        transform_boxes(boxes, theta, clip=False), torch.tensor([[15.0, 0.0, 35.0, 40.0]])
    )
    torch.testing.assert_close(
        transform_boxes(boxes, theta), torch.tensor([[15.0, 0.0, 20.0, 40.0]])
    )
    # moved out entirely: degenerate but finite
    theta = patch_affine_matrix(boxes, translate=(100.0, 0.0))
    out = transform_boxes(boxes, theta)
    assert torch.isfinite(out).all() and out[0, 2] <= out[0, 0]
    # canvas: identity keeps the clipped box; the patch is the clipped box
    boxes = torch.tensor([[-10.0, 5.0, 30.0, 50.0]])
    eye = torch.eye(2, 3)[None]
    torch.testing.assert_close(
        transform_boxes(boxes, eye, canvas_size=(40, 25)), torch.tensor([[0.0, 5.0, 25.0, 40.0]])
    )
    torch.testing.assert_close(transform_boxes(boxes, eye), boxes)


@pytest.mark.parametrize("align_corners", [False, True])
def test_degenerate_patches_never_nan(align_corners):
    boxes = torch.tensor(
        [[3.0, 2.0, 4.0, 10.0], [5.0, 5.0, 5.0, 5.0], [8.0, 1.0, 6.0, 3.0], [0.0, 0.0, 1.0, 1.0]]
    )
    for theta in (
        torch.eye(2, 3).expand(4, 2, 3),
        patch_affine_matrix(boxes, angle=30.0, scale=1.5, align_corners=align_corners),
    ):
        assert torch.isfinite(theta).all()
        out = transform_boxes(boxes, theta, align_corners=align_corners)
        assert torch.isfinite(out).all()
        pts = torch.rand(4, 3, 2) * 10
        fwd = transform_points(pts, boxes, theta, align_corners=align_corners)
        assert torch.isfinite(fwd).all()
        a = theta_to_pixel_matrix(theta, boxes, align_corners=align_corners)
        assert torch.isfinite(a).all()
    # identity theta leaves even degenerate boxes unchanged
    out = transform_boxes(
        boxes, torch.eye(2, 3).expand(4, 2, 3), clip=False, align_corners=align_corners
    )
    torch.testing.assert_close(
        out,
        torch.tensor(
            [
                [3.0, 2.0, 4.0, 10.0],
                [5.0, 5.0, 5.0, 5.0],
                [6.0, 1.0, 8.0, 3.0],
                [0.0, 0.0, 1.0, 1.0],
            ]
        ),
    )


@pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid")
def test_one_pixel_column_align_corners_true_moves_only_vertically():
    # 1 px wide patch: u = 0 for every x (F.affine_grid of size 1); a vertical flip still works
    boxes = torch.tensor([[3.0, 0.0, 4.0, 9.0]], dtype=D64)
    theta = torch.tensor([[[0.7, 0.3, 0.0], [0.0, -1.0, 0.0]]], dtype=D64)
    pts = torch.tensor([[[3.5, 0.5], [3.5, 8.5], [3.5, 2.5]]], dtype=D64)
    out = transform_points(pts, boxes, theta, align_corners=True)
    torch.testing.assert_close(out, torch.tensor([[[3.5, 8.5], [3.5, 0.5], [3.5, 6.5]]], dtype=D64))
    # and this is what grid_sample does with that theta on the 9 x 1 patch
    col = torch.arange(9, dtype=D64).reshape(1, 1, 9, 1)
    warped = F.grid_sample(
        col, F.affine_grid(theta, [1, 1, 9, 1], align_corners=True), align_corners=True
    )
    torch.testing.assert_close(warped.flatten(), torch.arange(8, -1, -1, dtype=D64))


def test_inputs_not_modified():
    boxes = torch.tensor([[-5.0, 0.0, 20.0, 40.0]])
    theta = torch.tensor([[[0.9, 0.1, 0.2], [0.0, 1.1, -0.1]]])
    pts = torch.rand(1, 3, 2) * 20
    angle, scale = torch.tensor([30.0]), torch.tensor([[1.5, 0.5]])
    copies = [t.clone() for t in (boxes, theta, pts, angle, scale)]
    transform_boxes(boxes, theta, canvas_size=(30, 30))
    inverse_transform_boxes(boxes, boxes, theta)
    transform_points(pts, boxes, theta)
    inverse_transform_points(pts, boxes, theta)
    patch_affine_matrix(boxes, angle, scale=scale, canvas_size=(30, 30))
    theta_to_pixel_matrix(theta, boxes)
    for t, c in zip((boxes, theta, pts, angle, scale), copies):
        assert torch.equal(t, c)


# --------------------------------------------------------------------------- bad input

BOX = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
THETA = torch.eye(2, 3)[None]
PTS = torch.zeros(1, 2, 2)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: transform_boxes(torch.zeros(1, 3), THETA), ValueError, "boxes"),
        (lambda: transform_boxes(torch.zeros(1, 4, dtype=torch.bool), THETA), TypeError, "boxes"),
        (
            lambda: transform_boxes(torch.tensor([[0.0, 0.0, float("nan"), 1.0]]), THETA),
            ValueError,
            "boxes",
        ),
        (lambda: transform_boxes([[0, 0, 1, 1]], THETA), TypeError, "boxes"),
        (lambda: transform_boxes(BOX, torch.zeros(1, 3, 3)), ValueError, "theta"),
        (lambda: transform_boxes(BOX, torch.zeros(2, 2, 3)), ValueError, "theta"),
        (lambda: transform_boxes(BOX, torch.eye(2, 3, dtype=torch.long)[None]), TypeError, "theta"),
        (lambda: transform_boxes(BOX, torch.full((1, 2, 3), float("inf"))), ValueError, "theta"),
        (lambda: transform_boxes(BOX, torch.zeros(1, 2, 3)), ValueError, "singular"),
        (lambda: transform_boxes(BOX, THETA, canvas_size=(10,)), ValueError, "canvas_size"),
        (lambda: transform_boxes(BOX, THETA, canvas_size=(10.0, 5.0)), TypeError, "canvas_size"),
        (lambda: transform_boxes(BOX, THETA, canvas_size=(-1, 5)), ValueError, "canvas_size"),
        (lambda: transform_boxes(BOX, THETA, clip="yes"), TypeError, "clip"),
        (lambda: transform_boxes(BOX, THETA, align_corners=1), TypeError, "align_corners"),
        (lambda: transform_points(torch.zeros(1, 2), BOX, THETA), ValueError, "points"),
        (lambda: transform_points(torch.zeros(2, 2, 2), BOX, THETA), ValueError, "points"),
        (
            lambda: transform_points(torch.full((1, 1, 2), float("nan")), BOX, THETA),
            ValueError,
            "points",
        ),
        (lambda: transform_points(PTS, BOX, torch.zeros(1, 2, 3)), ValueError, "singular"),
        (lambda: inverse_transform_points(PTS, torch.zeros(1, 5), THETA), ValueError, "patches"),
        (lambda: inverse_transform_boxes(torch.zeros(2, 4), BOX, THETA), ValueError, "boxes_out"),
        (lambda: inverse_transform_boxes(BOX, BOX, torch.zeros(1, 7)), ValueError, "theta"),
        (lambda: pixel_matrix_to_theta(torch.zeros(1, 3, 3), BOX), ValueError, "matrix"),
        (lambda: pixel_matrix_to_theta(torch.ones(1, 3, 3), BOX), ValueError, "affine"),
        (lambda: pixel_matrix_to_theta(torch.eye(3)[None].long(), BOX), TypeError, "matrix"),
        (lambda: pixel_matrix_to_theta(torch.eye(3).expand(2, 3, 3), BOX), ValueError, "matrix"),
        (lambda: pixel_matrix_to_theta(torch.eye(4)[None], BOX), ValueError, "matrix"),
        (lambda: theta_to_pixel_matrix(torch.zeros(1, 2, 3), BOX), ValueError, "singular"),
        (lambda: patch_affine_matrix(BOX, scale=0.0), ValueError, "scale"),
        (lambda: patch_affine_matrix(BOX, angle=float("nan")), ValueError, "angle"),
        (lambda: patch_affine_matrix(BOX, angle=torch.zeros(3)), ValueError, "angle"),
        (lambda: patch_affine_matrix(BOX, angle="30"), TypeError, "angle"),
        (lambda: patch_affine_matrix(BOX, angle=True), TypeError, "angle"),
        (lambda: patch_affine_matrix(BOX, translate=torch.zeros(1, 3)), ValueError, "translate"),
        (lambda: patch_affine_matrix(BOX, scale=torch.ones(1, 3)), ValueError, "scale"),
        (lambda: patch_affine_matrix(BOX, scale=torch.ones(1, 2, 2)), ValueError, "scale"),
        (lambda: patch_affine_matrix(BOX, shear=(1.0, 2.0, 3.0)), ValueError, "shear"),
        (lambda: patch_affine_matrix(BOX, shear=torch.tensor([1j])), TypeError, "shear"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_device_mismatch():
    meta = torch.device("meta")
    with pytest.raises(ValueError, match="device"):
        transform_boxes(BOX, THETA.to(meta))
    with pytest.raises(ValueError, match="device"):
        transform_points(PTS.to(meta), BOX, THETA)
    with pytest.raises(ValueError, match="device"):
        patch_affine_matrix(BOX, angle=torch.zeros(1, device=meta))
    with pytest.raises(ValueError, match="device"):
        pixel_matrix_to_theta(torch.eye(3, device=meta)[None], BOX)


def test_math_sanity_of_reference_helpers():
    # guard: the reference normaliser maps the box edges / corner centres to -1, +1
    boxes = torch.tensor([[2.0, 4.0, 12.0, 8.0]], dtype=D64)
    edges = torch.tensor([[[2.0, 4.0], [12.0, 8.0]]], dtype=D64)
    torch.testing.assert_close(
        normalise(edges, boxes, False), torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]], dtype=D64)
    )
    centres = torch.tensor([[[2.5, 4.5], [11.5, 7.5]]], dtype=D64)
    torch.testing.assert_close(
        normalise(centres, boxes, True), torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]], dtype=D64)
    )
    assert math.isclose(
        float(denormalise(torch.zeros(1, 1, 2, dtype=D64), boxes, True)[0, 0, 0]), 7.0
    )
