"""Recipe: the differentiable policy search under ``DistributedDataParallel`` (gloo, CPU).

The search of ``differentiable_search.py`` on 2 processes. The policy's
magnitudes, probabilities and selection weights are ordinary ``nn.Parameter`` s,
so DDP averages their gradients like the critic's and the classifier's; every
rank draws its own data and its own per-object augmentation parameters. The
recipe checks, after every step, that all parameters are bit-for-bit identical
on both ranks, and once that the two ranks' draws differ.

Seeding: the models are built from the same seed (DDP also broadcasts rank 0's
parameters when it wraps them); the data generator and the policy's
``generator`` are seeded with ``seed + rank`` so that every rank augments
differently (without a generator the policy draws from the global RNG: seed it
per rank with ``torch.manual_seed(seed + rank)`` after building the models).

    torchrun --nproc_per_node=2 recipes/ddp_search.py            # a few minutes, 2 cores
    python recipes/ddp_search.py [--smoke]    # starts torchrun with 2 processes itself

Needs torch and torchvision.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

WORLD = 2


def launch(argv: list[str]) -> None:
    """Run this file under ``torchrun --standalone --nproc_per_node=2`` and relay its output."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={WORLD}",
        str(Path(__file__).resolve()),
        *argv,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    # a smoke run takes well under a minute: a hung rank fails it in 10 minutes, not 30
    timeout = 600 if "--smoke" in argv else 1800
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    print(proc.stdout, end="")
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"torchrun failed with exit code {proc.returncode}")


def flat_parameters(*modules: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for m in modules for p in m.parameters()])


def same_on_all_ranks(x: torch.Tensor) -> bool:
    """Whether ``x`` is bit-for-bit equal on every rank."""
    gathered = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, x)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def worker(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from differentiable_search import (
        TARGET_DEG,
        TARGET_SCALE,
        build,
        make_batch,
        run_search,
        summary,
        target_accuracy,
    )

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    steps, warmup, batch, grid, patch = (
        (3, 1, 2, 2, 16) if args.smoke else (args.steps, args.warmup, 4, 2, 20)
    )

    torch.manual_seed(args.seed)  # the same models on every rank
    s = build(patch, 2, 2, args.straight_through)
    s.policy.generator = torch.Generator().manual_seed(args.seed + 1 + rank)  # own draws
    data = torch.Generator().manual_seed(args.seed + 1000 * (rank + 1))  # own data

    # the draws differ across ranks (the same probe batch on every rank)
    probe = make_batch(1, grid, patch, torch.Generator().manual_seed(5))
    with torch.no_grad():
        drawn = s.policy(probe.images, probe.boxes, probe.obj_to_img).params["op_value"]
    draws_differ = not same_on_all_ranks(drawn.contiguous())

    # every learnable tensor is an nn.Parameter: DDP averages the policy's gradients too
    modules = [
        DDP(s.policy, broadcast_buffers=False),
        DDP(s.critic),
        DDP(s.classifier),
        DDP(s.baseline),
    ]
    s.policy, s.critic, s.classifier, s.baseline = modules
    identical = []

    def check(step: int) -> None:
        if not same_on_all_ranks(flat_parameters(*modules)):
            raise SystemExit(f"rank {rank}: parameters differ across ranks after step {step + 1}")
        identical.append(step)

    start = time.perf_counter()
    distances = run_search(
        s,
        steps,
        warmup,
        batch,
        grid,
        patch,
        data,
        log=rank == 0 and not args.smoke,
        after_step=check,
    )
    # the critic's estimate averaged over the ranks
    mean = torch.tensor(distances)
    dist.all_reduce(mean)
    mean /= world
    if rank == 0:
        g = torch.Generator().manual_seed(1)
        held_out = make_batch(16, grid, patch, g, TARGET_DEG, TARGET_SCALE)
        print(s.policy.module.describe(top=3))
        print(
            f"ddp search recipe: {world} ranks (gloo) x {batch} images, {steps} steps in "
            f"{time.perf_counter() - start:.0f}s; parameters identical on all ranks after "
            f"{len(identical)}/{steps} steps; per-object draws differ across ranks: "
            f"{draws_differ}; {summary(mean.tolist(), warmup)}; target accuracy "
            f"{target_accuracy(s.classifier.module, held_out, patch):.1%} "
            f"(baseline {target_accuracy(s.baseline.module, held_out, patch):.1%})",
            flush=True,
        )
    if not draws_differ:
        raise SystemExit("the ranks drew the same augmentation parameters")
    dist.barrier()  # no rank tears gloo down while another still finishes a collective
    dist.destroy_process_group()
    # Leave without tearing down Python objects. At torch 2.8, freeing the DDP modules'
    # Reducers at interpreter exit destroys the gloo process group while holding the GIL,
    # and a gloo thread still freeing a collective's tensors waits for that GIL: the rank
    # hangs after its work is done (seen in CI, now and then; pytorch/pytorch#190489).
    # Everything is printed and checked by now; torchrun only needs exit code 0.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=100, help="critic-only steps first")
    parser.add_argument("--straight-through", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # started by torchrun
        torch.set_num_threads(1)
        worker(args)
    else:
        launch(sys.argv[1:])


if __name__ == "__main__":
    main()
