"""The warp benchmark's methods (augpatch and the baselines), its run configuration, and
how one call of a method is timed. Register another method with :func:`register_method`
(at import time of a module passed with ``--plugin MODULE``).
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from augpatch.bench.baselines import (
    _clone,
    _kornia_whole,
    crop_loop,
    crop_loop_unbind,
    grid_sample_whole,
    question_loop,
)
from augpatch.bench.harness import sync
from augpatch.bench.inputs import BenchInputs
from augpatch.bench.scenarios import SCENARIOS, Scenario

REFERENCE_METHOD = "augpatch"

MethodFn = Callable[[BenchInputs], Tensor]
SkipFn = Callable[[Scenario, "BenchConfig"], "str | None"]


@dataclass
class Method:
    """A benchmarked implementation.

    ``fn(inputs) -> output [B, C, H, W]``. ``differentiable=False`` methods (e.g. an
    albumentations per-image comparison) are timed forward only, under ``no_grad``.
    ``requires`` lists importable modules; a method whose module is missing is reported
    as skipped. ``skip(scenario, config)`` may return a reason to skip a scenario.
    ``semantics`` is ``"sequential"``, ``"parallel"`` or ``None`` (no per-object
    semantics); outputs are cross-checked against ``question_loop`` when comparable.
    ``default=False`` methods only run when named in ``--methods``; ``devices`` (if
    set) restricts the default runs to those device types. ``context`` (if set) returns a
    context manager that is active around the whole call, forward and backward (e.g. a
    kernel choice, which the backward must see too).
    """

    name: str
    fn: MethodFn
    description: str
    differentiable: bool = True
    requires: tuple[str, ...] = ()
    skip: SkipFn | None = None
    semantics: str | None = None
    default: bool = True
    devices: tuple[str, ...] | None = None
    context: Callable[[], Any] | None = None


METHODS: dict[str, Method] = {}


def register_method(method: Method, *, replace: bool = False) -> None:
    """Add ``method`` to :data:`METHODS` (insertion order = table order)."""
    if method.name in METHODS and not replace:
        raise ValueError(f"method {method.name!r} is already registered")
    METHODS[method.name] = method


def default_methods(device: str = "cpu") -> tuple[str, ...]:
    """Names of the methods a run on ``device`` times when ``--methods`` is not given."""
    kind = torch.device(device).type
    return tuple(n for n, m in METHODS.items() if m.default and (m.devices is None or kind in m.devices))


def _augpatch(inputs: BenchInputs) -> Tensor:
    """augpatch: one ``warp_patches`` call (default ``overlap="sequential"``)."""
    from augpatch.functional import warp_patches

    return warp_patches(inputs.images, inputs.boxes, inputs.theta, inputs.obj_to_img)


@contextlib.contextmanager
def _eager_kernel() -> Iterator[None]:
    """``warp_patches`` runs its eager kernel inside (CPU and CUDA; restored after)."""
    from augpatch.ops import settings

    saved = settings.cpu_kernel(), settings.cuda_kernel()
    settings.set_cpu_kernel("eager")
    settings.set_cuda_kernel("eager")
    try:
        yield
    finally:
        settings.set_cpu_kernel(saved[0])
        settings.set_cuda_kernel(saved[1])


def _skip_question_loop(scenario: Scenario, config: BenchConfig) -> str | None:
    """The naive loop keeps one full image batch alive per object for backward."""
    per_clone = scenario.image_numel() * 4
    need = per_clone * (scenario.num_objects + 1)
    if need > config.naive_max_gb * 2**30:
        return (f"would keep {scenario.num_objects} full-size clones alive for backward "
                f"(~{need / 2**30:.1f} GiB > --naive-max-gb {config.naive_max_gb:g}); "
                "not run, nothing extrapolated")
    return None


register_method(Method("augpatch", _augpatch, "warp_patches, overlap='sequential'",
                       semantics="sequential"))
register_method(Method("question_loop", question_loop,
                       "(a) naive differentiable loop, one clone per object",
                       skip=_skip_question_loop, semantics="sequential"))
register_method(Method("crop_loop", crop_loop,
                       "(b) per-crop grid_sample + one index_put paste", semantics="parallel"))
register_method(Method("crop_loop_unbind", crop_loop_unbind,
                       "(b') crop_loop cropping per-image views (cheaper slice backward)",
                       semantics="parallel", default=False))
register_method(Method("kornia_whole", _kornia_whole,
                       "(c) kornia warp_affine of whole images", requires=("kornia",)))
register_method(Method("clone", _clone, "(d) images.clone(), the floor"))
register_method(Method("grid_sample_whole", grid_sample_whole,
                       "(e) one affine_grid + grid_sample of whole images", devices=("cuda",)))
register_method(Method("augpatch_eager", _augpatch, "(f) warp_patches with the eager kernel forced",
                       semantics="sequential", devices=("cuda",), context=_eager_kernel))


@dataclass
class BenchConfig:
    """Options of one run (all of them go into the JSON)."""

    device: str = "cpu"
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    methods: tuple[str, ...] = ()
    repeats: int = 10
    min_repeats: int = 3
    warmup: int = 2
    max_method_seconds: float = 15.0
    slow_seconds: float = 5.0
    fast_seconds: float = 1.0
    max_fast_repeats: int = 50
    memory_max_seconds: float = 15.0
    naive_max_gb: float = 4.0
    quick: bool = False
    seed: int = 0
    loss: str = "weighted"
    box_dtype: str = "int64"
    memory: str = "all"
    memory_methods: tuple[str, ...] = ()
    memory_jobs: int = 2
    threads: int = 0
    plugins: tuple[str, ...] = ()
    progress: bool = True
    json_path: str = "bench_results.json"
    clock: str = "wall"  # "thread": the calling thread's CPU time (with threads=1)


def _time_once(method: Method, inputs: BenchInputs, device: torch.device,
               keep: bool = False, clock: Callable[[], float] = time.perf_counter,
               ) -> tuple[float, float, dict[str, Tensor] | None]:
    """One call: returns (forward seconds, total seconds, outputs and grads if ``keep``).

    ``clock``: ``time.perf_counter`` (wall) or ``time.thread_time`` (the calling thread's CPU
    time: what one thread spends, not what other jobs of a loaded machine take from it).
    """
    inputs.zero_grad()
    context = method.context() if method.context is not None else contextlib.nullcontext()
    with context:
        return _time_call(method, inputs, device, keep, clock)


def _time_call(method: Method, inputs: BenchInputs, device: torch.device,
               keep: bool, clock: Callable[[], float] = time.perf_counter,
               ) -> tuple[float, float, dict[str, Tensor] | None]:
    sync(device)
    t0 = clock()
    if method.differentiable:
        out = method.fn(inputs)
        sync(device)
        t1 = clock()
        inputs.loss(out).backward()
        sync(device)
        t2 = clock()
    else:
        with torch.no_grad():
            out = method.fn(inputs)
        sync(device)
        t1 = t2 = clock()
    kept = None
    if keep:
        kept = {"output": out.detach().clone()}
        for name in ("images", "theta"):
            grad = getattr(inputs, name).grad
            kept[name + ".grad"] = None if grad is None else grad.detach().clone()
    del out
    inputs.zero_grad()
    return t1 - t0, t2 - t0, kept


def _method_available(method: Method) -> str | None:
    for mod in method.requires:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            return f"{mod} not importable ({exc})"
    return None


def _prepare_kernel(device: torch.device) -> dict[str, Any]:
    """Which kernel warp_patches runs on ``device``; builds the compiled one first (untimed)."""
    from augpatch.ops import settings

    started = time.perf_counter()
    name = settings.active_kernel(device)
    cuda = device.type == "cuda"
    return {"name": name, "choice": settings.cuda_kernel() if cuda else settings.cpu_kernel(),
            "setting": "AUGPATCH_CUDA_KERNEL" if cuda else "AUGPATCH_CPU_KERNEL",
            "ready_s": time.perf_counter() - started}
