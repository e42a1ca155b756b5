"""``python -m augpatch bench adapters``: the per-sample adapters against the libraries' own affine.

One sample at a time, as a dataset's ``__getitem__`` runs them, interleaved in one run
(every round runs every case's methods once, in a new seeded random order every round,
``--order shuffle``, the default; ``--order rotate``: in a fixed order whose start
rotates; warm-up rounds first; reported: the median over the timed rounds). In the fixed
order a library call always ran right after the adapter had warmed the caches with the
same sample, and each adapter call right after another case's whole-image calls: on this
machine that alone moved a few-ms call by 10-40 %, against the adapter; in a random order
both sides have the same predecessors on average.

``tv_tensor`` (scenario ``"sample640"``: one ``640 x 480`` uint8 image, 7 boxes)
    ``adapter``: :class:`augpatch.integrations.torchvision.RandomPatchAffine` on
    ``(tv_tensors.Image, {"boxes": BoundingBoxes, "labels": ...})``; ``library``:
    ``v2.RandomAffine`` on the same sample (the same rotation and scale ranges);
    ``warp``: the augpatch warp alone (:func:`augpatch.functional.warp_patches` of the
    image tensor with parameters drawn beforehand): the bound of any adapter;
    ``params``: the core transform's parameter draw alone (``forward_parameters``: the
    per-object sampling and matrices every adapter call makes). ``adapter - warp -
    params`` is what the adapter itself adds (conversions, box formats, checks).
``tv_pil``
    the same sample with the image as a PIL image (torchvision's detection references'
    default input).
``albumentations`` (scenario ``"sample512"``: one ``512 x 512`` uint8 HWC array, 8 boxes)
    ``adapter``: :class:`augpatch.integrations.albumentations.RandomPatchAffine` in
    ``A.Compose`` with ``BboxParams(format="pascal_voc")``; ``library``: ``A.Affine``
    in the same ``A.Compose``; ``warp`` and ``params``: as above.

Like for like: every case runs at an explicit interpolation, the same on both sides
(``--interpolation``, default both ``nearest`` and ``bilinear``: one row per case and
interpolation, e.g. ``tv_pil/bilinear``): the adapter's ``resample``, the library's
``interpolation`` (``v2.InterpolationMode`` / OpenCV's ``INTER_NEAREST`` /
``INTER_LINEAR``) and the ``warp`` row's ``mode``. The defaults differ: the adapters
resample bilinearly (as ``A.Affine``, ``interpolation=1``), ``v2.RandomAffine`` defaults
to ``NEAREST``, so a comparison of the defaults would time a bilinear warp against a
nearest one. Both sides fill with zeros (the adapters' ``padding_mode="zeros"``,
``v2.RandomAffine``'s ``fill=0``, ``A.Affine``'s constant border of 0) and draw from the
same rotation and scale ranges.

The targets (``adapter / library`` at most 1.5x for torchvision, 2x for albumentations)
are judged on the ``bilinear`` rows (:data:`JUDGED_ON`): the adapters' default and
``A.Affine``'s, i.e. what a default adapter does, compared with the library doing the same
work; the ``nearest`` rows are reported with their status too (there the library's
resampling is cheaper and the adapter's own warp is the larger share). Below the table,
``defaults``: each side at its own default (the adapter's ``bilinear`` row over the
library's row at its default, :data:`LIBRARY_DEFAULTS`: ``v2.RandomAffine`` nearest),
what a user who changes no option sees.

Reported: per row the median milliseconds of each method, ``adapter / library`` (also as
the ratio of the fastest rounds, less exposed to a loaded machine), ``warp / library``
(the ratio an adapter with no cost around the warp would have), ``(warp + params) /
library`` (the ratio of an adapter that adds nothing to the core's draw and warp) and
``adapter - warp - params`` in milliseconds (the adapter's own cost: conversions, box
formats, checks, dispatch).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import torch

from augpatch.bench.harness import add_clock_argument, clock_error, clock_function, device_info
from augpatch.bench.policies import make_inputs
from augpatch.bench.scenarios import Scenario, scenarios_for

__all__ = ["ADAPTER_DEFAULT", "CASES", "INTERPOLATIONS", "JUDGED_ON", "LIBRARY_DEFAULTS", "METHODS",
           "TARGETS", "albumentations_per_image", "main", "run_benchmark"]

METHODS = ("adapter", "library", "warp", "params")
#: case -> (scenario, target: the most ``adapter / library`` may be)
CASES: dict[str, tuple[str, float]] = {
    "tv_tensor": ("sample640", 1.5),
    "tv_pil": ("sample640", 1.5),
    "albumentations": ("sample512", 2.0),
}
TARGETS = {case: limit for case, (_, limit) in CASES.items()}
#: the interpolations run on both sides (one row each), and the one the targets are judged on
INTERPOLATIONS = ("nearest", "bilinear")
JUDGED_ON = "bilinear"
#: each side's default interpolation: the adapters resample bilinearly, ``v2.RandomAffine``
#: nearest, ``A.Affine`` bilinearly (``interpolation=1``)
ADAPTER_DEFAULT = "bilinear"
LIBRARY_DEFAULTS = {"tv_tensor": "nearest", "tv_pil": "nearest", "albumentations": "bilinear"}
DEGREES, SCALE = 15.0, (0.9, 1.1)

TIMING_METHOD = (
    "One fixed sample per case; every round runs every (case, method) once, in a new seeded "
    "random order every round (--order shuffle) or a fixed order whose start rotates "
    "(--order rotate); warm-up rounds first; reported: the median over the timed "
    "rounds. The adapters and the libraries draw their own parameters inside the timed "
    "call; 'warp' times augpatch.functional.warp_patches alone, with parameters drawn "
    "before the round; 'params' the core's forward_parameters alone. Clock: "
    "time.perf_counter (--clock wall) or the thread's CPU time (--clock thread, 1 thread)."
)


def _torchvision_calls(
    s: Scenario, seed: int, pil: bool, interpolation: str
) -> dict[str, Callable[[], Any]]:
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from augpatch.functional import warp_patches
    from augpatch.integrations.torchvision import RandomPatchAffine

    images, boxes, o2i = make_inputs(s, seed, torch.device("cpu"))
    height, width = images.shape[-2:]
    image: Any = v2.functional.to_pil_image(images[0]) if pil else tv_tensors.Image(images[0])
    target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
        "labels": torch.arange(boxes.shape[0]),
    }
    ours = RandomPatchAffine(degrees=DEGREES, scale=SCALE, p=1.0, resample=interpolation)
    mode = v2.InterpolationMode.NEAREST if interpolation == "nearest" else v2.InterpolationMode.BILINEAR
    theirs = v2.RandomAffine(degrees=DEGREES, scale=SCALE, interpolation=mode, fill=0)
    ours(image, target)
    p = ours.last_params
    return {
        "adapter": lambda: ours(image, target),
        "library": lambda: theirs(image, target),
        "warp": lambda: warp_patches(images, p["patches"], p["theta"], o2i, mode=interpolation),
        "params": lambda: ours.core.forward_parameters(images.shape, boxes, o2i),
    }


def _albumentations_calls(s: Scenario, seed: int, interpolation: str) -> dict[str, Callable[[], Any]]:
    import albumentations as A
    import cv2

    from augpatch.functional import warp_patches
    from augpatch.integrations.albumentations import RandomPatchAffine
    from augpatch.transforms import RandomPatchAffine as Core

    images, boxes, o2i = make_inputs(s, seed, torch.device("cpu"))
    image = images[0].permute(1, 2, 0).contiguous().numpy()
    bboxes, labels = boxes.numpy().astype("float64"), list(range(boxes.shape[0]))
    bbox_params = A.BboxParams(format="pascal_voc", label_fields=["labels"])
    ours = A.Compose([RandomPatchAffine(degrees=DEGREES, scale=SCALE, p=1.0, p_object=1.0,
                                        resample=interpolation)],
                     bbox_params=bbox_params, seed=seed)
    flag = cv2.INTER_NEAREST if interpolation == "nearest" else cv2.INTER_LINEAR
    theirs = A.Compose([A.Affine(rotate=(-DEGREES, DEGREES), scale=SCALE, p=1.0,
                                 interpolation=flag, border_mode=cv2.BORDER_CONSTANT, fill=0)],
                       bbox_params=bbox_params, seed=seed)
    core = Core(degrees=DEGREES, scale=SCALE, p=1.0, generator=torch.Generator().manual_seed(seed))
    p = core.forward_parameters(images.shape, boxes, o2i)
    return {
        "adapter": lambda: ours(image=image, bboxes=bboxes, labels=labels),
        "library": lambda: theirs(image=image, bboxes=bboxes, labels=labels),
        "warp": lambda: warp_patches(images, p["patches"], p["theta"], o2i, mode=interpolation),
        "params": lambda: core.forward_parameters(images.shape, boxes, o2i),
    }


def _calls(case: str, s: Scenario, seed: int, interpolation: str) -> dict[str, Callable[[], Any]]:
    if case == "albumentations":
        return _albumentations_calls(s, seed, interpolation)
    return _torchvision_calls(s, seed, case == "tv_pil", interpolation)


def _row(case: str, interpolation: str) -> str:
    return f"{case}/{interpolation}"


def albumentations_per_image(
    *, repeats: int = 30, warmup: int = 3, threads: int = 0, clock: str = "wall", seed: int = 0,
    quick: bool = False, interpolation: str = JUDGED_ON,
) -> dict[str, Any]:
    """The albumentations adapter's ``RandomPatchAffine`` against ``A.Affine``, per image.

    The ``albumentations`` case of ``python -m augpatch bench adapters`` (one 512 x 512
    uint8 image with 8 boxes, ``--quick``: 64 x 64 with 3; both inside ``A.Compose`` with
    ``pascal_voc`` boxes, the same rotation and scale ranges, ``p=1``, both sides at
    ``interpolation``), the same code, the two calls interleaved in a shuffled order for
    ``warmup + repeats`` rounds; the medians in milliseconds. ``threads``: torch's threads
    (0: as they are); ``clock``: ``"wall"`` or ``"thread"`` (needs one thread). It replaces
    ``augpatch.integrations.albumentations.benchmark_against_affine``, which timed on its
    own. ``python -m augpatch bench`` prints it.

    Returns:
        ``{"augpatch_ms", "albumentations_affine_ms", "ratio"`` (augpatch / Affine)
        ``, "interpolation", "target_max", "status", "scenario"}``.

    Example:
        >>> r = albumentations_per_image(repeats=1, warmup=0, quick=True)
        >>> sorted(r)[:3], r["ratio"] > 0
        (['albumentations_affine_ms', 'augpatch_ms', 'interpolation'], True)
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    args = build_parser().parse_args(
        ["--cases", "albumentations", "--methods", "adapter", "library", "--interpolation", interpolation,
         "--threads", str(threads), "--clock", clock, "--seed", str(seed), *(["--quick"] if quick else [])])
    args.repeats, args.warmup = repeats, warmup
    row = next(iter(run_benchmark(args)["results"].values()))
    ours, theirs = (row["methods"][m]["median_s"] * 1e3 for m in ("adapter", "library"))
    return {"augpatch_ms": ours, "albumentations_affine_ms": theirs, "ratio": ours / theirs,
            "interpolation": interpolation, "target_max": row["target_max"], "status": row["status"],
            "scenario": row["scenario"]}


