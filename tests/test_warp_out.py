"""``warp_patches(..., out=)``: the checked in-place / ``out=`` warp, and the core's image
hook with ``out=``.

The result is ``warp_patches``' own bit for bit (the compiled kernel in place where it runs,
else the result copied); every bad ``out`` gets an error naming it; no autograd; the inputs
are never modified (unless ``out`` is ``images``); ``torch.compile`` supports it.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from dynamo_support import fresh_dynamo, fullgraph_dynamic
from reference import reference_warp

from augpatch.functional import patch_affine_matrix, set_cpu_kernel, warp_patches
from augpatch.transforms import RandomPatchAffine

BOXES = torch.tensor([[2.0, 3, 30, 25], [10, 10, 45, 38], [5.5, 20.2, 20, 39], [0, 0, 50, 40],
                      [30, 5, 49, 20]])
O2I = torch.tensor([0, 0, 0, 1, 1])


def _batch(dtype: torch.dtype, channels_last: bool = False, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, 40, 50, generator=gen, dtype=torch.float64)
    images = (images * 255).round().to(dtype) if dtype == torch.uint8 else images.to(dtype)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    angle = torch.tensor([20.0, -35, 50, 10, 170])
    scale = torch.tensor([0.8, 1.2, 0.9, 1.1, 1.0])
    theta = patch_affine_matrix(BOXES, angle=angle, scale=scale).to(
        torch.float64 if dtype == torch.float64 else torch.float32)
    return images, BOXES.to(theta.dtype), theta


CASES = list(itertools.product(("nearest", "bilinear", "bicubic"),
                               ("zeros", "border", "reflection", "image"),
                               ("sequential", "parallel")))


@pytest.mark.parametrize(("dtype", "channels_last"),
                         [(torch.uint8, True), (torch.uint8, False), (torch.float64, False),
                          (torch.float32, True)])
@pytest.mark.parametrize(("mode", "padding_mode", "overlap"), CASES)
def test_out_is_the_warp_bit_for_bit(dtype, channels_last, mode, padding_mode, overlap):
    images, boxes, theta = _batch(dtype, channels_last)
    kw = {"mode": mode, "padding_mode": padding_mode, "overlap": overlap}
    expected = warp_patches(images, boxes, theta, O2I, **kw)
    before = images.clone()
    out = torch.empty_like(images)
    assert warp_patches(images, boxes, theta, O2I, out=out, **kw) is out
    assert torch.equal(out, expected)
    assert torch.equal(images, before)  # the input is not modified
    same = images.clone(memory_format=torch.preserve_format)
    assert warp_patches(same, boxes, theta, O2I, out=same, **kw) is same  # in place
    assert torch.equal(same, expected)


def test_out_in_place_equals_the_reference_loop():
    images, boxes, theta = _batch(torch.float64)
    out = images.clone()
    warp_patches(out, boxes, theta, O2I, padding_mode="image", out=out)
    ref = reference_warp(images, boxes, theta, O2I, padding_mode="image")
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kernel", ["compiled", "eager"])
def test_out_of_another_layout_or_kernel_gets_the_same_values(kernel):
    """A strided ``out`` (not the warp's layout) and the eager kernel: computed, then copied."""
    set_cpu_kernel(kernel)
    images, boxes, theta = _batch(torch.uint8)
    expected = warp_patches(images, boxes, theta, O2I, mode="nearest")
    wide = torch.zeros(2, 3, 40, 100, dtype=torch.uint8)
    out = wide[..., ::2]
    assert warp_patches(images, boxes, theta, O2I, mode="nearest", out=out) is out
    assert torch.equal(out, expected)
    assert not wide[..., 1::2].any()  # nothing written between out's elements
    same = images.clone()
    warp_patches(same, boxes, theta, O2I, mode="nearest", out=same)
    assert torch.equal(same, expected)


def test_out_with_few_float_boxes_and_no_boxes():
    """The few-objects path (the reference's own arithmetic) and ``N = 0``: copied into ``out``."""
    images, boxes, theta = _batch(torch.float32)
    expected = warp_patches(images, boxes[:2], theta[:2], O2I[:2])
    out = torch.full_like(images, 7.0)
    assert torch.equal(warp_patches(images, boxes[:2], theta[:2], O2I[:2], out=out), expected)
    out = torch.full_like(images, 7.0)
    empty = warp_patches(images, boxes[:0], theta[:0], O2I[:0], out=out)
    assert empty is out and torch.equal(out, images)


@pytest.mark.parametrize("integer", [True, False])
def test_out_with_one_or_two_boxes_takes_the_path_warp_patches_takes(monkeypatch, integer):
    """One or two integer boxes: the few-objects path (the reference's arithmetic), copied
    into ``out``; float boxes, which that path leaves to the kernel: the kernel in place on
    ``out`` (no result of its own to copy). The same bits as without ``out`` either way."""
    import augpatch.functional._warp as warp_module

    set_cpu_kernel("compiled")
    images, boxes, theta = _batch(torch.float32)
    boxes = boxes[[0, 2]].round() if integer else boxes[[0, 2]] + 0.3  # integer values, or not
    in_place = []
    original = warp_module.warp_in_place
    monkeypatch.setattr(warp_module, "warp_in_place", lambda *a, **k: in_place.append(1) or original(*a, **k))
    for n in (1, 2):
        expected = warp_patches(images, boxes[:n], theta[:n], O2I[:n])
        in_place.clear()
        out = torch.full_like(images, 7.0)
        assert warp_patches(images, boxes[:n], theta[:n], O2I[:n], out=out) is out
        assert torch.equal(out, expected)
        runs_kernel = warp_module.compiled_ops(images.device) is not None and not integer
        assert len(in_place) == int(runs_kernel), (n, integer)


def test_out_under_no_grad_with_inputs_that_require_grad():
    images, boxes, theta = _batch(torch.float64)
    theta.requires_grad_(True)
    out = torch.empty_like(images)
    with torch.no_grad():
        warp_patches(images, boxes, theta, O2I, out=out)
        expected = warp_patches(images, boxes, theta, O2I)
    assert torch.equal(out, expected)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("make_out", "error", "match"),
    [
        (lambda x: x.numpy(), TypeError, "out must be a torch.Tensor"),
        (lambda x: torch.empty(2, 3, 40, 51, dtype=x.dtype), ValueError, r"out must have the shape"),
        (lambda x: torch.empty(2, 3, 40, 50, dtype=torch.float32), TypeError, "out must have the dtype"),
        (lambda x: torch.empty(2, 3, 40, 50, dtype=x.dtype, device="meta"), ValueError,
         "out must be on the device"),
        (lambda x: x.to_sparse(), ValueError, "out must be a strided"),
        (lambda x: torch.empty(1, 3, 40, 50, dtype=x.dtype).expand(2, 3, 40, 50), ValueError,
         "out has elements that share memory"),
        (lambda x: torch.empty(2, 3, 40, 1, dtype=x.dtype).expand(2, 3, 40, 50), ValueError,
         "out has elements that share memory"),
    ],
)
def test_bad_out_is_refused_naming_it(make_out, error, match):
    images, boxes, theta = _batch(torch.uint8)
    with pytest.raises(error, match=match):
        warp_patches(images, boxes, theta, O2I, mode="nearest", out=make_out(images))


