"""The Triton kernel of ``warp_patches`` against the SPEC's reference loop.

On the CPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``, set per test
with ``monkeypatch``: the kernel module reads it when a kernel is needed, so the rest of
the suite, and CUDA tensors in the same process, are unaffected) through
``set_cpu_kernel("triton")``; with a GPU the same tests run on CUDA tensors with the
compiled kernels (marked ``cuda``). The interpreter is slow, so the problems are tiny
(2 images 2 x 12 x 14) and every test makes few calls.

Expected values come from ``tests/reference.py`` (one ``affine_grid`` + ``grid_sample``
per object); a spy on ``augpatch.ops.backends.triton.forward`` checks that every test ran the Triton kernel.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from dynamo_support import fullgraph_dynamic
from reference import reference_warp
from triton_build import assert_no_fma_and_ieee_division, compile_for_sm80

from augpatch.functional import (
    active_kernel,
    set_cpu_kernel,
    set_cuda_kernel,
    warp_patches,
)

pytest.importorskip("triton")
from augpatch.ops import settings as _kernel  # noqa: E402
from augpatch.ops.backends import get as _backend  # noqa: E402
from augpatch.ops.backends import triton as _triton  # noqa: E402  (needs triton)

D64 = torch.float64
MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection", "image")
ALL_COMBOS = list(itertools.product(MODES, PADDINGS, (False, True), ("sequential", "parallel")))
COMBO_IDS = [f"{m}-{p}-ac{int(a)}-{o}" for m, p, a, o in ALL_COMBOS]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, CUDA])]

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")

# Image 0: a chain of overlapping boxes (0 -> 2 -> 3, 6 crosses them: four levels), a box
# that holds no pixel (x2 <= x1) and one outside the image. Image 1: a box beyond the
# top-left border, the whole image, a one-pixel-wide box across both.
BOXES = torch.tensor([
    [1, 1, 9, 8],  # 0 img 0
    [-3, 4, 7, 15],  # 1 img 1 clipped
    [4, 3, 12, 11],  # 2 img 0 overlaps 0
    [6, 6, 14, 12],  # 3 img 0 overlaps 2
    [5, 5, 5, 9],  # 4 img 0 empty
    [20, 20, 25, 25],  # 5 img 0 outside
    [3, 5, 9, 10],  # 6 img 0 overlaps 0, 2, 3
    [0, 0, 14, 12],  # 7 img 1 whole image
    [2, 2, 3, 10],  # 8 img 1 one pixel wide
])
OBJ = torch.tensor([0, 1, 0, 0, 0, 0, 0, 1, 1])
# float boxes (away from pixel-membership boundaries j + .5)
FLOAT_BOXES = BOXES.to(D64) + torch.tensor([0.3, -0.2, 0.15, 0.35], dtype=D64)
SHAPE = (2, 2, 12, 14)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inputs(dtype=D64, seed: int = 0, n: int = len(BOXES), shape=SHAPE):
    images = torch.rand(shape, generator=_gen(seed), dtype=dtype)
    theta = torch.eye(2, 3, dtype=dtype) + 0.3 * torch.randn(n, 2, 3, generator=_gen(seed + 1), dtype=dtype)
    return images, theta


@pytest.fixture(autouse=True)
def cpu_kernel():
    """Overrides the suite's (compiled CPU kernel): CPU tensors run the Triton kernel here."""
    set_cpu_kernel("triton")
    set_cuda_kernel("triton")
    yield "triton"
    set_cpu_kernel("auto")
    set_cuda_kernel("auto")


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch):
    """The device of a test; on the CPU Triton's interpreter is on. Checks that the test ran
    the Triton kernel."""
    if request.param == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    else:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    calls = []
    original = _triton.forward
    monkeypatch.setattr(_triton, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    yield torch.device(request.param)
    assert calls, "the Triton kernel did not run"


def _on(device, *tensors):
    return [t.to(device) for t in tensors]


def _grads(fn, images, boxes, theta, weight, kw, wrt=("images", "theta", "boxes"), obj=OBJ):
    images = images.detach().clone().requires_grad_("images" in wrt)
    theta = theta.detach().clone().requires_grad_("theta" in wrt)
    boxes = boxes.detach().clone()
    if boxes.is_floating_point():
        boxes.requires_grad_("boxes" in wrt)
    out = fn(images, boxes, theta, obj, **kw)
    inputs = [t for name, t in (("images", images), ("theta", theta), ("boxes", boxes)) if name in wrt]
    # the reference loop may not use an input at all (every box one pixel thick with
    # align_corners=True reads its pixels whatever the boxes): a zero gradient
    grads = torch.autograd.grad((out * weight).sum(), inputs, allow_unused=True)
    return out, tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs))