def run_benchmark(cfg: argparse.Namespace) -> dict[str, Any]:
    """Time the configured cases side by side; return the report (also the JSON)."""
    import albumentations
    import torchvision

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    scenarios = scenarios_for("adapters", quick=cfg.quick)
    rows = {_row(c, i): (c, i) for c in cfg.cases for i in cfg.interpolation}
    pairs = [(r, m) for r in rows for m in cfg.methods]
    calls = {r: _calls(c, scenarios[CASES[c][0]], cfg.seed, i) for r, (c, i) in rows.items()}
    times: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
    clock = clock_function(cfg.clock)
    shuffle = random.Random(cfg.seed)
    for r in range(cfg.warmup + cfg.repeats):
        order = (shuffle.sample(pairs, len(pairs)) if cfg.order == "shuffle"
                 else pairs[r % len(pairs):] + pairs[: r % len(pairs)])
        for case, method in order:
            t0 = clock()
            calls[case][method]()
            if r >= cfg.warmup:
                times[case, method].append(clock() - t0)
    results: dict[str, Any] = {}
    for row, (case, interpolation) in rows.items():
        med = {m: statistics.median(times[row, m]) for m in cfg.methods}
        entry: dict[str, Any] = {
            "case": case,
            "interpolation": interpolation,
            "judged": interpolation == JUDGED_ON,
            "scenario": asdict(scenarios[CASES[case][0]]),
            "methods": {m: {"times_s": times[row, m], "median_s": med[m],
                            "min_s": min(times[row, m])} for m in cfg.methods},
            "target_max": TARGETS[case],
        }
        if "library" in med:
            entry["adapter_over_library"] = med["adapter"] / med["library"]
            # the fastest rounds: less exposed to a loaded machine's preemptions
            entry["adapter_over_library_min"] = (
                min(times[row, "adapter"]) / min(times[row, "library"]))
            if "warp" in med:
                entry["warp_over_library"] = med["warp"] / med["library"]
                if "params" in med:
                    entry["warp_and_params_over_library"] = (
                        (med["warp"] + med["params"]) / med["library"])
        if "warp" in med and "params" in med:
            entry["adapter_own_s"] = med["adapter"] - med["warp"] - med["params"]
        if "library" in med:
            status = "met" if entry["adapter_over_library"] <= TARGETS[case] else "not met"
            entry["status"] = "quick run (not evaluated)" if cfg.quick else status
        results[row] = entry
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}
    defaults = _defaults(results, cfg.cases)
    return {
        "defaults": defaults,
        "benchmark": "per-sample adapters vs the libraries' own affine transforms",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "albumentations": albumentations.__version__,
        "device": device_info(torch.device("cpu"), torch.get_num_threads()),
        "config": config,
        "timing_method": TIMING_METHOD,
        "results": results,
    }


