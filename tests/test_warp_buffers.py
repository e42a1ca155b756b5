"""The compiled kernel's batch-sized buffers (``empty_batch`` in ``csrc/warp_cpu.cpp``): the
working copy that becomes the output and the gradient buffer that becomes the images'
gradient. Buffers over 4 MiB hold whole 2 MiB huge pages, which the kernel advises and, with
several intra-op threads, faults from the calling thread before the parallel copy fills them
(one byte written per huge page: the copy must overwrite it). The results must not depend on
the number of threads, and every pixel outside the boxes must be the input's (the output)
or the output gradient's (the images' gradient), bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from reference import reference_warp

from augpatch.functional import warp_patches
from augpatch.testing.kernel_calls import compiled_kernel_calls

pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")

# 2 x 3 x 512 x 512: 6 MiB in float32, 12 MiB in float64 (several whole huge pages)
BOXES = torch.tensor([[10.0, 20.0, 90.0, 70.0], [300.0, 400.0, 380.0, 500.0], [40.0, 30.0, 120.0, 100.0],
                      [200.0, 5.0, 260.0, 77.0]])
OBJ = torch.tensor([0, 0, 1, 1])


def _inside(boxes: torch.Tensor, obj: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    m = torch.zeros(shape[0], 1, shape[2], shape[3], dtype=torch.bool)
    for (x1, y1, x2, y2), b in zip(boxes.long().tolist(), obj.tolist()):
        m[b, :, y1:y2, x1:x2] = True
    return m.expand(shape)


def _theta(n: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return (torch.eye(2, 3, dtype=torch.float64) + 0.2 * torch.randn(n, 2, 3, generator=g,
                                                                         dtype=torch.float64)).to(dtype)


def _run(threads: int, dtype: torch.dtype, channels_last: bool, held: bool):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        images = torch.rand(2, 3, 512, 512, generator=g, dtype=torch.float64).to(dtype)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        images.requires_grad_(True)
        theta = _theta(len(OBJ), dtype).requires_grad_(True)
        upstream = torch.rand(images.shape, generator=g, dtype=torch.float64).to(dtype)
        out = warp_patches(images, BOXES, theta, OBJ)
        if held:  # the caller holds the output gradient: the kernel's gradient buffer
            out.backward(upstream)
        else:  # a loss whose backward hands the kernel an output gradient nobody else holds
            (out * upstream).sum().backward()  # (written in place into it)
        return images.detach(), upstream, out.detach(), images.grad, theta.grad
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("held", [False, True])
def test_batch_buffers_do_not_depend_on_threads(dtype, channels_last, held):
    images = torch.zeros(2, 3, 512, 512, dtype=dtype)
    assert compiled_kernel_calls(images, BOXES, _theta(len(OBJ), dtype), OBJ), "the compiled kernel was not called"
    one = _run(1, dtype, channels_last, held)
    two = _run(2, dtype, channels_last, held)
    for a, b in zip(one, two):
        assert torch.equal(a, b)
    images, upstream, out, g_images, g_theta = two
    outside = ~_inside(BOXES, OBJ, images.shape)
    assert torch.equal(out[outside], images[outside])  # the copy overwrote every pre-faulted byte
    assert torch.equal(g_images[outside], upstream[outside])
    assert g_theta.abs().sum() > 0
    if dtype == torch.float64:  # and the whole call is SPEC's loop
        ref_images = images.clone().requires_grad_(True)
        ref_theta = _theta(len(OBJ), dtype).requires_grad_(True)
        ref = reference_warp(ref_images, BOXES, ref_theta, OBJ)
        (ref * upstream).sum().backward()
        torch.testing.assert_close(out, ref.detach(), rtol=0, atol=1e-12)
        torch.testing.assert_close(g_images, ref_images.grad, rtol=0, atol=1e-12)
        torch.testing.assert_close(g_theta, ref_theta.grad, rtol=1e-10, atol=1e-10)
