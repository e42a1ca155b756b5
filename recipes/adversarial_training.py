"""Recipe: adversarial training against worst-case per-object rotations and scales.

A small per-object classifier (glyphs ``L``, ``J``, ``F``, ``T``, several per image,
upright in the training data) is trained twice for the same number of steps:

* plain: on the clean objects;
* adversarial (AugMax-style): on the clean objects and on the same objects under
  their worst-case rotation (+-30 degrees) and scale (0.8 to 1.2), found per object
  by :func:`augpatch.search.attack` (projected sign-gradient ascent on each
  object's parameters within the bounds, maximising that object's loss).

Both are then evaluated on held-out scenes, clean and under the worst case within
the same bounds (a stronger attack: more steps, the best of a few random starts
per object), and the accuracies are printed. The adversarial model is the more
robust one.

    python recipes/adversarial_training.py            # a few minutes on 2 CPU cores
    python recipes/adversarial_training.py --smoke    # seconds

Needs torch and torchvision.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as TF
from torchvision.ops import roi_align

from augpatch.search import attack
from augpatch.transforms import RandomPatchAffine

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the recipes' shared _glyphs.py
from _glyphs import GLYPHS, render  # noqa: E402

DEGREES, SCALE = 30.0, (0.8, 1.2)


def make_batch(batch: int, grid: int, patch: int, g: torch.Generator):
    """Images ``[B, 1, S, S]`` with ``grid x grid`` upright glyphs, boxes, obj_to_img, labels."""
    cell = patch + 4
    n = batch * grid * grid
    kinds = torch.randint(0, len(GLYPHS), (n,), generator=g)
    glyphs = render(kinds, patch) * (0.7 + 0.3 * torch.rand(n, 1, 1, 1, generator=g))
    images = 0.05 * torch.rand(batch, 1, grid * cell, grid * cell, generator=g)
    jitter = torch.randint(0, 5, (n, 2), generator=g)
    boxes = []
    for k in range(n):
        b, i, j = k // (grid * grid), (k // grid) % grid, k % grid
        x, y = j * cell + int(jitter[k, 0]), i * cell + int(jitter[k, 1])
        images[b, :, y : y + patch, x : x + patch] += glyphs[k]
        boxes.append([x, y, x + patch, y + patch])
    o2i = torch.arange(batch).repeat_interleave(grid * grid)
    return images, torch.tensor(boxes), o2i, kinds


class PatchClassifier(nn.Module):
    """Classify every object from its patch: ``(images, boxes, obj_to_img) -> [N, classes]``."""

    def __init__(self, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * (patch // 4) ** 2, 64),
            nn.ReLU(),
            nn.Linear(64, len(GLYPHS)),
        )

    def forward(self, images: Tensor, boxes: Tensor, obj_to_img: Tensor) -> Tensor:
        rois = torch.cat((obj_to_img[:, None].float(), boxes.float()), 1)
        size = (self.patch, self.patch)
        return self.net(roi_align(images, rois, size, sampling_ratio=1, aligned=True))


def worst_case(model, aug, images, boxes, o2i, labels, steps, restarts=1):
    """Per-object worst-case parameters of ``aug`` for ``model`` (best of ``restarts``)."""

    def per_object_loss(result):  # the box of every object is where its content stays
        return TF.cross_entropy(model(result.images, boxes, o2i), labels, reduction="none")

    best, best_loss = None, None
    for _ in range(restarts):
        adv = attack(aug, per_object_loss, images, boxes, o2i, steps=steps, step_size=0.3)
        with torch.no_grad():
            loss = per_object_loss(aug(images, boxes, o2i, params=adv))
        if best is None:
            best, best_loss = adv, loss
            continue
        better = loss > best_loss
        best_loss = torch.where(better, loss, best_loss)
        for key in ("angle", "scale"):
            best[key] = torch.where(
                better.view(-1, *[1] * (adv[key].dim() - 1)), adv[key], best[key]
            )
        best.pop("theta", None)
    return best


def train(adversarial: bool, steps: int, batch: int, grid: int, patch: int, seed: int):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = PatchClassifier(patch)
    aug = RandomPatchAffine(degrees=DEGREES, scale=SCALE, p=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(steps):
        images, boxes, o2i, labels = make_batch(batch, grid, patch, g)
        loss = TF.cross_entropy(model(images, boxes, o2i), labels)
        if adversarial:
            model.eval()  # attack() never updates the model; eval() keeps any BN/dropout still
            adv = worst_case(model, aug, images, boxes, o2i, labels, steps=3)
            model.train()
            hard = aug(images, boxes, o2i, params=adv).images
            loss = (loss + TF.cross_entropy(model(hard, boxes, o2i), labels)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def evaluate(model, patch: int, grid: int, smoke: bool) -> tuple[float, float]:
    """Clean and worst-case accuracy on held-out scenes."""
    images, boxes, o2i, labels = make_batch(
        4 if smoke else 32, grid, patch, torch.Generator().manual_seed(99)
    )
    model.eval()
    aug = RandomPatchAffine(
        degrees=DEGREES, scale=SCALE, p=1.0, generator=torch.Generator().manual_seed(7)
    )
    with torch.no_grad():
        clean = (model(images, boxes, o2i).argmax(1) == labels).float().mean()
    adv = worst_case(
        model, aug, images, boxes, o2i, labels, steps=2 if smoke else 10, restarts=1 if smoke else 3
    )
    with torch.no_grad():
        attacked = aug(images, boxes, o2i, params=adv).images
        robust = (model(attacked, boxes, o2i).argmax(1) == labels).float().mean()
    return float(clean), float(robust)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (small models: 1 avoids contention)"
    )
    args = parser.parse_args()
    if not args.smoke:  # (the smoke run may share a process with other code)
        torch.set_num_threads(args.threads)
    steps, batch, grid, patch = (2, 2, 2, 16) if args.smoke else (args.steps, 8, 2, 20)
    results = {}
    for name, adversarial in (("plain", False), ("adversarial", True)):
        start = time.perf_counter()
        model = train(adversarial, steps, batch, grid, patch, args.seed)
        clean, robust = evaluate(model, patch, grid, args.smoke)
        results[name] = robust
        print(
            f"  {name:>11}: {steps} steps in {time.perf_counter() - start:.0f}s; accuracy clean "
            f"{clean:.1%}, under the worst-case per-object rotation (+-{DEGREES:g} deg) and "
            f"scale {SCALE} {robust:.1%}"
        )
    print(
        f"adversarial training recipe: worst-case accuracy {results['plain']:.1%} (plain) -> "
        f"{results['adversarial']:.1%} (adversarial)"
    )
    if not args.smoke and results["adversarial"] <= results["plain"]:
        raise SystemExit("the adversarial model is not more robust than the plain one")


if __name__ == "__main__":
    main()
