"""What the compiled kernel's forward keeps for the location gradient, and the gradients
the backward computes from it.

With patch-relative padding, a ``sequential`` level after the first reads its patch as
earlier levels left it. The forward keeps only the pixels of those patches that differ
from the input batch (the ones an earlier level wrote), and the backward rebuilds each
patch from them and the input batch. Checked here: how much is kept, and that the
gradients still equal those of the SPEC's reference loop (float64), for overlap chains,
channel counts the kernel does not unroll, other layouts, and a level that writes the
input's own values (nothing kept).
"""

from __future__ import annotations

import pytest
import torch
from reference import reference_warp

from augpatch.functional import warp_patches
from augpatch.ops import warp_op

D64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rotation(n: int, angle: float = 0.3) -> torch.Tensor:
    c, s = torch.cos(torch.tensor(angle, dtype=D64)), torch.sin(torch.tensor(angle, dtype=D64))
    return torch.tensor([[c, -s, 0.05], [s, c, -0.1]], dtype=D64).expand(n, 2, 3).clone()


def _kept(images, boxes, theta, obj, padding_mode="zeros"):
    out = warp_op(images, boxes, theta, obj, "bilinear", padding_mode, False, "sequential", True)
    return out[4], out[5]


def test_only_pixels_an_earlier_level_wrote_are_kept():
    images = torch.rand(1, 3, 12, 12, generator=_gen(0), dtype=D64)
    # A (level 0) and B (level 1) overlap on a 3 x 3 square; B's patch is 6 x 6
    boxes = torch.tensor([[0.0, 0.0, 6.0, 6.0], [3.0, 3.0, 9.0, 9.0]], dtype=D64)
    obj = torch.zeros(2, dtype=torch.long)
    values, where = _kept(images, boxes, _rotation(2), obj)
    assert values.dtype == D64 and where.dtype == D64  # int64 words in the compute dtype's tensor
    assert values.numel() == 3 * 9  # C x the overwritten pixels, not C x 36
    assert where.numel() > 0


def test_a_level_that_writes_the_input_values_keeps_nothing_and_gradients_stay_exact():
    images = torch.rand(1, 2, 10, 10, generator=_gen(1), dtype=D64, requires_grad=True)
    boxes = torch.tensor([[1.0, 1.0, 6.0, 6.0], [3.0, 2.0, 9.0, 8.0]], dtype=D64)
    obj = torch.zeros(2, dtype=torch.long)
    theta = torch.eye(2, 3, dtype=D64).expand(2, 2, 3).clone()
    theta[1] = _rotation(1)[0]  # the identity writes A's own pixels, B reads them
    values, where = _kept(images.detach(), boxes, theta, obj)
    assert values.numel() == 0 and where.numel() > 0
    _assert_gradients_match(images, boxes, theta, obj, "bilinear", "zeros", False, boxes_grad=False)


def _random_chain(seed: int, batch: int, channels: int, n: int, dtype=D64):
    g = _gen(seed)
    images = torch.rand(batch, channels, 24, 28, generator=g, dtype=dtype)
    xy = torch.rand(n, 2, generator=g, dtype=D64) * torch.tensor([16.0, 12.0], dtype=D64)  # inside the canvas
    wh = torch.rand(n, 2, generator=g, dtype=D64) * 8 + 3
    boxes = torch.cat([xy, xy + wh], 1).round()
    boxes[:, :2] += 0.3  # float boxes: their gradient is the reference loop's too
    theta = _rotation(n, 0.2) + 0.1 * torch.randn(n, 2, 3, generator=g, dtype=D64)
    obj = torch.randint(0, batch, (n,), generator=g)
    return images, boxes, theta, obj


def _assert_gradients_match(images, boxes, theta, obj, mode, padding_mode, align_corners, boxes_grad=True):
    kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners, "overlap": "sequential"}
    base = images.detach()
    weight = torch.randn(base.shape, generator=_gen(99), dtype=base.dtype)
    inputs = [images.detach().clone().requires_grad_(), boxes.clone().requires_grad_(),
              theta.clone().requires_grad_()]
    got = torch.autograd.grad((warp_patches(inputs[0], inputs[1], inputs[2], obj, **kw) * weight).sum(), inputs,
                              allow_unused=True, materialize_grads=True)
    ref_inputs = [base.contiguous().clone().requires_grad_(), boxes.clone().requires_grad_(),
                  theta.clone().requires_grad_()]
    expected = torch.autograd.grad(
        (reference_warp(ref_inputs[0], ref_inputs[1], ref_inputs[2], obj, **kw) * weight).sum(), ref_inputs,
        allow_unused=True, materialize_grads=True)
    for name, a, b in zip(("images", "boxes", "theta"), got, expected):
        if name == "boxes" and not boxes_grad:  # integer boxes: the reference loop's are constants
            continue
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9, msg=lambda m, name=name: f"{name}: {m}")
    if mode != "nearest":  # nearest: the location gradient is zero
        assert got[2].abs().sum() > 0


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_overlap_chains_match_the_reference_loop(mode, padding_mode, align_corners):
    images, boxes, theta, obj = _random_chain(3, 2, 3, 14)
    levels = warp_op(images, boxes, theta, obj, mode, padding_mode, align_corners, "sequential", True)[2]
    assert levels.numel() - 1 >= 3  # a chain of at least three levels
    _assert_gradients_match(images, boxes, theta, obj, mode, padding_mode, align_corners)


@pytest.mark.parametrize("channels", [1, 4])
def test_channel_counts_not_unrolled(channels):
    images, boxes, theta, obj = _random_chain(4, 2, channels, 12)
    _assert_gradients_match(images, boxes, theta, obj, "bilinear", "zeros", False)


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_input_layouts(layout):
    images, boxes, theta, obj = _random_chain(5, 2, 3, 12)
    if layout == "channels_last":
        images = images.contiguous(memory_format=torch.channels_last)
    else:
        images = torch.rand(2, 3, 24, 56, generator=_gen(6), dtype=D64)[..., ::2]
    _assert_gradients_match(images, boxes, theta, obj, "bicubic", "border", False)


def test_float32_gradients_match_the_reference_loop():
    images, boxes, theta, obj = _random_chain(7, 2, 3, 14, dtype=torch.float32)
    weight = torch.randn(images.shape, generator=_gen(8))
    grads = []
    for fn in (warp_patches, reference_warp):
        th = theta.float().requires_grad_()
        img = images.clone().requires_grad_()
        grads.append(torch.autograd.grad((fn(img, boxes, th, obj) * weight).sum(), [img, th]))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-3, rtol=1e-4)
    assert grads[0][1].abs().sum() > 0
