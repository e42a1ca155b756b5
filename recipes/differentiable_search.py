"""Recipe: Faster-AutoAugment-style differentiable search of a per-object ``PatchPolicy``.

A small per-object classification task: every image holds several glyphs (``L``,
``J``, ``F``, ``T``; ``J`` is the mirror image of ``L``). The labelled source data
shows them upright; the unlabelled target data shows them rotated by up to 45
degrees and scaled by 0.8 to 1.2. As in Faster AutoAugment (Hataya et al. 2020),
the policy is trained so that the augmented source objects become
indistinguishable from the target objects for a WGAN-GP critic, while a
classifier must still recognise them (which penalises flips: they turn an ``L``
into a ``J``). The first ``--warmup`` steps train only the critic and the
classifiers, so that the policy's first gradients come from a critic that has
learnt something (with a cold critic the selection weights lock in early at a
selection temperature of 0.05). Everything is per object: the policy warps every object of the
batch with its own operations in one ``warp_patches`` call, and the critic and the
classifier see each object's patch (``torchvision.ops.roi_align``).

Prints the learned policy (top operations with their magnitudes and
probabilities), the critic's distance estimate and the accuracy on the target
objects of the search's classifier (trained on clean and augmented source
objects) next to that of a baseline trained on the clean source objects only.

    python recipes/differentiable_search.py            # a few minutes on 2 CPU cores
    python recipes/differentiable_search.py --smoke    # seconds

Needs torch and torchvision.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as TF
from torchvision.ops import roi_align

from augpatch.search import OPERATIONS, PatchPolicy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the recipes' shared _glyphs.py
from _glyphs import GLYPHS, render  # noqa: E402


@dataclass
class Batch:
    images: Tensor  # [B, 1, S, S]
    boxes: Tensor  # [N, 4] int
    obj_to_img: Tensor  # [N]
    labels: Tensor  # [N]

    def rois(self) -> Tensor:
        return torch.cat((self.obj_to_img[:, None].float(), self.boxes.float()), 1)


def make_batch(
    batch: int, grid: int, patch: int, g: torch.Generator, max_deg: float = 0.0, scale: float = 0.0
) -> Batch:
    """``batch`` images with ``grid x grid`` glyphs each, rotated uniformly within
    ``+-max_deg`` and scaled within ``1 +- scale``, on a black background (so that the
    padding a warp brings into a box is no cue for the critic)."""
    cell = patch + 4
    n = batch * grid * grid
    kinds = torch.randint(0, len(GLYPHS), (n,), generator=g)
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(max_deg)
    factor = 1 + scale * (torch.rand(n, generator=g) * 2 - 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    linear = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)
    glyphs = render(kinds, patch, linear / factor[:, None, None])
    images = torch.zeros(batch, 1, grid * cell, grid * cell)
    jitter = torch.randint(0, 5, (n, 2), generator=g)
    boxes, o2i = [], []
    for k in range(n):
        b, i, j = k // (grid * grid), (k // grid) % grid, k % grid
        x, y = j * cell + int(jitter[k, 0]), i * cell + int(jitter[k, 1])
        images[b, :, y : y + patch, x : x + patch] += glyphs[k]
        boxes.append([x, y, x + patch, y + patch])
        o2i.append(b)
    return Batch(images, torch.tensor(boxes), torch.tensor(o2i), kinds)


def small_cnn(outputs: int, patch: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (patch // 4) ** 2, 64),
        nn.LeakyReLU(0.2),
        nn.Linear(64, outputs),
    )


def crops(images: Tensor, data: Batch, patch: int) -> Tensor:
    """Each object's patch ``[N, 1, P, P]`` (its box; the warp keeps it in place)."""
    return roi_align(images, data.rois(), (patch, patch), sampling_ratio=1, aligned=True)


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: ``(|grad critic(x)| - 1)^2`` on random interpolates (critic only)."""
    eps = torch.rand(real.shape[0], 1, 1, 1)
    x = (eps * real + (1 - eps) * fake).requires_grad_()
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


TARGET_DEG, TARGET_SCALE = 45.0, 0.2  # the nuisances of the target objects


@dataclass
class Search:
    policy: PatchPolicy
    critic: nn.Module
    classifier: nn.Module
    baseline: nn.Module  # the same classifier trained on clean source objects only
    opt_policy: torch.optim.Optimizer
    opt_models: torch.optim.Optimizer


def build(
    patch: int, sub_policies: int, stages: int, straight_through: bool, temperature: float = 0.05
) -> Search:
    ops = dict.fromkeys(OPERATIONS)
    ops["rotate"] = (0.0, 60.0)  # wider than the default (0, 30)
    policy = PatchPolicy(
        ops,
        num_sub_policies=sub_policies,
        operation_count=stages,
        magnitude_sampling="uniform",
        straight_through=straight_through,
        temperature=temperature,
    )
    critic, classifier = small_cnn(1, patch), small_cnn(len(GLYPHS), patch)
    baseline = small_cnn(len(GLYPHS), patch)
    models = [*critic.parameters(), *classifier.parameters(), *baseline.parameters()]
    return Search(
        policy,
        critic,
        classifier,
        baseline,
        torch.optim.Adam(policy.parameters(), lr=2e-3, betas=(0.0, 0.999)),
        torch.optim.Adam(models, lr=1e-3, betas=(0.0, 0.999)),
    )


def search_step(
    s: Search,
    source: Batch,
    target: Batch,
    patch: int,
    task_factor: float = 0.1,
    update_policy: bool = True,
) -> dict[str, float]:
    """One Faster-AutoAugment step: critic + classifier, then (unless warming up) the policy."""
    with torch.set_grad_enabled(update_policy):
        augmented = s.policy(source.images, source.boxes, source.obj_to_img)
        fake = crops(augmented.images, source, patch)
    real = crops(target.images, target, patch)

    # critic (WGAN-GP), classifier (clean and augmented source objects), baseline (clean)
    fake_d = fake.detach()
    clean = crops(source.images, source, patch)
    distance = s.critic(real).mean() - s.critic(fake_d).mean()
    task = TF.cross_entropy(s.classifier(torch.cat((clean, fake_d))), source.labels.repeat(2))
    plain = TF.cross_entropy(s.baseline(clean), source.labels)
    loss_models = -distance + 10 * gradient_penalty(s.critic, real, fake_d) + task + plain
    s.opt_models.zero_grad()
    loss_models.backward()
    s.opt_models.step()
    if not update_policy:
        return {"distance": float(distance.detach()), "task": float(task.detach())}

    # policy: fool the critic, keep the class (gradients reach magnitudes, p and weights)
    loss_policy = -s.critic(fake).mean() + task_factor * TF.cross_entropy(
        s.classifier(fake), source.labels
    )
    s.opt_policy.zero_grad()
    loss_policy.backward()
    s.opt_policy.step()
    getattr(s.policy, "module", s.policy).project_()  # the policy itself, also under DDP
    return {"distance": float(distance.detach()), "task": float(task.detach())}


def target_accuracy(classifier: nn.Module, target: Batch, patch: int) -> float:
    with torch.no_grad():
        pred = classifier(crops(target.images, target, patch)).argmax(1)
    return float((pred == target.labels).float().mean())


def run_search(
    s: Search,
    steps: int,
    warmup: int,
    batch: int,
    grid: int,
    patch: int,
    data: torch.Generator,
    log: bool = True,
    after_step: Callable[[int], None] | None = None,
) -> list[float]:
    """``steps`` search steps (the first ``warmup`` train only the critic and the
    classifiers); returns the critic's distance estimate of every step."""
    distances = []
    for step in range(steps):
        source = make_batch(batch, grid, patch, data)
        target = make_batch(batch, grid, patch, data, TARGET_DEG, TARGET_SCALE)
        last = search_step(s, source, target, patch, update_policy=step >= warmup)
        distances.append(last["distance"])
        if after_step is not None:
            after_step(step)
        if log and (step + 1) % 100 == 0:
            print(f"  step {step + 1}: critic distance {last['distance']:.3f}", flush=True)
    return distances


