"""The warp benchmark's peak-memory measurement (a subprocess per method on the CPU)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from augpatch.bench.harness import Progress
from augpatch.bench.inputs import BenchInputs, make_inputs
from augpatch.bench.methods import (
    METHODS,
    REFERENCE_METHOD,
    BenchConfig,
    Method,
    _prepare_kernel,
    _time_once,
)
from augpatch.bench.scenarios import SCENARIOS, Scenario

MEMORY_MARKER = "AUGPATCH_BENCH_MEMORY "

MEMORY_METHOD_CPU = (
    "CPU: one fresh subprocess per (scenario, method) started with sys.executable and "
    "MALLOC_MMAP_THRESHOLD_=65536 (so freed large blocks go back to the OS). It imports, "
    "warms the method up on the 'tiny' inputs, builds the scenario inputs, then resets the "
    "kernel's peak-RSS mark (write 5 to /proc/self/clear_refs) and records VmRSS; after one "
    "forward+backward it reads VmHWM. peak_extra = VmHWM - VmRSS_before: everything the call "
    "allocates, output and gradients included. getrusage(RUSAGE_SELF).ru_maxrss is NOT used on "
    "Linux because a child started by fork/vfork+exec inherits the parent's peak RSS in it "
    "(the parent has just run the timings), which would hide the child's own peak; it is the "
    "fallback on other platforms. mem_ratio = (inputs + peak_extra) / (inputs + output), "
    "i.e. the total peak the call needs over the bytes of inputs (images, boxes, theta, "
    "obj_to_img) and one output batch; the output is already inside peak_extra, so it is "
    "not added again."
)
MEMORY_METHOD_CUDA = (
    "CUDA: in-process, torch.cuda.reset_peak_memory_stats() after the inputs exist, "
    "peak_extra = max_memory_allocated() - memory_allocated() before one forward+backward. "
    "mem_ratio = (inputs + peak_extra) / (inputs + output)."
)


def _rss_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process in bytes (Linux)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val = line.split(":", 1)
                out[key] = int(val.split()[0]) * 1024
    return out


def _measure_memory_here(method: Method, inputs: BenchInputs,
                         device: torch.device) -> dict[str, Any]:
    """Peak extra bytes of one forward+backward, and of one forward alone under ``no_grad``
    (``peak_extra_fwd_bytes``), measured in this process."""
    res = _measure_peak(method, inputs, device)
    if "peak_extra_bytes" in res and method.differentiable:
        # the same method forward only, under no_grad (augmentation without gradients)
        fwd = _measure_peak(dataclasses.replace(method, differentiable=False), inputs, device)
        if "peak_extra_bytes" in fwd:
            res["peak_extra_fwd_bytes"] = fwd["peak_extra_bytes"]
    return res


def _measure_peak(method: Method, inputs: BenchInputs, device: torch.device) -> dict[str, Any]:
    """Peak extra bytes of one call of ``_time_once``."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        _time_once(method, inputs, device)
        peak = torch.cuda.max_memory_allocated(device)
        return {"peak_extra_bytes": peak - before, "how": "cuda.max_memory_allocated"}
    if sys.platform.startswith("linux"):
        reset = True
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            reset = False
        st = _rss_status()
        before_rss, before_hwm = st["VmRSS"], st["VmHWM"]
        _time_once(method, inputs, device)
        peak = _rss_status()["VmHWM"]
        res: dict[str, Any] = {"peak_extra_bytes": max(0, peak - before_rss),
                               "how": "VmHWM-VmRSS" + ("" if reset else " (no clear_refs)")}
        if not reset and before_hwm > before_rss:
            res["lower_bound_only"] = True
        return res
    import resource

    unit = 1 if sys.platform == "darwin" else 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
    _time_once(method, inputs, device)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
    return {"peak_extra_bytes": peak - before, "how": "ru_maxrss", "lower_bound_only": True}


def _warm_operator(device: torch.device) -> None:
    """One small differentiable call of the warp operator, outside the measurement.

    Its first call imports and caches what every later call reuses (``torch.library``'s
    dispatch and autograd machinery, about 170 MB of RSS on the CPU); ``tiny`` alone does
    not reach it (one box runs the loop itself).
    """
    from augpatch.functional import warp_patches

    images = torch.rand(1, 3, 16, 16, device=device, requires_grad=True)
    boxes = torch.tensor([[1, 1, 9, 9], [4, 4, 12, 12], [6, 2, 15, 10]], device=device)
    theta = torch.eye(2, 3, device=device).repeat(3, 1, 1).requires_grad_(True)
    warp_patches(images, boxes, theta).sum().backward()


