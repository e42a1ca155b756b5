"""``torch.func`` transforms through the warp and paste operators.

Reverse mode (``grad``, ``vjp``, ``jacrev``, ``vmap`` of those) gives the SPEC loop's
gradients (float64), on both CPU kernels; forward mode and gradients of gradients refuse
with a clear error instead of PyTorch's ``setup_context`` error or a silently dropped
tangent (custom operators' forward-mode AD ignores tangents).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD

from augpatch.functional import paste_objects, warp_patches
from tests.dynamo_support import fresh_dynamo
from tests.paste_reference import reference_paste
from tests.reference import reference_warp

DT = torch.float64
OBJ = torch.tensor([0, 0, 1, 0, 1])


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 3x17x21 images, five overlapping objects, a weighting. The boxes are not integral:
    the reference loop differentiates a float box's own grid (an integral box's grid is
    ``affine_grid``'s, which does not depend on the box)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, 17, 21, generator=g, dtype=DT)
    boxes = torch.tensor([[2.5, 3.25, 12.0, 14.75], [5.25, 1.0, 18.5, 9.5], [0.5, 0.25, 8.75, 8.0],
                          [7.25, 6.5, 20.0, 16.25], [4.75, 9.0, 19.25, 16.5]], dtype=DT)
    theta = torch.eye(2, 3, dtype=DT) + 0.15 * torch.randn(5, 2, 3, generator=g, dtype=DT)
    weight = torch.randn(2, 3, 17, 21, generator=g, dtype=DT)
    return images, boxes, theta, weight


def _reference_grads(images, boxes, theta, weight, **kw):
    leaves = [t.clone().requires_grad_() for t in (images, boxes, theta)]
    loss = (reference_warp(*leaves, OBJ, **kw) * weight).sum()
    return torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
@pytest.mark.parametrize(("mode", "padding_mode"), [("bilinear", "zeros"), ("bilinear", "border"),
                                                    ("nearest", "reflection")])
def test_grad_of_every_input_equals_the_reference_loop(overlap, mode, padding_mode) -> None:
    images, boxes, theta, weight = _inputs()
    kw = {"mode": mode, "padding_mode": padding_mode, "overlap": overlap}
    before = [t.clone() for t in (images, boxes, theta)]

    def loss(im, bx, th):
        return (warp_patches(im, bx, th, OBJ, **kw) * weight).sum()

    got = torch.func.grad(loss, argnums=(0, 1, 2))(images, boxes, theta)
    want = _reference_grads(images, boxes, theta, weight, **kw)
    for name, a, b in zip(("images", "boxes", "theta"), got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")
    assert all(torch.equal(a, b) for a, b in zip(before, (images, boxes, theta)))  # nothing in place


def test_vjp_and_jacrev_equal_the_reference_loop() -> None:
    images, boxes, theta, weight = _inputs(1)
    out, pullback = torch.func.vjp(lambda th: warp_patches(images, boxes, th, OBJ), theta)
    torch.testing.assert_close(out, reference_warp(images, boxes, theta, OBJ), rtol=1e-12, atol=1e-12)
    (got,) = pullback(weight)
    torch.testing.assert_close(got, _reference_grads(images, boxes, theta, weight)[2], rtol=1e-10, atol=1e-10)

    rows = slice(5, 9)  # a few output pixels, so the Jacobian stays small
    jac = torch.func.jacrev(lambda th: warp_patches(images, boxes, th, OBJ)[0, 1, rows, 8])(theta)
    want = torch.autograd.functional.jacobian(lambda th: reference_warp(images, boxes, th, OBJ)[0, 1, rows, 8], theta)
    assert jac.shape == (4, 5, 2, 3)
    assert jac.abs().sum() > 0
    torch.testing.assert_close(jac, want, rtol=1e-10, atol=1e-10)


def test_vmap_of_grad_over_candidate_thetas() -> None:
    """Per-candidate gradients in one call, as a policy search evaluates several draws; the
    vmap rule folds the candidates into the batch (one operator call, no per-sample loop
    and no PyTorch "batching rule" performance warning)."""
    images, boxes, theta, weight = _inputs(2)
    candidates = theta + 0.05 * torch.randn(4, 5, 2, 3, generator=torch.Generator().manual_seed(3), dtype=DT)

    def loss(th):
        return (warp_patches(images, boxes, th, OBJ) * weight).sum()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = torch.func.vmap(torch.func.grad(loss))(candidates)
        values = torch.func.vmap(lambda th: warp_patches(images, boxes, th, OBJ))(candidates)
    assert not [w for w in caught if "batching rule" in str(w.message)]
    for k in range(4):
        want = _reference_grads(images, boxes, candidates[k], weight)[2]
        torch.testing.assert_close(got[k], want, rtol=1e-10, atol=1e-10)
        # the folded call is the samples' calls side by side
        assert torch.equal(values[k], warp_patches(images, boxes, candidates[k], OBJ))


def test_vmap_of_grad_over_images_and_boxes() -> None:
    images, boxes, theta, weight = _inputs(9)
    many = torch.rand(3, *images.shape, generator=torch.Generator().manual_seed(10), dtype=DT)
    shifted = torch.stack([boxes, boxes + 0.25, boxes * 0.75])  # no edge on the image border (a kink)

    def loss(im, bx):
        return (warp_patches(im, bx, theta, OBJ, overlap="parallel") * weight).sum()

    g_images, g_boxes = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1)))(many, shifted)
    for k in range(3):
        want = _reference_grads(many[k], shifted[k], theta, weight, overlap="parallel")
        torch.testing.assert_close(g_images[k], want[0], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(g_boxes[k], want[1], rtol=1e-10, atol=1e-10)


def test_vmap_of_paste_objects_and_its_gradient() -> None:
    images, boxes, theta, weight = _inputs(11)
    candidates = theta + 0.05 * torch.randn(3, 5, 2, 3, generator=torch.Generator().manual_seed(12), dtype=DT)
    dst, dst_to = boxes.flip(0) + 0.5, OBJ.flip(0)

    def loss(th):
        return (paste_objects(images, boxes, th, OBJ, dst, dst_to) * weight).sum()

    got = torch.func.vmap(torch.func.grad(loss))(candidates)
    values = torch.func.vmap(lambda th: paste_objects(images, boxes, th, OBJ, dst, dst_to))(candidates)
    for k in range(3):
        leaf = candidates[k].clone().requires_grad_()
        ref = reference_paste(images, boxes, leaf, OBJ, dst, dst_to)
        (want,) = torch.autograd.grad((ref * weight).sum(), leaf)
        torch.testing.assert_close(got[k], want, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(values[k], ref.detach(), rtol=1e-12, atol=1e-12)


def test_grad_of_paste_objects_equals_the_reference_loop() -> None:
    images, boxes, theta, weight = _inputs(4)
    dst = boxes.flip(0) + 0.5
    dst_to = OBJ.flip(0)
    alpha = torch.rand(5, 17, 21, generator=torch.Generator().manual_seed(5), dtype=DT)

    def loss(im, th, a):
        return (paste_objects(im, boxes, th, OBJ, dst, dst_to, alpha=a) * weight).sum()

    got = torch.func.grad(loss, argnums=(0, 1, 2))(images, theta, alpha)
    leaves = [t.clone().requires_grad_() for t in (images, theta, alpha)]
    ref = (reference_paste(leaves[0], boxes, leaves[1], OBJ, dst, dst_to, alpha=leaves[2]) * weight).sum()
    want = torch.autograd.grad(ref, leaves)
    for name, a, b in zip(("images", "theta", "alpha"), got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


def test_no_objects_and_a_box_less_image_under_grad() -> None:
    images, _, theta, weight = _inputs(6)
    none = torch.zeros(0, 4, dtype=DT)
    g = torch.func.grad(lambda im: (warp_patches(im, none, theta[:0], OBJ[:0]) * weight).sum())(images)
    torch.testing.assert_close(g, weight)  # the identity
    outside = torch.tensor([[30.0, 30.0, 40.0, 40.0]] * 3, dtype=DT)  # no pixel in any image
    g = torch.func.grad(lambda th: warp_patches(images, outside, th, OBJ[:3]).sum())(theta[:3])
    assert torch.equal(g, torch.zeros_like(theta[:3]))


MESSAGE_FORWARD = "supports reverse-mode differentiation only"
MESSAGE_TWICE = "is differentiable once"


@pytest.mark.parametrize("fn", ["warp", "paste"])
def test_forward_mode_refuses_clearly_instead_of_dropping_the_tangent(fn) -> None:
    images, boxes, theta, _ = _inputs(7)

    def f(th):
        if fn == "warp":
            return warp_patches(images, boxes, th, OBJ)
        return paste_objects(images, boxes, th, OBJ, boxes.flip(0), OBJ.flip(0))

    with pytest.raises(RuntimeError, match=MESSAGE_FORWARD):
        torch.func.jvp(f, (theta,), (torch.ones_like(theta),))
    with pytest.raises(RuntimeError, match=MESSAGE_FORWARD):
        torch.func.jacfwd(f)(theta)
    with pytest.raises(RuntimeError, match=MESSAGE_FORWARD):
        torch.func.hessian(lambda th: f(th).sum())(theta)
    with fwAD.dual_level(), pytest.raises(RuntimeError, match=MESSAGE_FORWARD):
        f(fwAD.make_dual(theta, torch.ones_like(theta)))


@pytest.mark.parametrize("fn", ["warp", "paste"])
def test_a_gradient_of_a_gradient_refuses_clearly(fn) -> None:
    images, boxes, theta, _ = _inputs(8)

    def loss(th):
        if fn == "warp":
            out = warp_patches(images, boxes, th, OBJ)
        else:
            out = paste_objects(images, boxes, th, OBJ, boxes.flip(0), OBJ.flip(0))
        return out.square().sum()

    with pytest.raises(RuntimeError, match=MESSAGE_TWICE):
        torch.func.grad(lambda th: torch.func.grad(loss)(th).sum())(theta)


def test_vmapping_only_the_image_indices_refuses_clearly() -> None:
    images, boxes, theta, _ = _inputs(13)
    indices = torch.stack([OBJ, 1 - OBJ])
    with pytest.raises(RuntimeError, match="vmapping only the image indices is not supported"):
        torch.func.vmap(lambda o: warp_patches(images, boxes, theta, o))(indices)


def test_grad_inside_torch_compile() -> None:
    images, boxes, theta, weight = _inputs(14)

    def loss(th):
        return (warp_patches(images, boxes, th, OBJ) * weight).sum()

    with fresh_dynamo():
        got = torch.compile(lambda th: torch.func.grad(loss)(th))(theta)
    torch.testing.assert_close(got, _reference_grads(images, boxes, theta, weight)[2], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("num", [1, 2])
def test_one_or_two_integer_boxes_take_the_operator_under_vmap(num) -> None:
    """Eager calls with one or two integer boxes run the loop itself (it reads the boxes'
    values, which vmap cannot); under a transform they run the operator instead."""
    images, boxes, theta, weight = _inputs(15)
    boxes, obj = boxes[:num].round(), OBJ[:num]
    candidates = theta[:num] + 0.05 * torch.randn(3, num, 2, 3, generator=torch.Generator().manual_seed(16), dtype=DT)
    got = torch.func.vmap(torch.func.grad(lambda th: (warp_patches(images, boxes, th, obj) * weight).sum()))(candidates)
    for k in range(3):
        leaf = candidates[k].clone().requires_grad_()
        (want,) = torch.autograd.grad((reference_warp(images, boxes, leaf, obj) * weight).sum(), leaf)
        torch.testing.assert_close(got[k], want, rtol=1e-10, atol=1e-10)


def test_grad_and_vmap_on_the_triton_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU kernel (Triton, here in its interpreter on CPU tensors) under the transforms:
    the same gradients and vmapped values as the reference loop."""
    pytest.importorskip("triton")
    from augpatch.functional import set_cpu_kernel

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    set_cpu_kernel("triton")  # the autouse fixture restores the kernel afterwards
    images, boxes, theta, weight = _inputs(17)
    got = torch.func.grad(lambda im, th: (warp_patches(im, boxes, th, OBJ) * weight).sum(), argnums=(0, 1))(
        images, theta)
    want = _reference_grads(images, boxes, theta, weight)
    torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got[1], want[2], rtol=1e-10, atol=1e-10)
    candidates = theta + 0.05 * torch.randn(2, 5, 2, 3, generator=torch.Generator().manual_seed(18), dtype=DT)
    values = torch.func.vmap(lambda th: warp_patches(images, boxes, th, OBJ))(candidates)
    for k in range(2):
        torch.testing.assert_close(values[k], reference_warp(images, boxes, candidates[k], OBJ), rtol=1e-12,
                                   atol=1e-12)
