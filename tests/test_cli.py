"""The command line (``python -m augpatch``), the demo and its embedded asset."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import torch

from augpatch import demo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "augpatch", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd, check=False,
    )


def _png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk, without decoding it."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _asset_meta() -> dict:
    text = (resources.files("augpatch") / "assets" / demo.ASSET_BOXES).read_text("utf-8")
    return json.loads(text)


# --------------------------------------------------------------------------- CLI


def test_help_lists_both_subcommands() -> None:
    res = _run_cli("--help")
    assert res.returncode == 0, res.stderr
    assert "demo" in res.stdout
    assert "bench" in res.stdout


def test_no_arguments_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    from augpatch.__main__ import main

    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_unknown_subcommand_fails(capsys: pytest.CaptureFixture[str]) -> None:
    from augpatch.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    from augpatch.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--out" in out
    assert "--seed" in out


def test_main_dispatches_demo_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    from augpatch.__main__ import main

    seen: list[list[str]] = []
    monkeypatch.setattr(demo, "main", lambda argv: seen.append(list(argv)) or 0)
    assert main(["demo", "--out", "x.png", "--seed", "3"]) == 0
    assert seen == [["--out", "x.png", "--seed", "3"]]


# ------------------------------------------------------------------------ asset


def test_asset_is_small_and_boxes_lie_inside_the_image() -> None:
    assets = resources.files("augpatch") / "assets"
    data = assets.joinpath(demo.ASSET_IMAGE).read_bytes()
    assert len(data) < 200_000
    width, height = _png_size(data)
    meta = _asset_meta()
    assert (meta["width"], meta["height"]) == (width, height) == (384, 303)
    assert meta["format"] == "xyxy"
    boxes = torch.tensor(meta["boxes"], dtype=torch.float64)
    assert boxes.shape == (24, 4)
    assert len(meta["labels"]) == boxes.shape[0]
    x1, y1, x2, y2 = boxes.unbind(1)
    assert bool(((x1 >= 0) & (y1 >= 0) & (x2 <= width) & (y2 <= height)).all())
    assert bool(((x2 - x1 >= 8) & (y2 - y1 >= 8)).all())
    assert (boxes == boxes.round()).all()


def test_asset_boxes_do_not_overlap() -> None:
    boxes = torch.tensor(_asset_meta()["boxes"], dtype=torch.float64)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    inter.fill_diagonal_(0)
    assert bool((inter == 0).all())


# ------------------------------------------------------------------------- demo


def _outside_mask(boxes: torch.Tensor, height: int, width: int, margin: int = 2) -> torch.Tensor:
    """True on pixels that are at least ``margin`` pixels away from every box."""
    mask = torch.ones(height, width, dtype=torch.bool)
    for x1, y1, x2, y2 in boxes.round().long().tolist():
        mask[max(y1 - margin, 0):y2 + margin, max(x1 - margin, 0):x2 + margin] = False
    return mask


def _inside_mask(boxes: torch.Tensor, height: int, width: int, margin: int = 2) -> torch.Tensor:
    """True on pixels at least ``margin`` pixels inside some box (away from drawn edges)."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    for x1, y1, x2, y2 in boxes.round().long().tolist():
        mask[y1 + margin:y2 - margin, x1 + margin:x2 - margin] = True
    return mask


