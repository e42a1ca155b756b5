"""``warp_patches`` against the SPEC's reference loop, plus semantics checked by hand.

Everything goes through the public API (``augpatch.functional.warp_patches``); the
expected values come from ``tests/reference.py`` (one ``affine_grid`` +
``grid_sample`` per object, as written in SPEC.md) or are derived by hand
(flips, copies of the input, ``torch.flip``). Nothing is copied from the
implementation's own output.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from reference import reference_warp
from torch.autograd import gradcheck

from augpatch.functional import warp_patches

D64 = torch.float64
MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection", "image")
OVERLAPS = ("sequential", "parallel")
ALL_COMBOS = list(itertools.product(MODES, PADDINGS, (False, True), OVERLAPS))
COMBO_IDS = [f"{m}-{p}-ac{int(a)}-{o}" for m, p, a, o in ALL_COMBOS]

# the reference loop calls affine_grid on 1-pixel axes with align_corners=True
pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Batch of 2 images 3 x 20 x 24 (H = 20 rows, W = 24 columns), objects of both images
# interleaved. Image 0: a chain of overlapping boxes (0 -> 2 -> 3 -> 5, 4 crosses them),
# a 1-pixel-wide box, three boxes that hold no pixel, a box beyond every border (covers
# the whole image) followed by a box read from it. Image 1: boxes beyond the top-left and
# bottom-right borders, the exact whole image, a box overlapping those.
BOXES = torch.tensor(
    [
        [2, 3, 12, 15],  # 0  img 0  chain
        [-4, -3, 6, 5],  # 1  img 1  beyond top-left
        [5, 5, 18, 17],  # 2  img 0  chain
        [8, 1, 22, 12],  # 3  img 0  chain
        [7, 2, 8, 19],  # 4  img 0  1 pixel wide, crosses 0 and 2
        [10, 8, 16, 19],  # 5  img 0  chain
        [15, 10, 30, 25],  # 6  img 1  beyond bottom-right
        [10, 10, 9, 15],  # 7  img 0  x2 <= x1
        [30, 30, 40, 40],  # 8  img 0  entirely outside
        [-5, 3, 0, 10],  # 9  img 0  zero area after clipping
        [0, 0, 24, 20],  # 10 img 1  whole image exactly
        [3, 4, 11, 13],  # 11 img 1  overlaps 1 and 10
        [-2, -2, 26, 22],  # 12 img 0  beyond all borders: the whole image
        [4, 6, 14, 9],  # 13 img 0  reads what 12 (and the chain) wrote
    ]
)
OBJ_TO_IMG = torch.tensor([0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0])
N_OBJ = BOXES.shape[0]
SHAPE = (2, 3, 20, 24)


def _images(dtype=D64, seed: int = 0) -> torch.Tensor:
    return torch.rand(SHAPE, generator=_gen(seed), dtype=dtype)


def _theta(n: int = N_OBJ, scale: float = 0.3, seed: int = 1, dtype=D64) -> torch.Tensor:
    """Random perturbations of the identity: rotations, zooms, shears, shifts (reads
    beyond the patch, so padding matters)."""
    eye = torch.eye(2, 3, dtype=dtype).expand(n, 2, 3)
    return eye + scale * torch.randn(n, 2, 3, generator=_gen(seed), dtype=dtype)


def _warp(images, boxes, theta, obj_to_img=None, **kw):
    return warp_patches(images, boxes, theta, obj_to_img, **kw)


def _kw(mode, padding_mode, align_corners, overlap):
    return {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners, "overlap": overlap}


def _close(actual, expected, atol, rtol=0.0):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


def _grads(fn, images, boxes, theta, obj_to_img, weight, kw, wrt=("images", "theta")):
    """Gradients of (fn(...) * weight).sum() w.r.t. the named inputs."""
    images = images.detach().clone().requires_grad_("images" in wrt)
    theta = theta.detach().clone().requires_grad_("theta" in wrt)
    if boxes.is_floating_point():
        boxes = boxes.detach().clone().requires_grad_("boxes" in wrt)
    out = fn(images, boxes, theta, obj_to_img, **kw)
    inputs = [t for name, t in (("images", images), ("theta", theta), ("boxes", boxes)) if name in wrt]
    return out, torch.autograd.grad((out * weight).sum(), inputs)


# --------------------------------------------------------------------------- 1. values


@pytest.mark.parametrize(("mode", "padding_mode", "align_corners", "overlap"), ALL_COMBOS, ids=COMBO_IDS)
def test_matches_reference_loop(mode, padding_mode, align_corners, overlap):
    images, theta = _images(), _theta()
    kw = _kw(mode, padding_mode, align_corners, overlap)
    out = _warp(images, BOXES, theta, OBJ_TO_IMG, **kw)
    expected = reference_warp(images, BOXES, theta, OBJ_TO_IMG, **kw)
    assert out.shape == images.shape and out.dtype == images.dtype
    _close(out, expected, atol=1e-12)
    # the test is not vacuous: the objects did change the images
    assert not torch.allclose(out, images)


def test_overlap_order_matters_in_this_batch():
    """Guard for the batch above: sequential and parallel differ (overlaps are real)."""
    images, theta = _images(), _theta()
    seq = _warp(images, BOXES, theta, OBJ_TO_IMG, overlap="sequential")
    par = _warp(images, BOXES, theta, OBJ_TO_IMG, overlap="parallel")
    assert (seq - par).abs().max() > 1e-3


# --------------------------------------------------------------------------- 2. gradients


@pytest.mark.parametrize(("mode", "padding_mode", "align_corners", "overlap"), ALL_COMBOS, ids=COMBO_IDS)
def test_gradients_match_reference_loop(mode, padding_mode, align_corners, overlap):
    images, theta = _images(seed=2), _theta(seed=3)
    weight = torch.randn(SHAPE, generator=_gen(4), dtype=D64)
    kw = _kw(mode, padding_mode, align_corners, overlap)
    out, (g_img, g_th) = _grads(_warp, images, BOXES, theta, OBJ_TO_IMG, weight, kw)
    ref, (r_img, r_th) = _grads(reference_warp, images, BOXES, theta, OBJ_TO_IMG, weight, kw)
    _close(out, ref, atol=1e-12)
    _close(g_img, r_img, atol=1e-10)
    _close(g_th, r_th, atol=1e-10)
    assert g_img.abs().sum() > 0
    if mode != "nearest":
        assert g_th.abs().sum() > 0


@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_gradient_theta_only_with_overlaps(mode, padding_mode, overlap):
    """Only theta requires grad (images are a constant) and boxes overlap."""
    images, theta = _images(seed=5), _theta(seed=6)
    weight = torch.randn(SHAPE, generator=_gen(7), dtype=D64)
    kw = _kw(mode, padding_mode, False, overlap)
    out, (g_th,) = _grads(_warp, images, BOXES, theta, OBJ_TO_IMG, weight, kw, wrt=("theta",))
    _, (r_th,) = _grads(reference_warp, images, BOXES, theta, OBJ_TO_IMG, weight, kw, wrt=("theta",))
    assert out.requires_grad
    _close(g_th, r_th, atol=1e-10)
    assert g_th.abs().sum() > 0


@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("mode", MODES)
def test_gradient_images_only_with_overlaps(mode, overlap):
    images, theta = _images(seed=8), _theta(seed=9)
    weight = torch.randn(SHAPE, generator=_gen(10), dtype=D64)
    kw = _kw(mode, "zeros", False, overlap)
    _, (g_img,) = _grads(_warp, images, BOXES, theta, OBJ_TO_IMG, weight, kw, wrt=("images",))
    _, (r_img,) = _grads(reference_warp, images, BOXES, theta, OBJ_TO_IMG, weight, kw, wrt=("images",))
    _close(g_img, r_img, atol=1e-10)


# small problem for gradcheck: 2 images 2 x 7 x 8, three overlapping boxes in image 0
GC_BOXES = torch.tensor([[0, 0, 5, 6], [2, 1, 8, 7], [3, 3, 6, 5], [1, 2, 7, 6]])
GC_OBJ = torch.tensor([0, 0, 0, 1])


def _gc_inputs(seed: int):
    images = torch.rand(2, 2, 7, 8, generator=_gen(seed), dtype=D64, requires_grad=True)
    theta = _theta(4, scale=0.15, seed=seed + 1).requires_grad_(True)
    return images, theta


# warp_patches has a fixed per-call overhead, so the full (column by column) gradcheck
# runs on a tiny problem; the 2 x 2 x 7 x 8 problem uses gradcheck's fast mode (a random
# projection of the Jacobian, checked against finite differences).
@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_gradcheck_images_and_theta(mode, padding_mode, overlap):
    images, theta = _gc_inputs(11)

    def fn(img, th):
        return warp_patches(img, GC_BOXES, th, GC_OBJ, mode=mode, padding_mode=padding_mode, overlap=overlap)

    assert gradcheck(fn, (images, theta), fast_mode=True)


@pytest.mark.parametrize(
    ("mode", "padding_mode"), [("bilinear", "border"), ("bicubic", "image"), ("bilinear", "reflection")]
)
def test_gradcheck_full_jacobian(mode, padding_mode):
    images = torch.rand(1, 1, 5, 6, generator=_gen(12), dtype=D64, requires_grad=True)
    boxes = torch.tensor([[0, 0, 4, 4], [2, 1, 6, 5], [1, 2, 4, 5]])  # overlapping
    theta = _theta(3, scale=0.15, seed=13).requires_grad_(True)

    def fn(img, th):
        return warp_patches(img, boxes, th, mode=mode, padding_mode=padding_mode)

    assert gradcheck(fn, (images, theta))


@pytest.mark.parametrize("align_corners", [False, True])
def test_gradcheck_images_nearest(align_corners):
    images, theta = _gc_inputs(13)

    def fn(img):
        return warp_patches(img, GC_BOXES, theta.detach(), GC_OBJ, mode="nearest", align_corners=align_corners)

    assert gradcheck(fn, (images,), fast_mode=True)


# float boxes away from pixel-membership boundaries (j + .5) and from the canvas edges;
# box 1 is clipped at the left border (its x1 has no gradient), box 3 is in image 1
FLOAT_BOXES = torch.tensor(
    [
        [3.3, 2.7, 12.6, 14.2],
        [-3.3, 4.8, 6.6, 11.2],
        [7.8, 5.2, 16.3, 17.9],
        [2.2, 1.3, 20.7, 9.9],
        [9.1, 9.2, 13.9, 13.8],  # inside box 2 and 0
    ],
    dtype=D64,
)
FLOAT_OBJ = torch.tensor([0, 0, 0, 1, 0])


@pytest.mark.parametrize(("mode", "padding_mode", "align_corners", "overlap"), ALL_COMBOS, ids=COMBO_IDS)
def test_float_boxes_match_reference(mode, padding_mode, align_corners, overlap):
    images, theta = _images(seed=14), _theta(5, seed=15)
    kw = _kw(mode, padding_mode, align_corners, overlap)
    out = _warp(images, FLOAT_BOXES, theta, FLOAT_OBJ, **kw)
    expected = reference_warp(images, FLOAT_BOXES, theta, FLOAT_OBJ, **kw)
    _close(out, expected, atol=1e-10)
    assert not torch.allclose(out, images)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_thin_float_box_with_align_corners(mode, align_corners):
    """A float box at most 1 px wide holds one column; the identity must leave it as is
    (the reference loop does: with align_corners=True the axis is degenerate, u = 0)."""
    images = torch.arange(16, dtype=D64).view(1, 1, 4, 4)
    boxes = torch.tensor([[1.2, 0.0, 2.1, 4.0], [0.0, 2.3, 4.0, 3.2]], dtype=D64)  # column 1, row 2
    eye = torch.eye(2, 3, dtype=D64).repeat(2, 1, 1)
    kw = {"mode": mode, "align_corners": align_corners}
    out = warp_patches(images, boxes, eye, **kw)
    _close(out, images, atol=1e-12)
    _close(out, reference_warp(images, boxes, eye, **kw), atol=1e-12)


@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_one_pixel_axis_of_a_wider_float_box_reads_its_pixel(mode, padding_mode, overlap):
    """With align_corners=True an axis whose patch is one pixel thick reads that pixel
    (grid_sample on a one-pixel crop), also when the fractional box is wider than a pixel;
    its u still feeds the other axis through theta. Values and gradients as the loop."""
    images = torch.rand(2, 2, 7, 9, generator=_gen(40), dtype=D64)
    # one column (x 3.3..4.8 holds centre 3.5 only; 1.5 px wide), one row (y 4.4..5.7),
    # both, a box half outside the canvas holding one column (found by hypothesis),
    # and a box over the first one's pixels (sequential: it reads what that one wrote)
    boxes = torch.tensor([[3.3, 0.6, 4.8, 6.2], [0.7, 4.4, 8.1, 5.7], [5.2, 1.3, 6.9, 2.6],
                          [-2.75, 0.25, 1.25, 2.25], [2.2, 1.6, 6.4, 4.9]], dtype=D64)
    obj = torch.tensor([0, 1, 1, 0, 0])
    theta = _theta(5, seed=41)
    weight = torch.randn(images.shape, generator=_gen(42), dtype=D64)
    kw = _kw(mode, padding_mode, True, overlap)
    wrt = ("images", "theta", "boxes")
    out, grads = _grads(_warp, images, boxes, theta, obj, weight, kw, wrt=wrt)
    ref, expected = _grads(reference_warp, images, boxes, theta, obj, weight, kw, wrt=wrt)
    _close(out, ref, atol=0 if mode == "nearest" else 1e-12)
    if mode != "nearest":
        for g, r in zip(grads, expected):
            _close(g, r, atol=1e-9)
        assert (grads[2] != 0).any()  # the box edges move the sampling: u feeds theta


@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_float_box_gradients_match_reference(mode, align_corners, padding_mode, overlap):
    images, theta = _images(seed=16), _theta(5, seed=17)
    weight = torch.randn(SHAPE, generator=_gen(18), dtype=D64)
    kw = _kw(mode, padding_mode, align_corners, overlap)
    wrt = ("images", "theta", "boxes")
    _, grads = _grads(_warp, images, FLOAT_BOXES, theta, FLOAT_OBJ, weight, kw, wrt=wrt)
    _, expected = _grads(reference_warp, images, FLOAT_BOXES, theta, FLOAT_OBJ, weight, kw, wrt=wrt)
    for g, r in zip(grads, expected):
        _close(g, r, atol=1e-9)
    g_boxes = grads[2]
    assert g_boxes.abs().sum() > 0
    # every coordinate that is not clipped moves the sampling grid
    assert (g_boxes[[0, 2, 3, 4]] != 0).all()
    assert g_boxes[1, 0] == 0  # x1 = -3.3 is clipped to 0


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_gradcheck_float_boxes(mode, align_corners, padding_mode):
    images = torch.rand(1, 2, 12, 14, generator=_gen(19), dtype=D64)
    boxes = torch.tensor([[3.3, 2.7, 11.2, 9.6], [1.2, 4.3, 7.7, 10.8]], dtype=D64, requires_grad=True)
    theta = _theta(2, scale=0.15, seed=20).requires_grad_(True)

    def fn(b, th):
        return warp_patches(images, b, th, mode=mode, padding_mode=padding_mode, align_corners=align_corners)

    assert gradcheck(fn, (boxes, theta), fast_mode=True)


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_integer_valued_float_boxes_equal_int_boxes(mode, align_corners, padding_mode):
    images, theta = _images(seed=21), _theta(seed=22)
    kw = _kw(mode, padding_mode, align_corners, "sequential")
    as_int = _warp(images, BOXES, theta, OBJ_TO_IMG, **kw)
    assert torch.equal(_warp(images, BOXES.to(D64), theta, OBJ_TO_IMG, **kw), as_int)


def test_box_dtypes_are_equivalent():
    images, theta = _images(seed=21), _theta(seed=22)
    as_int = _warp(images, BOXES, theta, OBJ_TO_IMG, mode="bicubic", padding_mode="image")
    for dtype in (torch.float32, torch.float16, torch.int32, torch.int16):
        out = _warp(images, BOXES.to(dtype), theta, OBJ_TO_IMG, mode="bicubic", padding_mode="image")
        assert torch.equal(out, as_int), dtype


# --------------------------------------------------------------------------- 4. input forms


@pytest.mark.parametrize("requires_grad", [False, True])
def test_no_objects_returns_equal_clone(requires_grad):
    images = _images().requires_grad_(requires_grad)
    before = images.detach().clone()
    boxes = torch.zeros(0, 4)
    theta = torch.zeros(0, 2, 3, dtype=D64)
    obj = torch.zeros(0, dtype=torch.long)
    out = warp_patches(images, boxes, theta, obj)
    assert out is not images
    assert out.data_ptr() != images.data_ptr()
    assert torch.equal(out, images)
    assert torch.equal(images, before)
    out.detach().add_(1)  # the result owns its memory
    assert torch.equal(images, before)
    if requires_grad:
        (g,) = torch.autograd.grad(out.sum(), images)
        assert torch.equal(g, torch.ones_like(images))
    # list form with only empty lists, and obj_to_img omitted with B == 1
    assert torch.equal(warp_patches(images, [boxes, boxes], theta), images)
    single = images[:1]
    assert torch.equal(warp_patches(single, boxes, theta), single)


def test_only_empty_boxes_returns_equal_clone():
    images = _images()
    boxes = torch.tensor([[10, 10, 9, 15], [30, 30, 40, 40], [-5, 3, 0, 10], [3, 3, 3, 9]])
    out = warp_patches(images, boxes, _theta(4), torch.tensor([0, 1, 0, 1]))
    assert out is not images and out.data_ptr() != images.data_ptr()
    assert torch.equal(out, images)


def test_list_boxes_equal_flat_form():
    images = torch.rand(3, 2, 16, 18, generator=_gen(23), dtype=D64)
    per_image = [
        torch.tensor([[1, 1, 9, 8], [4, 3, 14, 12], [-2, 6, 7, 20]]),
        torch.zeros(0, 4, dtype=torch.long),
        torch.tensor([[0, 0, 18, 16], [5, 5, 11, 9]]),
    ]
    theta = _theta(5, seed=24)
    flat = torch.cat(per_image)
    obj = torch.tensor([0, 0, 0, 2, 2])
    for overlap, padding_mode in itertools.product(OVERLAPS, PADDINGS):
        kw = {"overlap": overlap, "padding_mode": padding_mode}
        expected = warp_patches(images, flat, theta, obj, **kw)
        assert torch.equal(warp_patches(images, per_image, theta, **kw), expected)
        assert torch.equal(warp_patches(images, tuple(per_image), theta, **kw), expected)
        _close(expected, reference_warp(images, flat, theta, obj, **kw), atol=1e-12)
    # the empty image is untouched
    assert torch.equal(warp_patches(images, per_image, theta)[1], images[1])


def test_obj_to_img_omitted_with_single_image():
    images = _images()[:1]
    boxes = BOXES[OBJ_TO_IMG == 0]
    theta = _theta(boxes.shape[0], seed=25)
    expected = warp_patches(images, boxes, theta, torch.zeros(boxes.shape[0], dtype=torch.long))
    assert torch.equal(warp_patches(images, boxes, theta), expected)
    assert torch.equal(warp_patches(images, boxes, theta, None), expected)
    _close(expected, reference_warp(images, boxes, theta), atol=1e-12)


def test_theta_as_n_by_6():
    images, theta = _images(), _theta()
    for mode in MODES:
        expected = warp_patches(images, BOXES, theta, OBJ_TO_IMG, mode=mode)
        assert torch.equal(warp_patches(images, BOXES, theta.reshape(N_OBJ, 6), OBJ_TO_IMG, mode=mode), expected)
    # and gradients flow back to the [N, 6] tensor
    th6 = theta.reshape(N_OBJ, 6).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(warp_patches(images, BOXES, th6, OBJ_TO_IMG).sum(), th6)
    assert g.shape == (N_OBJ, 6) and g.abs().sum() > 0


# --------------------------------------------------------------------------- 5. dtypes


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_uint8_matches_reference(mode, padding_mode):
    images = torch.randint(0, 256, SHAPE, generator=_gen(26), dtype=torch.uint8)
    theta = _theta(seed=27, dtype=torch.float32)
    for align_corners, overlap in itertools.product((False, True), OVERLAPS):
        kw = _kw(mode, padding_mode, align_corners, overlap)
        out = warp_patches(images, BOXES, theta, OBJ_TO_IMG, **kw)
        expected = reference_warp(images, BOXES, theta, OBJ_TO_IMG, **kw)
        assert out.dtype == torch.uint8
        diff = (out.int() - expected.int()).abs()
        if mode == "nearest":
            assert diff.max() == 0  # nearest copies values: no rounding at all
        else:
            # both compute in float32 and round per paste; an ulp of float32 arithmetic
            # may only flip a value sitting on .5, i.e. a handful of pixels by 1
            assert diff.max() <= 1
            assert (diff > 0).sum() <= 3
        assert not torch.equal(out, images)


def test_uint8_rounds_half_to_even_and_clamps():
    # a half-pixel shift of a ramp averages neighbours: 0.5, 1.5, 2.5, ... exactly
    row = torch.arange(8, dtype=torch.uint8)
    images = row.expand(1, 1, 2, 8).clone()
    boxes = torch.tensor([[0, 0, 8, 2]])
    theta = torch.tensor([[[1.0, 0.0, 1.0 / 8], [0.0, 1.0, 0.0]]])  # reads half a pixel right
    out = warp_patches(images, boxes, theta, padding_mode="border")
    # (j + j+1) / 2 = j + .5 rounded half to even; the last column reads the border (7)
    expected = torch.tensor([0, 2, 2, 4, 4, 6, 6, 7], dtype=torch.uint8)
    assert torch.equal(out[0, 0, 0], expected) and torch.equal(out[0, 0, 1], expected)
    # bicubic overshoot is clamped to [0, 255]
    step = torch.zeros(1, 1, 4, 8, dtype=torch.uint8)
    step[..., 4:] = 255
    theta = torch.tensor([[[1.0, 0.0, 0.1], [0.0, 1.0, 0.0]]])
    out = warp_patches(step, torch.tensor([[0, 0, 8, 4]]), theta, mode="bicubic", padding_mode="border")
    f = warp_patches(step.float(), torch.tensor([[0, 0, 8, 4]]), theta, mode="bicubic", padding_mode="border")
    assert f.max() > 255 and f.min() < 0  # the float result overshoots
    assert torch.equal(out, f.round().clamp(0, 255).to(torch.uint8))


@pytest.mark.parametrize(
    ("dtype", "atol_ref", "atol_f32"), [(torch.float16, 2e-3, 1e-2), (torch.bfloat16, 1.6e-2, 6e-2)]
)
@pytest.mark.parametrize("mode", MODES)
def test_half_precision(dtype, atol_ref, atol_f32, mode):
    images32 = _images(torch.float32, seed=28)
    images = images32.to(dtype)
    theta = _theta(seed=29, dtype=torch.float32)
    for padding_mode, overlap in [("zeros", "sequential"), ("image", "parallel")]:
        kw = _kw(mode, padding_mode, False, overlap)
        out = warp_patches(images, BOXES, theta, OBJ_TO_IMG, **kw)
        assert out.dtype == dtype
        # the reference also computes in float32 and rounds back after every paste
        expected = reference_warp(images, BOXES, theta, OBJ_TO_IMG, **kw)
        _close(out.float(), expected.float(), atol=atol_ref)
        full = warp_patches(images.float(), BOXES, theta, OBJ_TO_IMG, **kw)
        _close(out.float(), full, atol=atol_f32)
    # gradients w.r.t. theta flow through half-precision images
    th = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(warp_patches(images, BOXES, th, OBJ_TO_IMG, mode=mode).float().sum(), th)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_float32_agrees_with_float64(mode, padding_mode):
    images, theta = _images(seed=30), _theta(seed=31)
    for align_corners, overlap in [(False, "sequential"), (True, "parallel")]:
        kw = _kw(mode, padding_mode, align_corners, overlap)
        out32 = warp_patches(images.float(), BOXES, theta.float(), OBJ_TO_IMG, **kw)
        out64 = warp_patches(images, BOXES, theta, OBJ_TO_IMG, **kw)
        assert out32.dtype == torch.float32
        _close(out32, out64.float(), atol=1e-5, rtol=1e-5)


def test_theta_dtype_is_irrelevant_to_output_dtype():
    images = _images(torch.float32)
    out = warp_patches(images, BOXES, _theta(), OBJ_TO_IMG)  # float64 theta
    assert out.dtype == torch.float32
    _close(out, warp_patches(images, BOXES, _theta().float(), OBJ_TO_IMG), atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------- 6. layouts


@pytest.mark.parametrize("dtype", [D64, torch.uint8])
@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_channels_last(dtype, padding_mode):
    images = _images(seed=32)
    if dtype == torch.uint8:
        images = (images * 255).to(torch.uint8)
    theta = _theta(seed=33)
    cl = images.contiguous(memory_format=torch.channels_last)
    for mode, overlap in zip(MODES, ("sequential", "parallel", "sequential")):
        kw = _kw(mode, padding_mode, False, overlap)
        out = warp_patches(cl, BOXES, theta, OBJ_TO_IMG, **kw)
        assert out.is_contiguous(memory_format=torch.channels_last)
        expected = warp_patches(images, BOXES, theta, OBJ_TO_IMG, **kw)
        assert out.dtype == dtype
        if dtype == torch.uint8:
            assert torch.equal(out, expected)
        else:
            _close(out, expected, atol=1e-13)


def test_channels_last_gradients():
    images, theta = _images(seed=34), _theta(seed=35)
    weight = torch.randn(SHAPE, generator=_gen(36), dtype=D64)
    kw = _kw("bilinear", "reflection", False, "sequential")
    _, (g_img, g_th) = _grads(_warp, images, BOXES, theta, OBJ_TO_IMG, weight, kw)
    cl = images.contiguous(memory_format=torch.channels_last)
    _, (c_img, c_th) = _grads(_warp, cl, BOXES, theta, OBJ_TO_IMG, weight, kw)
    _close(c_img, g_img, atol=1e-12)
    _close(c_th, g_th, atol=1e-12)


def _noncontiguous_view(name: str) -> torch.Tensor:
    g = _gen(37)
    views = {
        "row-stride": lambda: torch.rand(2, 3, 40, 24, generator=g, dtype=D64)[:, :, ::2],
        "col-stride": lambda: torch.rand(2, 3, 20, 48, generator=g, dtype=D64)[..., 1::2],
        "permuted": lambda: torch.rand(2, 20, 24, 3, generator=g, dtype=D64).permute(0, 3, 1, 2),
        "transposed": lambda: torch.rand(2, 3, 24, 20, generator=g, dtype=D64).transpose(2, 3),
        "batch-slice": lambda: torch.rand(3, 3, 20, 24, generator=g, dtype=D64)[1:],
        "channel-slice": lambda: torch.rand(2, 5, 20, 24, generator=g, dtype=D64)[:, 1:4],
        "expanded": lambda: torch.rand(1, 3, 20, 24, generator=g, dtype=D64).expand(2, 3, 20, 24),
    }
    return views[name]()


VIEWS = ["row-stride", "col-stride", "permuted", "transposed", "batch-slice", "channel-slice", "expanded"]


@pytest.mark.parametrize("name", VIEWS)
def test_noncontiguous_images(name):
    view = _noncontiguous_view(name)
    assert view.shape == SHAPE
    theta = _theta(seed=38)
    before = view.clone()
    cases = [("bilinear", "zeros", "sequential"), ("nearest", "border", "parallel"),
             ("bicubic", "reflection", "sequential"), ("bilinear", "image", "sequential")]
    for mode, padding_mode, overlap in cases:
        kw = _kw(mode, padding_mode, False, overlap)
        out = warp_patches(view, BOXES, theta, OBJ_TO_IMG, **kw)
        expected = warp_patches(view.contiguous(), BOXES, theta, OBJ_TO_IMG, **kw)
        _close(out, expected, atol=1e-13)
        assert out.untyped_storage().data_ptr() != view.untyped_storage().data_ptr()
        if name == "expanded":
            # both images start equal; their (different) objects must make them differ
            assert not torch.equal(out[0], out[1])
    assert torch.equal(view, before)


@pytest.mark.parametrize("name", ["row-stride", "channel-slice", "expanded"])
@pytest.mark.parametrize("overlap", OVERLAPS)
def test_noncontiguous_images_gradients(name, overlap):
    # the backward re-reads the input batch for the levels that read it: a strided view
    # must give the gradients of the reference loop, images' and theta's
    weight = torch.randn(SHAPE, generator=_gen(41), dtype=D64)
    theta = _theta(seed=42).requires_grad_()
    kw = _kw("bicubic", "zeros", False, overlap)
    view = _noncontiguous_view(name).requires_grad_()
    got = torch.autograd.grad((warp_patches(view, BOXES, theta, OBJ_TO_IMG, **kw) * weight).sum(),
                              [view, theta])
    images = view.detach().contiguous().requires_grad_()
    expected = torch.autograd.grad(
        (reference_warp(images, BOXES, theta, OBJ_TO_IMG, **kw) * weight).sum(), [images, theta])
    _close(got[0], expected[0], atol=1e-12)
    _close(got[1], expected[1], atol=1e-11)


def test_noncontiguous_boxes_theta_obj_to_img():
    images, theta = _images(seed=39), _theta(seed=40)
    expected = warp_patches(images, BOXES, theta, OBJ_TO_IMG)
    boxes_t = BOXES.t().contiguous().t()  # column-major [N, 4]
    theta_t = theta.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    obj_s = torch.stack([OBJ_TO_IMG, OBJ_TO_IMG], 1)[:, 1]
    assert not (boxes_t.is_contiguous() or theta_t.is_contiguous() or obj_s.is_contiguous())
    assert torch.equal(warp_patches(images, boxes_t, theta_t, obj_s), expected)


@pytest.mark.parametrize("boxes_form", ["int", "float", "list"])
@pytest.mark.parametrize("padding_mode", ["zeros", "image"])
@pytest.mark.parametrize("overlap", OVERLAPS)
def test_inputs_never_modified(boxes_form, padding_mode, overlap):
    images = _images(seed=41).requires_grad_(True)
    theta = _theta(seed=42).requires_grad_(True)
    obj = OBJ_TO_IMG.clone()
    if boxes_form == "list":
        boxes = [BOXES[OBJ_TO_IMG.eq(b)].clone() for b in range(2)]
        order = torch.cat([torch.nonzero(OBJ_TO_IMG.eq(b)).flatten() for b in range(2)])
        obj_in = None
    else:
        boxes = BOXES.clone() if boxes_form == "int" else (BOXES.double() + 0.3).requires_grad_(True)
        order, obj_in = torch.arange(N_OBJ), obj
    saved = [t.detach().clone() for t in (images, theta, obj)]
    saved_boxes = [b.detach().clone() for b in (boxes if isinstance(boxes, list) else [boxes])]
    for mode in MODES:
        theta_in = theta[order]
        out = warp_patches(images, boxes, theta_in, obj_in, mode=mode, padding_mode=padding_mode, overlap=overlap)
        out.sum().backward()
    for t, s in zip((images, theta, obj), saved):
        assert torch.equal(t.detach(), s)
    for b, s in zip(boxes if isinstance(boxes, list) else [boxes], saved_boxes):
        assert torch.equal(b.detach(), s)


def _held_gradient_case(case, images, theta, weight, kw):
    """Backpropagate through ``warp_patches`` where someone else holds the output gradient.

    Returns ``(held, expected)``: the gradient tensor the other holder sees afterwards
    and the value it must still have."""
    other = torch.zeros(SHAPE, dtype=D64, requires_grad=True)
    through = other * 1.0  # recorded before the warp, so its backward runs after the warp's
    out = warp_patches(images, BOXES, theta, OBJ_TO_IMG, **kw)
    expected = weight.expand(SHAPE).clone()
    if case == "grad_outputs":  # the caller's own tensor
        held = weight.expand(SHAPE).clone()
        torch.autograd.grad(out, [images, theta], grad_outputs=held)
    elif case == "backward_gradient":
        held = weight.expand(SHAPE).clone()
        out.backward(held)
    elif case == "hook":  # a tensor hook keeps the gradient it sees
        seen = []
        out.register_hook(seen.append)
        (out * weight).sum().backward()
        (held,) = seen
    elif case == "shared":  # one gradient tensor for two nodes (add passes it to both)
        ((out + through) * weight).sum().backward()
        held = other.grad
    else:
        raise AssertionError(case)
    return held, expected


@pytest.mark.parametrize("case", ["grad_outputs", "backward_gradient", "hook", "shared"])
@pytest.mark.parametrize("overlap", OVERLAPS)
def test_gradient_held_elsewhere_is_never_modified(case, overlap):
    """The backward may reuse the output gradient's memory only if nobody else holds it."""
    kw = {"mode": "bilinear", "overlap": overlap}
    weight = torch.rand(SHAPE, generator=_gen(43), dtype=D64)
    images = _images(seed=44).requires_grad_(True)
    theta = _theta(seed=45).requires_grad_(True)
    held, expected = _held_gradient_case(case, images, theta, weight, kw)
    assert torch.equal(held, expected)
    # and the gradients are those of the plain computation
    _, (g_img, g_theta) = _grads(warp_patches, images, BOXES, theta, OBJ_TO_IMG, weight, kw)
    if images.grad is not None:
        torch.testing.assert_close(images.grad, g_img, rtol=0, atol=1e-12)
        torch.testing.assert_close(theta.grad, g_theta, rtol=1e-10, atol=1e-10)


