"""The Triton kernel of ``paste_objects`` against the SPEC's paste loop and the eager kernel.

The kernels run in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1`` set per test
with ``monkeypatch``, ``set_cpu_kernel("triton")``), as ``tests/test_triton.py`` drives the
warp's; a spy on ``augpatch.ops.backends.triton.paste.forward`` checks that every test ran
the Triton kernel. The interpreter is slow, so the batches are tiny (``tests/paste_cases.py``:
seven objects, overlapping destinations on two and three levels) and each test makes few
calls. The compiled kernels are checked on a GPU by ``tests/test_paste_cuda.py`` (and built
for an NVIDIA GPU here, without one, by the last test).

Expected values: ``tests/paste_reference.py`` (one ``affine_grid`` + ``grid_sample`` per
object, composited in index order) in float64; the eager kernel in float32 and for the
saved tensors (the same layout, so each backward reads the other's forward).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from dynamo_support import fullgraph_dynamic
from paste_cases import ALPHAS, call, grads, paste_case
from triton_build import assert_no_fma_and_ieee_division, compile_for_sm80

from augpatch.functional import paste_objects, set_cpu_kernel, set_cuda_kernel
from tests.paste_reference import reference_paste

pytest.importorskip("triton")
from augpatch.ops import paste_op  # noqa: E402
from augpatch.ops import settings as _settings  # noqa: E402
from augpatch.ops.backends import get as _backend  # noqa: E402
from augpatch.ops.backends.triton import paste as _paste  # noqa: E402  (needs triton)

D64 = torch.float64
MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection", "image")
LEAVES = ("images", "sources", "theta", "src_boxes", "dst_boxes", "alpha")

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


@pytest.fixture(autouse=True)
def kernels():
    """Overrides the suite's (compiled CPU kernel): CPU tensors run the Triton kernel here."""
    set_cpu_kernel("triton")
    set_cuda_kernel("triton")
    yield "triton"
    set_cpu_kernel("auto")
    set_cuda_kernel("auto")


@pytest.fixture
def interpreted(monkeypatch):
    """Triton's interpreter on; checks that the test ran the paste's Triton kernel."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    calls = []
    original = _paste.forward
    monkeypatch.setattr(_paste, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    yield calls
    assert calls, "the Triton kernel did not run"


def _weight(case: dict, seed: int) -> torch.Tensor:
    return torch.randn(case["images"].shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


def _eager(fn, *args, **kwargs):
    """``fn`` with the eager CPU kernel (then the Triton kernel again)."""
    set_cpu_kernel("eager")
    try:
        return fn(*args, **kwargs)
    finally:
        set_cpu_kernel("triton")


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(("mode", "padding_mode"), list(itertools.product(MODES, PADDINGS)))
def test_values_match_the_reference_loop(interpreted, mode, padding_mode):
    """float64, every mode and padding mode; align_corners, float boxes, the alpha (none, in the
    sources' frame, box-shaped, bool) and the sources (other or the images) vary with them."""
    index = MODES.index(mode) * len(PADDINGS) + PADDINGS.index(padding_mode)
    alpha = ALPHAS[index % 4]
    case = paste_case(index, alpha=alpha, float_boxes=index % 3 != 0, other_sources=alpha == "frame")
    opts = {"mode": mode, "padding_mode": padding_mode, "align_corners": index % 2 == 1}
    out = call(paste_objects, case, **opts)
    expected = call(reference_paste, case, **opts)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    assert not torch.equal(out, case["images"])


@pytest.mark.parametrize("alpha", ALPHAS)
def test_float32_matches_the_eager_kernel(interpreted, alpha):
    """The eager kernel's operations in its order: float32 outputs equal to float rounding."""
    case = paste_case(20, dtype=torch.float32, alpha=alpha, float_boxes=True, other_sources=alpha == "frame")
    opts = {"mode": "bicubic" if alpha == "box" else "bilinear", "padding_mode": "reflection"}
    out = call(paste_objects, case, **opts)
    expected = _eager(call, paste_objects, case, **opts)
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=0)
    torch.testing.assert_close(out.double(), call(reference_paste, case, **opts).double(), atol=1e-5, rtol=0)


