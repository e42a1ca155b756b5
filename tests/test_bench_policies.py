"""``python -m augpatch bench policies``: a quick run, its table and its JSON."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from augpatch.__main__ import main as cli_main
from augpatch.bench import policies as bench_policies


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-threaded: small ops with 2 intra-op threads crawl on a loaded CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_quick_run_reports_every_method_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "bp.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli_main(["bench", "policies", "--quick", "--repeats", "1", "--warmup", "0",
                       "--threads", "1", "--json", str(path)])
    assert rc == 0
    out = buf.getvalue()
    assert "loop/augpatch" in out and "Targets" in out
    report = json.loads(path.read_text())
    assert set(report["results"]) == {"M"}
    assert set(report["results"]["M"]) == set(bench_policies.POLICIES)
    for res in report["results"]["M"].values():
        assert set(res["methods"]) == set(bench_policies.METHODS)
        for entry in res["methods"].values():
            assert entry["median_s"] > 0 and entry["ratio_vs_augpatch"] > 0
        assert res["methods"]["augpatch"]["ratio_vs_augpatch"] == pytest.approx(1.0)
        # the loop applies the same parameters: the same images up to nearest-neighbour ties
        for method in ("loop", "loop_reference_paste", "loop_image_ops"):
            assert res["check"][method]["differing_pixel_fraction"] < 1e-3
    # the bound: the loop against augpatch with its box-only ops switched off
    target = report["targets"][0]
    assert target["status"] == "quick run (not evaluated)"
    v1 = report["results"]["M"]["v1"]["methods"]
    assert target["bound_with_free_box_ops"] == pytest.approx(
        v1["loop"]["median_s"] / v1["augpatch_image_ops"]["median_s"])
    assert "bound: loop/augpatch_image_ops" in out and "if augpatch's box-only ops cost nothing" in out
    for key in ("torch", "torchvision", "device", "config", "timing_method"):
        assert key in report


def test_bad_arguments() -> None:
    with contextlib.redirect_stderr(io.StringIO()):
        assert bench_policies.main(["--repeats", "0"]) == 2
        with pytest.raises(SystemExit):
            bench_policies.main(["--policies", "v9"])


def test_thread_clock(tmp_path: Path) -> None:
    path = tmp_path / "bp.json"
    with contextlib.redirect_stdout(io.StringIO()):
        rc = bench_policies.main(["--quick", "--repeats", "1", "--warmup", "0", "--threads", "1",
                                  "--clock", "thread", "--policies", "v1", "--methods",
                                  "augpatch", "augpatch_image_ops", "--json", str(path)])
    assert rc == 0
    report = json.loads(path.read_text())
    assert report["config"]["clock"] == "thread"
    assert "thread's CPU time" in report["timing_method"]
    v1 = report["results"]["M"]["v1"]["methods"]
    assert set(v1) == {"augpatch", "augpatch_image_ops"}
    assert all(entry["median_s"] > 0 for entry in v1.values())
    # one round: the per-round ratio is the ratio of the two times
    entry = v1["augpatch_image_ops"]
    assert entry["paired_ratio_vs_augpatch"] == pytest.approx(
        entry["times_s"][0] / v1["augpatch"]["times_s"][0])
    assert report["targets"][0]["paired_ratio"] == entry["paired_ratio_vs_augpatch"]


def test_thread_clock_needs_one_thread() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert bench_policies.main(["--quick", "--clock", "thread", "--threads", "2"]) == 2
    assert "--threads 1" in err.getvalue()
