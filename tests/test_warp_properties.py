"""Property-based tests of ``warp_patches`` (hypothesis), against the reference loop and
against invariants that need no reference at all."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reference import reference_warp

from augpatch.functional import (
    inverse_transform_points,
    patch_affine_matrix,
    transform_points,
    warp_patches,
)

D64 = torch.float64
PROPS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


@st.composite
def batches(draw, max_objects: int = 6):
    """Random images, integer boxes (inside, across and beyond the borders, degenerate)
    and perturbed-identity thetas."""
    b = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    h = draw(st.integers(1, 14))
    w = draw(st.integers(1, 14))
    n = draw(st.integers(0, max_objects))
    boxes = []
    for _ in range(n):
        x1 = draw(st.integers(-4, w + 2))
        y1 = draw(st.integers(-4, h + 2))
        x2 = draw(st.integers(x1 - 2, w + 4))
        y2 = draw(st.integers(y1 - 2, h + 4))
        boxes.append([x1, y1, x2, y2])
    boxes_t = torch.tensor(boxes, dtype=torch.long).reshape(n, 4)
    obj = torch.tensor([draw(st.integers(0, b - 1)) for _ in range(n)], dtype=torch.long)
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, c, h, w, generator=g, dtype=D64)
    scale = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    theta = torch.eye(2, 3, dtype=D64).repeat(n, 1, 1) + scale * torch.randn(n, 2, 3, generator=g, dtype=D64)
    return images, boxes_t, theta, obj


options = st.fixed_dictionaries(
    {
        "padding_mode": st.sampled_from(["zeros", "border", "reflection", "image"]),
        "align_corners": st.booleans(),
        "overlap": st.sampled_from(["sequential", "parallel"]),
    }
)


@PROPS
@given(batch=batches(), mode=st.sampled_from(["bilinear", "nearest", "bicubic"]), kw=options)
def test_equals_reference_loop(batch, mode, kw):
    images, boxes, theta, obj = batch
    out = warp_patches(images, boxes, theta, obj, mode=mode, **kw)
    expected = reference_warp(images, boxes, theta, obj, mode=mode, **kw)
    assert out.shape == images.shape and out.dtype == images.dtype
    if mode == "nearest":
        # random thetas: ties have probability ~0, the picked pixels must coincide
        torch.testing.assert_close(out, expected, atol=0, rtol=0)
    else:
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


@PROPS
@given(batch=batches(), mode=st.sampled_from(["bilinear", "nearest", "bicubic"]), kw=options, data=st.data())
def test_sequential_is_a_composition(batch, mode, kw, data):
    """SPEC loop: applying objects [0, k) then [k, N) in two calls equals one call."""
    images, boxes, theta, obj = batch
    kw = {**kw, "overlap": "sequential"}
    k = data.draw(st.integers(0, len(boxes)))
    as_u8 = data.draw(st.booleans())
    if as_u8:
        images = (images * 255).to(torch.uint8)
    one = warp_patches(images, boxes, theta, obj, mode=mode, **kw)
    first = warp_patches(images, boxes[:k], theta[:k], obj[:k], mode=mode, **kw)
    two = warp_patches(first, boxes[k:], theta[k:], obj[k:], mode=mode, **kw)
    if as_u8 or mode == "nearest":
        assert (one.double() - two.double()).abs().max() <= (1 if as_u8 and mode != "nearest" else 0)
    else:
        torch.testing.assert_close(one, two, atol=1e-12, rtol=0)


@PROPS
@given(batch=batches(max_objects=4), kw=options, data=st.data())
def test_float_boxes_equal_reference_loop(batch, kw, data):
    images, boxes, theta, obj = batch
    _, _, h, w = images.shape
    # 0.5: a box edge exactly on a pixel centre (SPEC: x1 <= j + 0.5 < x2), drawn often
    frac = torch.tensor(
        [[data.draw(st.sampled_from([0.0, 0.2, 0.35, 0.5, 0.5, 0.7, 0.9])) for _ in range(4)]
         for _ in range(len(boxes))],
        dtype=D64,
    ).reshape(-1, 4)
    fboxes = boxes.to(D64) + frac
    # no exception for thin boxes: with align_corners=True an axis holding a single pixel
    # reads that pixel, as the loop's grid_sample on a one-pixel crop does, also where a
    # fractional box is wider than one pixel
    mode = data.draw(st.sampled_from(["bilinear", "bicubic"]))
    weight = torch.randn(images.shape, generator=torch.Generator().manual_seed(3), dtype=D64)

    def run(fn):
        inputs = [t.clone().requires_grad_(True) for t in (images, fboxes, theta)]
        out = fn(inputs[0], inputs[1], inputs[2], obj, mode=mode, **kw)
        grads = torch.autograd.grad((out * weight).sum(), inputs, allow_unused=True)
        return out, [torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs)]

    out, grads = run(warp_patches)
    expected, expected_grads = run(reference_warp)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    # the loop reads a box whose clipped corners are whole pixels through affine_grid:
    # no box gradient there, so the boxes' gradients are compared on the others
    clipped = torch.stack([fboxes[:, 0].clamp(0, w), fboxes[:, 1].clamp(0, h),
                           fboxes[:, 2].clamp(0, w), fboxes[:, 3].clamp(0, h)], 1)
    # and a coordinate exactly on the canvas edge sits on the clip's kink, where the two
    # take different one-sided derivatives (augpatch: PyTorch's clamp, the closed interval)
    limit = torch.tensor([w, h, w, h], dtype=D64)
    if not bool((theta != torch.eye(2, 3, dtype=D64)).all()):
        return  # the identity samples on the taps' kinks, where one-sided derivatives differ
    compared = (clipped != clipped.round()).any(1, keepdim=True) & (fboxes != 0) & (fboxes != limit)
    torch.testing.assert_close(grads[0], expected_grads[0], atol=1e-8, rtol=0)
    torch.testing.assert_close(grads[1][compared], expected_grads[1][compared], atol=1e-8, rtol=0)
    torch.testing.assert_close(grads[2], expected_grads[2], atol=1e-8, rtol=0)


@PROPS
@given(batch=batches(), kw=options)
def test_identity_is_a_noop(batch, kw):
    images, boxes, theta, obj = batch
    eye = torch.eye(2, 3, dtype=D64).repeat(len(boxes), 1, 1)
    if kw["align_corners"]:
        # a 1-pixel axis with align_corners=True reads the patch centre: no identity there
        kw = {**kw, "align_corners": False}
    out = warp_patches(images, boxes, eye, obj, mode="nearest", **kw)
    assert torch.equal(out, images)
    out = warp_patches(images, boxes, eye, obj, mode="bilinear", **kw)
    torch.testing.assert_close(out, images, atol=1e-13, rtol=0)
    as_u8 = (images * 255).to(torch.uint8)
    assert torch.equal(warp_patches(as_u8, boxes, eye, obj, mode="bicubic", **kw), as_u8)


@st.composite
def disjoint_batches(draw):
    """Boxes of each image are cells of a random grid, shrunk at random: no two overlap."""
    b = draw(st.integers(1, 2))
    h = draw(st.integers(4, 16))
    w = draw(st.integers(4, 16))
    boxes, obj = [], []
    for img in range(b):
        xs = sorted(set(draw(st.lists(st.integers(0, w), min_size=2, max_size=4))))
        ys = sorted(set(draw(st.lists(st.integers(0, h), min_size=2, max_size=4))))
        for xa, xb in zip(xs, xs[1:]):
            for ya, yb in zip(ys, ys[1:]):
                if not draw(st.booleans()):
                    continue
                x1 = draw(st.integers(xa, xb))
                y1 = draw(st.integers(ya, yb))
                x2 = draw(st.integers(x1, xb))
                y2 = draw(st.integers(y1, yb))
                # boxes touching the canvas edge may extend beyond it
                x1 = x1 - 3 if x1 == 0 else x1
                y2 = y2 + 3 if y2 == h else y2
                boxes.append([x1, y1, x2, y2])
                obj.append(img)
    order = draw(st.permutations(range(len(boxes))))
    boxes_t = torch.tensor([boxes[i] for i in order], dtype=torch.long).reshape(-1, 4)
    obj_t = torch.tensor([obj[i] for i in order], dtype=torch.long)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    images = torch.rand(b, 2, h, w, generator=g)
    theta = torch.eye(2, 3).repeat(len(boxes), 1, 1) + 0.4 * torch.randn(len(boxes), 2, 3, generator=g)
    return images, boxes_t, theta, obj_t


@PROPS
@given(
    batch=disjoint_batches(),
    mode=st.sampled_from(["bilinear", "nearest", "bicubic"]),
    padding_mode=st.sampled_from(["zeros", "border", "reflection"]),
    align_corners=st.booleans(),
)
def test_parallel_equals_sequential_without_overlaps(batch, mode, padding_mode, align_corners):
    images, boxes, theta, obj = batch
    kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    seq = warp_patches(images, boxes, theta, obj, overlap="sequential", **kw)
    par = warp_patches(images, boxes, theta, obj, overlap="parallel", **kw)
    assert torch.equal(seq, par)


def _nonzero_bbox(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows = mask.any(1).nonzero().flatten()
    cols = mask.any(0).nonzero().flatten()
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


@PROPS
@given(
    half_w=st.integers(4, 12),
    half_h=st.integers(4, 12),
    side=st.integers(2, 7),
    off=st.tuples(st.integers(-2, 2), st.integers(-2, 2)),
    pos=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    angle=st.sampled_from([90.0, -90.0, 270.0]),
    mode=st.sampled_from(["nearest", "bilinear"]),
)
def test_rotating_a_square_by_90_degrees_keeps_it_square(half_w, half_h, side, off, pos, angle, mode):
    """A square object in a non-square box (e.g. 20 x 40) rotated by 90 degrees with the
    theta of patch_affine_matrix stays a side x side square, where transform_points says."""
    bw, bh = 2 * half_w, 2 * half_h
    h, w = bh + 14, bw + 14
    x1, y1 = pos
    box = torch.tensor([[x1, y1, x1 + bw, y1 + bh]], dtype=D64)
    cx, cy = x1 + half_w, y1 + half_h  # integer centre: 90 degrees maps pixel centres to pixel centres
    # the square: side x side pixels, near the centre (rotated, it stays inside the box)
    sx, sy = cx - side // 2 + off[0], cy - side // 2 + off[1]
    m = min(half_w, half_h)  # the square and its rotation stay inside the box
    assume(max(cx - sx, sx + side - cx, cy - sy, sy + side - cy) <= m)
    image = torch.zeros(1, 1, h, w, dtype=D64)
    image[0, 0, sy : sy + side, sx : sx + side] = 1.0
    theta = patch_affine_matrix(box, angle=angle)
    out = warp_patches(image, box, theta, mode=mode)
    got = _nonzero_bbox(out[0, 0] > 0.5)
    assert got[2] - got[0] == side and got[3] - got[1] == side, got
    # a square, not a rectangle: every pixel of its bounding box is set
    assert int((out[0, 0] > 0.5).sum()) == side * side
    # and where the forward map sends the square's corners
    corners = torch.tensor([[[sx, sy], [sx + side, sy], [sx, sy + side], [sx + side, sy + side]]], dtype=D64)
    moved = transform_points(corners, box, theta)[0]
    expected = (moved[:, 0].min(), moved[:, 1].min(), moved[:, 0].max(), moved[:, 1].max())
    torch.testing.assert_close(torch.tensor(got, dtype=D64), torch.stack(expected), atol=1e-9, rtol=0)
    # content moved counter-clockwise on screen for +90: right of centre -> above centre
    probe = torch.tensor([[[cx + 3.0, cy + 0.0]]], dtype=D64)
    dest = transform_points(probe, box, theta)[0, 0]
    sign = 1 if angle in (90.0, -270.0) else -1
    torch.testing.assert_close(dest, torch.tensor([cx + 0.0, cy - 3.0 * sign], dtype=D64), atol=1e-9, rtol=0)


@PROPS
@given(
    n=st.integers(1, 5),
    k=st.integers(1, 6),
    align_corners=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_points_round_trip(n, k, align_corners, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=D64) * 50
    wh = 3 + torch.rand(n, 2, generator=g, dtype=D64) * 40
    patches = torch.cat([xy, xy + wh], 1)
    angle = torch.rand(n, generator=g, dtype=D64) * 360 - 180
    scale = 0.5 + torch.rand(n, generator=g, dtype=D64)
    translate = torch.randn(n, 2, generator=g, dtype=D64) * 5
    theta = patch_affine_matrix(patches, angle=angle, scale=scale, translate=translate, align_corners=align_corners)
    points = torch.rand(n, k, 2, generator=g, dtype=D64) * 80 - 10
    fwd = transform_points(points, patches, theta, align_corners=align_corners)
    back = inverse_transform_points(fwd, patches, theta, align_corners=align_corners)
    torch.testing.assert_close(back, points, atol=1e-9, rtol=0)
    again = transform_points(inverse_transform_points(points, patches, theta, align_corners=align_corners),
                             patches, theta, align_corners=align_corners)
    torch.testing.assert_close(again, points, atol=1e-9, rtol=0)
    # the centre of the patch moves by the translation exactly
    centre = ((patches[:, :2] + patches[:, 2:]) / 2)[:, None]
    moved = transform_points(centre, patches, theta, align_corners=align_corners)
    torch.testing.assert_close(moved[:, 0], centre[:, 0] + translate, atol=1e-9, rtol=0)