def test_repeated_backward_through_one_graph_accumulates_equal_gradients():
    weight = torch.rand(SHAPE, generator=_gen(46), dtype=D64)
    images = _images(seed=47).requires_grad_(True)
    theta = _theta(seed=48).requires_grad_(True)
    loss = torch.dot(warp_patches(images, BOXES, theta, OBJ_TO_IMG).reshape(-1), weight.reshape(-1))
    loss.backward(retain_graph=True)
    first = images.grad.clone(), theta.grad.clone()
    loss.backward()
    torch.testing.assert_close(images.grad, 2 * first[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(theta.grad, 2 * first[1], rtol=1e-12, atol=1e-12)


def _operator_grads(images, theta, loss_of, kw):
    """Gradients through the registered operator's own (Python) autograd, which always copies."""
    from augpatch.ops import warp_op

    x, t = images.detach().clone().requires_grad_(True), theta.detach().clone().requires_grad_(True)
    args = (kw.get("mode", "bilinear"), "zeros", False, kw.get("overlap", "sequential"), True)
    out = warp_op(x, BOXES, t, OBJ_TO_IMG, *args)[0]
    return torch.autograd.grad(loss_of(out), [x, t])


@pytest.mark.parametrize("case", ["stack", "two_uses", "retain_graph_held", "create_graph"])
@pytest.mark.parametrize("overlap", OVERLAPS)
def test_gradient_written_in_place_or_copied_gives_the_operators_gradients(case, overlap):
    """Eager CPU calls write the images' gradient into an unshared output gradient (C++
    autograd); wherever the gradient is shared or recorded, they copy. Either way the
    gradients equal those of the operator's Python autograd, and a held gradient is intact."""
    kw = {"mode": "bilinear", "overlap": overlap}
    weight = torch.rand(SHAPE, generator=_gen(50), dtype=D64)
    images = _images(seed=51).requires_grad_(True)
    theta = _theta(seed=52).requires_grad_(True)
    out = warp_patches(images, BOXES, theta, OBJ_TO_IMG, **kw)
    if case == "stack":  # out's gradient is a view of the stacked one, which nobody else holds
        def loss_of(o):
            return torch.dot(torch.stack([o, weight]).reshape(-1), torch.cat([weight, weight]).reshape(-1))
        loss_of(out).backward()
        grads = images.grad, theta.grad
    elif case == "two_uses":  # the output feeds two terms: the engine sums their gradients
        def loss_of(o):
            return (o * weight).sum() + (o * o).sum()
        loss_of(out).backward()
        grads = images.grad, theta.grad
    elif case == "retain_graph_held":  # the caller's gradient, twice through one graph
        held = weight.clone()
        out.backward(held, retain_graph=True)
        out.backward(held)
        assert torch.equal(held, weight)
        grads = images.grad / 2, theta.grad / 2

        def loss_of(o):
            return (o * weight).sum()
    else:  # create_graph: the backward is recorded (and differentiable once)
        def loss_of(o):
            return (o * weight).sum()
        grads = torch.autograd.grad(loss_of(out), [images, theta], create_graph=True)
        assert grads[0].requires_grad
        with pytest.raises(RuntimeError, match="differentiable once"):
            torch.autograd.grad(grads[1].sum(), [theta])
    expected = _operator_grads(images, theta, loss_of, kw)
    torch.testing.assert_close(grads[0], expected[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[1], expected[1], rtol=1e-10, atol=1e-10)


def test_saved_tensor_hooks_see_the_saved_tensors_and_gradients_stay():
    """Saved-tensor hooks (offloading, checkpointing) see the tensors the eager C++ autograd
    saves, and the gradients equal those of the plain call."""
    images, theta = _images(seed=56), _theta(seed=57)
    weight = torch.rand(SHAPE, generator=_gen(58), dtype=D64)

    def loss(x, t):
        return (warp_patches(x, BOXES, t, OBJ_TO_IMG) * weight).sum()

    x, t = images.clone().requires_grad_(True), theta.clone().requires_grad_(True)
    expected = torch.autograd.grad(loss(x, t), [x, t])
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda v: packed.append(1) or v.clone(), lambda v: v):
        hooked = torch.autograd.grad(loss(x, t), [x, t])
    assert packed  # the hooks saw the saved tensors
    for got, want in zip(hooked, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_unshared_output_gradient_holds_the_image_gradient(cpu_kernel):
    """No batch-sized buffer of its own: with an output gradient nobody else can see (a
    view of the stacked loss gradient), ``images.grad`` lives in that gradient's memory;
    where a hook keeps the output gradient, it gets memory of its own. Same values."""
    images = _images(seed=53)
    theta = _theta(seed=54)
    weight = torch.rand(2, *SHAPE, generator=_gen(55), dtype=D64)

    def image_grad(hold: bool) -> torch.Tensor:
        x = images.clone().requires_grad_(True)
        out = warp_patches(x, BOXES, theta, OBJ_TO_IMG)
        seen = []
        if hold:
            out.register_hook(seen.append)
        torch.dot(torch.stack([out, images]).reshape(-1), weight.reshape(-1)).backward()
        if hold:
            torch.testing.assert_close(seen[0], weight[0], rtol=0, atol=0)  # never written to
        return x.grad

    stolen, copied = image_grad(hold=False), image_grad(hold=True)
    batch_bytes = images.numel() * images.element_size()
    if cpu_kernel == "compiled":  # the eager kernel always copies
        assert stolen.untyped_storage().nbytes() == 2 * batch_bytes
    assert copied.untyped_storage().nbytes() == batch_bytes
    torch.testing.assert_close(stolen, copied, rtol=0, atol=0)


# --------------------------------------------------------------------------- 7. exact sampling points

# non-overlapping boxes of odd and even sizes in a 2-image batch 2 x 16 x 18
TIE_BOXES = torch.tensor(
    [[1, 1, 6, 6], [8, 1, 14, 7], [1, 8, 8, 12], [9, 9, 17, 12], [0, 0, 18, 16], [3, 2, 10, 13], [11, 3, 12, 14]]
)
TIE_OBJ = torch.tensor([0, 0, 0, 0, 1, 1, 1])


def _tie_theta(kind: str, align_corners: bool) -> torch.Tensor:
    n = TIE_BOXES.shape[0]
    w = (TIE_BOXES[:, 2] - TIE_BOXES[:, 0]).to(D64)
    h = (TIE_BOXES[:, 3] - TIE_BOXES[:, 1]).to(D64)
    if align_corners:  # one pixel step in normalised units
        step_x, step_y = 2 / (w - 1).clamp(min=1), 2 / (h - 1).clamp(min=1)
    else:
        step_x, step_y = 2 / w, 2 / h
    eye = torch.eye(2, 3, dtype=D64).repeat(n, 1, 1)
    lin = {
        "identity": [[1, 0], [0, 1]],
        "zoom-out-2": [[2, 0], [0, 2]],
        "zoom-in-2": [[0.5, 0], [0, 0.5]],
        "hflip": [[-1, 0], [0, 1]],
        "vflip": [[1, 0], [0, -1]],
        "rot90": [[0, -1], [1, 0]],
        "rot-90": [[0, 1], [-1, 0]],
        "rot180": [[-1, 0], [0, -1]],
    }
    if kind in lin:
        eye[:, :, :2] = torch.tensor(lin[kind], dtype=D64)
        return eye
    if kind == "shift":  # integer pixel shifts, different per object and axis
        k = torch.tensor([1, -2, 3, -1, 2, -3, 1], dtype=D64)
        eye[:, 0, 2] = k * step_x
        eye[:, 1, 2] = -k * step_y
        return eye
    if kind == "zoom-out-2-shift":
        eye[:, :, :2] *= 2
        eye[:, 0, 2] = step_x
        return eye
    raise AssertionError(kind)


TIE_KINDS = [
    "identity", "zoom-out-2", "zoom-in-2", "hflip", "vflip", "rot90", "rot-90", "rot180", "shift", "zoom-out-2-shift"
]
# kinds whose sampling locations are pixel centres (never a nearest tie) for every box
LATTICE_KINDS = {"identity", "hflip", "vflip", "rot180", "shift"}


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("kind", TIE_KINDS)
def test_exact_sampling_points_match_reference(kind, align_corners):
    """Zooms by 2 land exactly between pixels (nearest ties), flips / shifts / rotations
    exactly on pixel centres: nearest must pick the same pixel as the loop's grid_sample."""
    images = torch.rand(2, 2, 16, 18, generator=_gen(43), dtype=D64)
    theta = _tie_theta(kind, align_corners)
    cases = [("nearest", p, "sequential") for p in PADDINGS] + [
        ("nearest", "zeros", "parallel"), ("bilinear", "zeros", "sequential"),
        ("bilinear", "reflection", "parallel"), ("bicubic", "border", "sequential"),
    ]
    for mode, padding_mode, overlap in cases:
        if padding_mode == "image" and kind not in LATTICE_KINDS:
            # the reference re-normalises the grid to the whole image, which adds its own
            # rounding: at an exact tie its choice is noise (see the whole-image test below)
            continue
        kw = _kw(mode, padding_mode, align_corners, overlap)
        out = warp_patches(images, TIE_BOXES, theta, TIE_OBJ, **kw)
        expected = reference_warp(images, TIE_BOXES, theta, TIE_OBJ, **kw)
        if mode == "nearest":
            bad = (out != expected).nonzero().tolist()
            assert not bad, (padding_mode, overlap, len(bad), bad[:4])
        else:
            _close(out, expected, atol=1e-12)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("kind", TIE_KINDS)
def test_image_padding_equals_zeros_padding_on_whole_image_box(kind, align_corners):
    """For a box that is the whole image, "image" padding reads the same pixels as
    "zeros" padding (outside the image reads zeros): bit-identical, ties included."""
    images = torch.rand(1, 2, 12, 15, generator=_gen(57), dtype=D64)
    boxes = torch.tensor([[0, 0, 15, 12]])
    theta = _tie_theta(kind, align_corners)[:1]
    for mode in MODES:
        kw = {"mode": mode, "align_corners": align_corners}
        out = warp_patches(images, boxes, theta, padding_mode="image", **kw)
        zeros = warp_patches(images, boxes, theta, padding_mode="zeros", **kw)
        if mode == "nearest":
            bad = (out != zeros).nonzero().tolist()
            assert not bad, (len(bad), bad[:4])
        else:
            _close(out, zeros, atol=1e-12)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("kind", TIE_KINDS)
def test_exact_sampling_points_one_box_per_call(kind, align_corners):
    """Same as above with one object per call (small calls may take another code path)."""
    images = torch.rand(2, 2, 16, 18, generator=_gen(43), dtype=D64)
    theta = _tie_theta(kind, align_corners)
    for i in range(TIE_BOXES.shape[0]):
        args = (images, TIE_BOXES[i : i + 1], theta[i : i + 1], TIE_OBJ[i : i + 1])
        for mode in ("nearest", "bilinear"):
            kw = _kw(mode, "zeros", align_corners, "sequential")
            out, expected = warp_patches(*args, **kw), reference_warp(*args, **kw)
            if mode == "nearest":
                bad = (out != expected).nonzero().tolist()
                assert not bad, (i, len(bad), bad[:4])
            else:
                _close(out, expected, atol=1e-12)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("kind", ["identity", "shift", "hflip", "zoom-out-2"])
def test_theta_gradient_at_exact_sampling_points(kind, align_corners, padding_mode):
    """At integer sampling locations bilinear's gradient is one-sided: equal gradients
    mean the sampling locations are bit-identical to the loop's (image padding is left
    out: the reference's own re-normalisation to the whole image is not exact)."""
    images = torch.rand(2, 2, 16, 18, generator=_gen(44), dtype=D64)
    theta = _tie_theta(kind, align_corners)
    weight = torch.randn(2, 2, 16, 18, generator=_gen(45), dtype=D64)
    kw = _kw("bilinear", padding_mode, align_corners, "sequential")
    _, (g_img, g_th) = _grads(_warp, images, TIE_BOXES, theta, TIE_OBJ, weight, kw)
    _, (r_img, r_th) = _grads(reference_warp, images, TIE_BOXES, theta, TIE_OBJ, weight, kw)
    _close(g_th, r_th, atol=1e-10)
    _close(g_img, r_img, atol=1e-12)


# --------------------------------------------------------------------------- 8. semantics by hand


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("dtype", [torch.float32, D64, torch.uint8])
def test_identity_is_a_noop(dtype, padding_mode):
    images = _images(seed=46)
    images = (images * 255).to(dtype) if dtype == torch.uint8 else images.to(dtype)
    theta = torch.eye(2, 3, dtype=torch.float32).repeat(N_OBJ, 1, 1)
    for overlap in ("sequential",) if padding_mode != "image" else OVERLAPS:
        # nearest reads exactly the pixel centre: a bit-exact copy
        out = warp_patches(images, BOXES, theta, OBJ_TO_IMG, mode="nearest", padding_mode=padding_mode, overlap=overlap)
        assert torch.equal(out, images)
        # the interpolating modes evaluate the identity grid in floating point (as the
        # loop's affine_grid + grid_sample do), so they are a no-op to rounding
        for mode in ("bilinear", "bicubic"):
            out = warp_patches(images, BOXES, theta, OBJ_TO_IMG, mode=mode, padding_mode=padding_mode, overlap=overlap)
            if dtype == torch.uint8:
                assert torch.equal(out, images)
            else:
                tol = 1e-13 if dtype == D64 else 1e-5
                _close(out, images, atol=tol)


def _union_mask(boxes: torch.Tensor, obj: torch.Tensor, shape) -> torch.Tensor:
    b_, _, h, w = shape
    mask = torch.zeros(b_, 1, h, w, dtype=torch.bool)
    for (x1, y1, x2, y2), b in zip(boxes.tolist(), obj.tolist()):
        x1, x2 = max(x1, 0), min(x2, w)
        y1, y2 = max(y1, 0), min(y2, h)
        if x2 > x1 and y2 > y1:
            mask[b, :, y1:y2, x1:x2] = True
    return mask.expand(shape)


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_pixels_outside_every_box_are_untouched(mode, padding_mode):
    images = torch.rand(2, 3, 20, 24, generator=_gen(48), dtype=torch.float32)
    keep = [i for i in range(N_OBJ) if i not in (10, 12)]  # without the whole-image boxes
    boxes, obj = BOXES[keep], OBJ_TO_IMG[keep]
    theta = _theta(boxes.shape[0], seed=49, dtype=torch.float32)
    mask = _union_mask(boxes, obj, images.shape)
    assert (~mask).sum() > 100 and mask.sum() > 100
    for overlap in OVERLAPS:
        out = warp_patches(images, boxes, theta, obj, mode=mode, padding_mode=padding_mode, overlap=overlap)
        assert torch.equal(out[~mask], images[~mask])
        assert not torch.equal(out[mask], images[mask])


@pytest.mark.parametrize("dtype", [torch.float32, D64, torch.uint8])
def test_horizontal_and_vertical_flip_equal_torch_flip(dtype):
    images = torch.rand(2, 3, 20, 24, generator=_gen(50))
    images = (images * 255).to(dtype) if dtype == torch.uint8 else images.to(dtype)
    boxes = torch.tensor([[2, 3, 9, 14], [12, 0, 24, 5], [3, 4, 11, 20], [14, 7, 19, 19]])
    obj = torch.tensor([0, 0, 1, 1])
    hflip = torch.tensor([[-1.0, 0, 0], [0, 1, 0]])
    vflip = torch.tensor([[1.0, 0, 0], [0, -1, 0]])
    theta = torch.stack([hflip, vflip, hflip, vflip])
    for align_corners in (False, True):
        out = warp_patches(images, boxes, theta, obj, mode="nearest", align_corners=align_corners)
        expected = images.clone()
        for (x1, y1, x2, y2), b, dim in zip(boxes.tolist(), obj.tolist(), (-1, -2, -1, -2)):
            expected[b, :, y1:y2, x1:x2] = images[b, :, y1:y2, x1:x2].flip(dim)
        assert torch.equal(out, expected)
        for mode in ("bilinear", "bicubic"):
            out = warp_patches(images, boxes, theta, obj, mode=mode, align_corners=align_corners)
            if dtype == torch.uint8:
                assert torch.equal(out, expected)
            else:
                _close(out, expected, atol=1e-13 if dtype == D64 else 5e-6)


@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_parallel_reads_the_original_images(padding_mode):
    images = torch.rand(1, 2, 16, 16, generator=_gen(52), dtype=D64)
    a = [2, 2, 10, 10]  # flipped
    b = [6, 6, 14, 14]  # identity, overlaps the bottom-right quarter of a
    c = [0, 14, 16, 16]  # identity, elsewhere (a third object: calls of any size)
    boxes = torch.tensor([a, b, c])
    hflip = [[-1.0, 0, 0], [0, 1, 0]]
    ident = [[1.0, 0, 0], [0, 1, 0]]
    theta = torch.tensor([hflip, ident, ident], dtype=D64)
    flipped_a = images[0, :, 2:10, 2:10].flip(-1)
    kw = {"mode": "nearest", "padding_mode": padding_mode}

    par = warp_patches(images, boxes, theta, overlap="parallel", **kw)
    expected = images.clone()
    expected[0, :, 2:10, 2:10] = flipped_a
    expected[0, :, 6:14, 6:14] = images[0, :, 6:14, 6:14]  # b wins, reads the ORIGINAL
    assert torch.equal(par, expected)

    seq = warp_patches(images, boxes, theta, overlap="sequential", **kw)
    expected_seq = images.clone()
    expected_seq[0, :, 2:10, 2:10] = flipped_a  # b copies what a left there
    assert torch.equal(seq, expected_seq)
    assert not torch.equal(par, seq)

    # reversed indices: the flip (now the later object) wins the overlap in parallel
    par_rev = warp_patches(images, boxes.flip(0), theta.flip(0), overlap="parallel", **kw)
    assert torch.equal(par_rev, expected_seq)
    # the same with only the two overlapping objects
    assert torch.equal(warp_patches(images, boxes[:2], theta[:2], overlap="parallel", **kw), expected)
    assert torch.equal(warp_patches(images, boxes[:2], theta[:2], overlap="sequential", **kw), expected_seq)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", MODES)
def test_no_overlap_sequential_equals_parallel(mode, padding_mode):
    images = torch.rand(3, 2, 20, 24, generator=_gen(53), dtype=torch.float32)
    boxes = torch.tensor(
        [[0, 0, 8, 8], [8, 0, 24, 8], [0, 8, 12, 20], [12, 8, 24, 20],  # tiles of image 0
         [-3, -3, 5, 5], [5, 5, 30, 30], [2, 10, 5, 20],  # image 1, touching, not overlapping
         [0, 0, 24, 20]]  # image 2: the whole image
    )
    obj = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2])
    theta = _theta(8, scale=0.4, seed=54, dtype=torch.float32)
    seq = warp_patches(images, boxes, theta, obj, mode=mode, padding_mode=padding_mode, overlap="sequential")
    par = warp_patches(images, boxes, theta, obj, mode=mode, padding_mode=padding_mode, overlap="parallel")
    assert torch.equal(seq, par)


def test_image_padding_reads_surroundings_not_padding():
    # a shift by the full box width reads the neighbouring columns of the image
    images = torch.rand(1, 1, 8, 20, generator=_gen(55), dtype=D64)
    boxes = torch.tensor([[4, 2, 8, 6]])
    theta = torch.tensor([[[1.0, 0, 2.0], [0, 1, 0]]], dtype=D64)  # u' = u + 2: one box to the right
    out = warp_patches(images, boxes, theta, mode="nearest", padding_mode="image")
    assert torch.equal(out[0, 0, 2:6, 4:8], images[0, 0, 2:6, 8:12])
    zeros = warp_patches(images, boxes, theta, mode="nearest", padding_mode="zeros")
    assert torch.equal(zeros[0, 0, 2:6, 4:8], torch.zeros(4, 4, dtype=D64))
    # beyond the image: zeros
    theta = torch.tensor([[[1.0, 0, -4.0], [0, 1, 0]]], dtype=D64)  # two boxes to the left
    out = warp_patches(images, boxes, theta, mode="nearest", padding_mode="image")
    assert torch.equal(out[0, 0, 2:6, 4:8], torch.zeros(4, 4, dtype=D64))


def test_image_padding_sequential_reads_earlier_writes_outside_own_box():
    """With padding_mode="image" a later object reads the image as earlier ones left it,
    also outside its own box (the SPEC's loop reads ``out``)."""
    images = torch.rand(1, 1, 8, 20, generator=_gen(56), dtype=D64)
    boxes = torch.tensor([[8, 2, 12, 6], [4, 2, 8, 6]])  # disjoint, object 1 reads object 0's box
    theta = torch.tensor([[[-1.0, 0, 0], [0, 1, 0]], [[1.0, 0, 2.0], [0, 1, 0]]], dtype=D64)
    seq = warp_patches(images, boxes, theta, mode="nearest", padding_mode="image")
    par = warp_patches(images, boxes, theta, mode="nearest", padding_mode="image", overlap="parallel")
    flipped = images[0, 0, 2:6, 8:12].flip(-1)
    assert torch.equal(seq[0, 0, 2:6, 8:12], flipped)
    assert torch.equal(seq[0, 0, 2:6, 4:8], flipped)  # read object 0's output
    assert torch.equal(par[0, 0, 2:6, 4:8], images[0, 0, 2:6, 8:12])  # read the original
    assert torch.equal(seq, reference_warp(images, boxes, theta, mode="nearest", padding_mode="image"))


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_without_autograd_equals_with(context):
    """``no_grad`` and ``inference_mode`` (where the autograd dispatch is skipped
    altogether) give the same result and record nothing."""
    images = _images(seed=49).requires_grad_(True)
    theta = _theta(seed=50).requires_grad_(True)
    expected = warp_patches(images, BOXES, theta, OBJ_TO_IMG).detach()
    manager = torch.no_grad() if context == "no_grad" else torch.inference_mode()
    with manager:
        out = warp_patches(images, BOXES, theta, OBJ_TO_IMG)
    assert out.grad_fn is None and not out.requires_grad
    assert torch.equal(out, expected)


def test_double_backward_raises_a_clear_error():
    """The backward is not itself differentiable: with ``create_graph=True`` the first
    gradients are right, and differentiating them raises instead of silently returning
    a wrong second derivative."""
    images = _images(seed=51).requires_grad_(True)
    theta = _theta(seed=52).requires_grad_(True)
    out = warp_patches(images, BOXES, theta, OBJ_TO_IMG)
    g_img, g_theta = torch.autograd.grad((out**2).sum(), [images, theta], create_graph=True)
    out2 = warp_patches(images, BOXES, theta, OBJ_TO_IMG)
    e_img, e_theta = torch.autograd.grad((out2**2).sum(), [images, theta])
    torch.testing.assert_close(g_img.detach(), e_img, rtol=0, atol=0)
    torch.testing.assert_close(g_theta.detach(), e_theta, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="differentiate twice|differentiable once"):
        (g_img.sum() + g_theta.sum()).backward()
