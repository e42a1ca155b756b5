"""The analysis scripts of ``benchmarks/`` run and measure what they say (not their timings:
speed is the benchmarks' business). ``sampling_floor.py``'s ``kernel_only`` method runs the
compiled kernel's operators on the plan of the bench's call: the same output as
``warp_patches`` and the same ``theta`` gradient as its backward."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from augpatch.bench.inputs import make_inputs
from augpatch.bench.scenarios import SCENARIOS
from augpatch.functional import warp_patches
from augpatch.ops import compiled_ops

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scenario", ["tiny", "S"])
def test_sampling_floor_prints_and_writes_every_row(tmp_path, capsys, scenario):
    """Every method timed, printed and written; kernel_only where the compiled kernel runs the
    call (S), not for tiny's one box (warp_patches answers it without the kernel)."""
    floor = _script("sampling_floor")
    before = torch.get_num_threads()
    try:
        assert floor.main([scenario, "--rounds", "1", "--json", str(tmp_path / "floor.json")]) == 0
    finally:
        torch.set_num_threads(before)
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "floor.json").read_text())
    expected = {"augpatch", "clone", "boxes_grid_sample", "boxes_grid_sample_fwd"}
    if scenario == "S" and compiled_ops(torch.device("cpu")) is not None:
        expected.add("kernel_only")
        assert data["kernel_only_over_clone"] > 0 and "kernel_only / clone" in printed
    else:
        assert data["kernel_only_over_clone"] is None and "kernel_only: not run" in printed
    assert set(data["median_ms"]) == expected
    assert all(v > 0 for v in data["median_ms"].values())
    assert data["augpatch_over_clone"] > 0 and data["box_pixels"] > 0


def test_kernel_only_computes_the_bench_call():
    """The kernel's own forward and backward on the call's plan give the call's output and
    images' gradient, bit for bit, and a location gradient (the operators the method times
    compute the warp, not something less)."""
    if compiled_ops(torch.device("cpu")) is None:
        pytest.skip("the compiled CPU kernel is not active (AUGPATCH_CPU_KERNEL / no compiler)")
    floor = _script("sampling_floor")
    x = make_inputs(SCENARIOS["S"])
    run = floor.kernel_only(x)
    assert run is not None
    out, g_images, g_params = run()
    expected = warp_patches(x.images, x.boxes, x.theta, x.obj_to_img)
    assert torch.equal(out, expected.detach())
    x.zero_grad()
    x.loss(expected).backward()
    assert torch.equal(g_images, x.images.grad)
    assert g_params.shape[0] == x.boxes.shape[0] and g_params.abs().sum() > 0
    assert floor.kernel_only(make_inputs(SCENARIOS["tiny"])) is None  # one box: no kernel call
