#!/usr/bin/env bash
# The GPU check of augpatch's Triton kernel, in one command (no network needed):
#
#     bash benchmarks/gpu_check.sh            # results under ./gpu_out
#     OUT=/tmp/gpu bash benchmarks/gpu_check.sh
#
# Needs a CUDA GPU and a Python environment with torch (CUDA build), triton, torchvision and
# pytest (kornia, albumentations, hypothesis are not needed). Steps, each with a timeout so
# that the whole check ends within about 5 minutes (the benchmark gets what is left):
#   1. the GPU's name and the versions (printed, and in gpu_check.json);
#   2. `pip install --no-deps --no-build-isolation --target $OUT/site .`: checks that the
#      package builds and installs, without touching the environment (no network: no build
#      isolation, no dependencies); the tests and the benchmark run the checkout itself
#      (from the repository root, first on PYTHONPATH);
#   3. the CUDA tests: tests/test_warp_cuda.py and tests/test_paste_cuda.py (the warp's and the
#      paste's Triton and eager kernels against the CPU) and the CUDA half of tests/test_triton.py
#      (against the reference loop), `-m cuda`, `--noconftest` (the suite's conftest builds the
#      C++ CPU kernel first, which these tests do not need; their modules choose the kernels
#      themselves);
#   4. the copy-paste GPU row: `python -m augpatch bench copypaste --device cuda` (the issue's
#      scenario, B=16 512x512, ~160 pasted objects; RandomCopyPaste, the per-object loop,
#      torchvision's logic, the paste alone with the Triton and the eager kernel; synchronised
#      timings, CUDA peak memory);
#   5. the GPU benchmark at M and many (forward + backward, synchronised timings, CUDA peak
#      memory, the targets), and the DataLoader throughput comparison (--dataloader).
# Output: $OUT/gpu_check.json (summary), $OUT/bench_cuda.json (the warp benchmark's report),
# $OUT/bench_copypaste_cuda.json (the copy-paste row's), one log per step. The exit status is
# 0 only if every step passed (without a GPU: the environment step fails at once, the CUDA
# tests are all skipped, the benchmarks exit 2 with "no CUDA device"; exit 1).
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PY="${PYTHON:-python}"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET  # the compiled kernels, not Triton's interpreter
START=$(date +%s)

step() {  # step NAME TIMEOUT_S COMMAND...: run, log to $OUT/NAME.log, record status and time
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  echo "== $name (at most ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  local t1=$(date +%s)
  tail -n 25 "$OUT/$name.log"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "!! $name: timed out after ${limit}s"; fi
  echo "== $name: exit $rc in $((t1 - t0))s"
  echo "$name $rc $((t1 - t0))" >>"$OUT/steps.txt"
}

: >"$OUT/steps.txt"
step environment 30 "$PY" -c "
import platform, torch
print('python', platform.python_version())
print('torch', torch.__version__, 'cuda', torch.version.cuda)
try:
    import triton; print('triton', triton.__version__)
except ImportError as exc:
    print('triton missing:', exc)
try:
    import torchvision; print('torchvision', torchvision.__version__)
except ImportError as exc:
    print('torchvision missing:', exc)
assert torch.cuda.is_available(), 'no CUDA device visible to torch'
print('gpu', torch.cuda.get_device_name(0))
"
GPU_NAME=$(sed -n 's/^gpu //p' "$OUT/environment.log")
echo "GPU: ${GPU_NAME:-none found}"

rm -rf "$OUT/src" "$OUT/site" && mkdir -p "$OUT/src"  # build from a copy: no build/ in the checkout
cp -r pyproject.toml README.md LICENSE augpatch "$OUT/src/" 2>/dev/null
step install 45 "$PY" -m pip install --no-deps --no-build-isolation --no-input --target "$OUT/site" "$OUT/src"

step cuda_tests 170 "$PY" -m pytest -q -m cuda --noconftest -p no:cacheprovider -rfEs \
  tests/test_warp_cuda.py tests/test_paste_cuda.py tests/test_triton.py

step bench_copypaste 50 "$PY" -m augpatch bench copypaste --device cuda --repeats 3 --warmup 1 \
  --json "$OUT/bench_copypaste_cuda.json"

# the warp benchmark gets what is left of 4 min 45 s (at least 45 s)
LEFT=$((285 - ($(date +%s) - START)))
[ $LEFT -lt 45 ] && LEFT=45
step bench $LEFT "$PY" -m augpatch bench --device cuda --scenarios M many --dataloader \
  --max-method-seconds 4 --no-progress --json "$OUT/bench_cuda.json"

END=$(date +%s)
"$PY" - "$OUT" "$GPU_NAME" "$((END - START))" <<'EOF'
import json, os, sys
out, gpu, wall = sys.argv[1], sys.argv[2], int(sys.argv[3])
steps = {}
for line in open(os.path.join(out, "steps.txt")):
    name, rc, seconds = line.split()
    steps[name] = {"exit": int(rc), "seconds": int(seconds), "log": f"{name}.log"}
tests = ""
try:
    words = ("passed", "failed", "skipped", "error")
    lines = [l for l in open(os.path.join(out, "cuda_tests.log")) if " in " in l and any(w in l for w in words)]
    tests = lines[-1].strip().strip("=").strip() if lines else ""
except OSError:
    pass
summary = {"gpu": gpu or None, "wall_s": wall, "steps": steps, "cuda_tests": tests,
           "bench_json": "bench_cuda.json" if os.path.exists(os.path.join(out, "bench_cuda.json")) else None}
copypaste = os.path.join(out, "bench_copypaste_cuda.json")
if os.path.exists(copypaste):
    report = json.load(open(copypaste))
    summary["copypaste"] = {"medians_ms": {m: round(e["median_s"] * 1e3, 3) for m, e in report["methods"].items()},
                            "ratios": report["ratios"], "memory_ratio": (report.get("memory") or {}).get("ratio"),
                            "cuda_peak_extra_bytes": report.get("cuda_peak_extra_bytes")}
bench = os.path.join(out, "bench_cuda.json")
if os.path.exists(bench):
    report = json.load(open(bench))
    summary["targets"] = [{k: t.get(k) for k in ("scenario", "text", "status", "value")} for t in report["targets"]]
    summary["medians_ms"] = {s: {m: round(e["median_s"] * 1e3, 3) for m, e in r["methods"].items() if "median_s" in e}
                             for s, r in report["scenarios"].items()}
    summary["dataloader"] = report.get("dataloader")
json.dump(summary, open(os.path.join(out, "gpu_check.json"), "w"), indent=1)
print(json.dumps(summary, indent=1))
EOF
echo "GPU check on ${GPU_NAME:-?}: $(($(date +%s) - START))s; results in $OUT (gpu_check.json, bench_cuda.json, *.log)"
FAILED=$(awk '$2 != 0 && $1 != "install" {print $1}' "$OUT/steps.txt")
if [ -n "$FAILED" ]; then
  echo "FAILED steps: $FAILED"
  exit 1
fi