def test_overlapping_destinations_paste_in_index_order(interpreted):
    """Objects 0, 1, 2 and 6 overlap in image 0 (three levels), 3 and 5 in image 1: later
    objects on top. Reversed, the same pastes give another image (the order matters)."""
    case = paste_case(21, alpha="box", float_boxes=True)
    out = call(paste_objects, case, mode="bilinear")
    torch.testing.assert_close(out, call(reference_paste, case, mode="bilinear"), atol=1e-12, rtol=0)
    reverse = {k: (v.flip(0) if k not in ("images", "sources") and torch.is_tensor(v) else v)
               for k, v in case.items()}
    flipped = call(paste_objects, reverse, mode="bilinear")
    torch.testing.assert_close(flipped, call(reference_paste, reverse, mode="bilinear"), atol=1e-12, rtol=0)
    assert not torch.allclose(out, flipped)
    # an opaque paste (no alpha) of object 6 covers what was below it, whatever that was
    top = paste_case(21)
    pasted = call(paste_objects, top, mode="nearest", align_corners=True)
    x1, y1, x2, y2 = (int(v) for v in top["dst_boxes"][6])
    only = {k: (v[6:] if k not in ("images", "sources") and torch.is_tensor(v) else v) for k, v in top.items()}
    alone = call(paste_objects, only, mode="nearest", align_corners=True)
    assert torch.equal(pasted[0, :, y1:y2, x1:x2], alone[0, :, y1:y2, x1:x2])


def test_uint8_and_half_images(interpreted):
    """Computed in float32 and rounded after every paste (uint8: half to even, clamp), as the
    eager kernel and the loop."""
    case = paste_case(22, dtype=torch.uint8, alpha="frame", other_sources=True)
    out = call(paste_objects, case, mode="bilinear", padding_mode="border")
    assert out.dtype == torch.uint8
    expected = call(reference_paste, case, mode="bilinear", padding_mode="border")
    assert (out.int() - expected.int()).abs().max() <= 1  # float rounding at .5
    assert (out != expected).float().mean() < 1e-2
    assert torch.equal(out, _eager(call, paste_objects, case, mode="bilinear", padding_mode="border"))
    for dtype in (torch.float16, torch.bfloat16):
        case = paste_case(23, dtype=dtype, alpha="box", float_boxes=True)
        out = call(paste_objects, case, padding_mode="image")
        assert out.dtype == dtype
        expected = _eager(call, paste_objects, case, padding_mode="image")
        assert (out != expected).float().mean() < 1e-2  # equal but where float32 rounds a tie
        torch.testing.assert_close(out.float(), expected.float(), atol=1e-2, rtol=0)


def test_more_channels_channels_last_and_strided_sources(interpreted):
    """Five channels (two blocks of channels), channels-last images (the output keeps their
    format), sources that are a strided view (read as a dense copy)."""
    case = paste_case(24, alpha="frame", float_boxes=True, other_sources=True, channels=5)
    expected = call(reference_paste, case, mode="bicubic", padding_mode="image")
    case["images"] = case["images"].contiguous(memory_format=torch.channels_last)
    wide = torch.zeros(3, 5, 10, 20, dtype=D64)
    wide[..., 4:15] = case["sources"]
    case["sources"] = wide[..., 4:15]
    out = call(paste_objects, case, mode="bicubic", padding_mode="image")
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(("mode", "alpha"), list(itertools.product(MODES, (None, "frame", "box"))))
def test_gradients_match_the_reference_loop(interpreted, mode, alpha):
    """Images, sources, theta, float boxes and a float alpha, float64; the padding mode and
    align_corners vary with the combination."""
    index = MODES.index(mode) * 3 + (None, "frame", "box").index(alpha)
    case = paste_case(30 + index, alpha=alpha, float_boxes=True, other_sources=True)
    opts = {"mode": mode, "padding_mode": PADDINGS[index % 4], "align_corners": index % 2 == 1}
    weight = _weight(case, index)
    out, got = grads(paste_objects, case, LEAVES, weight, **opts)
    ref, expected = grads(reference_paste, case, LEAVES, weight, **opts)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    assert len(got) == len(expected) == 5 + (alpha is not None)
    for g, r in zip(got, expected, strict=True):
        torch.testing.assert_close(g, r, atol=1e-9, rtol=1e-9)
    assert all(r.abs().sum() > 0 for r in expected[:2])


