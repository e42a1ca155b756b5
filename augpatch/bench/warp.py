"""Benchmark harness for :func:`augpatch.functional.warp_patches`.

Run it with ``python -m augpatch bench`` (or ``python -m augpatch.bench``); see
``--help`` for the options. Each scenario builds one fixed random input (float32
images and ``theta`` that require grad, integer boxes fully inside the image,
random ``obj_to_img``) and times forward + backward of every method in the same
process, interleaved round-robin (the starting method rotates every round), after
warm-up, and reports the median. The methods are:

``augpatch``
    ``warp_patches(images, boxes, theta, obj_to_img)`` (``overlap="sequential"``).
``question_loop``
    The original StackOverflow-style loop made differentiable, exactly the
    sequential loop of the SPEC: one full ``clone`` of the image batch per object.
``crop_loop``
    A competent loop: one ``affine_grid`` + ``grid_sample`` per sliced crop, then a
    single out-of-place paste of every result with precomputed flat indices
    (``parallel`` semantics, equal to ``sequential`` when no boxes overlap).
``kornia_whole``
    One ``kornia.geometry.transform.warp_affine`` of the whole batch: the cost of
    warping whole images instead of patches.
``clone``
    ``images.clone()``: the floor every out-of-place method pays.
``grid_sample_whole`` (CUDA runs)
    One ``F.affine_grid`` + ``F.grid_sample`` of the whole batch: the fused reference
    of the same sampling work on every pixel.
``augpatch_eager`` (CUDA runs)
    ``warp_patches`` with the eager kernel forced (what CUDA ran before the Triton
    kernel), to measure what the Triton kernel gains.

``--dataloader`` (CUDA only) also times a training-style input pipeline end to end:
``BatchAugment`` on the GPU after a ``DataLoader`` whose workers collate on the CPU
(``pin_memory``), against per-sample torchvision v2 ``RandomAffine`` in the workers,
in images per second (:func:`dataloader_throughput`).

Peak memory on CPU is measured in a fresh subprocess per (scenario, method), see
:data:`MEMORY_METHOD_CPU`; on CUDA with ``torch.cuda.max_memory_allocated``.

Extension point: :data:`METHODS` maps a name to a :class:`Method`; call
:func:`register_method` at import time of a module and pass that module with
``--plugin MODULE`` (it is imported in the parent and in every memory subprocess).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor

from augpatch.bench.dataloader import dataloader_throughput, format_dataloader
from augpatch.bench.harness import (
    Progress,
    add_clock_argument,
    clock_error,
    clock_function,
    device_info,
)
from augpatch.bench.inputs import BenchInputs, boxes_overlap, make_inputs
from augpatch.bench.memory import (
    MEMORY_METHOD_CPU,
    MEMORY_METHOD_CUDA,
    _finish_memory,
    _memory_jobs,
    _memory_slots,
    _memory_subprocess,
    _run_memory,
)
from augpatch.bench.methods import (
    METHODS,
    REFERENCE_METHOD,
    BenchConfig,
    Method,
    _method_available,
    _prepare_kernel,
    _time_once,
    default_methods,
    register_method,
)
from augpatch.bench.report import format_table
from augpatch.bench.scenarios import QUICK_SCENARIOS, SCENARIOS, Scenario
from augpatch.bench.targets import CUDA_TARGETS, TARGETS, Target
from augpatch.bench.targets import evaluate_targets as _evaluate_targets

__all__ = [
    "METHODS",
    "QUICK_SCENARIOS",
    "SCENARIOS",
    "TARGETS",
    "BenchInputs",
    "Method",
    "Scenario",
    "Target",
    "CUDA_TARGETS",
    "boxes_overlap",
    "dataloader_throughput",
    "default_methods",
    "format_dataloader",
    "main",
    "make_inputs",
    "register_method",
    "run_benchmark",
]

TIMING_METHOD = (
    "Per scenario one fixed input; every method runs forward (+ loss) + backward on it; "
    "rounds are interleaved round-robin over the methods with the starting method rotated "
    "every round; warm-up rounds first; reported: median over the timed rounds. 'fwd' is "
    "the method call alone (graph recording included), 'total' adds the loss and backward. "
    "Gradients are reset to None before each call. On CUDA, torch.cuda.synchronize() is "
    "called around every timestamp."
)


# --------------------------------------------------------------------------- running


def _compare(a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, Any]:
    """Relative max-abs differences of output and gradients (scaled by max |b|)."""
    res: dict[str, Any] = {}
    ok = True
    for key, tol in (("output", 1e-4), ("images.grad", 1e-3), ("theta.grad", 1e-3)):
        x, y = a.get(key), b.get(key)
        if x is None or y is None:
            res[key] = None
            continue
        if x.shape != y.shape:
            res[key] = f"shape {tuple(x.shape)} != {tuple(y.shape)}"
            ok = False
            continue
        diff = (x.double() - y.double()).abs().max().item() if x.numel() else 0.0
        scale = max(1.0, y.double().abs().max().item() if y.numel() else 0.0)
        res[key] = diff / scale
        ok = ok and diff / scale <= tol
    res["match"] = ok
    return res


def _rotate(items: list[Method], k: int) -> list[Method]:
    """``items`` rotated left by ``k`` (round-robin start that changes every round)."""
    if not items:
        return []
    k %= len(items)
    return items[k:] + items[:k]


def _repeats_wanted(active: list[Method], entries: dict[str, dict[str, Any]], slow: set[str],
                    cfg: BenchConfig) -> dict[str, int]:
    """Timed repeats per method: a fast method gets up to max_fast_repeats (about
    fast_seconds in all), every method at most max_method_seconds of timed calls but at
    least min_repeats (1 if slow)."""
    wanted: dict[str, int] = {}
    for m in active:
        e = entries[m.name]
        t = max(min(e["warmup_s"] or e["times_s"]), 1e-9)
        n = cfg.repeats
        if t * cfg.repeats < cfg.fast_seconds:
            n = min(cfg.max_fast_repeats, max(cfg.repeats, int(cfg.fast_seconds / t)))
        n = min(n, int(cfg.max_method_seconds / t))
        wanted[m.name] = max(1 if m.name in slow else cfg.min_repeats, n)
    return wanted


def _summarise(entries: dict[str, dict[str, Any]]) -> None:
    """Medians, minima and the ratios against augpatch, written into each method's entry."""
    ref = entries.get(REFERENCE_METHOD, {})
    ref_t = statistics.median(ref["times_s"]) if ref.get("times_s") else None
    ref_f = statistics.median(ref["fwd_times_s"]) if ref.get("fwd_times_s") else None
    for e in entries.values():
        if e["status"] == "ok" and e["times_s"]:
            e["repeats"] = len(e["times_s"])
            e["median_s"] = statistics.median(e["times_s"])
            e["min_s"] = min(e["times_s"])
            e["fwd_median_s"] = statistics.median(e["fwd_times_s"])
            e["ratio_vs_augpatch"] = e["median_s"] / ref_t if ref_t else None
            e["fwd_ratio_vs_augpatch"] = e["fwd_median_s"] / ref_f if ref_f else None


