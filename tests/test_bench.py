"""The benchmark harness (``python -m augpatch bench``): smoke run and baseline checks."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from augpatch import bench
from augpatch.bench import methods as bench_methods
from augpatch.bench import warp as bench_warp


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Single-threaded: small ops with 2 intra-op threads crawl on a loaded CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict]:
    """One ``--quick`` run, shared by the tests that inspect its output."""
    path = tmp_path_factory.mktemp("bench") / "out.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = bench.main(["--quick", "--no-progress", "--threads", "1", "--json", str(path)])
    return rc, buf.getvalue(), json.loads(Path(path).read_text())


def test_quick_run_covers_every_scenario_and_method(quick_run: tuple[int, str, dict]) -> None:
    rc, _, report = quick_run
    assert rc == 0
    assert set(report["scenarios"]) == set(bench.SCENARIOS)
    for sname, sres in report["scenarios"].items():
        assert set(sres["methods"]) == set(bench.default_methods()), sname
        for mname, e in sres["methods"].items():
            if mname == "kornia_whole" and e["status"] == "skipped":
                continue  # kornia is optional
            assert e["status"] == "ok", (sname, mname, e.get("reason"))
            assert e["repeats"] >= 1
            assert len(e["times_s"]) == e["repeats"]
            assert all(t > 0 for t in e["times_s"])
            assert e["median_s"] > 0 and e["fwd_median_s"] > 0
            assert e["ratio_vs_augpatch"] > 0
        assert sres["methods"]["augpatch"]["ratio_vs_augpatch"] == pytest.approx(1.0)
    for key in ("torch", "device", "config", "memory_method", "timing_method", "targets"):
        assert key in report
    assert report["config"]["quick"] is True


def test_quick_run_prints_table_checks_and_targets(quick_run: tuple[int, str, dict]) -> None:
    _, out, report = quick_run
    assert "fwd+bwd ms" in out and "Targets" in out
    for name in bench.SCENARIOS:
        assert f"\n{name}: B=" in out
    for name in bench.default_methods():
        assert name in out
    assert len(report["targets"]) == len(bench.TARGETS)
    assert all(t["status"] in ("PASS", "FAIL", "N/A") for t in report["targets"])
    # augpatch (sequential) is cross-checked against the naive loop wherever it ran.
    for sname, sres in report["scenarios"].items():
        chk = sres["checks"]["augpatch vs question_loop"]
        assert chk["match"], (sname, chk)


def test_quick_run_measures_memory_at_many(quick_run: tuple[int, str, dict]) -> None:
    _, _, report = quick_run
    many = report["scenarios"]["many"]["methods"]
    for name in ("augpatch", "clone"):
        mem = many[name]["memory"]
        assert "error" not in mem, mem
        assert mem["peak_extra_bytes"] >= 0
        assert mem["mem_ratio"] > 0
        # the forward alone (no_grad) is measured too, and the autograd floor is reported
        assert mem["mem_ratio_fwd"] > 0
        assert 1.0 < mem["mem_ratio_autograd_floor"] < 2.0
    target = next(t for t in report["targets"] if t["kind"] == "max_memory_ratio")
    assert "forward only" in target["reason"]


def test_baseline_loops_agree_without_overlap() -> None:
    """question_loop (sequential, clone per object) and crop_loop (one paste) must give the
    same output and gradients when no two boxes of an image overlap."""
    scen = bench.Scenario("grid", 3, 3, 96, 128, 20, 6, 30, layout="grid")
    inputs = bench.make_inputs(scen, seed=1)
    assert not bool(bench.boxes_overlap(inputs.boxes, inputs.obj_to_img).any())
    results = []
    for fn in (bench.question_loop, bench.crop_loop, bench.crop_loop_unbind):
        inputs.zero_grad()
        out = fn(inputs)
        inputs.loss(out).backward()
        results.append((out.detach(), inputs.images.grad.clone(), inputs.theta.grad.clone()))
    (o1, gi1, gt1) = results[0]
    for o2, gi2, gt2 in results[1:]:
        torch.testing.assert_close(o2, o1)
        torch.testing.assert_close(gi2, gi1)
        torch.testing.assert_close(gt2, gt1)
    # The boxes really moved content (the comparison is not between two copies).
    assert not torch.equal(o1, inputs.images.detach())


def test_baseline_loops_differ_with_overlap() -> None:
    """On the clustered layout every box overlaps another, so sequential and parallel
    semantics must disagree: the harness really exercises overlap."""
    scen = bench.QUICK_SCENARIOS["overlap"]
    inputs = bench.make_inputs(scen, seed=0)
    assert bool(bench.boxes_overlap(inputs.boxes, inputs.obj_to_img).all())
    with torch.no_grad():
        assert not torch.allclose(bench.question_loop(inputs), bench.crop_loop(inputs))


@pytest.mark.parametrize("name", list(bench.SCENARIOS))
def test_scenario_inputs_are_valid(name: str) -> None:
    for table in (bench.SCENARIOS, bench.QUICK_SCENARIOS):
        scen = table[name]
        inputs = bench.make_inputs(scen, seed=3)
        b = inputs.boxes
        assert b.shape == (scen.num_objects, 4)
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
        assert (b[:, 2] <= scen.width).all() and (b[:, 3] <= scen.height).all()
        sides = torch.cat([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])
        assert sides.min() >= min(scen.min_side, scen.width, scen.height)
        assert sides.max() <= scen.max_side
        assert inputs.obj_to_img.min() >= 0 and inputs.obj_to_img.max() < scen.batch
        assert inputs.images.requires_grad and inputs.theta.requires_grad
        # Deterministic for a seed.
        again = bench.make_inputs(scen, seed=3)
        assert torch.equal(again.boxes, b) and torch.equal(again.theta, inputs.theta)
        if scen.layout == "clustered":
            assert bool(bench.boxes_overlap(b, inputs.obj_to_img).all())


def test_skip_and_extension_point(tmp_path: Path) -> None:
    """question_loop is skipped (with a reason) where its graph would be huge, and an extra
    method registered in METHODS is timed alongside."""
    reason = bench_methods._skip_question_loop(bench.SCENARIOS["many"], bench.BenchConfig())
    assert reason and "clones" in reason

    def double_clone(inputs: bench.BenchInputs) -> torch.Tensor:
        return inputs.images.clone() * 1.0

    bench.register_method(bench.Method("extra", double_clone, "test method"))
    try:
        path = tmp_path / "r.json"
        rc = bench.main(["--quick", "--no-progress", "--threads", "1", "--scenarios", "tiny",
                         "--memory", "none",
                         "--methods", "augpatch,extra", "--json", str(path)])
        report = json.loads(path.read_text())
    finally:
        del bench.METHODS["extra"]
    assert rc == 0
    assert report["scenarios"]["tiny"]["methods"]["extra"]["median_s"] > 0
    with pytest.raises(SystemExit):
        bench.main(["--scenarios", "nope"])


def test_quick_run_compares_albumentations_per_image(quick_run: tuple[int, str, dict]) -> None:
    _, out, report = quick_run
    res = report["albumentations"]
    assert res["augpatch_ms"] > 0 and res["albumentations_affine_ms"] > 0
    assert res["ratio"] == pytest.approx(res["augpatch_ms"] / res["albumentations_affine_ms"])
    assert "albumentations adapter, per image" in out and "as `bench adapters`" in out
    assert res["target_max"] == 2.0 and res["status"] == "quick run (not evaluated)"


def test_cuda_baselines_run_and_agree_on_the_cpu() -> None:
    """The CUDA runs' extra baselines: whole-batch grid_sample (e) and augpatch with its eager
    kernel (f, the kernel choice active in the backward too). They are not in CPU runs."""
    assert {"grid_sample_whole", "augpatch_eager"} <= set(bench.default_methods("cuda"))
    assert not {"grid_sample_whole", "augpatch_eager"} & set(bench.default_methods("cpu"))
    inputs = bench.make_inputs(bench.QUICK_SCENARIOS["overlap"], seed=2)
    device = torch.device("cpu")
    _, _, ref = bench_methods._time_once(bench.METHODS["augpatch"], inputs, device, keep=True)
    _, _, eager = bench_methods._time_once(bench.METHODS["augpatch_eager"], inputs, device, keep=True)
    for key in ("output", "images.grad", "theta.grad"):
        torch.testing.assert_close(eager[key], ref[key], rtol=1e-5, atol=1e-5)
    from augpatch.functional import cpu_kernel

    assert cpu_kernel() == "compiled"  # restored after the call
    _, _, whole = bench_methods._time_once(bench.METHODS["grid_sample_whole"], inputs, device, keep=True)
    assert whole["output"].shape == inputs.images.shape
    assert whole["images.grad"].abs().sum() > 0 and not torch.equal(whole["output"], inputs.images)


def test_cuda_targets_are_evaluated_from_a_run() -> None:
    def entry(seconds: float) -> dict:
        return {"status": "ok", "median_s": seconds}

    results = {
        "M": {"methods": {"augpatch": entry(1.0), "grid_sample_whole": entry(3.0), "crop_loop": entry(30.0),
                          "augpatch_eager": entry(4.0)}},
        "many": {"methods": {"augpatch": {**entry(1.0), "memory": {"mem_ratio": 1.9}},
                             "crop_loop": entry(60.0)}},
    }
    rows = {(t["scenario"], t["method"]): t for t in bench_warp._evaluate_targets(results, False, "cuda")}
    assert len(rows) == len(bench.CUDA_TARGETS)
    assert rows[("M", "grid_sample_whole")]["status"] == "PASS"  # 1/3 <= 0.5
    assert rows[("M", "crop_loop")]["status"] == "PASS"  # 30x >= 20x
    assert rows[("M", "augpatch_eager")]["status"] == "FAIL"  # 4x < 5x
    assert rows[("many", "crop_loop")]["status"] == "PASS"
    assert rows[("many", None)]["status"] == "PASS"


def test_dataloader_throughput_runs() -> None:
    """The DataLoader comparison (CUDA in the CLI) on a tiny CPU problem: every pipeline ran."""
    res = bench.dataloader_throughput("cpu", batch_size=2, size=48, objects=2, workers=0, batches=1, warmup=1)
    for key in ("loader_only", "augpatch_batch", "torchvision_workers"):
        assert res[key]["images_per_s"] > 0, key
    assert res["augpatch_vs_torchvision"] > 0
    assert "images/s" in bench.format_dataloader(res)
    assert bench.main(["--dataloader", "--quick"]) == 2  # the CLI runs it on CUDA only


def test_progress_total_is_computed_once_up_front(monkeypatch, tmp_path: Path) -> None:
    """The bar's total is fixed when it starts (one step per scenario and method, plus the
    memory slots) and the run advances it by exactly that many steps."""
    from augpatch.bench import harness

    bars = []

    class Recorder(harness.Progress):
        def __init__(self, total: int, enabled: bool) -> None:
            super().__init__(total, False)
            self.steps = 0
            bars.append(self)

        def update(self, label: str, n: int = 1) -> None:
            self.steps += n

    monkeypatch.setattr(bench_warp, "Progress", Recorder)
    rc = bench.main(["--quick", "--scenarios", "tiny", "S", "--methods", "augpatch", "clone",
                     "--memory", "none", "--no-albumentations", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    assert not hasattr(harness.Progress, "add_total")
    assert [(b.total, b.steps) for b in bars] == [(4, 4)]


def test_profile_reports_where_the_time_goes(tmp_path: Path) -> None:
    import json

    from augpatch.ops import profiling

    assert profiling.region("plan") is profiling.region("kernel")  # off: one shared no-op
    path = tmp_path / "r.json"
    rc = bench.main(["--quick", "--scenarios", "S", "--methods", "augpatch", "--memory", "none",
                     "--no-progress", "--no-albumentations", "--profile", "--json", str(path)])
    assert rc == 0
    rows = json.loads(path.read_text())["profile"]["S"]["rows"]
    assert rows["augpatch::kernel"] > 0 and rows["augpatch::plan"] > 0 and rows["augpatch::checks"] > 0
    # the kernel ranges nest inside the two operators (a structural fact, not a timing ratio:
    # how the time splits between forward and backward varies with the machine's load)
    forward, backward = rows["operator augpatch::warp_*"], rows["operator augpatch::warp_backward_*"]
    assert forward > 0 and backward > 0
    assert rows["augpatch::kernel"] <= (forward + backward) * 1.001


def test_thread_clock_times_the_calling_thread(tmp_path: Path) -> None:
    """``--clock thread`` (robust on a loaded machine) times with ``time.thread_time`` and
    says so; it needs one thread (other threads' work would not be counted)."""
    path = tmp_path / "r.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = bench.main(["--quick", "--scenarios", "tiny", "--methods", "augpatch", "clone", "--memory", "none",
                         "--no-progress", "--no-albumentations", "--threads", "1", "--clock", "thread",
                         "--json", str(path)])
    assert rc == 0
    report = json.loads(path.read_text())
    assert report["config"]["clock"] == "thread"
    assert "clock=thread" in buf.getvalue()
    assert report["scenarios"]["tiny"]["methods"]["clone"]["median_s"] > 0
    with contextlib.redirect_stderr(io.StringIO()):
        assert bench.main(["--quick", "--threads", "2", "--clock", "thread"]) == 2
