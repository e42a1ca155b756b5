"""``paste_objects`` against the per-object loop (``tests/paste_reference.py``): values, gradients, errors.

Every test runs once per CPU kernel of the paste (the compiled C++ one and the eager one),
through the ``cpu_kernel`` fixture of ``conftest.py``.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from dynamo_support import fullgraph_dynamic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from augpatch.functional import paste_objects, set_cpu_kernel, warp_patches
from tests.paste_reference import reference_paste

pytestmark = pytest.mark.parametrize("cpu_kernel", ["compiled", "eager"], indirect=True)

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection", "image")


def _case(seed: int, *, float_boxes: bool, alpha: str | None, dtype=torch.float64, n: int = 4,
          other_sources: bool = False):
    """A batch of 2 images 14 x 17, sources (3 images 12 x 15 or the images), and ``n`` objects."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, 14, 17, generator=g, dtype=torch.float64)
    sources = torch.rand(3, 3, 12, 15, generator=g, dtype=torch.float64) if other_sources else None
    hs, ws = (12, 15) if other_sources else (14, 17)

    def boxes(h, w):
        x1 = torch.randint(-2, w - 3, (n,), generator=g).double()
        y1 = torch.randint(-2, h - 3, (n,), generator=g).double()
        bw = torch.randint(2, 9, (n,), generator=g).double()
        bh = torch.randint(2, 9, (n,), generator=g).double()
        b = torch.stack([x1, y1, x1 + bw, y1 + bh], 1)
        if float_boxes:
            b = b + torch.rand(n, 4, generator=g, dtype=torch.float64) * 0.9
        return b

    src_boxes, dst_boxes = boxes(hs, ws), boxes(14, 17)
    if not float_boxes:
        src_boxes, dst_boxes = src_boxes.long(), dst_boxes.long()
    theta = torch.eye(2, 3, dtype=torch.float64).repeat(n, 1, 1)
    theta = theta + 0.3 * torch.randn(n, 2, 3, generator=g, dtype=torch.float64)
    src_to_img = torch.randint(0, 3 if other_sources else 2, (n,), generator=g)
    dst_to_img = torch.randint(0, 2, (n,), generator=g)
    a = None
    if alpha == "frame":
        a = torch.rand(n, hs, ws, generator=g, dtype=torch.float64) * 1.4 - 0.2
    elif alpha == "box":
        a = torch.rand(n, 5, 6, generator=g, dtype=torch.float64) * 1.4 - 0.2
    elif alpha == "bool":
        a = torch.rand(n, hs, ws, generator=g) > 0.4
    cast = (lambda t: t.to(dtype)) if dtype != torch.float64 else (lambda t: t)
    return {"images": cast(images), "src_boxes": src_boxes, "theta": theta.to(dtype if dtype.is_floating_point else
                                                                           torch.float32),
                "src_to_img": src_to_img, "dst_boxes": dst_boxes, "dst_to_img": dst_to_img,
                "alpha": a, "sources": cast(sources) if sources is not None else None}


def _call(fn, case, **options):
    c = dict(case)
    return fn(c.pop("images"), c.pop("src_boxes"), c.pop("theta"), c.pop("src_to_img"), c.pop("dst_boxes"),
              c.pop("dst_to_img"), **c, **options)


@pytest.mark.parametrize("mode,padding_mode,align_corners", list(itertools.product(MODES, PADDINGS, (False, True))))
@pytest.mark.parametrize("float_boxes", [False, True])
def test_values_equal_the_loop(mode, padding_mode, align_corners, float_boxes):
    for k, (alpha, other) in enumerate([(None, False), ("frame", True), ("box", False), ("bool", False)]):
        case = _case(k, float_boxes=float_boxes, alpha=alpha, other_sources=other)
        opts = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
        got = _call(paste_objects, case, **opts)
        want = _call(reference_paste, case, **opts)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("alpha", [None, "frame", "box"])