def test_demo_writes_a_png_whose_panels_are_augmented(tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    out = tmp_path / "sub" / "demo.png"
    res = _run_cli("demo", "--out", str(out), "--seed", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert str(out) in res.stdout
    data = out.read_bytes()

    image, boxes = demo.load_asset()
    _, height, width = image.shape
    num_panels = 6
    grid_h, grid_w = demo.grid_size(num_panels, height, width)
    assert _png_size(data) == (grid_w, grid_h)
    with Image.open(io.BytesIO(data)) as pil:
        assert pil.format == "PNG"
        assert pil.mode == "RGB"
        grid = pil_to_tensor(pil)
    assert grid.shape == (3, grid_h, grid_w)

    pad = demo.GRID_PADDING

    def panel(k: int) -> torch.Tensor:
        r, c = divmod(k, demo.GRID_NROW)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        return grid[:, top:top + height, left:left + width].int()

    original = image.int()
    outside = _outside_mask(boxes, height, width)
    outside[:16] = False  # the panel title band
    inside = _inside_mask(boxes, height, width)
    assert outside.sum() > 0.3 * height * width
    for k in range(num_panels):
        p = panel(k)
        # The photograph is grey (R = G = B): a coloured pixel is a drawing (box, outline, dot)
        drawn = (p[0] != p[1]) | (p[1] != p[2])
        away = outside & ~drawn
        assert away.sum() > 0.3 * height * width
        # Pixels away from every box are copied unchanged (uint8 -> float -> uint8 is exact).
        assert torch.equal(p[:, away], original[:, away]), f"panel {k} outside boxes"
        if k in (1, 2, 4):  # rotated / sheared: the moved outlines reach beyond the boxes
            assert int((outside & drawn).sum()) > 100, f"panel {k} shows no moved outline"
        diff = (p - original).abs()[:, inside].float().mean().item()
        if k == 0:
            assert diff == 0.0, "the first panel is the untouched original"
        else:
            assert diff > 5.0, f"panel {k} barely differs from the original inside the boxes"
    # the original panel has its boxes drawn on it
    assert not torch.equal(panel(0), original)


def test_render_is_deterministic_given_the_seed() -> None:
    pytest.importorskip("torchvision")
    grid_a, panels = demo.render(seed=5)
    grid_b, _ = demo.render(seed=5)
    grid_c, _ = demo.render(seed=6)
    assert torch.equal(grid_a, grid_b)
    assert not torch.equal(grid_a, grid_c)
    assert len(panels) == 6
    image, boxes = demo.load_asset()
    height, width = image.shape[1:]
    for p in panels:
        assert p.image.shape == (3, height, width)
        assert p.boxes.shape == boxes.shape
        assert torch.isfinite(p.boxes).all()
    # an augmented box never leaves its original box (the paste cuts content off there)
    for p in panels[1:]:
        assert bool((p.boxes[:, :2] >= boxes[:, :2] - 1e-3).all())
        assert bool((p.boxes[:, 2:] <= boxes[:, 2:] + 1e-3).all())


def test_panels_are_named_in_plain_words_and_carry_the_moved_outlines() -> None:
    pytest.importorskip("torchvision")
    from augpatch.functional import patch_affine_matrix, transform_points

    image, boxes = demo.load_asset()
    panels = demo.make_panels(image, boxes, seed=2)
    titles = [p.title for p in panels]
    assert titles[0].startswith("original")
    assert any("rotated" in t for t in titles) and any("sheared" in t for t in titles)
    assert any("shrunk" in t for t in titles) and any("mirrored" in t for t in titles)
    assert not any("scale (" in t or "padding" in t for t in titles)
    x1, y1, x2, y2 = boxes.unbind(-1)
    corners = torch.stack([x1, y1, x2, y1, x2, y2, x1, y2], -1).reshape(-1, 4, 2)
    assert torch.equal(panels[0].outlines, corners)
    # mirrored: each object's top-left corner went to its top-right corner, exactly
    mirrored = panels[titles.index(next(t for t in titles if "mirrored" in t))]
    torch.testing.assert_close(mirrored.outlines[:, 0], torch.stack([x2, y1], -1))
    torch.testing.assert_close(mirrored.outlines[:, 2], torch.stack([x1, y2], -1))
    # rotated: the outline is the box's corners moved forward (a tilted rectangle)
    rotated = panels[1]
    side = (rotated.outlines[:, 1] - rotated.outlines[:, 0]).norm(dim=-1)
    torch.testing.assert_close(side, x2 - x1, rtol=1e-5, atol=1e-4)  # lengths kept
    tilt = rotated.outlines[:, 1, 1] - rotated.outlines[:, 0, 1]
    assert float(tilt.abs().max()) > 5.0  # the top edge is no longer horizontal
    # the outline is consistent with the functional API
    theta = patch_affine_matrix(boxes, scale=(-1.0, 1.0))
    torch.testing.assert_close(transform_points(corners, boxes, theta), mirrored.outlines)


def test_demo_without_torchvision_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    rc = demo.main(["--out", str(tmp_path / "x.png")])
    assert rc == 1
    err = capsys.readouterr().err
    assert 'pip install "augpatch[torchvision]"' in err
    assert not (tmp_path / "x.png").exists()
