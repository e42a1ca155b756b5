"""The compiled kernel's forward over several intra-op threads (``forward_impl`` in
``csrc/warp_cpu.cpp``): with a batch to copy and several images it spreads the images over the
threads, each image copied and warped whole by one thread with its own scratch and kept-value
state. The outputs are the same bits whatever the thread count: the warped batch, the values
and bits kept for the location gradient (``kept0`` / ``kept1``), the saved derivatives (padding
"image"), for overlap chains on images with uneven box work, every mode, padding, overlap,
dtype and layout; the in-place forward (``warp_forward_``) too; and the whole call at two
threads equals the SPEC's reference loop (float64, values and gradients)."""

from __future__ import annotations

import itertools

import pytest
import torch
from reference import reference_warp
from test_warp_compiled_rows import _bits, _images, _ops

from augpatch.functional import warp_patches
from augpatch.testing.kernel_calls import compiled_kernel_calls

D64 = torch.float64
THREADS = (1, 2, 3)

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _batch(seed: int, dtype: torch.dtype, channels: int = 3, layout: str = "contiguous", size=(6, 22, 27),
           n_boxes=(4, 0, 3, 6, 4, 4)):
    """Images with uneven box work (``n_boxes[b]`` boxes on image ``b``, one without any), yet
    enough images to spread over the threads: the boxes of an image overlap in chains
    (several levels), some lie partly outside it."""
    images = _images(dtype, channels, "channels_last" if layout == "channels_last" else "contiguous", seed, size)
    if layout == "strided":  # a view not in the working layout: the kernel reads no input directly
        images = torch.cat([images, images], 3)[..., ::2]
    g = torch.Generator().manual_seed(seed + 1)
    _, h, w = size
    obj = torch.cat([torch.full((k,), i) for i, k in enumerate(n_boxes)])
    n = obj.numel()
    xy = torch.rand(n, 2, generator=g, dtype=D64) * torch.tensor([w * 0.6, h * 0.6], dtype=D64) - 2
    wh = torch.rand(n, 2, generator=g, dtype=D64) * torch.tensor([w * 0.5, h * 0.5], dtype=D64) + 3
    boxes = torch.cat([xy, xy + wh], 1).round()
    theta = torch.eye(2, 3, dtype=D64) + 0.25 * torch.randn(n, 2, 3, generator=g, dtype=D64)
    compute = D64 if dtype == D64 else torch.float32
    return images, boxes, theta.to(compute), obj


