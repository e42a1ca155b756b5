"""The compiled CPU warp kernel's forward alone (no planning, no checks): this build against
another build of the kernel loaded in the same process, interleaved, thread CPU time.

    python benchmarks/forward_kernel.py [--other NAMESPACE] [--rounds 30] [--cases ...] [--threads 1]

``--other``: the ``torch.ops`` namespace of the other build (e.g. ``augpatch_cpu_main``: main's
``warp_cpu.cpp`` built with its ``TORCH_LIBRARY`` namespace renamed, loaded with
``--other-library PATH.so``); without it the comparison is this build's row path
(``warp_forward``) against its per-pixel path (``warp_forward_per_pixel``). Every case's outputs
are checked bit for bit between both sides first. The arguments of the kernel are those the
operator passes it for the case (captured from one ``warp_patches`` call).

``--threads``: torch's intra-op threads while timing (default 1). At 1 thread each call is
timed by the calling thread's CPU time; at more, by wall time (the other threads' work is not
the caller's CPU time), so on a shared machine repeat the run and compare the ratios; there
``--stat p10`` (the 10th percentile of each side's times instead of the median) shows the calls
that found every core free (a call whose second thread waits for a busy core takes a
scheduler time slice, several milliseconds).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from augpatch.testing.kernel_calls import compiled_kernel_calls


def _theta(n: int, g: torch.Generator, degrees: float = 15.0, dtype=torch.float32) -> torch.Tensor:
    a = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.radians(degrees)
    s = 0.9 + 0.2 * torch.rand(n, generator=g, dtype=torch.float64)
    c, si = torch.cos(a) / s, torch.sin(a) / s
    t = (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * 0.1
    return torch.stack([torch.stack([c, -si, t[:, 0]], 1), torch.stack([si, c, t[:, 1]], 1)], 1).to(dtype)


def _boxes(n: int, h: int, w: int, lo: int, hi: int, g: torch.Generator) -> torch.Tensor:
    side = torch.randint(lo, hi + 1, (n, 2), generator=g)
    x = (torch.rand(n, generator=g) * (w - side[:, 0] + 1)).long()
    y = (torch.rand(n, generator=g) * (h - side[:, 1] + 1)).long()
    return torch.stack((x, y, x + side[:, 0], y + side[:, 1]), 1).float()


def cases() -> dict[str, dict]:
    """name -> warp_patches arguments (images, boxes, theta, obj_to_img, keywords)."""
    g = torch.Generator().manual_seed(0)
    u640 = torch.randint(0, 256, (1, 3, 480, 640), dtype=torch.uint8, generator=g)
    b640 = _boxes(7, 480, 640, 32, 160, g)
    u512 = torch.randint(0, 256, (1, 3, 512, 512), dtype=torch.uint8, generator=g)
    b512 = _boxes(8, 512, 512, 51, 154, g)
    fm = torch.rand(16, 3, 512, 512, generator=g)
    bm = _boxes(256, 512, 512, 16, 96, g)
    om = torch.randint(0, 16, (256,), generator=g)
    # uneven box work: every box on the first of two images; one busy image among eight
    f2, b2 = torch.rand(2, 3, 512, 512, generator=g), _boxes(64, 512, 512, 16, 96, g)
    f8, b8 = torch.rand(8, 3, 256, 256, generator=g), _boxes(64, 256, 256, 16, 64, g)
    o8 = torch.cat([torch.zeros(50, dtype=torch.long), torch.arange(1, 8).repeat(2)])
    t7, t8, t256, t64 = _theta(7, g), _theta(8, g), _theta(256, g), _theta(64, g)
    z7, z8 = torch.zeros(7, dtype=torch.long), torch.zeros(8, dtype=torch.long)
    cl = {"memory_format": torch.channels_last}
    return {
        "u8 640 bilinear zeros (tv_tensor)": (u640, b640, t7, z7, {}),
        "u8 640 bilinear zeros, channels-last (tv_pil)": (u640.to(**cl), b640, t7, z7, {}),
        "u8 512 bilinear zeros, channels-last (albumentations)": (u512.to(**cl), b512, t8, z8, {}),
        "u8 512 nearest zeros": (u512, b512, t8, z8, {"mode": "nearest"}),
        "u8 512 bilinear border": (u512, b512, t8, z8, {"padding_mode": "border"}),
        "u8 512 bilinear reflection": (u512, b512, t8, z8, {"padding_mode": "reflection"}),
        "u8 512 bilinear image": (u512, b512, t8, z8, {"padding_mode": "image"}),
        "f32 M bilinear zeros": (fm, bm, t256, om, {}),
        "f32 M nearest zeros": (fm, bm, t256, om, {"mode": "nearest"}),
        "f64 512 bilinear zeros": (u512.double() / 255, b512, t8.double(), z8, {}),
        "f32 2x512 every box on one image": (f2, b2, t64, torch.zeros(64, dtype=torch.long), {}),
        "f32 8x256 one busy image": (f8, b8, t64, o8, {}),
    }


def bench_cases() -> dict[str, tuple]:
    """The bench's S, M and many (``augpatch.bench.inputs``: float32, bilinear, zeros padding,
    sequential overlap levels; images and theta need gradients, so the kernel keeps what the
    location gradient of the levels after the first reads: ``Keeper``)."""
    from augpatch.bench.inputs import make_inputs
    from augpatch.bench.scenarios import SCENARIOS

    out = {}
    for name in ("S", "M", "many"):
        x = make_inputs(SCENARIOS[name])
        out[f"f32 {name} bench (gradients)"] = (x.images, x.boxes, x.theta, x.obj_to_img, {"_grad": True})
    return out


def capture(args) -> tuple:
    """The compiled kernel's arguments of one warp_patches call (its first forward)."""
    images, boxes, theta, obj, kw = args
    kw = dict(kw)
    if kw.pop("_grad", False):
        return compiled_kernel_calls(images, boxes, theta, obj, **kw)[0]
    with torch.no_grad():
        return compiled_kernel_calls(images, boxes, theta, obj, **kw)[0]