@pytest.mark.parametrize("padding_mode", ["zeros", "image"])
def test_gradients_equal_the_loop(mode, alpha, padding_mode):
    case = _case(7, float_boxes=True, alpha=alpha, other_sources=alpha == "frame")
    if case["sources"] is None:
        case["sources"] = case["images"].clone()
    leaves = ["images", "sources", "theta", "src_boxes", "dst_boxes"] + (["alpha"] if alpha else [])
    grads = []
    for fn in (paste_objects, reference_paste):
        c = {k: (v.detach().clone().requires_grad_(k in leaves) if torch.is_tensor(v) else v) for k, v in case.items()}
        out = _call(fn, c, mode=mode, padding_mode=padding_mode)
        weight = torch.linspace(-1, 2, out.numel(), dtype=out.dtype).reshape(out.shape)
        grads.append(torch.autograd.grad((out * weight).sum(), [c[k] for k in leaves]))
    for name, got, want in zip(leaves, *grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("alpha", ["frame", "box"])
def test_gradients_of_many_objects_without_the_sources(alpha):
    """No gradient for the sources: the kernels may run a level's objects in parallel."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(threads, 2))
    case = _case(21, float_boxes=True, alpha=alpha, n=14, other_sources=True)
    leaves = ["images", "theta", "src_boxes", "dst_boxes", "alpha"]
    grads = []
    try:
        for fn in (paste_objects, reference_paste):
            c = {k: (v.detach().clone().requires_grad_(k in leaves) if torch.is_tensor(v) else v)
                 for k, v in case.items()}
            out = _call(fn, c, mode="bicubic", padding_mode="border")
            weight = torch.linspace(-1, 2, out.numel(), dtype=out.dtype).reshape(out.shape)
            grads.append(torch.autograd.grad((out * weight).sum(), [c[k] for k in leaves]))
    finally:
        torch.set_num_threads(threads)
    for name, got, want in zip(leaves, *grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=lambda m, name=name: f"{name}: {m}")


def test_gradcheck():
    case = _case(3, float_boxes=True, alpha="box", n=3)
    case["images"] = case["images"][:, :1, :8, :9].clone()
    case["dst_boxes"] = torch.tensor([[0.3, 0.2, 5.6, 6.1], [2.2, 1.3, 8.1, 7.4], [1.1, 0.9, 4.3, 3.8]],
                                     dtype=torch.float64)
    case["src_boxes"] = case["dst_boxes"].flip(0)

    def fn(images, theta, src_boxes, dst_boxes, alpha):
        return paste_objects(images, src_boxes, theta, case["src_to_img"], dst_boxes, case["dst_to_img"],
                             alpha=alpha)

    inputs = [case[k].detach().clone().requires_grad_() for k in ("images", "theta", "src_boxes", "dst_boxes",
                                                                  "alpha")]
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_same_box_is_the_parallel_warp_bit_for_bit(mode, padding_mode, cpu_kernel):
    # the warp's kernel of the same backend: the paste's, operation for operation
    for dtype in (torch.float32, torch.float64, torch.uint8):
        case = _case(11, float_boxes=True, alpha=None, n=6)
        images = (case["images"] * 255).to(dtype) if dtype == torch.uint8 else case["images"].to(dtype)
        boxes, o2i, theta = case["dst_boxes"], case["dst_to_img"], case["theta"].float()
        got = paste_objects(images, boxes, theta, o2i, boxes, o2i, mode=mode, padding_mode=padding_mode)
        want = warp_patches(images, boxes, theta, o2i, mode=mode, padding_mode=padding_mode, overlap="parallel")
        assert torch.equal(got, want)


def test_double_backward_raises_a_clear_error():
    """Differentiable once: create_graph=True through the paste's backward says so."""
    case = _case(4, float_boxes=True, alpha="frame", n=3)
    theta = case["theta"].clone().requires_grad_()
    case["theta"] = theta
    out = _call(paste_objects, case)
    (grad,) = torch.autograd.grad(out.square().sum(), theta, create_graph=True)
    with pytest.raises(RuntimeError, match="paste_objects is differentiable once"):
        grad.sum().backward()


def test_later_objects_land_on_top_and_inputs_are_untouched():
    images = torch.zeros(1, 1, 6, 6)
    sources = torch.arange(3.0).reshape(3, 1, 1, 1).expand(3, 1, 6, 6).contiguous()
    before = sources.clone()
    box = torch.tensor([[0, 0, 4, 4], [2, 2, 6, 6], [1, 1, 5, 5]])
    eye = torch.eye(2, 3).expand(3, 2, 3)
    out = paste_objects(images, box, eye, torch.tensor([0, 1, 2]), box, torch.zeros(3, dtype=torch.long),
                        sources=sources)
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 5, 5] == 1 and out[0, 0, 2:5, 2:5].eq(2).all()
    assert torch.equal(sources, before) and images.eq(0).all()


