"""``PatchPolicy``: gradients, hard eval draws, one resampling per object, replay."""

from __future__ import annotations

import pytest
import torch

import augpatch.functional as F
from augpatch.search import OPERATIONS, PatchPolicy
from augpatch.transforms import params_from_json, params_to_json
from augpatch.transforms.base import identity_rows


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _scene(dtype=torch.float32):
    img = torch.rand(2, 3, 24, 24, generator=_gen(1), dtype=dtype)
    boxes = torch.tensor(
        [
            [0, 0, 12, 10],
            [12, 12, 24, 24],
            [0, 12, 10, 24],
            [2, 1, 14, 9],
            [13, 0, 24, 11],
            [4, 12, 20, 22],
        ],
        dtype=dtype,
    )
    return img, boxes, torch.tensor([0, 0, 0, 1, 1, 1])


_HAS_MAGNITUDE = torch.tensor([OPERATIONS[name].default is not None for name in OPERATIONS])


@pytest.mark.parametrize("straight_through", [False, True])
def test_gradients_reach_weights_magnitudes_and_probabilities(straight_through):
    img, boxes, o2i = _scene()
    policy = PatchPolicy(
        num_sub_policies=2,
        operation_count=2,
        straight_through=straight_through,
        generator=_gen(1),
    )
    res = policy(img, boxes, o2i)
    assert set(res.params["sub_policy"].tolist()) == {0, 1}
    (res.images.square().mean() + res.boxes.mean() / 100).backward()
    for name in ("magnitude", "probability", "weights"):
        grad = getattr(policy, name).grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert (grad != 0).any(), name
    if not straight_through:  # soft mixture: every operation of every stage contributes
        assert (policy.weights.grad != 0).all()
        assert (policy.magnitude.grad[..., _HAS_MAGNITUDE] != 0).all()
    assert (policy.magnitude.grad[..., ~_HAS_MAGNITUDE] == 0).all()  # flips: no magnitude


def test_training_mixes_with_softmax_over_temperature():
    img, boxes, o2i = _scene()
    policy = PatchPolicy(num_sub_policies=3, operation_count=2, temperature=0.5, generator=_gen(0))
    with torch.no_grad():
        policy.weights.copy_(torch.randn(policy.weights.shape, generator=_gen(4)))
    params = policy(img, boxes, o2i).params
    expected = torch.softmax(policy.weights.detach() / 0.5, -1)[params["sub_policy"]]
    assert torch.allclose(params["op_weight"], expected)
    gate = params["op_gate"]
    assert ((gate > 0) & (gate < 1)).any()  # relaxed Bernoulli


def _reference_theta(policy, params, patches):
    """Per object: the product of the selected and drawn operations' matrices."""
    out = []
    kind = {name: k for k, name in enumerate(policy.operations)}
    for n in range(patches.shape[0]):
        theta = torch.eye(3, dtype=patches.dtype)
        for k in range(policy.operation_count):
            o = int(params["op_weight"][n, k].argmax())
            v = params["op_value"][n, k, o]
            box = patches[n : n + 1]
            if params["op_gate"][n, k, o] == 0:
                continue
            name = policy.operations[o]
            w, h = box[0, 2] - box[0, 0], box[0, 3] - box[0, 1]
            kw = {
                "rotate": {"angle": v},
                "shear_x": {"shear": torch.stack((v, 0 * v))[None]},
                "shear_y": {"shear": torch.stack((0 * v, v))[None]},
                "translate_x": {"translate": torch.stack((v * w, 0 * v))[None]},
                "translate_y": {"translate": torch.stack((0 * v, v * h))[None]},
                "scale": {"scale": 1 + v},
                "hflip": {"scale": (-1.0, 1.0)},
                "vflip": {"scale": (1.0, -1.0)},
            }[name]
            assert kind[name] == o
            t = F.patch_affine_matrix(box, **kw)[0]
            theta = theta @ torch.cat((t, torch.tensor([[0.0, 0.0, 1.0]], dtype=t.dtype)))
        out.append(theta[:2])
    return torch.stack(out)


def test_eval_is_hard_reproducible_and_composes_the_chosen_operations():
    img, boxes, o2i = _scene(torch.float64)
    runs = []
    for _ in range(2):
        policy = PatchPolicy(num_sub_policies=2, operation_count=3, generator=_gen(7)).eval()
        policy.double()
        runs.append(policy(img, boxes, o2i))
    a, b = runs
    assert torch.equal(a.images, b.images) and torch.equal(a.params["theta"], b.params["theta"])
    w, g = a.params["op_weight"], a.params["op_gate"]
    assert torch.equal(w.sum(-1), torch.ones_like(w[..., 0])) and set(w.unique().tolist()) == {0, 1}
    assert set(g.unique().tolist()) == {0.0, 1.0}
    ref = _reference_theta(policy, a.params, a.params["patches"])
    assert torch.allclose(a.params["theta"], ref, atol=1e-12)
    # one resampling per object: exactly one warp_patches call with the fused matrices,
    # objects whose matrix is exactly the identity left out (returned bit for bit)
    theta = a.params["theta"]
    ident = identity_rows(theta)
    assert bool(ident.any()) and not bool(ident.all())  # the scene has both kinds
    moved = torch.where(ident[:, None], torch.zeros_like(boxes), boxes)
    once = F.warp_patches(img, moved, theta, o2i)
    assert torch.equal(a.images, once)