def test_out_sharing_memory_partly_with_the_images_is_refused():
    base = torch.zeros(2, 3, 40, 51, dtype=torch.uint8)
    images, out = base[..., :50], base[..., 1:]
    images_before = images.clone()
    _, boxes, theta = _batch(torch.uint8)
    with pytest.raises(ValueError, match="out shares memory with images"):
        warp_patches(images, boxes, theta, O2I, mode="nearest", out=out)
    # a view of the images with other strides (a transposed batch of the same memory)
    square = torch.zeros(1, 3, 40, 40)
    with pytest.raises(ValueError, match="out shares memory with images"):
        warp_patches(square, boxes[:1], theta[:1], out=square.transpose(2, 3))
    assert torch.equal(images, images_before)


def test_out_sharing_memory_with_boxes_or_theta_is_refused():
    images, boxes, theta = _batch(torch.float32)
    size = 2 * 3 * 40 * 50
    storage = torch.zeros(size + 10)
    theta_view = storage[:30].view(5, 2, 3)  # theta's bytes are out's first 30 elements
    theta_view.copy_(theta)
    with pytest.raises(ValueError, match="out shares memory with theta"):
        warp_patches(images, boxes, theta_view, O2I, out=storage[:size].view(2, 3, 40, 50))
    box_view = storage[-20:].view(5, 4)  # the boxes' are out's last 20
    box_view.copy_(boxes)
    with pytest.raises(ValueError, match="out shares memory with boxes"):
        warp_patches(images, box_view, theta, O2I, out=storage[10:].view(2, 3, 40, 50))
    # the same storage, the bytes side by side (out first, then the boxes): accepted
    storage = torch.zeros(size + 20)
    beside = storage[size:].view(5, 4)
    beside.copy_(boxes)
    out = storage[:size].view(2, 3, 40, 50)
    warp_patches(images, beside, theta, O2I, out=out)
    assert torch.equal(out, warp_patches(images, boxes, theta, O2I))


@pytest.mark.parametrize("which", ["images", "theta", "boxes", "out"])
def test_out_refuses_autograd_naming_what_requires_grad(which):
    images, boxes, theta = _batch(torch.float64)
    out = torch.empty_like(images)
    args = {"images": images, "boxes": boxes, "theta": theta, "out": out}
    args[which] = args[which].clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match=rf"does not support automatic differentiation.*{which}"):
        warp_patches(args["images"], args["boxes"], args["theta"], O2I, out=args["out"])


