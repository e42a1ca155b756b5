"""The compiled kernel's forward row by row (``forward_row`` in ``csrc/sampling.h``) gives
the same bits as its per-pixel path (``augpatch_cpu::warp_forward_per_pixel``: every pixel
through ``locate`` + ``Grid`` + ``sample``, the kernel's forward before the row path), for
every dtype, mode, padding, layout and overlap, on random, tie-heavy and far-outside thetas;
and uint8 nearest still copies exactly the pixels the reference loop picks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import reference_warp

from augpatch.functional import set_cpu_kernel, warp_patches
from augpatch.ops import settings as _kernel
from augpatch.testing.kernel_calls import compiled_kernel_calls

D64 = torch.float64
PADDINGS = ("zeros", "border", "reflection", "image")
MODES = ("nearest", "bilinear", "bicubic")
BOXES = torch.tensor([[1, 1, 9, 7], [4, 2, 17, 15], [0, 0, 20, 16], [12, 5, 19, 14], [6, 9, 7, 10], [-3, -2, 5, 4],
                      [15, 11, 25, 19], [2, 3, 12, 13]])
OBJ = torch.tensor([0, 1, 0, 0, 1, 1, 0, 0])
N = BOXES.shape[0]

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _ops():
    ops = _kernel.compiled_ops(torch.device("cpu"))
    assert ops is not None, "the compiled kernel is not active"
    return ops


def _bits(t: torch.Tensor) -> torch.Tensor:
    """``t``'s bits as integers of the same width (floats), else ``t``."""
    if not t.is_floating_point():
        return t
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])


def _assert_rows_equal_per_pixel(images, boxes, theta, obj, required=True, **kw) -> int:
    """Both paths on the kernel arguments of this call: the same bits in every output."""
    ops = _ops()
    calls = compiled_kernel_calls(images, boxes, theta, obj, **kw)
    assert calls or not required, "the compiled kernel was not called"
    before = images.clone()
    for args in calls:
        rows = ops.warp_forward(*args)
        pixels = ops.warp_forward_per_pixel(*args)
        for a, b in zip(rows, pixels):
            assert a.dtype == b.dtype and a.shape == b.shape
            # bit for bit (also the sign of zeros; the kept mask words stored in a
            # float tensor may read as NaN, so floats are compared as their bits)
            assert torch.equal(_bits(a), _bits(b))
    assert torch.equal(images, before)  # inputs untouched
    return len(calls)


def _random_theta(n, seed, scale, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.eye(2, 3, dtype=D64) + scale * torch.randn(n, 2, 3, generator=g, dtype=D64)).to(dtype)


def _rotation_theta(n, degrees, dtype=torch.float32, shift=(0.0, 0.0)):
    a = math.radians(degrees)
    t = torch.tensor([[math.cos(a), -math.sin(a), shift[0]], [math.sin(a), math.cos(a), shift[1]]], dtype=D64)
    return t.repeat(n, 1, 1).to(dtype)


def _images(dtype, channels=3, layout="contiguous", seed=0, shape=(2, 17, 21)):
    g = torch.Generator().manual_seed(seed)
    b, h, w = shape
    if dtype == torch.uint8:
        x = torch.randint(0, 256, (b, channels, h, w), generator=g, dtype=torch.uint8)
    else:
        x = (torch.rand(b, channels, h, w, generator=g, dtype=D64) * 4 - 2).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


THETAS = {
    "random-0.3": lambda n, dt: _random_theta(n, 1, 0.3, dt),
    "random-1.5": lambda n, dt: _random_theta(n, 2, 1.5, dt),  # far outside the frame
    "rot15-zoom": lambda n, dt: _rotation_theta(n, 15, dt) * 1.1,
    "rot90": lambda n, dt: _rotation_theta(n, 90, dt),
    "rot-90": lambda n, dt: _rotation_theta(n, -90, dt),
    "rot180": lambda n, dt: _rotation_theta(n, 180, dt),
    "shift": lambda n, dt: _rotation_theta(n, 0, dt, shift=(0.25, -0.5)),
    "zoom-out-2": lambda n, dt: _rotation_theta(n, 0, dt) * 2,
    "huge": lambda n, dt: _rotation_theta(n, 0, dt, shift=(3e9, -7e12)),
}


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, D64, torch.bfloat16])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_rows_equal_per_pixel(dtype, mode, padding_mode):
    compute = D64 if dtype == D64 else torch.float32
    variants = list(itertools.product(
        [("contiguous", 3), ("channels_last", 3), ("contiguous", 1), ("channels_last", 4)], (False, True),
        ("sequential", "parallel"),
    ))
    for i, make in enumerate(THETAS.values()):
        # every theta on two of the sixteen variants, every variant on one theta or more
        for (layout, channels), align, overlap in variants[(2 * i) % 16:(2 * i) % 16 + 2]:
            images = _images(dtype, channels, layout, seed=channels)
            _assert_rows_equal_per_pixel(images, BOXES, make(N, compute), OBJ, mode=mode,
                                         padding_mode=padding_mode, align_corners=align, overlap=overlap)