def _time_scenario(scenario: Scenario, methods: list[Method], cfg: BenchConfig,
                   device: torch.device, progress: Progress) -> dict[str, Any]:
    """Time every method on one scenario, interleaved; returns the scenario's JSON."""
    inputs = make_inputs(scenario, cfg.seed, device, cfg.loss, getattr(torch, cfg.box_dtype))
    overlap = boxes_overlap(inputs.boxes, inputs.obj_to_img)
    res: dict[str, Any] = {
        "spec": dataclasses.asdict(scenario),
        "input_bytes": inputs.input_bytes(),
        "output_bytes": inputs.output_bytes(),
        "boxes_overlapping": int(overlap.sum()),
        "methods": {},
    }
    entries, active = _entries(scenario, methods, cfg)
    kept: dict[str, dict[str, Tensor]] = {}
    clock = clock_function(cfg.clock)
    if device.type == "cuda":
        # one untimed call each first: Triton compiles its kernels for these inputs' block
        # shapes on first use (seconds), which would otherwise count as a slow first call
        for m in active:
            with contextlib.suppress(Exception):  # a failing method is reported below
                _time_once(m, inputs, device, clock=clock)

    def call(m: Method, timed: bool, keep: bool = False) -> float | None:
        e = entries[m.name]
        try:
            fwd, tot, k = _time_once(m, inputs, device, keep=keep, clock=clock)
        except Exception as exc:  # reported; the run goes on
            e.update(status="error", reason=f"{type(exc).__name__}: {exc}")
            progress.update(f"{scenario.name}/{m.name} failed", 0)
            return None
        if k is not None:
            kept[m.name] = k
        if timed:
            e["fwd_times_s"].append(fwd)
            e["times_s"].append(tot)
        else:
            e["warmup_s"].append(tot)
            e["_last_fwd"] = fwd
        progress.update(f"{scenario.name}/{m.name}", 0)
        return tot

    def ok(m: Method) -> bool:
        return entries[m.name]["status"] == "ok"

    # Warm-up. A method whose first call takes >= slow_seconds is not warmed up further and
    # that first call counts as a timed repeat (one-time overheads are negligible there).
    slow: set[str] = set()
    for m in active:
        t = call(m, timed=False, keep=m.semantics is not None)
        if t is not None and t >= cfg.slow_seconds:
            slow.add(m.name)
            e = entries[m.name]
            e["times_s"].append(e["warmup_s"].pop())
            e["fwd_times_s"].append(e["_last_fwd"])
            e["first_call_counted"] = True
    for rnd in range(1, cfg.warmup):
        for m in _rotate(active, rnd):
            if ok(m) and m.name not in slow:
                call(m, timed=False)
    # Repeats: a fast method gets up to max_fast_repeats (about fast_seconds in all), every
    # method at most max_method_seconds of timed calls but at least min_repeats (1 if slow).
    wanted = _repeats_wanted([m for m in active if ok(m)], entries, slow, cfg)
    rnd = 0
    while True:
        todo = [m for m in active if ok(m) and len(entries[m.name]["times_s"]) < wanted[m.name]]
        if not todo:
            break
        for m in _rotate(todo, rnd):
            call(m, timed=True)
        rnd += 1
    for e in entries.values():
        e.pop("_last_fwd", None)
    progress.update(f"{scenario.name} done", len(methods))  # one step per (scenario, method)
    _summarise(entries)
    res["methods"] = entries
    res["checks"] = _checks(kept, bool(overlap.any()))
    return res