def test_gradients_with_the_images_as_sources(interpreted):
    """Without ``sources`` the objects read the images as they were on input: their gradient
    collects both roles."""
    case = paste_case(40, alpha="frame", float_boxes=True)
    weight = _weight(case, 41)
    names = ("images", "theta", "src_boxes", "dst_boxes", "alpha")
    out, got = grads(paste_objects, case, names, weight, padding_mode="border")
    _, expected = grads(reference_paste, case, names, weight, padding_mode="border")
    for g, r in zip(got, expected, strict=True):
        torch.testing.assert_close(g, r, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("alpha", ["frame", "box"])
def test_float32_gradients_match_the_eager_kernel(interpreted, alpha):
    case = paste_case(42, dtype=torch.float32, alpha=alpha, float_boxes=True, other_sources=True)
    weight = _weight(case, 43).float()
    out, got = grads(paste_objects, case, LEAVES, weight, padding_mode="zeros")
    _, expected = _eager(grads, paste_objects, case, LEAVES, weight, padding_mode="zeros")
    for g, r in zip(got, expected, strict=True):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-5)


def test_gradient_of_one_input(interpreted):
    """Only the alpha, then only theta: the kernel computes what is asked (the flags of the
    backward), and the result equals the loop's."""
    case = paste_case(44, alpha="box", float_boxes=True, other_sources=True)
    weight = _weight(case, 45)
    for names in (("alpha",), ("theta",), ("sources",)):
        _, (g,) = grads(paste_objects, case, names, weight, mode="bicubic")
        _, (r,) = grads(reference_paste, case, names, weight, mode="bicubic")
        torch.testing.assert_close(g, r, atol=1e-9, rtol=1e-9)
        assert r.abs().sum() > 0


def test_saved_tensors_have_the_eager_layout(interpreted):
    """The four tensors the operator keeps for its backward equal the eager kernel's (alpha,
    new - below, value and alpha derivatives, pixel order): a forward that fell back to the
    eager kernel and the Triton backward (or the reverse) read the same thing."""
    case = paste_case(46, alpha="box", float_boxes=True, other_sources=True)
    args = (case["images"], case["sources"], case["src_boxes"], case["theta"], case["src_to_img"],
            case["dst_boxes"], case["dst_to_img"], case["alpha"][:, None], "bilinear", "reflection", False, True,
            True)
    got = paste_op(*args)
    expected = _eager(paste_op, *args)
    for g, e in zip(got[5:], expected[5:], strict=True):
        assert g.numel() > 0
        torch.testing.assert_close(g, e, atol=1e-12, rtol=0)


def test_inside_torch_compile(interpreted):
    """The operator's fake implementation agrees with the Triton kernel's outputs: a compiled
    graph (fullgraph) gives the eager call's values and gradients."""
    case = paste_case(47, alpha="frame", float_boxes=True)
    names = ("images", "theta", "alpha")
    c = {k: (v.detach().clone().requires_grad_(k in names) if torch.is_tensor(v) else v) for k, v in case.items()}
    compiled = torch.compile(lambda **kw: call(paste_objects, kw, mode="bilinear"), backend="aot_eager",
                             fullgraph=True)
    with fullgraph_dynamic():
        out = compiled(**c)
    got = torch.autograd.grad(out.sum(), [c[k] for k in names])
    ref = call(paste_objects, c, mode="bilinear")
    expected = torch.autograd.grad(ref.sum(), [c[k] for k in names])
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=0)


