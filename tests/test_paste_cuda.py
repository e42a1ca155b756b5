"""``paste_objects`` on CUDA: the Triton kernel and the eager kernel against the CPU result
(values, gradients, uint8 / half, ``torch.compile``, errors).

Every test runs with both CUDA kernels, each selected strictly: the Triton kernel (the
default) and the eager one (the fall-back). The CPU side of every comparison is the eager
kernel (it equals the loop: ``tests/test_paste.py``), so that a GPU machine needs no C++
build for these tests. Marked ``cuda`` (``-m cuda``), skipped without a CUDA device; no
hypothesis / kornia needed (``benchmarks/gpu_check.sh`` runs them with torch, Triton and
pytest only). Few kernel variants, to keep their compilation short.
"""

from __future__ import annotations

import pytest
import torch
from dynamo_support import fullgraph_dynamic
from paste_cases import call, grads, paste_case, to

from augpatch.functional import paste_objects, set_cpu_kernel, set_cuda_kernel

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning"),
]

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection", "image")
LEAVES = ("images", "sources", "theta", "src_boxes", "dst_boxes", "alpha")


@pytest.fixture(autouse=True)
def cpu_kernel():
    set_cpu_kernel("eager")
    yield "eager"
    set_cpu_kernel("auto")


@pytest.fixture(autouse=True, params=["triton", "eager"])
def cuda_kernel(request, monkeypatch):
    """The CUDA kernel of the test (strict); checks that it ran on CUDA."""
    from augpatch.ops.backends import eager as _eager
    from augpatch.ops.backends.triton import paste as _triton_paste  # needs triton: imported here

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    set_cuda_kernel(request.param)
    module, name = (_triton_paste, "forward") if request.param == "triton" else (_eager, "eager_paste_forward")
    devices = []
    original = getattr(module, name)
    monkeypatch.setattr(module, name, lambda images, *a, **k: devices.append(images.device.type) or original(
        images, *a, **k))
    yield request.param
    set_cuda_kernel("auto")
    assert "cuda" in devices, f"the {request.param} kernel did not run on CUDA"


@pytest.mark.parametrize("mode", MODES)
def test_cuda_equals_cpu(mode):
    """float32, every padding mode, both align_corners, alpha in the sources' frame (one
    kernel variant per mode: the options are runtime arguments)."""
    case = paste_case(1, dtype=torch.float32, alpha="frame", float_boxes=True, other_sources=True)
    for index, padding_mode in enumerate(PADDINGS):
        opts = {"mode": mode, "padding_mode": padding_mode, "align_corners": index % 2 == 1}
        cpu = call(paste_objects, case, **opts)
        gpu = call(paste_objects, to("cuda", case), **opts)
        assert gpu.device.type == "cuda" and gpu.dtype == cpu.dtype
        if mode == "nearest":  # a location within float32 rounding of a tie may pick the other neighbour
            assert (gpu.cpu() != cpu).float().mean() < 1e-2
        else:
            torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha", [None, "box", "bool"])
def test_cuda_other_alphas_equal_cpu(alpha):
    case = paste_case(2, dtype=torch.float32, alpha=alpha, float_boxes=alpha == "box")
    cpu = call(paste_objects, case, padding_mode="reflection")
    gpu = call(paste_objects, to("cuda", case), padding_mode="reflection")
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha", [None, "frame", "box"])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_cuda_gradients_equal_cpu(mode, alpha):
    """float64: images, sources, theta, float boxes, float alpha."""
    case = paste_case(3, alpha=alpha, float_boxes=True, other_sources=True)
    weight = torch.randn(case["images"].shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    padding_mode = "image" if alpha == "frame" else "border"
    cpu_out, cpu_grads = grads(paste_objects, case, LEAVES, weight, mode=mode, padding_mode=padding_mode)
    gpu_out, gpu_grads = grads(paste_objects, to("cuda", case), LEAVES, weight, mode=mode,
                               padding_mode=padding_mode)
    torch.testing.assert_close(gpu_out.cpu(), cpu_out, rtol=0, atol=1e-12)
    assert len(gpu_grads) == len(cpu_grads) == 5 + (alpha is not None)
    for g_gpu, g_cpu in zip(gpu_grads, cpu_grads, strict=True):
        assert g_gpu.device.type == "cuda"
        torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=1e-7, atol=1e-9)


def test_cuda_float32_gradients_equal_cpu():
    case = paste_case(5, dtype=torch.float32, alpha="frame", float_boxes=True, other_sources=True)
    weight = torch.randn(case["images"].shape, generator=torch.Generator().manual_seed(6))
    _, cpu_grads = grads(paste_objects, case, LEAVES, weight)
    _, gpu_grads = grads(paste_objects, to("cuda", case), LEAVES, weight)
    for g_gpu, g_cpu in zip(gpu_grads, cpu_grads, strict=True):
        torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=1e-4, atol=1e-4)


def test_cuda_uint8_and_half():
    case = paste_case(7, dtype=torch.uint8, alpha="frame", other_sources=True)
    cpu = call(paste_objects, case)
    gpu = call(paste_objects, to("cuda", case))
    assert gpu.dtype == torch.uint8
    assert (gpu.cpu().int() - cpu.int()).abs().max() <= 1  # float rounding at .5
    for dtype in (torch.float16, torch.bfloat16):
        case = paste_case(8, dtype=dtype, alpha="box")
        cpu = call(paste_objects, case)
        gpu = call(paste_objects, to("cuda", case))
        assert gpu.dtype == dtype
        torch.testing.assert_close(gpu.cpu().float(), cpu.float(), atol=1e-2, rtol=0)


def test_cuda_inside_torch_compile():
    """One opaque node in a compiled graph (fullgraph): the eager call's values and gradients."""
    case = to("cuda", paste_case(9, alpha="frame", float_boxes=True))
    names = ("images", "theta", "alpha", "dst_boxes")
    c = {k: (v.detach().clone().requires_grad_(k in names) if torch.is_tensor(v) else v) for k, v in case.items()}
    compiled = torch.compile(lambda **kw: call(paste_objects, kw), backend="aot_eager", fullgraph=True)
    with fullgraph_dynamic():
        out = compiled(**c)
    got = torch.autograd.grad(out.sum(), [c[k] for k in names])
    ref = call(paste_objects, c)
    expected = torch.autograd.grad(ref.sum(), [c[k] for k in names])
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("on_cpu", ["sources", "alpha"])
def test_mixed_devices_raise(on_cpu):
    case = to("cuda", paste_case(10, alpha="box", other_sources=True))
    case[on_cpu] = case[on_cpu].cpu()
    with pytest.raises(ValueError, match="device") as info:
        call(paste_objects, case)
    assert on_cpu in str(info.value)
    call(paste_objects, to("cuda", case))  # the same call on one device runs (the spy sees it)


def test_cuda_copypaste_benchmark_quick(tmp_path):
    """``python -m augpatch bench copypaste --device cuda``: synchronised timings of every method
    (the eager paste kernel too), the CUDA allocator's peaks, a complete report."""
    import json

    from augpatch.__main__ import _run_bench

    path = tmp_path / "cp.json"
    assert _run_bench(["copypaste", "--device", "cuda", "--quick", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["device"]["type"] == "cuda"
    assert set(report["methods"]) == {"augpatch", "loop", "torchvision", "paste_op", "paste_loop", "paste_op_eager"}
    assert all(r["median_s"] > 0 for r in report["methods"].values())
    assert report["ratios"]["paste_op_eager_over_paste_op"] > 0
    assert set(report["cuda_peak_extra_bytes"]) == set(report["methods"])
    assert report["memory"]["ratio"] > 0
