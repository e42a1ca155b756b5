"""``python -m augpatch bench copypaste``: the quick run writes a complete JSON report."""

from __future__ import annotations

import json

import torch

from augpatch.__main__ import _run_bench
from augpatch.bench.copypaste import (
    _augmenter,
    _augpatch,
    _floor,
    _loop,
    _paste_inputs,
    _paste_loop,
    _paste_op,
    make_inputs,
)


def test_quick_report(tmp_path):
    path = tmp_path / "cp.json"
    assert _run_bench(["copypaste", "--quick", "--no-memory", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert set(report["methods"]) == {"augpatch", "loop", "torchvision", "paste_op", "paste_loop", "floor"}
    assert all(r["median_s"] > 0 for r in report["methods"].values())
    assert report["ratios"]["loop_over_augpatch"] > 0 and report["ratios"]["augpatch_over_torchvision"] > 0
    assert report["ratios"]["paste_loop_over_paste_op"] > 0
    assert report["ratios"]["loop_over_floor"] > 0


def test_floor_writes_the_outputs_once():
    """The floor row's outputs have the shapes of augpatch's: the images and N + M masks."""
    x = make_inputs(2, 64, 3, 0)
    params = {"src_objects": torch.tensor([0, 4]), "dst_images": torch.tensor([1, 0])}
    images, masks = _floor(x, params)
    got = _augpatch(_augmenter(0), x, params)
    assert images.shape == got[0].shape and masks.shape == got[1].shape
    assert images.data_ptr() != x["images"].data_ptr()


def test_loop_and_augpatch_agree():
    """The benchmark's per-object loop pastes what RandomCopyPaste pastes (integer placements)."""
    x = make_inputs(2, 64, 3, 0)
    aug = _augmenter(0)
    params = {"src_objects": torch.tensor([0, 4]), "dst_images": torch.tensor([1, 0])}
    got, want = _augpatch(aug, x, params), _loop(x, aug._complete(params, x["boxes"]))
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-6)
    assert torch.equal(got[1][x["boxes"].shape[0]:], want[1][x["boxes"].shape[0]:])


def test_paste_rows_agree():
    """The operator row and the loop row paste the same pixels (integer placements)."""
    x = make_inputs(2, 64, 3, 0)
    params = _augmenter(0)._complete({"src_objects": torch.tensor([0, 4]), "dst_images": torch.tensor([1, 0])},
                                     x["boxes"])
    args = _paste_inputs(x, params)
    torch.testing.assert_close(_paste_op(x, args), _paste_loop(x, args), rtol=0, atol=1e-6)
