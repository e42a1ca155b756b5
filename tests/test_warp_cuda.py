"""``warp_patches`` on CUDA equals the CPU result (values, gradients, uint8, errors).

Every test runs with both CUDA kernels: the Triton kernel (the default) and the eager one
(the fall-back), each selected strictly.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from augpatch.functional import set_cpu_kernel, set_cuda_kernel, warp_patches

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection", "image")

# overlapping chains, boxes beyond the borders, degenerate boxes, two images interleaved
BOXES = torch.tensor(
    [[2, 3, 12, 15], [-4, -3, 6, 5], [5, 5, 18, 17], [8, 1, 22, 12], [7, 2, 8, 19],
     [15, 10, 30, 25], [10, 10, 9, 15], [0, 0, 24, 20], [3, 4, 11, 13], [-2, -2, 26, 22], [4, 6, 14, 9]]
)
OBJ = torch.tensor([0, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0])
N = BOXES.shape[0]


@pytest.fixture(autouse=True)
def cpu_kernel():
    """The CPU side of every comparison is the eager kernel (it equals the reference loop:
    tests/test_warp.py), so that a GPU machine needs no C++ build for these tests."""
    set_cpu_kernel("eager")
    yield "eager"
    set_cpu_kernel("auto")


@pytest.fixture(autouse=True, params=["triton", "eager"])
def cuda_kernel(request):
    set_cuda_kernel(request.param)
    yield request.param
    set_cuda_kernel("auto")


def _inputs(dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, 20, 24, generator=g, dtype=dtype)
    theta = torch.eye(2, 3, dtype=dtype).repeat(N, 1, 1) + 0.3 * torch.randn(N, 2, 3, generator=g, dtype=dtype)
    return images, theta


def _to(*tensors):
    return [t.cuda() for t in tensors]


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_cuda_equals_cpu(mode, padding_mode):
    images, theta = _inputs()
    for align_corners, overlap in itertools.product((False, True), ("sequential", "parallel")):
        kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners, "overlap": overlap}
        cpu = warp_patches(images, BOXES, theta, OBJ, **kw)
        gpu = warp_patches(*_to(images, BOXES, theta, OBJ), **kw)
        assert gpu.device.type == "cuda" and gpu.dtype == cpu.dtype
        if mode == "nearest":
            # a location within float32 rounding of a tie may pick the other neighbour
            assert (gpu.cpu() != cpu).float().mean() < 1e-3
        else:
            torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_cuda_gradients_equal_cpu(mode, padding_mode):
    images, theta = _inputs(torch.float64, seed=1)
    weight = torch.randn(images.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    boxes = BOXES.double() + 0.3  # float boxes: gradients reach them too
    grads = []
    for device in ("cpu", "cuda"):
        img = images.to(device).requires_grad_(True)
        th = theta.to(device).requires_grad_(True)
        bx = boxes.to(device).requires_grad_(True)
        out = warp_patches(img, bx, th, OBJ.to(device), mode=mode, padding_mode=padding_mode)
        grads.append([g.cpu() for g in torch.autograd.grad((out * weight.to(device)).sum(), (img, th, bx))])
    for g_cpu, g_gpu in zip(*grads):
        torch.testing.assert_close(g_gpu, g_cpu, rtol=1e-7, atol=1e-9)


def test_cuda_uint8_and_half():
    images, theta = _inputs(seed=3)
    u8 = (images * 255).to(torch.uint8)
    cpu = warp_patches(u8, BOXES, theta, OBJ)
    gpu = warp_patches(*_to(u8, BOXES, theta, OBJ))
    assert gpu.dtype == torch.uint8
    assert (gpu.cpu().int() - cpu.int()).abs().max() <= 1
    for dtype in (torch.float16, torch.bfloat16):
        out = warp_patches(images.to(dtype).cuda(), *_to(BOXES, theta, OBJ))
        assert out.dtype == dtype
        full = warp_patches(images.to(dtype).float(), BOXES, theta, OBJ)
        torch.testing.assert_close(out.float().cpu(), full, atol=6e-2, rtol=0)


def test_cuda_channels_last_and_list_boxes():
    images, theta = _inputs(seed=4)
    cl = images.cuda().contiguous(memory_format=torch.channels_last)
    out = warp_patches(cl, *_to(BOXES, theta, OBJ))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.cpu(), warp_patches(images, BOXES, theta, OBJ), rtol=1e-5, atol=1e-5)
    per_image = [BOXES[OBJ.eq(b)].cuda() for b in range(2)]
    order = torch.cat([torch.nonzero(OBJ.eq(b)).flatten() for b in range(2)])
    listed = warp_patches(images.cuda(), per_image, theta[order].cuda())
    torch.testing.assert_close(listed, warp_patches(images.cuda(), BOXES[order].cuda(), theta[order].cuda(),
                                                    OBJ[order].cuda()), rtol=0, atol=0)


@pytest.mark.parametrize("on_cpu", ["images", "boxes", "theta", "obj_to_img"])
def test_mixed_devices_raise(on_cpu):
    images, theta = _inputs()
    args = {"images": images.cuda(), "boxes": BOXES.cuda(), "theta": theta.cuda(), "obj_to_img": OBJ.cuda()}
    args[on_cpu] = args[on_cpu].cpu()
    with pytest.raises(ValueError, match="device") as info:
        warp_patches(args["images"], args["boxes"], args["theta"], args["obj_to_img"])
    assert on_cpu in str(info.value)