def _at(threads: int, fn, *args):
    """``fn(*args)`` at ``threads`` intra-op threads (the count restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def _forward_outputs(args, per_pixel: bool = False) -> list[torch.Tensor]:
    ops = _ops()
    forward = ops.warp_forward_per_pixel if per_pixel else ops.warp_forward
    return list(forward(*args))


def _assert_same_bits_at_every_thread_count(images, boxes, theta, obj, per_pixel=False, **kw) -> list:
    """The kernel's forward on each call's arguments at 1, 2 and 3 threads: the same bits in
    (out, kept0, kept1), with and without the location gradient."""
    before = images.clone()
    calls = compiled_kernel_calls(images, boxes, theta.requires_grad_(), obj, **kw)
    assert calls, "the compiled kernel was not called"
    outputs = []
    for args in calls:
        for need_loc in (True, False):
            call = (*args[:5], need_loc)
            results = [_at(t, _forward_outputs, call, per_pixel) for t in THREADS]
            for t, got in zip(THREADS[1:], results[1:]):
                for name, a, b in zip(("out", "kept0", "kept1"), results[0], got):
                    assert a.dtype == b.dtype and a.shape == b.shape, (name, t)
                    assert torch.equal(_bits(a), _bits(b)), f"{name} at {t} threads differs from 1 thread"
            outputs.append(results[0])
    assert torch.equal(images, before)  # the input untouched
    return outputs


VARIANTS = list(itertools.product(("nearest", "bilinear", "bicubic"), ("zeros", "border", "reflection", "image"),
                                  ("sequential", "parallel")))


@pytest.mark.parametrize("dtype", [torch.float32, D64, torch.uint8])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize(("mode", "padding_mode", "overlap"), VARIANTS)
def test_forward_same_bits_at_any_thread_count(dtype, layout, mode, padding_mode, overlap):
    channels = 4 if layout == "channels_last" and dtype == torch.uint8 else 3  # Pillow's RGBX pixels
    images, boxes, theta, obj = _batch(VARIANTS.index((mode, padding_mode, overlap)), dtype, channels, layout)
    outputs = _assert_same_bits_at_every_thread_count(images, boxes, theta, obj, mode=mode,
                                                      padding_mode=padding_mode, overlap=overlap)
    out, kept0, kept1 = outputs[0]  # with the location gradient
    assert not torch.equal(out, images)  # the boxes were warped
    if overlap == "sequential":  # levels after the first read earlier levels' writes: something kept
        assert kept0.numel() > 0 and kept1.numel() > 0


@pytest.mark.parametrize("layout", ["strided", "channels_last"])
@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
def test_per_pixel_path_and_non_working_layouts(layout, overlap):
    """The per-pixel path (bilinear, saved derivatives or not) and an input the kernel cannot
    read directly (a strided view: every level computes aside, then writes)."""
    images, boxes, theta, obj = _batch(40, torch.float32, 3, layout)
    for per_pixel in (False, True):
        _assert_same_bits_at_every_thread_count(images, boxes, theta, obj, per_pixel=per_pixel, overlap=overlap)


def test_larger_batch_with_uneven_work():
    """Images big enough that the threads run at once, one with far more box work than the
    others (spread over two threads; too uneven for three); kept values of many objects joined
    from the threads' chunks."""
    images, boxes, theta, obj = _batch(41, torch.float32, 3, "contiguous", size=(7, 96, 120),
                                       n_boxes=(40, 2, 0, 12, 1, 25, 6))
    outputs = _assert_same_bits_at_every_thread_count(images, boxes, theta, obj)
    assert outputs[0][1].numel() > 1000  # many kept values


def test_every_box_on_one_image():
    """Two images, every box on the first (too uneven to spread the images over the threads:
    each level's rows are spread instead): the same bits too."""
    images, boxes, theta, obj = _batch(44, torch.float32, 3, "contiguous", size=(2, 64, 80), n_boxes=(30, 0))
    outputs = _assert_same_bits_at_every_thread_count(images, boxes, theta, obj)
    assert torch.equal(outputs[0][0][1], images[1])  # the second image copied as it is


def test_in_place_forward_same_bits_at_any_thread_count():
    """``warp_forward_`` (every level reads the batch itself, nothing kept) on each thread count
    equals the copying forward's output."""
    ops = _ops()
    images, boxes, theta, obj = _batch(42, torch.float32)
    for overlap in ("sequential", "parallel"):
        (args,) = compiled_kernel_calls(images, boxes, theta, obj, overlap=overlap)
        imgs, params, objects, levels, options, _ = args
        expected = _at(1, ops.warp_forward, imgs, params, objects, levels, options, False)[0]
        for t in THREADS:
            work = imgs.clone()
            _at(t, ops.warp_forward_, work, params, objects, levels, options)
            assert torch.equal(_bits(work), _bits(expected)), t


@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
@pytest.mark.parametrize("padding_mode", ["zeros", "image"])
def test_two_threads_match_the_reference_loop(overlap, padding_mode):
    """The whole call at two threads against the SPEC's reference loop (float64): the output
    and the images', boxes' and theta's gradients (the backward reads what the forward kept)."""
    images, boxes, theta, obj = _batch(43, D64)
    images.requires_grad_()
    boxes = (boxes + 0.25).requires_grad_()
    theta.requires_grad_()
    weight = torch.randn(images.shape, generator=torch.Generator().manual_seed(1), dtype=D64)
    kw = {"padding_mode": padding_mode, "overlap": overlap}

    def run(fn):
        out = fn(images, boxes, theta, obj, **kw)
        return (out.detach(), *torch.autograd.grad((out * weight).sum(), (images, boxes, theta)))

    got = _at(2, run, warp_patches)
    want = run(reference_warp)
    for name, a, b in zip(("output", "images' gradient", "boxes' gradient", "theta's gradient"), got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=lambda m, name=name: f"{name}: {m}")
    assert got[3].abs().sum() > 0