# --------------------------------------------------------------------------- torch.compile


def test_out_under_torch_compile_gives_the_eager_values_and_errors():
    images, boxes, theta = _batch(torch.float32)
    expected = warp_patches(images, boxes, theta, O2I)

    def fn(images, boxes, theta, obj_to_img, out):
        return warp_patches(images, boxes, theta, obj_to_img, out=out)

    with fresh_dynamo(), fullgraph_dynamic():
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
        out = torch.empty_like(images)
        compiled(images, boxes, theta, O2I, out)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
        bad = torch.empty(2, 3, 40, 51)
        # without fullgraph: the eager error itself, on every torch version
        with pytest.raises(ValueError, match="out must have the shape"):
            torch.compile(fn, backend="aot_eager")(images, boxes, theta, O2I, bad)
        # fullgraph: Dynamo reports a user exception raised while tracing as its own
        # "Observed exception" naming the ValueError, with augpatch's message in its debug
        # context at the newest torch and the class only at torch 2.8 (the compile guide)
        with pytest.raises(Exception) as info:
            torch.compile(fn, fullgraph=True, backend="aot_eager")(images, boxes, theta, O2I, bad)
        message = str(info.value)
        class_only = "ExceptionVariable(<class 'ValueError'>)" in message  # torch 2.8
        assert "out must have the shape" in message or class_only, message


# --------------------------------------------------------------------------- the core's hook


@pytest.mark.parametrize("masks", [False, True])
def test_image_hook_and_warp_objects_with_out(masks):
    images, boxes, theta = _batch(torch.uint8, channels_last=True)
    aug = RandomPatchAffine(degrees=30.0, scale=(0.8, 1.2), p=0.7, resample="nearest",
                            generator=torch.Generator().manual_seed(3))
    p = aug.forward_parameters(images.shape, boxes, O2I)
    call = aug.make_call(p, p["patches"], O2I, boxes)
    if masks:
        target = (images[:, 0] > 100).to(torch.uint8)
        expected = aug.warp_objects(target, boxes, call.theta, O2I, call.moved, masks=True)
        out = torch.empty_like(target)
        assert aug.warp_objects(target, boxes, call.theta, O2I, call.moved, masks=True,
                                out=out) is out
        assert torch.equal(out, expected)
        return
    expected = aug.apply_transform_image(images, call)
    same = images.clone(memory_format=torch.preserve_format)
    assert aug.apply_transform_image(same, call, out=same) is same
    assert torch.equal(same, expected)
    nothing = torch.zeros_like(call.moved)
    out = torch.empty_like(images)
    assert torch.equal(aug.warp_objects(images, boxes, call.theta, O2I, nothing, out=out), images)
    with pytest.raises(ValueError, match="out must have the shape"):
        aug.apply_transform_image(images, call, out=images[:1])


def test_image_hook_with_out_on_a_padded_batch():
    """``padding_mode="image"`` in a padded batch (a region per image): the warp with the
    region, then copied into ``out``; the same values as without ``out``."""
    images, boxes, theta = _batch(torch.float64)
    sizes = torch.tensor([[40, 50], [30, 42]])
    aug = RandomPatchAffine(degrees=30.0, p=1.0, padding_mode="image",
                            generator=torch.Generator().manual_seed(4))
    p = aug.forward_parameters(images.shape, boxes, O2I, image_sizes=sizes)
    call = aug.make_call(p, p["patches"], O2I, p["patches"], sizes)
    expected = aug.apply_transform_image(images, call)
    assert not torch.equal(expected, images)
    out = torch.empty_like(images)
    assert aug.apply_transform_image(images, call, out=out) is out
    assert torch.equal(out, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_out_half_precision_and_box_lists(dtype, mode):
    images, boxes, theta = _batch(torch.float32)
    images = images.to(dtype)
    expected = warp_patches(images, boxes, theta, O2I, mode=mode)
    out = torch.empty_like(images)
    assert torch.equal(warp_patches(images, boxes, theta, O2I, mode=mode, out=out), expected)
    listed = [boxes[:3], boxes[3:]]  # obj_to_img implied (O2I)
    out = torch.empty_like(images)
    assert torch.equal(warp_patches(images, listed, theta, mode=mode, out=out), expected)


def test_out_is_a_strided_view_warped_in_place():
    """``out=images`` where ``images`` is not in the warp's layout: computed, then copied."""
    wide = torch.rand(2, 3, 40, 100)
    view = wide[..., ::2]
    _, boxes, theta = _batch(torch.float32)
    expected = warp_patches(view, boxes, theta, O2I)
    between = wide[..., 1::2].clone()
    assert warp_patches(view, boxes, theta, O2I, out=view) is view
    assert torch.equal(view, expected) and torch.equal(wide[..., 1::2], between)