def summary(distances: list[float], warmup: int) -> str:
    """Mean critic distance over the first and the last 50 policy steps."""
    searched = distances[warmup:] or distances
    window = max(1, min(50, len(searched) // 2))
    first = sum(searched[:window]) / window
    last = sum(searched[-window:]) / window
    return f"critic distance {first:.3f} -> {last:.3f} (mean of {window} steps)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=100, help="critic-only steps first")
    parser.add_argument("--straight-through", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (small models: 1 avoids contention)"
    )
    args = parser.parse_args()
    if not args.smoke:  # (the smoke run may share a process with other code)
        torch.set_num_threads(args.threads)
    steps, warmup, batch, grid, patch = (
        (3, 1, 2, 2, 16) if args.smoke else (args.steps, args.warmup, 8, 2, 20)
    )
    torch.manual_seed(args.seed)
    s = build(patch, 2, 2, args.straight_through)
    data = torch.Generator().manual_seed(args.seed)
    held_out = make_batch(
        16, grid, patch, torch.Generator().manual_seed(1), TARGET_DEG, TARGET_SCALE
    )
    start = time.perf_counter()
    distances = run_search(s, steps, warmup, batch, grid, patch, data, log=not args.smoke)
    print(s.policy.describe(top=3))
    print(
        f"differentiable search recipe: {steps} steps in {time.perf_counter() - start:.0f}s; "
        f"{summary(distances, warmup)}; accuracy on the target objects: search classifier "
        f"{target_accuracy(s.classifier, held_out, patch):.1%}, baseline (clean source only) "
        f"{target_accuracy(s.baseline, held_out, patch):.1%}"
    )


if __name__ == "__main__":
    main()