def _bits(t: torch.Tensor) -> torch.Tensor:
    """``t``'s bits (a float tensor may hold kept1's int64 words, NaN patterns included)."""
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    return t.detach().contiguous().view(ints[t.element_size()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", default=None)
    parser.add_argument("--other-library", default=None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cases", nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stat", choices=("median", "p10"), default="median")
    cfg = parser.parse_args()
    torch.set_num_threads(1)
    table = {**cases(), **bench_cases()}
    kargs = {name: capture(args) for name, args in table.items() if cfg.cases is None or name in cfg.cases}
    torch.set_num_threads(cfg.threads)
    clock = time.thread_time if cfg.threads == 1 else time.perf_counter
    if cfg.other_library:
        torch.ops.load_library(cfg.other_library)
    ops = torch.ops.augpatch_cpu
    new = ops.warp_forward
    old = getattr(torch.ops, cfg.other).warp_forward if cfg.other else ops.warp_forward_per_pixel
    label = cfg.other or "per_pixel"
    print(f"threads {cfg.threads}, {'thread CPU' if cfg.threads == 1 else 'wall'} time, {cfg.stat} of {cfg.rounds}")
    print(f"{'case':52s} {'this ms':>9s} {label + ' ms':>18s} {'this/' + label:>14s}")
    for name, a in kargs.items():
        for x, y in zip(new(*a), old(*a)):  # the output, kept0, kept1 (int64 words in a float tensor)
            assert torch.equal(_bits(x), _bits(y)), f"{name}: outputs differ"
        times: dict[str, list[float]] = {"new": [], "old": []}
        pair = [("new", new), ("old", old)]
        for r in range(cfg.rounds + 2):
            for key, fn in pair[r % 2:] + pair[: r % 2]:
                t0 = clock()
                fn(*a)
                if r >= 2:
                    times[key].append(clock() - t0)
        stat = statistics.median if cfg.stat == "median" else (lambda v: statistics.quantiles(v, n=10)[0])
        tn, to = stat(times["new"]) * 1e3, stat(times["old"]) * 1e3
        print(f"{name:52s} {tn:9.3f} {to:18.3f} {tn / to:14.2f}")


if __name__ == "__main__":
    main()