def test_straight_through_forward_equals_the_eval_draw():
    img, boxes, o2i = _scene()
    st = PatchPolicy(
        num_sub_policies=2, operation_count=2, straight_through=True, generator=_gen(5)
    )
    hard = PatchPolicy(num_sub_policies=2, operation_count=2, generator=_gen(5)).eval()
    ra, rb = st(img, boxes, o2i), hard(img, boxes, o2i)
    for key in ("sub_policy", "op_value", "op_gate", "op_weight", "theta"):
        assert torch.equal(ra.params[key], rb.params[key]), key
    assert torch.equal(ra.images, rb.images)


def test_argmax_selection_picks_the_largest_weight_for_every_object():
    img, boxes, o2i = _scene()
    policy = PatchPolicy(num_sub_policies=2, operation_count=2, eval_selection="argmax")
    with torch.no_grad():
        policy.weights.copy_(torch.randn(policy.weights.shape, generator=_gen(2)))
    policy.eval()
    params = policy(img, boxes, o2i).params
    best = policy.weights.argmax(-1)[params["sub_policy"]]
    assert torch.equal(params["op_weight"].argmax(-1), best)


def test_replay_bit_for_bit_with_and_without_theta():
    img, boxes, o2i = _scene()
    policy = PatchPolicy(num_sub_policies=2, operation_count=2, generator=_gen(8))
    res = policy(img, boxes, o2i)
    again = policy(img, boxes, o2i, params=res.params)
    assert torch.equal(again.images, res.images) and torch.equal(again.boxes, res.boxes)
    human = {k: v for k, v in res.params.items() if k != "theta"}
    again = policy(img, boxes, o2i, params=human)
    assert torch.equal(again.params["theta"], res.params["theta"])
    assert torch.equal(again.images, res.images)
    back = policy.inverse(None, res.boxes, o2i)
    assert back.boxes.shape == boxes.shape
    saved = params_from_json(params_to_json(res.params))  # saved and loaded
    assert saved["sub_policy"].dtype == torch.int64
    assert torch.equal(policy(img, boxes, o2i, params=saved).images, res.images)


def test_magnitudes_stay_within_their_ranges():
    img, boxes, o2i = _scene()
    policy = PatchPolicy(
        {"rotate": (5, 15), "scale": 0.2, "hflip": None}, 2, 2, magnitude_sampling="uniform"
    )
    with torch.no_grad():
        policy.magnitude.copy_(torch.tensor([1.7, -0.5, 0.3]).expand(2, 2, 3))  # outside [0, 1]
    hm = policy.human_magnitude()
    assert torch.allclose(hm[0, 0], torch.tensor([15.0, 0.0, 0.0]))
    res = policy(img, boxes, o2i)
    value = res.params["op_value"]
    assert (value[..., 0].abs() <= 15).all() and (value[..., 1] == 0).all()
    (res.images.sum()).backward()
    # clamped to the range: no gradient beyond the bounds (rotation 1.7 > 1, scale -0.5 < 0)
    assert (policy.magnitude.grad[..., :2] == 0).all()
    policy.project_()
    assert policy.magnitude.min() >= 0 and policy.magnitude.max() <= 1


def test_describe_lists_the_operations():
    policy = PatchPolicy(["rotate", "translate_x", "vflip"], 2, 1)
    with torch.no_grad():
        policy.weights[:, :, 1] = 1.0
    text = policy.describe(top=2)
    assert text.count("sub-policy") == 2 and "translate_x 100%" in text and "rotate" in text
    assert "num_sub_policies=2" in repr(policy)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"operations": ["rotate", "spin"]}, ValueError, "unknown operation"),
        ({"operations": ["rotate", "rotate"]}, ValueError, "twice"),
        ({"operations": {"hflip": (0, 1)}}, ValueError, "no magnitude"),
        ({"operations": {"scale": (0, 1.0)}}, ValueError, "scale"),
        ({"operations": {"rotate": (10, 5)}}, ValueError, "min <= max"),
        ({"operations": "rotate"}, TypeError, "sequence of names"),
        ({"operations": []}, ValueError, "at least one"),
        ({"num_sub_policies": 0}, ValueError, "num_sub_policies"),
        ({"operation_count": 1.5}, ValueError, "operation_count"),
        ({"temperature": 0}, ValueError, "temperature"),
        ({"eval_selection": "max"}, ValueError, "eval_selection"),
        ({"magnitude_sampling": "gauss"}, ValueError, "magnitude_sampling"),
        ({"init_probability": 2}, ValueError, "init_probability"),
        ({"straight_through": 1}, TypeError, "straight_through"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PatchPolicy(**kwargs)


def test_relaxed_rotation_is_a_rotation_not_a_squeeze():
    """Soft gates and weights scale the angle (a genuine rotation at every strength)."""
    img = torch.rand(1, 1, 24, 24, generator=_gen(3))
    boxes = torch.tensor([[0, 0, 12, 12], [12, 12, 24, 24], [0, 12, 12, 24]])
    policy = PatchPolicy(["rotate", "translate_x"], 1, 2, generator=_gen(2))
    params = policy(img, boxes).params
    gate = params["op_gate"]
    assert ((gate > 0.01) & (gate < 0.99)).any()  # soft
    lin = params["theta"][:, :, :2]  # square boxes: a rotation is orthogonal
    assert torch.allclose(lin @ lin.transpose(1, 2), torch.eye(2).expand(3, 2, 2), atol=1e-6)
