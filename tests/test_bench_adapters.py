"""``python -m augpatch bench adapters``: a quick run, its table and its JSON."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("albumentations")

from augpatch.__main__ import main as cli_main  # noqa: E402
from augpatch.bench import adapters as bench_adapters  # noqa: E402


def _quick_run(path: Path) -> tuple[int, str]:
    """A quick CLI run on one thread (the thread count is restored: it is process-wide)."""
    threads, buf = torch.get_num_threads(), io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            rc = cli_main(["bench", "adapters", "--quick", "--repeats", "1", "--warmup", "0",
                           "--threads", "1", "--clock", "thread", "--json", str(path)])
    finally:
        torch.set_num_threads(threads)
    return rc, buf.getvalue()


def test_quick_run_reports_every_case_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "ba.json"
    rc, out = _quick_run(path)
    assert rc == 0
    assert "adapter/library" in out and "warp/library" in out and "tv_pil" in out
    report = json.loads(path.read_text())
    assert set(report["results"]) == {
        f"{case}/{i}" for case in bench_adapters.CASES for i in bench_adapters.INTERPOLATIONS}
    for row, res in report["results"].items():
        case = res["case"]
        assert row == f"{case}/{res['interpolation']}"
        assert res["judged"] == (res["interpolation"] == bench_adapters.JUDGED_ON)
        assert res["adapter_own_s"] == pytest.approx(
            res["methods"]["adapter"]["median_s"] - res["methods"]["warp"]["median_s"]
            - res["methods"]["params"]["median_s"])
        assert set(res["methods"]) == set(bench_adapters.METHODS)
        assert all(m["median_s"] > 0 and len(m["times_s"]) == 1 for m in res["methods"].values())
        ms = {m: r["median_s"] for m, r in res["methods"].items()}
        assert res["adapter_over_library"] == pytest.approx(ms["adapter"] / ms["library"])
        assert res["warp_over_library"] == pytest.approx(ms["warp"] / ms["library"])
        assert res["adapter_over_library_min"] == pytest.approx(
            res["methods"]["adapter"]["min_s"] / res["methods"]["library"]["min_s"])
        assert res["target_max"] == bench_adapters.TARGETS[case]
        assert res["status"] == "quick run (not evaluated)"
    assert set(report["defaults"]) == set(bench_adapters.CASES)
    pil = report["defaults"]["tv_pil"]
    assert (pil["adapter_interpolation"], pil["library_interpolation"]) == ("bilinear", "nearest")
    assert pil["adapter_over_library"] == pytest.approx(
        report["results"]["tv_pil/bilinear"]["methods"]["adapter"]["median_s"]
        / report["results"]["tv_pil/nearest"]["methods"]["library"]["median_s"])
    assert "defaults, tv_pil: adapter (bilinear) / library (nearest)" in out
    assert report["results"]["tv_pil/bilinear"]["scenario"]["name"] == "sample640"
    assert report["results"]["albumentations/nearest"]["scenario"]["name"] == "sample512"
    for key in ("torch", "torchvision", "albumentations", "device", "config", "timing_method"):
        assert key in report
    assert report["config"]["clock"] == "thread"
    assert report["config"]["order"] == "shuffle"
    assert report["config"]["interpolation"] == list(bench_adapters.INTERPOLATIONS)


def test_both_sides_run_at_the_same_interpolation() -> None:
    """Like for like: the adapter's resample, the library's interpolation and the warp row's
    mode are the row's interpolation (the libraries' defaults differ: v2.RandomAffine's is
    NEAREST, the adapters' and A.Affine's bilinear)."""
    from torchvision.transforms import v2

    from augpatch.bench.scenarios import scenarios_for

    sc = scenarios_for("adapters", quick=True)
    for interpolation, mode, flag in (("nearest", v2.InterpolationMode.NEAREST, 0),
                                      ("bilinear", v2.InterpolationMode.BILINEAR, 1)):
        tv = bench_adapters._calls("tv_pil", sc["sample640"], 0, interpolation)
        adapter, library = (tv[k].__closure__ for k in ("adapter", "library"))
        ours = next(c.cell_contents for c in adapter if hasattr(c.cell_contents, "core"))
        theirs = next(c.cell_contents for c in library
                      if isinstance(c.cell_contents, v2.RandomAffine))
        assert ours.core.resample == interpolation and theirs.interpolation == mode
        alb = bench_adapters._calls("albumentations", sc["sample512"], 0, interpolation)
        ours_a = next(c.cell_contents for c in alb["adapter"].__closure__
                      if hasattr(c.cell_contents, "transforms"))
        theirs_a = next(c.cell_contents for c in alb["library"].__closure__
                        if hasattr(c.cell_contents, "transforms"))
        assert ours_a.transforms[0]._core.resample == interpolation
        assert theirs_a.transforms[0].interpolation == flag


def test_full_size_scenarios_are_the_issues() -> None:
    from augpatch.bench.scenarios import scenarios_for

    full = scenarios_for("adapters")
    assert (full["sample640"].height, full["sample640"].width, full["sample640"].num_objects) == (
        480, 640, 7)
    assert (full["sample512"].height, full["sample512"].width, full["sample512"].num_objects) == (
        512, 512, 8)


def test_bad_arguments() -> None:
    with contextlib.redirect_stderr(io.StringIO()):
        assert bench_adapters.main(["--repeats", "0"]) == 2
        assert bench_adapters.main(["--clock", "thread", "--threads", "2"]) == 2
        with pytest.raises(SystemExit):
            bench_adapters.main(["--cases", "nope"])


@pytest.mark.parametrize("order", ["shuffle", "rotate"])
def test_every_round_runs_every_call_once_in_either_order(tmp_path: Path, order: str) -> None:
    path, threads = tmp_path / "order.json", torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli_main(["bench", "adapters", "--quick", "--repeats", "3", "--warmup", "0",
                           "--cases", "tv_tensor", "albumentations", "--interpolation", "nearest",
                           "--order", order, "--json", str(path)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    report = json.loads(path.read_text())
    assert report["config"]["order"] == order
    assert set(report["results"]) == {"tv_tensor/nearest", "albumentations/nearest"}
    for res in report["results"].values():
        assert all(len(m["times_s"]) == 3 for m in res["methods"].values())


def test_albumentations_per_image_is_the_benchmark_s_case() -> None:
    """``albumentations_per_image`` (the recipe's and ``bench``'s timing against ``A.Affine``)
    runs the ``albumentations`` case of ``bench adapters`` and reports its medians."""
    r = bench_adapters.albumentations_per_image(repeats=2, warmup=0, quick=True, interpolation="nearest")
    assert r["augpatch_ms"] > 0 and r["albumentations_affine_ms"] > 0
    assert r["ratio"] == pytest.approx(r["augpatch_ms"] / r["albumentations_affine_ms"])
    assert r["interpolation"] == "nearest" and r["target_max"] == bench_adapters.TARGETS["albumentations"]
    assert r["scenario"]["name"] == bench_adapters.CASES["albumentations"][0]
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        bench_adapters.albumentations_per_image(repeats=0)
