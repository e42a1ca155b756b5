"""``parameter_bounds`` / ``search_space``: a new transform takes part in ``attack`` by
declaring its bounds, with no edit in ``augpatch.search``."""

from __future__ import annotations

import torch

import augpatch.functional as F
from augpatch import (
    PatchAffine,
    PatchSequential,
    RandomPatchHorizontalFlip,
    RandomPatchScale,
    RandomPatchShear,
)
from augpatch.search import PatchPolicy, attack, attack_space
from augpatch.transforms._sampling import uniform01
from augpatch.transforms.base import PatchAugmentationBase


class RandomPatchSquash(PatchAugmentationBase):
    """A transform written outside the library: squash each object vertically."""

    def __init__(self, low: float, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.low = low

    def generate_parameters(self, patches, obj_to_img, batch_size, generator):
        u = uniform01((patches.shape[0],), generator, patches.device).to(patches.dtype)
        return {"squash": self.low + (1 - self.low) * u}

    def compute_matrix(self, params, patches):
        s = params["squash"].to(patches.dtype)
        return F.patch_affine_matrix(patches, scale=torch.stack((torch.ones_like(s), s), -1),
                                     align_corners=self.align_corners)

    def parameter_bounds(self, device="cpu", dtype=torch.float32):
        lo = torch.tensor([self.low], device=device, dtype=dtype)
        return {"squash": (lo, torch.ones(1, device=device, dtype=dtype), "full")}


def test_a_new_transform_is_attacked_through_its_bounds() -> None:
    r = torch.arange(24.0) + 0.5  # a smooth blob: the mass falls steadily as it is squashed
    images = torch.exp(-((r[:, None] - 12) ** 2 + (r[None] - 12) ** 2) / 40)[None, None]
    boxes = torch.tensor([[4, 4, 20, 20]])
    aug = RandomPatchSquash(0.4, p=1.0)
    # maximise the lost mass: the attack must squash as far as allowed
    adv = attack(aug, lambda r: -r.images.sum(), images, boxes, steps=4, step_size=0.5,
                 init="center")
    assert torch.allclose(adv["squash"], torch.tensor([0.4]))
    assert torch.equal(aug(images, boxes, params=adv).images, aug(images, boxes, params=adv).images)


def test_search_space_of_every_kind() -> None:
    boxes, shape = torch.tensor([[0, 0, 8, 8], [4, 4, 12, 12]]), (1, 1, 16, 16)
    seq = PatchSequential(RandomPatchScale((0.5, 2.0)), RandomPatchHorizontalFlip(),
                          RandomPatchShear(10), RandomPatchSquash(0.5))
    params = seq.forward_parameters(shape, boxes)
    space = attack_space(seq, params)
    assert [v.key for v in space] == ["0.scale", "2.shear", "3.squash"]
    scale, shear, squash = space
    assert scale.x.shape == (2,) and scale.expand(scale.x).shape == (2, 2)  # isotropic
    assert torch.equal(shear.expand(shear.x)[:, 1], torch.zeros(2))  # x only
    assert squash.lo.tolist() == [0.5, 0.5]
    for t in (PatchAffine(angle=3.0), RandomPatchHorizontalFlip()):
        assert t.parameter_bounds() == {} and attack_space(t, t.forward_parameters(shape, boxes)) == []
    policy = PatchPolicy(["rotate", "scale"], 2, 1)
    p = policy.forward_parameters(shape, boxes)
    (v,) = attack_space(policy, p)
    m = policy.human_magnitude().detach()[p["sub_policy"]]
    assert torch.equal(v.hi, m) and torch.equal(v.lo, -m)
