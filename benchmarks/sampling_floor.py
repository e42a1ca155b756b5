"""How far ``warp_patches`` forward + backward is from the floor issue 21 describes: "a
clone's fwd+bwd plus the work on the boxes' pixels", with that work measured by PyTorch's
own vectorised kernels rather than estimated.

    python benchmarks/sampling_floor.py S [--rounds 40] [--threads 1] [--json FILE]

Four methods, interleaved in one process (the starting method rotates each round), thread
CPU time with one thread (wall time otherwise), each with the bench's weighted loss
(``dot(out.flatten(), w)``) and its backward:

``augpatch``
    ``warp_patches(images, boxes, theta, obj_to_img)``, the bench's call.
``clone``
    ``images.clone()``: the floor of the copy.
``boxes_grid_sample``
    the sampling work of the boxes alone, as cheaply as PyTorch does it: one
    ``F.affine_grid`` + ``F.grid_sample`` (bilinear, zeros) of ``N`` square patches with as
    many pixels in all as the scenario's boxes (side ``round(sqrt(mean box area))``), with
    the gradients of the patches and of ``theta`` (what the warp computes for the boxes'
    pixels: no copy of the batch, no crop, no paste, no overlap order).
``boxes_grid_sample_fwd``
    the same forward alone, under ``no_grad`` (a forward without the location work a
    gradient needs).
``kernel_only``
    augpatch's compiled CPU kernel alone on the plan of the bench's call
    (``augpatch_cpu::warp_forward``, then ``warp_backward_into`` with ``theta``'s location
    gradient), around the same loss as the others (its ``dot``, and the fresh output gradient
    its backward makes): what augpatch would cost with no checks, planning, Python, autograd
    or parameter chain rule at all. Only where the compiled kernel is active.

Prints the medians (ms) and the ratios augpatch / clone (issue 21's target: <= 2),
augpatch / (clone + boxes_grid_sample) (the floor as the issue describes it, measured) and
kernel_only / clone. If the boxes' sampling alone costs more than a clone, a warp that
samples them cannot be within 2x a clone; if kernel_only is over 2x a clone, no saving
outside the kernel can bring augpatch within it: see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from augpatch.bench.inputs import BenchInputs, make_inputs
from augpatch.bench.scenarios import SCENARIOS
from augpatch.functional import warp_patches
from augpatch.ops import compiled_ops
from augpatch.testing.kernel_calls import compiled_kernel_calls


def box_pixels(boxes: torch.Tensor, height: int, width: int) -> int:
    """Pixels inside the boxes (clipped to the image), counted with multiplicity."""
    b = boxes.detach().round().long()
    w = (b[:, 2].clamp(0, width) - b[:, 0].clamp(0, width)).clamp(min=0)
    h = (b[:, 3].clamp(0, height) - b[:, 1].clamp(0, height)).clamp(min=0)
    return int((w * h).sum())


def kernel_only(x: BenchInputs) -> Callable[[], tuple[torch.Tensor, ...]] | None:
    """The compiled kernel's forward and backward operators alone on the plan of the bench's
    call, around the bench's loss; the function returns ``(out, images' gradient, the
    parameters' gradient)``. ``None`` where the compiled kernel does not run the call (not
    active, or one or two integer boxes: ``warp_patches`` answers those without it)."""
    ops = compiled_ops(x.images.device)
    theta = x.theta.detach().requires_grad_(True)  # the plan with theta's location gradient
    calls = compiled_kernel_calls(x.images.detach(), x.boxes, theta, x.obj_to_img)
    if ops is None or len(calls) != 1:
        return None
    imgs, params, objects, levels, options, _ = calls[0]
    weight = x.weight if x.weight is not None else torch.ones(imgs.numel())

    def run() -> tuple[torch.Tensor, ...]:
        out, kept0, kept1 = ops.warp_forward(imgs, params, objects, levels, options, True)
        torch.dot(out.reshape(-1), weight)  # the loss
        grad = weight.view(out.shape) * 1.0  # its backward: a fresh output gradient
        g_params = ops.warp_backward_into(grad, imgs, params, objects, levels, kept0, kept1, options, True)
        return out, grad, g_params

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("scenario", nargs="?", default="S", choices=sorted(SCENARIOS))
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    s = SCENARIOS[args.scenario]
    x = make_inputs(s)
    n = len(x.boxes)
    pixels = box_pixels(x.boxes, s.height, s.width)
    side = max(1, round(math.sqrt(pixels / n)))
    g = torch.Generator().manual_seed(0)
    patches = torch.rand(n, s.channels, side, side, generator=g).requires_grad_(True)
    theta = x.theta.detach().clone().requires_grad_(True)
    w_patch = torch.rand(patches.numel(), generator=g)

    def augpatch() -> None:
        x.loss(warp_patches(x.images, x.boxes, x.theta, x.obj_to_img)).backward()

    def clone() -> None:
        x.loss(x.images.clone()).backward()

    def sample() -> torch.Tensor:
        grid = F.affine_grid(theta, list(patches.shape), align_corners=False)
        return F.grid_sample(patches, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def boxes_grid_sample() -> None:
        torch.dot(sample().flatten(), w_patch).backward()

    def boxes_grid_sample_fwd() -> None:
        with torch.no_grad():
            sample()

    methods: list[tuple[str, Callable[[], object]]] = [
        ("augpatch", augpatch), ("clone", clone), ("boxes_grid_sample", boxes_grid_sample),
        ("boxes_grid_sample_fwd", boxes_grid_sample_fwd)]
    kernel = kernel_only(x)
    if kernel is not None:
        methods.append(("kernel_only", kernel))
    times: dict[str, list[float]] = {k: [] for k, _ in methods}
    for r in range(args.rounds + 3):
        k = r % len(methods)
        for key, fn in methods[k:] + methods[:k]:
            x.zero_grad()
            patches.grad = theta.grad = None
            t0 = clock()
            fn()
            if r >= 3:  # warm-up rounds
                times[key].append(clock() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    floor = med["clone"] + med["boxes_grid_sample"]
    print(f"{args.scenario}: {n} boxes, {pixels} box pixels ({pixels / (s.batch * s.height * s.width):.0%} of the "
          f"batch's), patches {n}x{s.channels}x{side}x{side}; threads={args.threads}, "
          f"{'thread CPU' if args.threads == 1 else 'wall'} time, {args.rounds} rounds, medians in ms")
    for k, v in med.items():
        print(f"  {k:22s} {v:8.2f}")
    print(f"  augpatch / clone                          {med['augpatch'] / med['clone']:.2f}  (issue 21: <= 2)")
    print(f"  boxes_grid_sample / clone                 {med['boxes_grid_sample'] / med['clone']:.2f}")
    print(f"  augpatch / (clone + boxes_grid_sample)    {med['augpatch'] / floor:.2f}  (the issue's floor, measured)")
    if "kernel_only" in med:
        print(f"  kernel_only / clone                       {med['kernel_only'] / med['clone']:.2f}  "
              "(the kernel alone, no overhead)")
    else:
        print("  kernel_only: not run (the compiled CPU kernel does not run this call)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scenario": args.scenario, "threads": args.threads, "rounds": args.rounds,
                       "box_pixels": pixels, "patch_side": side, "median_ms": med,
                       "augpatch_over_clone": med["augpatch"] / med["clone"],
                       "augpatch_over_floor": med["augpatch"] / floor,
                       "kernel_only_over_clone": med["kernel_only"] / med["clone"] if "kernel_only" in med else None},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
