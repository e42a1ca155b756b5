"""``attack``: projected sign-gradient ascent within bounds, exact replay, model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from augpatch.search import PatchPolicy, attack
from augpatch.transforms import (
    PatchAffine,
    PatchSequential,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# four objects in a 2 x 2 grid of one image, and one more in a second image
IMAGES = torch.ones(2, 1, 32, 32)
BOXES = torch.tensor(
    [[0, 0, 16, 16], [16, 0, 32, 16], [0, 16, 16, 32], [16, 16, 32, 32], [4, 4, 28, 20]]
)
O2I = torch.tensor([0, 0, 0, 0, 1])


def lost_mass(result):
    """Per object: how much of a constant image its transform pushes out of its box."""
    out = result.images
    return torch.stack(
        [
            -out[b, :, y1:y2, x1:x2].sum()
            for (x1, y1, x2, y2), b in zip(BOXES.tolist(), O2I.tolist())
        ]
    )


def _draw(aug):
    """A random draw of ``aug`` applied to every object (coins on, theta recomputed)."""
    draw = aug.forward_parameters(IMAGES.shape, BOXES, O2I)
    draw.pop("theta")
    draw["batch_prob"] = torch.ones(5, dtype=torch.bool)
    return draw


def test_rotation_worst_case_is_found_and_beats_random_draws():
    """Rotating a constant patch by up to 30 degrees cuts off more with a larger angle:
    the worst case is |angle| = 30 for every object."""
    aug = RandomPatchRotation(30.0, generator=_gen(0))
    adv = attack(aug, lambda r: lost_mass(r).sum(), IMAGES, BOXES, O2I, steps=5)
    assert torch.equal(adv["angle"].abs(), torch.full((5,), 30.0))
    assert adv["batch_prob"].all()
    worst = lost_mass(aug(IMAGES, BOXES, O2I, params=adv)).sum()
    draws = [lost_mass(aug(IMAGES, BOXES, O2I, params=_draw(aug))).sum() for _ in range(20)]
    assert worst >= max(draws)


def test_per_object_loss_and_scale_worst_case_at_the_lower_bound():
    aug = RandomPatchScale((0.6, 1.0), p=0.3, generator=_gen(1))
    adv = attack(aug, lost_mass, IMAGES, BOXES, O2I, steps=3, step_size=0.5, init="center")
    assert torch.equal(adv["scale"], torch.full((5, 2), 0.6))  # isotropic kept
    per_object = lost_mass(aug(IMAGES, BOXES, O2I, params=adv))
    for _ in range(20):
        draw = lost_mass(aug(IMAGES, BOXES, O2I, params=_draw(aug)))
        assert (per_object >= draw).all()


@pytest.mark.parametrize("which", ["affine", "sequence", "policy"])
def test_attack_stays_within_bounds(which):
    img = torch.rand(2, 3, 32, 32, generator=_gen(2))
    if which == "affine":
        deg = nn.Parameter(torch.tensor(15.0))
        aug = RandomPatchAffine(
            degrees=deg, translate=(0.1, 0.2), scale=(0.8, 1.1, 0.9, 1.0), shear=8
        )
    elif which == "sequence":
        aug = PatchSequential(
            RandomPatchRotation((-5, 25)), RandomPatchHorizontalFlip(), PatchAffine(scale=0.9)
        )
    else:
        aug = PatchPolicy(
            num_sub_policies=2, operation_count=2, magnitude_sampling="uniform"
        ).eval()
    adv = attack(aug, lambda r: r.images.std(), img, BOXES, O2I, steps=4, step_size=0.7)
    if which == "affine":
        assert (adv["angle"].abs() <= 15).all()
        tx, ty = adv["translate"].unbind(-1)
        assert (tx.abs() <= 0.1).all() and (ty.abs() <= 0.2).all()
        sx, sy = adv["scale"].unbind(-1)
        assert ((sx >= 0.8) & (sx <= 1.1) & (sy >= 0.9) & (sy <= 1.0)).all()
        assert (adv["shear"][:, 0].abs() <= 8).all() and (adv["shear"][:, 1] == 0).all()
        assert deg.grad is None
    elif which == "sequence":
        angle = adv["0.angle"]
        assert ((angle >= -5) & (angle <= 25)).all() and adv["0.batch_prob"].all()
        assert "1.batch_prob" in adv  # the flip keeps its drawn coins
    else:
        bound = aug.human_magnitude()[adv["sub_policy"]]
        assert (adv["op_value"].abs() <= bound + 1e-6).all()
        assert aug.magnitude.grad is None


def test_params_replay_bit_for_bit_and_the_model_is_untouched():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1)
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    img = torch.rand(2, 1, 32, 32, generator=_gen(3), requires_grad=True)
    seen = []

    def loss_fn(result):
        seen.append((result.images.detach().clone(), result.boxes.detach().clone()))
        return model(result.images).square().mean()

    aug = RandomPatchAffine(degrees=20, scale=(0.8, 1.2), generator=_gen(4))
    adv = attack(aug, loss_fn, img, BOXES, O2I, steps=3)
    assert len(seen) == 4 and aug._params is adv
    assert all(p.grad is None for p in model.parameters()) and img.grad is None
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    replay = aug(img, BOXES, O2I, params=adv)
    assert any(torch.equal(replay.images, a) and torch.equal(replay.boxes, b) for a, b in seen)
    losses = [model(a).square().mean() for a, _ in seen]
    assert torch.equal(model(replay.images).square().mean(), max(losses))
    # without theta, the human parameters give the same matrices, bit for bit
    human = {k: v for k, v in adv.items() if k != "theta"}
    assert torch.equal(aug(img, BOXES, O2I, params=human).images, replay.images)


def test_steps_zero_returns_the_start_and_dict_init_continues():
    aug = RandomPatchRotation(30.0, generator=_gen(5))
    start = aug.forward_parameters(IMAGES.shape, BOXES, O2I)
    same = attack(aug, lambda r: lost_mass(r).sum(), IMAGES, BOXES, O2I, steps=0, init=start)
    assert torch.equal(same["angle"], start["angle"])
    more = attack(aug, lambda r: lost_mass(r).sum(), IMAGES, BOXES, O2I, steps=2, init=same)
    assert (more["angle"].abs() >= same["angle"].abs()).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": -1}, ValueError, "steps"),
        ({"step_size": 0}, ValueError, "step_size"),
        ({"init": "zero"}, ValueError, "init"),
        ({"transform": PatchAffine(angle=10.0)}, ValueError, "no bounded parameters"),
        ({"transform": nn.Identity()}, TypeError, "patch transform"),
        ({"loss_fn": lambda r: r.images}, ValueError, "scalar or one loss per object"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"transform": RandomPatchRotation(10.0), "loss_fn": lambda r: r.images.sum()}
    args.update(kwargs)
    transform, loss_fn = args.pop("transform"), args.pop("loss_fn")
    with pytest.raises(error, match=match):
        attack(transform, loss_fn, IMAGES, BOXES, O2I, **args)