def _defaults(results: dict[str, Any], cases: Sequence[str]) -> dict[str, Any]:
    """Per case, each side at its own default interpolation (both rows run, with the
    library): ``adapter`` of the ``ADAPTER_DEFAULT`` row over ``library`` of the
    ``LIBRARY_DEFAULTS`` row (the medians of one run). Informative: the targets compare
    like with like."""
    out = {}
    for case in cases:
        ours, theirs = results.get(_row(case, ADAPTER_DEFAULT)), results.get(
            _row(case, LIBRARY_DEFAULTS[case]))
        if ours is None or theirs is None or "library" not in theirs["methods"]:
            continue
        out[case] = {
            "adapter_interpolation": ADAPTER_DEFAULT,
            "library_interpolation": LIBRARY_DEFAULTS[case],
            "adapter_over_library": ours["methods"]["adapter"]["median_s"]
            / theirs["methods"]["library"]["median_s"],
        }
    return out


def format_table(report: dict[str, Any]) -> str:
    """Median ms per method and case, ``adapter / library`` against its target."""
    methods = report["config"]["methods"]
    head = ["case/interpolation", *(f"{m} ms" for m in methods), "adapter/library", "(by min)",
            "warp/library", "(warp+params)/library", "own ms", "target"]
    rows = [head]
    for name, res in report["results"].items():
        ms = res["methods"]
        row = [name, *(f"{ms[m]['median_s'] * 1e3:.2f}" for m in methods)]
        for key in ("adapter_over_library", "adapter_over_library_min", "warp_over_library",
                    "warp_and_params_over_library"):
            row.append(f"{res[key]:.2f}x" if key in res else "-")
        row.append(f"{res['adapter_own_s'] * 1e3:.2f}" if "adapter_own_s" in res else "-")
        judged = " judged" if res["judged"] else ""
        row.append(f"<= {res['target_max']:.1f}x ({res.get('status', 'not run')}){judged}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"own = adapter - warp - params; the targets are judged on the {JUDGED_ON} rows "
                 "(both sides at the same interpolation)")
    for case, d in report.get("defaults", {}).items():
        lines.append(f"defaults, {case}: adapter ({d['adapter_interpolation']}) / library "
                     f"({d['library_interpolation']}) = {d['adapter_over_library']:.2f}x")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m augpatch bench adapters",
        description="Time the per-sample torchvision / albumentations adapters against "
                    "v2.RandomAffine / A.Affine (same sample, same run) and write a JSON report.",
    )
    p.add_argument("--cases", nargs="+", choices=tuple(CASES), default=list(CASES))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--interpolation", nargs="+", choices=INTERPOLATIONS,
                   default=list(INTERPOLATIONS),
                   help="run every case at these interpolations, the same on both sides "
                        f"(the targets are judged on {JUDGED_ON})")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 30, quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed rounds (default 3, quick 1)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    add_clock_argument(p)
    p.add_argument("--order", choices=("shuffle", "rotate"), default="shuffle",
                   help="the calls of a round in a new seeded random order (default), or in "
                        "a fixed order whose start rotates every round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not numbers")
    p.add_argument("--json", dest="json_path", default="bench_adapters.json", metavar="FILE")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns an exit status."""
    cfg = build_parser().parse_args(argv)
    cfg.methods = ["adapter", *(m for m in METHODS if m in cfg.methods and m != "adapter")]
    cfg.repeats = cfg.repeats if cfg.repeats is not None else (2 if cfg.quick else 30)
    cfg.warmup = cfg.warmup if cfg.warmup is not None else (1 if cfg.quick else 3)
    if cfg.repeats < 1 or cfg.warmup < 0:
        print("bench adapters: --repeats must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if (why := clock_error(cfg.clock, cfg.threads)) is not None:
        print(f"bench adapters: {why}", file=sys.stderr)
        return 2
    report = run_benchmark(cfg)
    print(format_table(report))
    with open(cfg.json_path, "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"\nwrote {cfg.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