def _check_grads(device, images, boxes, theta, kw, wrt=("images", "theta", "boxes"), atol=1e-9, seed=9):
    weight = torch.randn(images.shape, generator=_gen(seed), dtype=images.dtype)
    out, grads = _grads(warp_patches, *_on(device, images, boxes, theta, weight), kw, wrt, OBJ.to(device))
    ref, expected = _grads(reference_warp, images, boxes, theta, weight, kw, wrt)
    torch.testing.assert_close(out.cpu(), ref, atol=atol, rtol=0)
    for g, r in zip(grads, expected, strict=True):
        torch.testing.assert_close(g.cpu(), r, atol=atol, rtol=0)
        assert r.abs().sum() > 0 or kw.get("mode") == "nearest"
    return grads


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(("mode", "padding_mode", "align_corners", "overlap"), ALL_COMBOS, ids=COMBO_IDS)
def test_matches_reference_loop(device, mode, padding_mode, align_corners, overlap):
    images, theta = _inputs()
    kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners, "overlap": overlap}
    boxes = FLOAT_BOXES if align_corners else BOXES  # both kinds, over the combinations
    out = warp_patches(*_on(device, images, boxes, theta, OBJ), **kw)
    expected = reference_warp(images, boxes, theta, OBJ, **kw)
    assert out.device == device and out.dtype == images.dtype
    torch.testing.assert_close(out.cpu(), expected, atol=1e-12, rtol=0)
    assert not torch.allclose(out.cpu(), images)


@pytest.mark.parametrize(("mode", "padding_mode", "overlap"), [
    ("bilinear", "zeros", "sequential"), ("bicubic", "reflection", "parallel"), ("nearest", "image", "sequential"),
])
def test_float32_matches_reference_loop(device, mode, padding_mode, overlap):
    images, theta = _inputs(torch.float32, seed=2)
    kw = {"mode": mode, "padding_mode": padding_mode, "overlap": overlap}
    out = warp_patches(*_on(device, images, BOXES, theta, OBJ), **kw).cpu()
    expected = reference_warp(images, BOXES, theta, OBJ, **kw)
    if mode == "nearest":  # a location within rounding of a tie may pick the other neighbour
        assert (out != expected).float().mean() < 1e-2
    else:
        torch.testing.assert_close(out, expected, atol=2e-6, rtol=0)


@pytest.mark.parametrize(("mode", "padding_mode", "align_corners", "overlap"), [
    ("bicubic", "reflection", True, "sequential"), ("nearest", "border", False, "parallel"),
    ("bilinear", "image", False, "sequential"),
])
def test_float32_bit_identical_to_the_compiled_cpu_kernel(monkeypatch, mode, padding_mode, align_corners,
                                                          overlap):
    """Same operations in the same order: the interpreted Triton kernel and the compiled C++
    kernel give the same float32 bits (float boxes, overlaps, every level kind)."""
    import shutil

    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine: the compiled CPU kernel cannot be built")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    images, theta = _inputs(torch.float32, seed=40)
    boxes = FLOAT_BOXES.float()
    kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners, "overlap": overlap}
    triton_out = warp_patches(images, boxes, theta, OBJ, **kw)
    set_cpu_kernel("compiled")
    compiled_out = warp_patches(images, boxes, theta, OBJ, **kw)
    assert torch.equal(triton_out, compiled_out)
    assert not torch.equal(triton_out, images)


def test_more_channels_than_a_block(device):
    """Five channels: the kernels loop over blocks of channels."""
    images, theta = _inputs(seed=3, shape=(2, 5, 12, 14))
    kw = {"mode": "bicubic", "padding_mode": "border"}
    _check_grads(device, images, FLOAT_BOXES, theta, kw, seed=4)


def test_uint8_and_half_images(device):
    """Computed in float32 and rounded back after every paste (uint8: half to even, clamp)."""
    images, theta = _inputs(torch.float32, seed=5)
    u8 = (images * 255).to(torch.uint8)
    out = warp_patches(*_on(device, u8, BOXES, theta, OBJ), mode="bicubic")
    assert out.dtype == torch.uint8
    expected = reference_warp(u8, BOXES, theta, OBJ, mode="bicubic")
    assert (out.cpu().int() - expected.int()).abs().max() <= 1  # float rounding at .5
    assert (out.cpu() != expected).float().mean() < 1e-2
    for dtype in (torch.float16, torch.bfloat16):
        half = images.to(dtype)
        out = warp_patches(*_on(device, half, BOXES, theta, OBJ), padding_mode="reflection")
        assert out.dtype == dtype
        expected = reference_warp(half, BOXES, theta, OBJ, padding_mode="reflection")
        torch.testing.assert_close(out.cpu().float(), expected.float(), atol=1e-2, rtol=0)
        assert (out.cpu() != expected).float().mean() < 1e-2  # equal but where float32 rounds a tie