def _memory_child_main(payload: str) -> None:
    """Entry point of the memory subprocess: prints one ``MEMORY_MARKER`` JSON line."""
    job = json.loads(payload)
    for mod in job["plugins"]:
        importlib.import_module(mod)
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    device = torch.device(job["device"])
    method = METHODS[job["method"]]
    box_dtype = getattr(torch, job["box_dtype"])
    scenario = Scenario(**job["scenario"])
    try:
        _prepare_kernel(device)  # load the compiled kernel outside the measurement
        warm = make_inputs(SCENARIOS["tiny"], job["seed"], device, job["loss"], box_dtype)
        _time_once(method, warm, device)
        del warm
        _warm_operator(device)
        inputs = make_inputs(scenario, job["seed"], device, job["loss"], box_dtype)
        res = _measure_memory_here(method, inputs, device)
    except Exception as exc:  # reported to the parent
        res = {"error": f"{type(exc).__name__}: {exc}"}
    print(MEMORY_MARKER + json.dumps(res), flush=True)


def _memory_subprocess(scenario: Scenario, method: str, cfg: BenchConfig) -> dict[str, Any]:
    payload = json.dumps({
        "scenario": dataclasses.asdict(scenario), "method": method, "seed": cfg.seed,
        "device": cfg.device, "loss": cfg.loss, "box_dtype": cfg.box_dtype,
        "threads": cfg.threads or torch.get_num_threads(), "plugins": list(cfg.plugins),
    })
    code = f"from augpatch.bench.memory import _memory_child_main; _memory_child_main({payload!r})"
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "memory subprocess timed out (600 s)"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MEMORY_MARKER):
            return json.loads(line[len(MEMORY_MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"memory subprocess exit {proc.returncode}: {' | '.join(tail)}"}


def _memory_slots(cfg: BenchConfig, scenarios: list[Scenario], methods: list[Method]) -> int:
    """The (scenario, method) pairs whose memory the run may measure (the progress bar's)."""
    if cfg.memory == "none":
        return 0
    return sum(1 for s in scenarios if cfg.memory != "many" or s.name == "many"
               for m in methods if not cfg.memory_methods or m.name in cfg.memory_methods)


def _memory_jobs(cfg: BenchConfig, results: dict[str, Any]) -> list[tuple[str, str]]:
    jobs = []
    for sname, sres in results.items():
        if cfg.memory == "none" or (cfg.memory == "many" and sname != "many"):
            continue
        for mname, e in sres["methods"].items():
            if e["status"] != "ok" or (cfg.memory_methods and mname not in cfg.memory_methods):
                continue
            if mname != REFERENCE_METHOD and e.get("median_s", 0.0) > cfg.memory_max_seconds:
                e["memory"] = {"skipped": f"one call takes {e['median_s']:.1f} s > "
                                          f"--memory-max-seconds {cfg.memory_max_seconds:g}"}
                continue
            jobs.append((sname, mname))
    return jobs


def _finish_memory(results: dict[str, Any], sname: str, mname: str, mem: dict[str, Any],
                   progress: Progress) -> None:
    sres = results[sname]
    if "peak_extra_bytes" in mem:
        io = sres["input_bytes"] + sres["output_bytes"]
        mem["mem_ratio"] = (sres["input_bytes"] + mem["peak_extra_bytes"]) / io
        if "peak_extra_fwd_bytes" in mem:
            mem["mem_ratio_fwd"] = (sres["input_bytes"] + mem["peak_extra_fwd_bytes"]) / io
        # an out-of-place method whose image gradient takes memory of its own holds the
        # output, the loss's dense gradient of it and the image gradient at once (augpatch
        # writes the image gradient into the loss's gradient where nobody else holds that)
        mem["mem_ratio_autograd_floor"] = (sres["input_bytes"] + 3 * sres["output_bytes"]) / io
    sres["methods"][mname]["memory"] = mem
    progress.update(f"memory {sname}/{mname}")


def _run_memory(cfg: BenchConfig, scen: dict[str, Scenario], results: dict[str, Any],
                jobs: list[tuple[str, str]], progress: Progress, device: torch.device) -> None:
    """Measure the peak memory of ``jobs`` ((scenario, method) pairs) after the timings."""
    if device.type == "cuda":
        for sname, mname in jobs:
            inputs = make_inputs(scen[sname], cfg.seed, device, cfg.loss,
                                 getattr(torch, cfg.box_dtype))
            try:
                mem = _measure_memory_here(METHODS[mname], inputs, device)
            except Exception as exc:  # reported in the table
                mem = {"error": f"{type(exc).__name__}: {exc}"}
            del inputs
            _finish_memory(results, sname, mname, mem, progress)
        return
    with ThreadPoolExecutor(max_workers=max(1, cfg.memory_jobs)) as pool:
        futures = [(s, m, pool.submit(_memory_subprocess, scen[s], m, cfg)) for s, m in jobs]
        for s, m, fut in futures:
            _finish_memory(results, s, m, fut.result(), progress)