def test_rows_with_gradients_keep_what_the_backward_needs():
    """Calls that need the location gradient run the same forward and keep the same tensors."""
    images = _images(torch.float32).requires_grad_()
    theta = _random_theta(N, 3, 0.3).requires_grad_()
    for mode, padding_mode, overlap in itertools.product(("nearest", "bilinear"), PADDINGS, ("sequential", "parallel")):
        calls = _assert_rows_equal_per_pixel(images, BOXES, theta, OBJ, mode=mode, padding_mode=padding_mode,
                                             overlap=overlap)
        assert calls >= 1


def _random_boxes(g: torch.Generator, h: int, w: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` integer boxes partly outside an ``h x w`` canvas and their image (of 2)."""
    x1 = torch.randint(-3, w + 1, (n,), generator=g)
    y1 = torch.randint(-3, h + 1, (n,), generator=g)
    bw = torch.randint(1, w + 4, (n,), generator=g)
    bh = torch.randint(1, h + 4, (n,), generator=g)
    obj = torch.randint(0, 2, (n,), generator=g)
    return torch.stack([x1, y1, x1 + bw, y1 + bh], 1), obj


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 4),
    n=st.integers(1, 5),
    dtype=st.sampled_from([torch.uint8, torch.float32, D64]),
    mode=st.sampled_from(["nearest", "bilinear"]),
    padding_mode=st.sampled_from(PADDINGS),
    align=st.booleans(),
    scale=st.sampled_from([0.0, 0.1, 0.5, 2.0]),
    channels_last=st.booleans(),
)
def test_rows_equal_per_pixel_property(seed, h, w, c, n, dtype, mode, padding_mode, align, scale, channels_last):
    g = torch.Generator().manual_seed(seed)
    boxes, obj = _random_boxes(g, h, w, n)
    images = _images(dtype, c, "channels_last" if channels_last else "contiguous", seed, (2, h, w))
    compute = D64 if dtype == D64 else torch.float32
    theta = (torch.eye(2, 3, dtype=D64) + scale * torch.randn(n, 2, 3, generator=g, dtype=D64)).to(compute)
    # (boxes wholly outside the images call no kernel)
    _assert_rows_equal_per_pixel(images, boxes, theta, obj, required=False, mode=mode, padding_mode=padding_mode,
                                 align_corners=align)


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("align", [False, True])
def test_uint8_nearest_copies_the_pixels_of_the_loop_and_the_eager_kernel(padding_mode, align):
    """Ties (90-degree rotations, half-pixel shifts, zooms by 2) and random thetas: uint8
    nearest picks exactly the pixels the eager kernel picks, and those the reference loop
    (grid_sample) picks; with padding "image" the loop's own location arithmetic differs
    from the kernels' (both of them, also before the row path) at exact ties, so there
    the loop is compared on the random thetas only."""
    images = _images(torch.uint8, 3, seed=5)
    for name, make in THETAS.items():
        theta = make(N, torch.float32)
        kw = {"mode": "nearest", "padding_mode": padding_mode, "align_corners": align}
        out = warp_patches(images, BOXES, theta, OBJ, **kw)
        set_cpu_kernel("eager")
        try:
            eager = warp_patches(images, BOXES, theta, OBJ, **kw)
        finally:
            set_cpu_kernel("compiled")
        assert torch.equal(out, eager), name
        assert not torch.equal(out, images), name
        if name == "huge" or (padding_mode == "image" and not name.startswith("random")):
            continue  # grid_sample is undefined that far out; ties with padding "image": above
        expected = reference_warp(images, BOXES, theta, OBJ, **kw)
        assert torch.equal(out, expected), name