def _entries(scenario: Scenario, methods: list[Method], cfg: BenchConfig
             ) -> tuple[dict[str, dict[str, Any]], list[Method]]:
    """Each method's JSON entry (``status`` ok or skipped with its reason) and the methods
    that run."""
    entries: dict[str, dict[str, Any]] = {}
    active: list[Method] = []
    for m in methods:
        reason = _method_available(m) or (m.skip(scenario, cfg) if m.skip else None)
        entries[m.name] = {"description": m.description, "differentiable": m.differentiable}
        if reason:
            entries[m.name].update(status="skipped", reason=reason)
        else:
            entries[m.name].update(status="ok", times_s=[], fwd_times_s=[], warmup_s=[])
            active.append(m)
    return entries, active


def _checks(kept: dict[str, dict[str, Tensor]], overlapping: bool) -> dict[str, Any]:
    """Each kept method's result against the question's loop, where their semantics agree
    (``parallel`` only where no boxes overlap)."""
    checks: dict[str, Any] = {}
    ref_loop = kept.get("question_loop")
    for name, k in kept.items():
        if name == "question_loop" or ref_loop is None:
            continue
        sem = METHODS[name].semantics
        if sem == "sequential" or (sem == "parallel" and not overlapping):
            checks[f"{name} vs question_loop"] = _compare(k, ref_loop)
    return checks


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Run the benchmark described by ``cfg`` and return the JSON-able report."""
    for mod in cfg.plugins:
        importlib.import_module(mod)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    scen_table = QUICK_SCENARIOS if cfg.quick else SCENARIOS
    scenarios = [scen_table[s] for s in cfg.scenarios]
    names = cfg.methods or default_methods(cfg.device)
    methods = [METHODS[n] for n in names]
    mem_slots = _memory_slots(cfg, scenarios, methods)
    kernel = _prepare_kernel(device)  # build (or load) the compiled kernel before timing
    # the total is fixed up front: one step per (scenario, method) timed and per memory slot
    progress = Progress(len(scenarios) * len(methods) + mem_slots, cfg.progress)
    started = time.perf_counter()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    results: dict[str, Any] = {}
    scen_by_name = {s.name: s for s in scenarios}
    early: list[tuple[str, str, Any]] = []
    pool = None
    if cfg.quick and device.type == "cpu" and cfg.memory != "none":
        # Smoke test: overlap the memory subprocesses (mostly interpreter start-up) with the
        # timings; quick timings are not meant to be accurate anyway.
        pool = ThreadPoolExecutor(max_workers=max(1, cfg.memory_jobs))
        for s in scenarios:
            if cfg.memory == "many" and s.name != "many":
                continue
            for m in methods:
                if cfg.memory_methods and m.name not in cfg.memory_methods:
                    continue
                if _method_available(m) or (m.skip and m.skip(s, cfg)):
                    continue
                early.append((s.name, m.name, pool.submit(_memory_subprocess, s, m.name, cfg)))
    try:
        for s in scenarios:
            results[s.name] = _time_scenario(s, methods, cfg, device, progress)
        if pool is not None:
            progress.update("memory", mem_slots - len(early))  # slots with nothing to measure
            for sname, mname, fut in early:
                _finish_memory(results, sname, mname, fut.result(), progress)
        else:
            jobs = _memory_jobs(cfg, results)
            progress.update("memory", mem_slots - len(jobs))  # slots with nothing to measure
            _run_memory(cfg, scen_by_name, results, jobs, progress, device)
    finally:
        progress.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    try:
        import kornia

        kornia_version: str | None = kornia.__version__
    except ImportError:
        kornia_version = None
    from augpatch import __version__ as augpatch_version

    report = {
        "schema": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(cfg),
        "torch": torch.__version__,
        "kornia": kornia_version,
        "augpatch": augpatch_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_info(device, torch.get_num_threads()),
        "kernel": kernel,
        "timing_method": TIMING_METHOD,
        "memory_method": MEMORY_METHOD_CUDA if device.type == "cuda" else MEMORY_METHOD_CPU,
        "wall_s": time.perf_counter() - started,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "scenarios": results,
    }
    report["targets"] = _evaluate_targets(results, cfg.quick, cfg.device)
    return report


def _parse_names(values: Sequence[str] | None, known: Sequence[str], what: str) -> tuple[str, ...]:
    if not values:
        return ()
    names = [v for value in values for v in value.split(",") if v]
    bad = [n for n in names if n not in known]
    if bad:
        raise SystemExit(f"unknown {what}: {', '.join(bad)} (known: {', '.join(known)})")
    return tuple(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m augpatch bench``."""
    p = argparse.ArgumentParser(
        prog="python -m augpatch bench",
        description="Time forward+backward of warp_patches against baseline loops, "
                    "Kornia whole-image warping and a plain clone; write a table and JSON.")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--scenarios", nargs="+", metavar="NAME",
                   help=f"subset of {', '.join(SCENARIOS)} (space or comma separated)")
    p.add_argument("--methods", nargs="+", metavar="NAME",
                   help=f"subset of {', '.join(METHODS)} (default: "
                        f"{', '.join(default_methods())})")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed calls per method and scenario (default 10, --quick 3); fast "
                        "methods get more (up to --max-fast-repeats, about --fast-seconds "
                        "in all), slow ones fewer (--max-method-seconds)")
    p.add_argument("--warmup", type=int, default=None,
                   help="warm-up calls per method, >= 1 (default 2, quick 1)")
    p.add_argument("--max-method-seconds", type=float, default=None,
                   help="cap on one method's timed seconds per scenario; slower methods get "
                        "fewer repeats, at least 3, or 1 if slow (default 15, quick 1)")
    p.add_argument("--slow-seconds", type=float, default=None,
                   help="a method whose first call takes this long is not warmed up again "
                        "and that call is timed (default 5, quick 2)")
    p.add_argument("--fast-seconds", type=float, default=None,
                   help="fast methods repeat until about this many seconds (default 1, "
                        "quick 0.1)")
    p.add_argument("--max-fast-repeats", type=int, default=None,
                   help="cap on the repeats of a fast method (default 50, quick 10)")
    p.add_argument("--naive-max-gb", type=float, default=4.0,
                   help="skip question_loop where its graph would hold more GiB (default 4)")
    p.add_argument("--json", dest="json_path", default="bench_results.json", metavar="FILE")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and repeats: a CI smoke test, not real numbers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss", choices=("weighted", "sum"), default="weighted",
                   help="dot with a fixed random weighting (default) or output.sum()")
    p.add_argument("--box-dtype", choices=("int64", "float32"), default="int64")
    p.add_argument("--memory", choices=("all", "many", "none"), default=None,
                   help="which scenarios get a peak-memory measurement (default all; "
                        "quick: many)")
    p.add_argument("--memory-methods", nargs="+", metavar="NAME",
                   help="methods that get a memory measurement (default all; quick: "
                        "augpatch clone)")
    p.add_argument("--memory-max-seconds", type=float, default=15.0,
                   help="no memory run for a method (other than augpatch) whose call takes "
                        "longer (default 15)")
    p.add_argument("--memory-jobs", type=int, default=2,
                   help="memory subprocesses run at once (CPU; after the timings)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    add_clock_argument(p)
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE (e.g. one that calls register_method) here and in "
                        "the memory subprocesses")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--profile", action="store_true",
                   help="per scenario, where each millisecond of an augpatch forward+backward goes "
                        "(torch.profiler ranges: checks, dispatch, plan, kernel, copies); printed "
                        "as a table after the timings and written to the JSON ('profile')")
    p.add_argument("--dataloader", action="store_true",
                   help="CUDA only: also time BatchAugment on the GPU after a DataLoader against "
                        "torchvision v2 RandomAffine in the workers (images/s)")
    p.add_argument("--no-albumentations", dest="albumentations", action="store_false",
                   help="skip the per-image comparison with albumentations' A.Affine")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark CLI; returns 0, or 1 if a method raised or a check mismatched."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    for mod in args.plugin:
        importlib.import_module(mod)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available", file=sys.stderr)
        return 2
    if args.dataloader and args.device != "cuda":
        print("--dataloader needs --device cuda (the GPU augments after the CPU workers)", file=sys.stderr)
        return 2
    quick = args.quick
    cfg = BenchConfig(
        device=args.device,
        scenarios=_parse_names(args.scenarios, list(SCENARIOS), "scenario") or tuple(SCENARIOS),
        methods=_parse_names(args.methods, list(METHODS), "method"),
        repeats=args.repeats if args.repeats is not None else (3 if quick else 10),
        warmup=args.warmup if args.warmup is not None else (1 if quick else 2),
        max_method_seconds=args.max_method_seconds or (1.0 if quick else 15.0),
        slow_seconds=args.slow_seconds or (2.0 if quick else 5.0),
        fast_seconds=(args.fast_seconds if args.fast_seconds is not None
                      else (0.1 if quick else 1.0)),
        max_fast_repeats=args.max_fast_repeats or (10 if quick else 50),
        memory_max_seconds=args.memory_max_seconds,
        naive_max_gb=args.naive_max_gb,
        quick=quick,
        seed=args.seed,
        loss=args.loss,
        box_dtype=args.box_dtype,
        memory=args.memory or ("many" if quick else "all"),
        memory_methods=_parse_names(args.memory_methods, list(METHODS), "method")
        or ((REFERENCE_METHOD, "clone") if quick else ()),
        memory_jobs=args.memory_jobs,
        threads=args.threads,
        plugins=tuple(args.plugin),
        progress=not args.no_progress,
        json_path=args.json_path,
        clock=args.clock,
    )
    if cfg.repeats < 1 or cfg.warmup < 1:
        print("--repeats and --warmup must be >= 1", file=sys.stderr)
        return 2
    if (why := clock_error(cfg.clock, cfg.threads, cfg.device)) is not None:
        print(why, file=sys.stderr)
        return 2
    cfg.min_repeats = min(cfg.min_repeats, cfg.repeats)
    report = run_benchmark(cfg)
    print(format_table(report))
    if args.profile:
        report["profile"] = _profile(cfg)
    if args.albumentations and cfg.device == "cpu":
        report["albumentations"] = _albumentations_per_image(cfg)
    if args.dataloader:
        report["dataloader"] = dataloader_throughput(cfg.device, seed=cfg.seed,
                                                     batches=5 if cfg.quick else 20)
        print("\n" + format_dataloader(report["dataloader"]))
    with open(cfg.json_path, "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"\nwrote {cfg.json_path}")
    failed = any(e["status"] == "error" for s in report["scenarios"].values()
                 for e in s["methods"].values())
    failed = failed or any(not c["match"] for s in report["scenarios"].values()
                           for c in s["checks"].values())
    failed = failed or any("error" in e.get("memory", {}) for s in report["scenarios"].values()
                           for e in s["methods"].values())
    return 1 if failed else 0


def _profile(cfg: BenchConfig) -> dict[str, Any]:
    """``--profile``: :func:`augpatch.bench.profile.profile_call` of ``augpatch`` per scenario."""
    from augpatch.bench.profile import format_profile, profile_call

    device = torch.device(cfg.device)
    table = QUICK_SCENARIOS if cfg.quick else SCENARIOS
    profiles = {}
    for name in cfg.scenarios:
        inputs = make_inputs(table[name], cfg.seed, device, cfg.loss, getattr(torch, cfg.box_dtype))
        profiles[name] = profile_call(lambda inputs=inputs: _time_once(METHODS[REFERENCE_METHOD], inputs, device),
                                      calls=2 if cfg.quick else 5)
    print("\n" + format_profile(profiles))
    return profiles


def _albumentations_per_image(cfg: BenchConfig) -> dict[str, Any]:
    """Cost per image of the albumentations adapter against ``A.Affine`` (CPU): the
    ``albumentations`` case of ``python -m augpatch bench adapters`` at its judged
    interpolation (bilinear, both sides), the same code, interleaved in a shuffled order
    with this run's ``--threads`` and ``--clock`` (30 rounds, 2 with ``--quick``), so that
    both benchmarks print the same figure. ``bench adapters`` has every case.
    """
    try:
        import albumentations  # noqa: F401

        from augpatch.bench import adapters
    except ImportError as exc:  # the albumentations extra is not installed
        print(f"\nalbumentations comparison skipped: {exc}")
        return {"skipped": str(exc)}
    repeats, warmup = (2, 1) if cfg.quick else (30, 3)
    res = adapters.albumentations_per_image(repeats=repeats, warmup=warmup, threads=cfg.threads or 0,
                                            clock=cfg.clock, seed=cfg.seed, quick=cfg.quick)
    ours, theirs, scenario = res["augpatch_ms"], res["albumentations_affine_ms"], res["scenario"]
    print(f"\nalbumentations adapter, per image ({scenario['height']}x{scenario['width']} uint8, "
          f"{scenario['num_objects']} objects, {adapters.JUDGED_ON}; as `bench adapters`): "
          f"RandomPatchAffine {ours:.2f} ms, A.Affine {theirs:.2f} ms (ratio {ours / theirs:.2f}; "
          f"target <= {res['target_max']:g}x: {res['status']})")
    return res


if __name__ == "__main__":
    # Run the canonical module's main so --plugin registrations (which import
    # augpatch.bench.warp, not __main__) are seen.
    from augpatch.bench.warp import main as _main

    raise SystemExit(_main())
