"""The recipes run (``--smoke``) and ``import augpatch`` needs no integration library."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.py") if not p.name.startswith("_"))
LIGHT_IMPORT = (
    "import sys, augpatch, augpatch.data, augpatch.integrations, augpatch.transforms\n"
    "libs = ('kornia', 'torchvision', 'albumentations', 'cv2')\n"
    "heavy = sorted(m for m in libs if m in sys.modules)\n"
    "assert not heavy, heavy\n"
)


def test_one_recipe_per_library_and_the_gpu_collate() -> None:
    names = {p.stem for p in RECIPES}
    assert {
        "kornia_pipeline",
        "torchvision_pipeline",
        "albumentations_pipeline",
        "gpu_collate",
    } <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs_with_smoke(
    recipe: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run the recipe as ``python recipes/<name>.py --smoke`` would (in this interpreter)."""
    monkeypatch.setattr(sys, "argv", [str(recipe), "--smoke"])
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
    runpy.run_path(str(recipe), run_name="__main__")
    assert "recipe:" in capsys.readouterr().out


def test_import_augpatch_needs_only_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LIGHT_IMPORT], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