def test_half_gradients(device):
    """bfloat16 images: gradients are computed in float32 (the eager kernel's arithmetic;
    the reference loop rounds them to bfloat16 at every paste, so it is only close)."""
    images, theta = _inputs(torch.float32, seed=6)
    images = images.to(torch.bfloat16)
    weight = torch.randn(SHAPE, generator=_gen(7)).to(torch.bfloat16)
    kw = {"mode": "bilinear", "padding_mode": "image"}
    wrt = ("images", "theta")
    out, (g_img, g_th) = _grads(warp_patches, *_on(device, images, BOXES, theta, weight), kw, wrt, OBJ.to(device))
    assert g_img.dtype == torch.bfloat16 and g_th.dtype == torch.float32
    set_cpu_kernel("eager")
    _, (e_img, e_th) = _grads(warp_patches, images, BOXES, theta, weight, kw, wrt)
    set_cpu_kernel("triton")
    torch.testing.assert_close(g_img.cpu(), e_img, atol=1e-2, rtol=0)  # one bfloat16 rounding
    torch.testing.assert_close(g_th.cpu(), e_th, atol=1e-4, rtol=1e-5)
    _, (r_img, r_th) = _grads(reference_warp, images, BOXES, theta, weight, kw, wrt)
    torch.testing.assert_close(g_th.cpu(), r_th, atol=5e-2, rtol=5e-2)


