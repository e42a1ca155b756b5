"""Recipe: a per-object spatial transformer that straightens every object of a scene.

The question augpatch grew out of: give every object its own affine, inside the
forward pass, and train through it. Synthetic scenes hold several glyphs per
image, each rotated by its own random angle; a small localisation network looks
at each object's patch (``torchvision.ops.roi_align``) and predicts its ``theta``
(``F.affine_grid`` convention, initialised to the identity);
``augpatch.functional.warp_patches`` applies all of them in one call and the
loss compares the result with the upright scene. Prints the loss at the start
and at the end and saves a before/after PNG (rows: input, straightened, target).

    python recipes/stn_per_object.py            # a few minutes on 2 CPU cores
    python recipes/stn_per_object.py --smoke    # seconds

Needs torch and torchvision.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align
from torchvision.utils import make_grid, save_image

from augpatch.functional import warp_patches

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the recipes' shared _glyphs.py
from _glyphs import GLYPHS, render  # noqa: E402


def rotation(angle: Tensor) -> Tensor:
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)


def make_scenes(batch: int, grid: int, patch: int, max_deg: float, g: torch.Generator):
    """Images ``[B, 1, S, S]`` with ``grid x grid`` rotated glyphs each, the upright
    targets, integer boxes ``[N, 4]`` and ``obj_to_img [N]``."""
    cell = patch + 4
    size = grid * cell
    n = batch * grid * grid
    kinds = torch.randint(0, len(GLYPHS), (n,), generator=g)
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(max_deg)
    scale = 1 + 0.1 * (torch.rand(n, generator=g) * 2 - 1)
    tilted = render(kinds, patch, rotation(angle) / scale[:, None, None])
    upright = render(kinds, patch, torch.eye(2).expand(n, 2, 2) / scale[:, None, None])
    images = torch.zeros(batch, 1, size, size)
    targets = torch.zeros(batch, 1, size, size)
    boxes, o2i = [], []
    jitter = torch.randint(0, 5, (n, 2), generator=g)
    k = 0
    for b in range(batch):
        for i in range(grid):
            for j in range(grid):
                x, y = j * cell + int(jitter[k, 0]), i * cell + int(jitter[k, 1])
                images[b, :, y : y + patch, x : x + patch] = tilted[k]
                targets[b, :, y : y + patch, x : x + patch] = upright[k]
                boxes.append([x, y, x + patch, y + patch])
                o2i.append(b)
                k += 1
    return images, targets, torch.tensor(boxes), torch.tensor(o2i)


class Localiser(nn.Module):
    """Patch ``[N, 1, P, P]`` -> ``theta [N, 2, 3]``, starting at the identity."""

    def __init__(self, patch: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * (patch // 4) ** 2, 64),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, 6)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]))

    def forward(self, patches: Tensor) -> Tensor:
        return self.head(self.features(patches)).view(-1, 2, 3)


def straighten(net: Localiser, images: Tensor, boxes: Tensor, o2i: Tensor, patch: int) -> Tensor:
    rois = torch.cat((o2i[:, None].float(), boxes.float()), 1)
    crops = roi_align(images, rois, (patch, patch), sampling_ratio=1, aligned=True)
    return warp_patches(images, boxes, net(crops), o2i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--max-deg", type=float, default=45.0)
    parser.add_argument("--out", type=Path, default=None, help="PNG path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (small models: 1 avoids contention)"
    )
    args = parser.parse_args()
    if not args.smoke:  # (the smoke run may share a process with other code)
        torch.set_num_threads(args.threads)
    steps, batch, grid, patch = (4, 2, 2, 16) if args.smoke else (args.steps, 8, 3, 24)
    out = args.out or (
        Path(tempfile.gettempdir()) / "stn_per_object_smoke.png"
        if args.smoke
        else Path("stn_per_object.png")
    )
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    test = make_scenes(batch, grid, patch, args.max_deg, torch.Generator().manual_seed(10_000))

    net = Localiser(patch)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))

    def test_loss() -> float:
        with torch.no_grad():
            images, targets, boxes, o2i = test
            return float((straighten(net, images, boxes, o2i, patch) - targets).square().mean())

    start_loss = test_loss()
    if not args.smoke:
        print(f"  start: test loss {start_loss:.5f}")
    start = time.perf_counter()
    for step in range(steps):
        images, targets, boxes, o2i = make_scenes(batch, grid, patch, args.max_deg, g)
        loss = (straighten(net, images, boxes, o2i, patch) - targets).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if not args.smoke and (step + 1) % 100 == 0:
            print(f"  step {step + 1}: train loss {loss.item():.5f}, test loss {test_loss():.5f}")
    end_loss = test_loss()

    images, targets, boxes, o2i = test
    with torch.no_grad():
        fixed = straighten(net, images, boxes, o2i, patch)
    rows = torch.cat((images[:4], fixed[:4], targets[:4]))
    save_image(make_grid(rows, nrow=min(4, images.shape[0]), padding=2, pad_value=0.5), out)
    ratio = start_loss / max(end_loss, 1e-12)
    print(
        f"stn recipe: {steps} steps of {batch * grid * grid} objects in "
        f"{time.perf_counter() - start:.0f}s; test loss {start_loss:.5f} -> {end_loss:.5f} "
        f"({ratio:.1f}x lower); before/after PNG: {out}"
    )
    if not args.smoke and ratio < 5:
        raise SystemExit(f"the loss fell only {ratio:.1f}x (expected >= 5x)")


if __name__ == "__main__":
    main()