# --------------------------------------------------------------------------- selection


def test_the_triton_backend_offers_the_paste(monkeypatch):
    """``"paste"`` is one of the Triton backend's kernels: ``"auto"`` picks it on CUDA (no GPU
    needed to resolve it), and a setting of ``"triton"`` runs it strictly (no fall-back)."""
    assert _backend("triton").offers("paste")
    monkeypatch.setattr(_backend("triton"), "error", None)
    set_cuda_kernel("auto")
    assert _settings.backend_for(torch.device("cuda"), op="paste").name == "triton"
    set_cuda_kernel("eager")
    assert _settings.backend_for(torch.device("cuda"), op="paste").name == "eager"
    set_cuda_kernel("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    name, kernel = _settings.kernel_for(torch.device("cpu"), op="paste")
    assert name == "triton" and isinstance(kernel, _paste.TritonPaste) and kernel.strict


def test_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        call(paste_objects, paste_case(48))


def test_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    """``auto``: a Triton failure (e.g. a kernel that does not compile) warns once and runs the
    eager kernel; ``triton``: it is an error."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(_backend("triton"), "error", None)

    def broken(*args, **kwargs):
        raise RuntimeError("PTX assembly failed")

    monkeypatch.setattr(_paste, "forward", broken)
    case = paste_case(49, alpha="box")
    with pytest.raises(RuntimeError, match="PTX assembly failed"):
        call(paste_objects, case)  # strict (set_cpu_kernel("triton"))
    monkeypatch.setattr(_settings, "strict", lambda name, device: False)
    monkeypatch.setattr(_settings, "backend_for", lambda device, op="warp": _backend(
        "eager" if _backend("triton").error else "triton"))
    with pytest.warns(RuntimeWarning, match="PTX assembly failed"):
        out = call(paste_objects, case)
    torch.testing.assert_close(out, call(reference_paste, case), atol=1e-12, rtol=0)
    assert isinstance(_backend("triton").error, RuntimeError)


def test_kernels_compile_for_an_nvidia_gpu_without_fused_multiply_adds():
    """The compiled paste kernels (not the interpreter's) build for an NVIDIA GPU here, without
    one (``tests/triton_build.py``): no fused multiply-add, IEEE float32 division."""
    blocks = {"BC": 4, "NCB": 1, "BH": 16, "BW": 16}
    pointers = {"obj_ptr": "*i64", "frm_ptr": "*i64", "tile_ptr": "*i32", "src_ptr": "*u8", "out_ptr": "*u8",
                "alpha_ptr": "*u8"}
    flags = {"NEED_SRC": True, "NEED_LOC": True, "ALPHA_LOC": True, "NEED_ALPHA": True, "HAS_DIFF": True,
             "PARAMS": True}
    built = compile_for_sm80("paste_kernels", pointers, [
        ("paste_forward", {"MODE": 1, "ALPHA": True, "SHARED": False, "NEED_LOC": True, "NEED_DIFF": True,
                           "F64": False, "NT": 2, **blocks}),
        ("paste_forward", {"MODE": 2, "ALPHA": True, "SHARED": True, "NEED_LOC": True, "NEED_DIFF": True,
                           "F64": False, "NT": 4, **blocks}),
        ("paste_backward", {"MODE": 1, "ALPHA": True, "SHARED": False, **flags, "F64": False, "NT": 2, **blocks}),
        ("paste_backward", {"MODE": 0, "ALPHA": True, "SHARED": True, **flags, "F64": False, "NT": 1, **blocks}),
    ])
    assert_no_fma_and_ieee_division(built)


def test_copypaste_benchmark_on_cuda_needs_a_gpu(capsys):
    """``bench copypaste --device cuda`` without a visible GPU: a clear message, exit status 2
    (what ``benchmarks/gpu_check.sh`` records as a failed step on a machine without one)."""
    from augpatch.__main__ import _run_bench

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: tests/test_paste_cuda.py runs this benchmark")
    assert _run_bench(["copypaste", "--device", "cuda", "--quick", "--no-memory"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
