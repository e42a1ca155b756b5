"""Choosing the CPU kernel: compiled (built on first use) or eager."""

from __future__ import annotations

import pytest
import torch

from augpatch.functional import cpu_kernel, set_cpu_kernel, warp_patches
from augpatch.ops import settings as _kernel
from augpatch.ops.backends import get as _backend
from augpatch.ops.backends.compiled import build


def _batch():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 40, generator=g)
    boxes = torch.tensor([[2, 3, 20, 30], [10, 0, 39, 12], [5, 5, 25, 25]])
    theta = torch.tensor([[0.8, -0.3, 0.1], [0.4, 0.9, -0.2]]).repeat(3, 1, 1)
    return images, boxes, theta, torch.tensor([0, 1, 0])


def test_unknown_choice_is_rejected():
    with pytest.raises(ValueError, match="cpu kernel must be one of"):
        set_cpu_kernel("fast")


def test_environment_variable_is_read_and_checked(monkeypatch):
    monkeypatch.setitem(_kernel._state, "cpu", None)
    monkeypatch.setenv("AUGPATCH_CPU_KERNEL", "Eager")
    assert cpu_kernel() == "eager"
    monkeypatch.setitem(_kernel._state, "cpu", None)
    monkeypatch.setenv("AUGPATCH_CPU_KERNEL", "turbo")
    with pytest.raises(ValueError, match="AUGPATCH_CPU_KERNEL"):
        cpu_kernel()


def test_compiled_kernel_is_used_and_agrees_with_eager():
    images, boxes, theta, obj = _batch()
    set_cpu_kernel("compiled")
    assert _kernel.compiled_ops(torch.device("cpu")) is not None
    compiled = warp_patches(images, boxes, theta, obj, mode="bicubic")
    set_cpu_kernel("eager")
    assert _kernel.compiled_ops(torch.device("cpu")) is None
    eager = warp_patches(images, boxes, theta, obj, mode="bicubic")
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-6)
    assert not torch.equal(compiled, images)


def test_failed_build_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_build():
        raise OSError("no C++ compiler found")

    monkeypatch.setattr(_backend("compiled"), "ops", None)
    monkeypatch.setattr(_backend("compiled"), "error", None)
    monkeypatch.setattr(build, "load", broken_build)
    images, boxes, theta, obj = _batch()
    set_cpu_kernel("auto")
    with pytest.warns(RuntimeWarning, match="no C.. compiler found"):
        out = warp_patches(images, boxes, theta, obj)
    set_cpu_kernel("eager")
    torch.testing.assert_close(out, warp_patches(images, boxes, theta, obj), rtol=0, atol=0)
    set_cpu_kernel("compiled")
    with pytest.raises(RuntimeError, match="could not be built"):
        warp_patches(images, boxes, theta, obj)


@pytest.mark.parametrize(("first", "then"), [("compiled", "eager"), ("eager", "compiled")])
def test_backward_runs_the_kernel_of_its_forward(first, then):
    """Changing the kernel setting between a forward and its backward is harmless: the
    backward runs the kernel that ran the forward (its saved tensors are that kernel's)."""
    images, boxes, theta, obj = _batch()
    grads = {}
    for label, switch_to in (("same", first), ("switched", then)):
        set_cpu_kernel(first)
        x = images.clone().requires_grad_(True)
        t = theta.clone().requires_grad_(True)
        out = warp_patches(x, boxes, t, obj, overlap="sequential")
        set_cpu_kernel(switch_to)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[label] = (x.grad, t.grad)
    set_cpu_kernel("auto")
    for a, b in zip(grads["same"], grads["switched"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