def test_uint8_and_soft_alpha():
    case = _case(5, float_boxes=True, alpha="frame", dtype=torch.float64)
    images = (case["images"] * 255).round().to(torch.uint8)
    case.update(images=images, theta=case["theta"].float())
    got = _call(paste_objects, case)
    want = _call(reference_paste, case)
    assert got.dtype == torch.uint8
    assert (got.int() - want.int()).abs().max() <= 1


def test_half_rounds_after_every_paste():
    case = _case(8, float_boxes=True, alpha="frame", n=6, other_sources=True)
    case.update(images=case["images"].half(), sources=case["sources"].half(), theta=case["theta"].float())
    got = _call(paste_objects, case, mode="bicubic")
    want = _call(reference_paste, case, mode="bicubic")  # float32, rounded to half after every paste
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=1e-3)


def test_alpha_of_another_dtype_and_layout():
    """A float64 alpha stored transposed (dense, not contiguous) with float32 images: read in
    the compute dtype at its own strides."""
    case = _case(17, float_boxes=True, alpha="frame", n=5, other_sources=True)
    case.update(images=case["images"].float(), sources=case["sources"].float(), theta=case["theta"].float(),
                alpha=case["alpha"].transpose(1, 2).contiguous().transpose(1, 2))
    assert not case["alpha"].is_contiguous()
    got = _call(paste_objects, case, mode="bicubic")
    want = _call(reference_paste, dict(case, alpha=case["alpha"].float()), mode="bicubic")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_channels_last_is_kept():
    case = _case(2, float_boxes=False, alpha="bool")
    case["images"] = case["images"].contiguous(memory_format=torch.channels_last)
    got = _call(paste_objects, case)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, _call(reference_paste, case), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- errors

def _bad_cases():
    case = _case(1, float_boxes=False, alpha=None, n=3)
    yield "dst_boxes", dict(case, dst_boxes=case["dst_boxes"][:2])
    yield "theta", dict(case, theta=case["theta"][:2])
    yield "src_to_img", dict(case, src_to_img=case["src_to_img"][:2])
    yield "alpha", dict(case, alpha=torch.ones(2, 14, 17))
    yield "alpha", dict(case, alpha=torch.ones(3, 14))


@pytest.mark.parametrize("name,case", list(_bad_cases()))
def test_bad_shapes_name_the_argument(name, case):
    with pytest.raises((ValueError, TypeError), match=name):
        _call(paste_objects, case)


def _bad_values():
    case = _case(1, float_boxes=False, alpha=None, n=3)
    theta = case["theta"].clone()
    theta[1, 0, 2] = float("nan")
    yield "theta", ValueError, dict(case, theta=theta)
    yield "src_to_img", IndexError, dict(case, src_to_img=torch.tensor([0, 2, 1]))
    yield "dst_to_img", IndexError, dict(case, dst_to_img=torch.tensor([0, -1, 1]))
    boxes = case["src_boxes"].double()
    boxes[0, 0] = float("inf")
    yield "src_boxes", ValueError, dict(case, src_boxes=boxes)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("name,error,case", list(_bad_values()))
def test_bad_values_name_the_argument(name, error, case, compiled, dynamic_ops):
    fn = torch.compile(paste_objects, fullgraph=True, backend="eager") if compiled else paste_objects
    torch._dynamo.reset()
    with pytest.raises(error, match=name):
        _call(fn, case)


# ----------------------------------------------------------------------------- compile / export


@pytest.fixture
def dynamic_ops():
    """Fullgraph graphs may hold the operator on every supported torch (before 2.10:
    ``capture_dynamic_output_shape_ops``, as the compile-export guide says)."""
    with fullgraph_dynamic():
        yield