def test_channels_last_and_strided_inputs(device):
    """The output keeps a dense input's memory format; a strided view is read in place."""
    images, theta = _inputs(seed=8)
    expected = reference_warp(images, BOXES, theta, OBJ, mode="bilinear", padding_mode="image")
    cl = images.to(device).contiguous(memory_format=torch.channels_last)
    out = warp_patches(cl, *_on(device, BOXES, theta, OBJ), padding_mode="image")
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.cpu(), expected, atol=1e-12, rtol=0)
    # a view that is not dense: read in place (forward and backward), the output is contiguous
    wide = torch.zeros(2, 2, 12, 20, dtype=D64, device=device)
    wide[..., 3:17] = images.to(device)
    wide.requires_grad_(True)
    th = theta.to(device).requires_grad_(True)
    out = warp_patches(wide[..., 3:17], *_on(device, BOXES), th, OBJ.to(device), padding_mode="image")
    assert out.is_contiguous()
    torch.testing.assert_close(out.detach().cpu(), expected, atol=1e-12, rtol=0)
    weight = torch.randn(SHAPE, generator=_gen(9), dtype=D64)
    g_wide, g_th = torch.autograd.grad((out * weight.to(device)).sum(), (wide, th))
    _, (r_img, r_th) = _grads(reference_warp, images, BOXES, theta, weight, {"padding_mode": "image"},
                              ("images", "theta"))
    torch.testing.assert_close(g_wide[..., 3:17].cpu(), r_img, atol=1e-10, rtol=0)
    torch.testing.assert_close(g_th.cpu(), r_th, atol=1e-10, rtol=0)
    assert not g_wide[..., :3].any() and not g_wide[..., 17:].any()


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(("mode", "padding_mode"), list(itertools.product(MODES, PADDINGS)))
def test_gradients_match_reference_loop(device, mode, padding_mode):
    """Images, theta and float boxes; align_corners and overlap vary with the combination."""
    index = MODES.index(mode) * len(PADDINGS) + PADDINGS.index(padding_mode)
    kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": index % 2 == 1,
          "overlap": ("sequential", "parallel")[(index // 2) % 2]}
    images, theta = _inputs(seed=10 + index)
    _check_grads(device, images, FLOAT_BOXES, theta, kw, seed=11 + index)


@pytest.mark.parametrize(("mode", "padding_mode", "overlap"), [
    ("bilinear", "border", "sequential"), ("bicubic", "image", "sequential"), ("bicubic", "zeros", "parallel"),
])
def test_gradients_of_integer_boxes_align_corners(device, mode, padding_mode, overlap):
    images, theta = _inputs(seed=30)
    kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": True, "overlap": overlap}
    _check_grads(device, images, BOXES, theta, kw, wrt=("images", "theta"), seed=31)


@pytest.mark.parametrize(("wrt", "padding_mode"), [
    (("theta",), "reflection"), (("theta",), "image"), (("images",), "zeros"), (("boxes",), "border"),
])
def test_gradient_of_one_input(device, wrt, padding_mode):
    """Only some inputs need a gradient (the others are constants): sequential, overlapping."""
    images, theta = _inputs(seed=32)
    _check_grads(device, images, FLOAT_BOXES, theta, {"mode": "bicubic", "padding_mode": padding_mode}, wrt=wrt)


def test_float32_gradients(device):
    images, theta = _inputs(torch.float32, seed=33)
    kw = {"mode": "bilinear", "padding_mode": "reflection", "align_corners": True}
    _check_grads(device, images, FLOAT_BOXES.float(), theta, kw, atol=1e-4, seed=34)


def test_inside_torch_compile(device):
    """The operator's fake implementation agrees with the Triton backend (saved tensors'
    dtypes): a compiled graph (fullgraph) gives the eager call's values and gradients."""
    images, theta = _inputs(seed=36)
    img, th = images.to(device).requires_grad_(True), theta.to(device).requires_grad_(True)
    boxes, obj = _on(device, FLOAT_BOXES, OBJ)
    kw = {"mode": "bilinear", "padding_mode": "image"}
    compiled = torch.compile(lambda i, b, t, o: warp_patches(i, b, t, o, **kw), backend="aot_eager",
                             fullgraph=True)
    with fullgraph_dynamic():
        out = compiled(img, boxes, th, obj)
    grads = torch.autograd.grad(out.sum(), (img, th))
    ref = warp_patches(img, boxes, th, obj, **kw)
    expected = torch.autograd.grad(ref.sum(), (img, th))
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=0)


def test_differentiable_once(device):
    images, theta = _inputs(seed=35)
    th = theta.to(device).requires_grad_(True)
    out = warp_patches(images.to(device), *_on(device, BOXES), th, OBJ.to(device))
    (g,) = torch.autograd.grad(out.pow(2).sum(), th, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiable once|double backward"):
        g.sum().backward()


# --------------------------------------------------------------------------- properties

try:  # not installed where benchmarks/gpu_check.sh runs (torch, Triton and pytest only)
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    st = None


if st is not None:
    @st.composite
    def _batches(draw):
        """Random tiny batches: boxes inside, across and beyond the borders, degenerate."""
        b, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
        h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
        n = draw(st.integers(3, 5))
        boxes = []
        for k in range(n):
            x1, y1 = draw(st.integers(-3, w + 1)), draw(st.integers(-3, h + 1))
            if k < 3:  # at least three boxes hold pixels (fewer run the reference computation itself)
                x1, y1 = min(x1, w - 1), min(y1, h - 1)
                low_x, low_y = max(x1, 0) + 1, max(y1, 0) + 1
            else:
                low_x, low_y = x1 - 1, y1 - 1
            boxes.append([x1, y1, draw(st.integers(low_x, w + 3)), draw(st.integers(low_y, h + 3))])
        shift = draw(st.sampled_from([0.0, 0.25]))
        obj = torch.tensor([draw(st.integers(0, b - 1)) for _ in range(n)])
        g = _gen(draw(st.integers(0, 2**31 - 1)))
        images = torch.rand(b, c, h, w, generator=g, dtype=D64)
        theta = torch.eye(2, 3, dtype=D64) + 0.4 * torch.randn(n, 2, 3, generator=g, dtype=D64)
        return images, torch.tensor(boxes, dtype=D64) + shift, theta, obj


    @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(batch=_batches(), mode=st.sampled_from(MODES), padding_mode=st.sampled_from(PADDINGS),
           align_corners=st.booleans(), overlap=st.sampled_from(["sequential", "parallel"]))
    def test_random_batches_match_reference(device, batch, mode, padding_mode, align_corners, overlap):
        images, boxes, theta, obj = batch
        kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners, "overlap": overlap}
        weight = torch.randn(images.shape, generator=_gen(1), dtype=D64)
        # boxes with whole-pixel coordinates read through affine_grid in the loop: no box gradient
        wrt = ("images", "theta", "boxes") if (boxes != boxes.round()).any() else ("images", "theta")
        out, grads = _grads(warp_patches, *_on(device, images, boxes, theta, weight), kw, wrt, obj.to(device))
        ref, expected = _grads(reference_warp, images, boxes, theta, weight, kw, wrt, obj)
        torch.testing.assert_close(out.cpu(), ref, atol=1e-12, rtol=0)
        for g, r in zip(grads, expected, strict=True):
            torch.testing.assert_close(g.cpu(), r, atol=1e-9, rtol=0)
else:  # pragma: no cover

    def test_random_batches_match_reference():
        pytest.skip("hypothesis is not installed")


# --------------------------------------------------------------------------- selection


def test_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    images, theta = _inputs()
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        warp_patches(images, BOXES, theta, OBJ)


def test_cuda_kernel_choice_is_checked(monkeypatch):
    with pytest.raises(ValueError, match="cuda kernel must be one of"):
        set_cuda_kernel("fast")
    monkeypatch.setitem(_kernel._state, "cuda", None)
    monkeypatch.setenv("AUGPATCH_CUDA_KERNEL", " Eager")
    assert _kernel.cuda_kernel() == "eager"
    monkeypatch.setitem(_kernel._state, "cuda", None)
    monkeypatch.setenv("AUGPATCH_CUDA_KERNEL", "turbo")
    with pytest.raises(ValueError, match="AUGPATCH_CUDA_KERNEL"):
        _kernel.cuda_kernel()
    monkeypatch.setitem(_kernel._state, "cuda", None)
    monkeypatch.delenv("AUGPATCH_CUDA_KERNEL")
    assert _kernel.cuda_kernel() == "auto"


def test_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    """``auto``: a Triton failure (e.g. a kernel that does not compile) warns once and
    runs the eager kernel; ``triton``: it is an error."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(_backend("triton"), "error", None)

    def broken(*args, **kwargs):
        raise RuntimeError("PTX assembly failed")

    monkeypatch.setattr(_triton, "forward", broken)
    images, theta = _inputs()
    plan_args = (images, BOXES, theta, OBJ)
    with pytest.raises(RuntimeError, match="PTX assembly failed"):
        warp_patches(*plan_args)  # strict (set_cpu_kernel("triton"))
    # what "auto" on CUDA selects: a lenient Triton kernel until Triton has failed once
    monkeypatch.setattr(_kernel, "strict", lambda name, device: False)
    monkeypatch.setattr(_kernel, "backend_for", lambda device, op="warp": _backend(
        "eager" if _backend("triton").error else "triton"))
    with pytest.warns(RuntimeWarning, match="PTX assembly failed"):
        out = warp_patches(*plan_args)
    torch.testing.assert_close(out, reference_warp(*plan_args), atol=1e-12, rtol=0)
    assert isinstance(_backend("triton").error, RuntimeError)
    assert _kernel.active_kernel("cpu") == "eager"


@pytest.mark.cuda
@CUDA
def test_cuda_runs_triton_by_default_and_falls_back_to_eager(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("AUGPATCH_CUDA_KERNEL", raising=False)
    monkeypatch.setitem(_kernel._state, "cuda", None)
    monkeypatch.setattr(_backend("triton"), "error", None)
    assert _kernel.cuda_kernel() == "auto" and active_kernel("cuda") == "triton"
    images, theta = _inputs()
    args = _on("cuda", images, BOXES, theta, OBJ)
    calls = []
    original = _triton.forward
    monkeypatch.setattr(_triton, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    out = warp_patches(*args)
    assert calls == [1]

    def broken(*a, **k):
        raise RuntimeError("PTX assembly failed")

    monkeypatch.setattr(_triton, "forward", broken)
    with pytest.warns(RuntimeWarning, match="PTX assembly failed"):
        fallback = warp_patches(*args)  # this call runs the eager kernel, later ones too
    assert active_kernel("cuda") == "eager"
    torch.testing.assert_close(fallback, out, atol=1e-12, rtol=0)


def test_kernels_compile_for_an_nvidia_gpu_without_fused_multiply_adds():
    """The compiled kernels (not the interpreter's) build for an NVIDIA GPU here, without one
    (``tests/triton_build.py``): no fused multiply-add, IEEE float32 division."""
    blocks = {"BC": 4, "NCB": 1, "BH": 8, "BW": 32}
    built = compile_for_sm80("kernels", {"obj_ptr": "*i64", "tile_ptr": "*i32", "src_ptr": "*u8", "dst_ptr": "*u8"}, [
        ("warp_forward", {"MODE": 1, "DERIV": True, "F64": False, "NT": 2, **blocks}),
        ("warp_backward", {"MODE": 0, "NEED_LOC": True, "SAVED_D": False, "F64": False, "NT": 1, **blocks}),
    ])
    assert_no_fma_and_ieee_division(built)
