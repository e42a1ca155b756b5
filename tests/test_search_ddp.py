"""``PatchPolicy`` and a learnable ``p`` under ``DistributedDataParallel`` (2 processes, gloo)."""

from __future__ import annotations

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP


def _gather(x: torch.Tensor) -> list[torch.Tensor]:
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return out


def _worker(rank: int, world: int, store: str, result_dir: str) -> None:
    from augpatch.search import PatchPolicy
    from augpatch.transforms import PatchSequential, RandomPatchRotation

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.manual_seed(0)  # the same initial parameters on every rank
    policy = PatchPolicy(num_sub_policies=2, operation_count=2)
    p = torch.nn.Parameter(torch.tensor(0.5))
    aug = PatchSequential(policy, RandomPatchRotation(torch.nn.Parameter(torch.tensor(20.0)), p=p))
    # per-rank draws: the transforms draw from their generator (or the global RNG)
    policy.generator = torch.Generator().manual_seed(100 + rank)
    aug[1].generator = torch.Generator().manual_seed(200 + rank)
    model = DDP(aug, broadcast_buffers=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    images = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(3))
    boxes = torch.tensor([[0, 0, 12, 12], [12, 12, 24, 24], [2, 3, 20, 21]])
    o2i = torch.tensor([0, 0, 1])
    thetas = []
    for _ in range(2):
        res = model(images, boxes, o2i)  # the same data on every rank: only the draws differ
        thetas.append(res.params["theta"])
        opt.zero_grad()
        res.images.square().mean().backward()
        grads = torch.cat([q.grad.reshape(-1) for q in model.parameters()])
        opt.step()
        policy.project_()
        flat = torch.cat([q.detach().reshape(-1) for q in model.parameters()])
        same_params = all(torch.equal(flat, other) for other in _gather(flat))
        same_grads = all(torch.equal(grads, other) for other in _gather(grads))
        if not (same_params and same_grads):
            raise AssertionError(f"rank {rank}: parameters or gradients differ across ranks")
    theta = torch.stack(thetas)
    draws_differ = not torch.equal(*_gather(theta))
    nonzero = [bool((q.grad != 0).any()) for q in model.parameters()]
    torch.save({"draws_differ": draws_differ, "nonzero": nonzero}, f"{result_dir}/{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()
    # Leave without tearing down Python objects: at torch 2.8, freeing the DDP model's
    # Reducer destroys the gloo process group while holding the GIL, and a gloo thread
    # still freeing an all_gather's tensors waits for that GIL: a deadlock (seen in CI).
    # The results are on disk; mp.spawn only needs exit code 0.
    os._exit(0)


def test_two_process_ddp_averages_policy_and_p_gradients_with_per_rank_draws():
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        mp.spawn(_worker, args=(2, store, tmp), nprocs=2, join=True)
        results = [torch.load(os.path.join(tmp, f"{r}.pt")) for r in range(2)]
    for res in results:
        assert res["draws_differ"]
        assert len(res["nonzero"]) == 5 and all(res["nonzero"])  # magnitude, prob., weights, p, deg
