"""Worker seeding: :func:`seed_worker` (a ``worker_init_fn``), reseed hooks and
:func:`mix_seeds`."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

# --------------------------------------------------------------------------- workers


def mix_seeds(seed: int, salt: int) -> int:
    """Deterministically combine two seeds into a 63-bit seed (splitmix64 finaliser).

    Example:
        >>> mix_seeds(0, 1) == mix_seeds(0, 1) != mix_seeds(0, 2)
        True
    """
    z = (seed * 0x9E3779B97F4A7C15 + salt + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


_MAX_CONTAINER = 256

#: Reseed hooks :func:`seed_worker` calls on every object reachable from a worker's dataset.
_RESEED_HOOKS: list[Callable[[Any, int], int]] = []
#: Third-party libraries whose augpatch integration registers a reseed hook: when the
#: library is loaded in a worker, :func:`seed_worker` imports the integration first.
_RESEED_INTEGRATIONS = {"albumentations": "augpatch.integrations.albumentations"}


def register_reseed_hook(hook: Callable[[Any, int], int]) -> Callable[[Any, int], int]:
    """Make :func:`seed_worker` call ``hook(obj, worker_seed)`` on every reachable object.

    A hook reseeds the random state ``obj`` holds when it is of a kind the hook knows
    (e.g. an albumentations transform) and returns how many states it reseeded (0
    otherwise). Registering the same hook twice has no effect. Returns ``hook`` (so it
    can decorate).

    Example:
        >>> def reseed_my_sampler(obj, worker_seed):
        ...     return 0  # reseed obj's state here when obj is one of mine
        >>> register_reseed_hook(reseed_my_sampler) is reseed_my_sampler
        True
    """
    if hook not in _RESEED_HOOKS:
        _RESEED_HOOKS.append(hook)
    return hook


def _load_reseed_integrations() -> None:
    """Import the augpatch integrations of the libraries this process has loaded."""
    import importlib

    for library, module in _RESEED_INTEGRATIONS.items():
        if library in sys.modules:
            importlib.import_module(module)  # registers its hook


def _reseed_reachable(root: Any, worker_seed: int, max_depth: int = 8) -> int:
    """Reseed every ``torch.Generator`` reachable from ``root`` and every random state a
    registered reseed hook knows (:func:`register_reseed_hook`).

    Walks attributes, ``nn.Module`` children, lists, tuples and dicts. Returns
    how many random states were reseeded.
    """
    seen: set[int] = set()
    count = 0

    def visit(obj: Any, depth: int) -> None:
        nonlocal count
        if depth > max_depth or id(obj) in seen:
            return
        if obj is None or isinstance(obj, (str, bytes, int, float, bool, Tensor, type)):
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Generator):
            obj.manual_seed(mix_seeds(worker_seed, obj.initial_seed()))
            count += 1
            return
        for hook in _RESEED_HOOKS:
            count += hook(obj, worker_seed)
        if isinstance(obj, Mapping):
            if len(obj) <= _MAX_CONTAINER:  # skip big annotation tables
                for v in list(obj.values()):
                    visit(v, depth + 1)
            return
        if isinstance(obj, (list, tuple, set, frozenset)):
            if len(obj) <= _MAX_CONTAINER:
                for v in list(obj):
                    visit(v, depth + 1)
            return
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            for v in list(attrs.values()):
                visit(v, depth + 1)

    visit(root, 0)
    return count


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` that gives every DataLoader worker its own reproducible random streams.

    PyTorch already seeds each worker's global torch RNG with
    ``base_seed + worker_id`` (``base_seed`` is drawn from the main process's
    torch RNG, so ``torch.manual_seed`` or ``DataLoader(generator=...)`` makes a
    run reproducible). What it does not do is reseed random states that were
    *copied* into the workers: an augpatch transform built with
    ``generator=torch.Generator().manual_seed(0)``, an ``A.Compose(seed=...)``,
    numpy's and Python's global RNGs. Without this function every worker draws
    the *same* augmentation parameters. ``seed_worker`` reseeds, from the
    worker's torch seed:

    * Python's ``random`` and numpy's global RNG;
    * every ``torch.Generator`` reachable from the worker's dataset (attributes,
      ``nn.Module`` children, lists, dicts), and every random state a reseed hook
      knows (:func:`register_reseed_hook`; augpatch's albumentations integration
      registers one for ``A.Compose`` and its transforms, loaded automatically when
      albumentations is), each mixed with its own original seed so distinct
      generators stay distinct.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from augpatch.data import collate_objects, seed_worker
        >>> # DataLoader(ds, num_workers=4, worker_init_fn=seed_worker,
        >>> #            collate_fn=collate_objects, generator=torch.Generator().manual_seed(0))
    """
    worker_seed = torch.initial_seed()
    random.seed(worker_seed)
    np_mod = sys.modules.get("numpy")
    if np_mod is not None:
        np_mod.random.seed(worker_seed % 2**32)
    info = torch.utils.data.get_worker_info()
    if info is not None:
        _load_reseed_integrations()
        _reseed_reachable(info.dataset, worker_seed)