def test_compile_fullgraph_and_export_match_eager(dynamic_ops):
    case = _case(4, float_boxes=True, alpha="frame", n=3)
    want = _call(paste_objects, case)
    torch._dynamo.reset()
    compiled = torch.compile(paste_objects, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(_call(compiled, case), want, rtol=0, atol=1e-12)

    class Paste(torch.nn.Module):
        def forward(self, images, src_boxes, theta, src_to_img, dst_boxes, dst_to_img, alpha):
            return paste_objects(images, src_boxes, theta, src_to_img, dst_boxes, dst_to_img, alpha=alpha)

    args = tuple(case[k] for k in ("images", "src_boxes", "theta", "src_to_img", "dst_boxes", "dst_to_img",
                                   "alpha"))
    program = torch.export.export(Paste(), args)
    torch.testing.assert_close(program.module()(*args), want, rtol=0, atol=1e-12)


def test_compile_gradients_match_eager(dynamic_ops):
    case = _case(6, float_boxes=True, alpha="box", n=3)
    leaves = ("images", "theta", "dst_boxes", "alpha")
    grads = []
    torch._dynamo.reset()
    for fn in (paste_objects, torch.compile(paste_objects, fullgraph=True, backend="aot_eager")):
        c = {k: (v.detach().clone().requires_grad_(k in leaves) if torch.is_tensor(v) else v) for k, v in case.items()}
        grads.append(torch.autograd.grad(_call(fn, c).square().sum(), [c[k] for k in leaves]))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- properties

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), mode=st.sampled_from(MODES), padding=st.sampled_from(PADDINGS),
       align=st.booleans(), alpha=st.sampled_from([None, "frame", "box", "bool"]), n=st.integers(1, 7),
       float_boxes=st.booleans())
def test_property_equals_the_loop(seed, mode, padding, align, alpha, n, float_boxes):
    case = _case(seed, float_boxes=float_boxes, alpha=alpha, n=n, other_sources=seed % 2 == 0)
    opts = {"mode": mode, "padding_mode": padding, "align_corners": align}
    torch.testing.assert_close(_call(paste_objects, case, **opts), _call(reference_paste, case, **opts),
                               rtol=0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    case = _case(9, float_boxes=True, alpha="frame", n=5, other_sources=True)
    cuda = {k: (v.cuda() if torch.is_tensor(v) else v) for k, v in case.items()}
    for mode in MODES:
        torch.testing.assert_close(_call(paste_objects, cuda, mode=mode).cpu(), _call(paste_objects, case, mode=mode),
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("setting", ["auto", "compiled", "eager"])
def test_kernel_comes_from_the_registry(setting):
    """The paste's kernel is the ``"paste"`` kernel the selector picks: the compiled one on CPU
    under ``"auto"`` and ``"compiled"``, the eager one when chosen by name."""
    from augpatch.ops import settings
    from augpatch.ops.backends import get

    set_cpu_kernel(setting)
    try:
        name, kernel = settings.kernel_for(torch.device("cpu"), op="paste")
        assert name == ("eager" if setting == "eager" else "compiled")
        assert get(name).offers("paste") and type(kernel) is type(get(name).kernel("paste", torch.device("cpu"), True))
        case = _case(5, float_boxes=True, alpha="frame", n=5)
        theta = case["theta"].clone().requires_grad_()
        got = _call(paste_objects, dict(case, theta=theta))
        got.square().sum().backward()
        theta_ref = theta.detach().clone().requires_grad_()
        want = _call(reference_paste, dict(case, theta=theta_ref))
        want.square().sum().backward()
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        torch.testing.assert_close(theta.grad, theta_ref.grad, rtol=1e-9, atol=1e-9)
    finally:
        set_cpu_kernel("auto")


def test_compiled_and_eager_kernels_agree():
    """The two CPU kernels run the same plan with the same per-pixel arithmetic: values to
    float rounding (float32, uint8 within one step), and the same saved tensors' gradients."""
    for dtype in (torch.float32, torch.uint8, torch.float16):
        for alpha in (None, "frame", "box", "bool"):
            case = _case(13, float_boxes=True, alpha=alpha, n=7, other_sources=alpha == "frame")
            scale = 255 if dtype == torch.uint8 else 1
            case.update(images=(case["images"] * scale).to(dtype), theta=case["theta"].float())
            if case["sources"] is not None:
                case["sources"] = (case["sources"] * scale).to(dtype)
            outs = []
            for kernel in ("compiled", "eager"):
                set_cpu_kernel(kernel)
                outs.append(_call(paste_objects, case, mode="bilinear", padding_mode="reflection").double())
            set_cpu_kernel("auto")
            atol = {torch.float32: 1e-5, torch.uint8: 1.0, torch.float16: 1e-3}[dtype]
            torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=atol)
