"""seed_worker's reseed hooks: albumentations states in DataLoader workers (real workers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

A = pytest.importorskip("albumentations")

from augpatch.data import register_reseed_hook, seed_worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Draws(Dataset):
    """Each item: a random draw of an albumentations Compose and of a custom sampler."""

    def __init__(self) -> None:
        self.compose = A.Compose([A.HorizontalFlip(p=0.5)], seed=0)
        self.sampler = Sampler()

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[float, int]:
        return float(self.compose.random_generator.random()), self.sampler.draw()


class Sampler:
    def __init__(self) -> None:
        self.state = 0

    def draw(self) -> int:
        self.state += 1
        return self.state * 1000 + self.reseeded % 1000

    reseeded = 0


def reseed_sampler(obj: object, worker_seed: int) -> int:
    if isinstance(obj, Sampler):
        obj.reseeded = worker_seed
        return 1
    return 0


def _draws(seed: int) -> list:
    loader = DataLoader(
        Draws(), batch_size=None, num_workers=2, worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )
    return list(loader)


def test_seed_worker_reseeds_albumentations_and_registered_hooks_per_worker() -> None:
    register_reseed_hook(reseed_sampler)
    register_reseed_hook(reseed_sampler)  # twice: no effect
    first = _draws(0)
    worker0, worker1 = first[0::2], first[1::2]  # items alternate between the workers
    assert [a for a, _ in worker0] != [a for a, _ in worker1]  # albumentations reseeded
    assert {b % 1000 for _, b in worker0} != {b % 1000 for _, b in worker1}  # the hook ran
    assert _draws(0) == first  # reproducible
    assert _draws(1) != first


def test_seed_worker_loads_the_albumentations_hook_itself() -> None:
    """A process that loaded albumentations but not augpatch's integration still gets
    its Compose reseeded: seed_worker imports the integration (no import circle)."""
    code = (
        "import sys, albumentations\n"
        "import augpatch.data as d\n"
        "assert 'augpatch.integrations.albumentations' not in sys.modules\n"
        "d._load_reseed_integrations()\n"
        "from augpatch.integrations.albumentations import reseed_albumentations\n"
        "assert reseed_albumentations in d._RESEED_HOOKS\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"NO_ALBUMENTATIONS_UPDATE": "1", **__import__("os").environ},
    )
    assert result.returncode == 0, result.stderr[-3000:]
