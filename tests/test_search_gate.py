"""The learnable probability ``p``: relaxed Bernoulli gate in train(), hard coin in eval()."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from augpatch.transforms import (
    PatchSequential,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
)
from augpatch.transforms.sampling import relaxed_bernoulli, sample_gate


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _scene(dtype=torch.float32):
    img = torch.rand(2, 2, 12, 12, generator=_gen(1), dtype=dtype)
    boxes = torch.tensor(
        [[0, 0, 6, 6], [6, 6, 12, 12], [0, 6, 6, 12], [1, 1, 9, 7], [6, 0, 12, 6]], dtype=dtype
    )
    return img, boxes, torch.tensor([0, 0, 0, 1, 1])


def test_float_p_in_train_mode_is_the_hard_coin_as_before():
    img, boxes, o2i = _scene()
    a = RandomPatchRotation(20, p=0.5, generator=_gen(2))
    b = RandomPatchRotation(20, p=0.5, generator=_gen(2)).eval()
    ra, rb = a(img, boxes, o2i), b(img, boxes, o2i)
    assert a.training and not b.training
    assert ra.params["batch_prob"].dtype == torch.bool and "gate" not in ra.params
    assert torch.equal(ra.params["batch_prob"], rb.params["batch_prob"])
    assert torch.equal(ra.images, rb.images)
    # objects not drawn are bit-for-bit unchanged (no resampling at all)
    off = ~ra.params["batch_prob"]
    assert off.any() and torch.equal(ra.boxes[off], boxes[off])


def test_tensor_p_without_grad_is_the_hard_coin_with_the_float_coins():
    img, boxes, o2i = _scene()
    a = RandomPatchRotation(20, p=0.35, generator=_gen(4))
    b = RandomPatchRotation(20, p=torch.tensor(0.35), generator=_gen(4))
    ra, rb = a(img, boxes, o2i), b(img, boxes, o2i)
    assert torch.equal(ra.params["batch_prob"], rb.params["batch_prob"])
    assert torch.equal(ra.images, rb.images)
    assert "p" in dict(b.named_buffers())


def test_learnable_p_in_train_mode_gets_gradient_through_the_relaxed_gate():
    img, boxes, o2i = _scene()
    p = torch.nn.Parameter(torch.tensor(0.4))
    aug = RandomPatchRotation(25, p=p, generator=_gen(0))
    assert dict(aug.named_parameters())["p"] is p
    res = aug(img, boxes, o2i)
    gate = res.params["gate"]
    assert gate.dtype == torch.float32 and gate.shape == (5,)
    assert ((gate > 0) & (gate < 1)).any()  # relaxed, not 0/1
    assert res.params["batch_prob"].all()  # every object resampled
    res.images.square().sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad) and p.grad != 0
    assert "p=0.4" in repr(aug)


def test_gradcheck_relaxed_gate_float64():
    u = torch.rand(7, generator=_gen(2), dtype=torch.float64) * 0.98 + 0.01
    p = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda q: relaxed_bernoulli(q, u, 0.3), (p,), eps=1e-6, atol=1e-7)
    # per-element probabilities too
    pv = torch.rand(7, generator=_gen(3), dtype=torch.float64).mul(0.9).add(0.05).requires_grad_()
    assert gradcheck(lambda q: relaxed_bernoulli(q, u, 0.5), (pv,), eps=1e-6, atol=1e-7)
    # straight-through: the gradient is the relaxed one, the value the hard coin
    st = relaxed_bernoulli(pv, u, 0.5, hard=True)
    assert torch.equal(st.detach(), (u < pv.detach()).double())
    (gs,) = torch.autograd.grad(relaxed_bernoulli(pv, u, 0.5).sum(), pv)
    (gh,) = torch.autograd.grad(st.sum(), pv)
    assert torch.equal(gs, gh)


def test_gradcheck_transform_output_wrt_p_float64():
    img, boxes, o2i = _scene(torch.float64)
    p = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)

    def fn(q):
        aug = RandomPatchRotation(20, p=q, generator=_gen(5))
        aug.gate_temperature = 0.5  # smooth enough for finite differences
        return aug(img, boxes, o2i).images

    assert gradcheck(fn, (p,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_temperature_to_zero_tends_to_the_hard_gate():
    u = torch.rand(1000, generator=_gen(6))
    p = torch.tensor(0.3, requires_grad=True)
    hard = (u < p.detach()).float()
    errs = [
        (relaxed_bernoulli(p, u, t).detach() - hard).abs().mean() for t in (1.0, 0.1, 1e-2, 1e-4)
    ]
    assert all(a > b for a, b in zip(errs, errs[1:]))
    assert errs[-1] < 1e-3
    # and the transform: train() with a tiny temperature ~ eval() with the same draws
    img, boxes, o2i = _scene()
    aug = RandomPatchScale((0.5, 0.8), p=torch.nn.Parameter(torch.tensor(0.5)), generator=_gen(8))
    diffs = []
    for t in (1.0, 1e-4):
        aug.train()
        aug.gate_temperature = t
        aug.generator.manual_seed(8)
        soft = aug(img, boxes, o2i)
        aug.eval()
        aug.generator.manual_seed(8)
        coin = aug(img, boxes, o2i)
        diffs.append((soft.images - coin.images).abs().max().item())
        if t < 1:
            assert torch.equal(soft.params["gate"] > 0.5, coin.params["batch_prob"])
    assert diffs[1] < 1e-4 < diffs[0]


def test_straight_through_forward_is_exactly_the_eval_coin():
    img, boxes, o2i = _scene()
    p = torch.nn.Parameter(torch.tensor(0.5))
    aug = RandomPatchHorizontalFlip(p=p, generator=_gen(9))
    aug.gate_hard = True
    st = aug(img, boxes, o2i)
    aug.eval()
    aug.generator.manual_seed(9)
    coin = aug(img, boxes, o2i)
    assert torch.equal(st.params["gate"], coin.params["batch_prob"].float())
    assert torch.equal(st.params["theta"], coin.params["theta"])
    assert torch.allclose(st.images, coin.images, atol=1e-6)  # undrawn: identity resample
    st.images.sum().backward()  # a flip has no magnitude: only p learns
    assert p.grad is not None and p.grad != 0


def test_eval_mode_is_the_hard_coin_and_reproducible_with_a_generator():
    img, boxes, o2i = _scene()
    p = torch.nn.Parameter(torch.tensor(0.5))
    runs = []
    for _ in range(2):
        aug = RandomPatchRotation(30, p=p, generator=_gen(11)).eval()
        runs.append(aug(img, boxes, o2i))
    bp = runs[0].params["batch_prob"]
    assert bp.dtype == torch.bool and "gate" not in runs[0].params
    assert bp.any() and not bp.all()
    assert torch.equal(runs[0].images, runs[1].images)
    assert torch.equal(runs[0].params["theta"], runs[1].params["theta"])
    # the gate function itself
    g = sample_gate(p, 64, _gen(1), torch.device("cpu"), training=False)
    assert g.dtype == torch.bool and torch.equal(g, torch.rand(64, generator=_gen(1)) < 0.5)


def test_relaxed_params_replay_bit_for_bit():
    img, boxes, o2i = _scene()
    aug = RandomPatchRotation(30, p=torch.nn.Parameter(torch.tensor(0.5)), generator=_gen(2))
    res = aug(img, boxes, o2i)
    again = aug(img, boxes, o2i, params=res.params)
    assert torch.equal(again.images, res.images) and torch.equal(again.boxes, res.boxes)
    human = {k: v for k, v in res.params.items() if k != "theta"}  # recomputed with the gate
    again = aug(img, boxes, o2i, params=human)
    assert torch.equal(again.params["theta"], res.params["theta"])
    assert torch.equal(again.images, res.images)


def test_shared_draws_and_sequences_with_a_learnable_p():
    img, boxes, o2i = _scene()
    p = torch.nn.Parameter(torch.tensor(0.5))
    aug = RandomPatchRotation(20, p=p, same_on_image=True, generator=_gen(3))
    gate = aug(img, boxes, o2i).params["gate"]
    assert torch.equal(gate[:3], gate[:1].expand(3)) and torch.equal(gate[3:], gate[3:4].expand(2))
    q = torch.nn.Parameter(torch.tensor(0.7))
    seq = PatchSequential(
        RandomPatchRotation(20, p=p, generator=_gen(1)), RandomPatchScale(0.2, p=q)
    )
    seq(img, boxes, o2i).images.square().sum().backward()
    assert p.grad != 0 and q.grad != 0


@pytest.mark.parametrize(
    ("p", "error", "match"),
    [
        (torch.tensor([0.5]), TypeError, "0-d"),
        (torch.tensor(1), TypeError, "floating"),
        (torch.tensor(1.5), ValueError, r"\[0, 1\]"),
        (-0.1, ValueError, r"\[0, 1\]"),
        ("0.5", TypeError, "number"),
        (True, TypeError, "number"),
    ],
)
def test_bad_p_is_rejected(p, error, match):
    with pytest.raises(error, match=match):
        RandomPatchRotation(10, p=p)


def test_bad_temperature_is_rejected():
    with pytest.raises(ValueError, match="temperature"):
        relaxed_bernoulli(torch.tensor(0.5), torch.rand(3), 0.0)
