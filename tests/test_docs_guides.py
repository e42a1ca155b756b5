"""Every Python code block of the documentation's guides (and of the README) runs.

The guides (``docs/guides/*.md``, MyST Markdown) are the user documentation; their
```` ```python ```` blocks are executed here, in order, one fresh namespace per page (a
page's blocks build on each other, as a reader runs them). Blocks in other languages
(``bash``, ``text``, plain ```` ``` ````) are shown, not run. A block whose output is
written in comments (``# tensor([True, ...])``) is not compared: the ``assert``
statements of the blocks are the checks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = ROOT / "docs" / "guides"
FENCE = re.compile(
    r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line, code)`` of every fenced block of ``text`` whose language is ``python``
    (```` ```python ```` or MyST's ```` ```{code-block} python ````)."""
    blocks = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        language = info.split()[-1] if info.startswith("{code-block}") and len(info.split()) > 1 else info
        if language.split(" ")[0] in ("python", "py", "python3"):
            indent = len(match["indent"])
            body = "\n".join(line[indent:] for line in match["body"].split("\n"))
            blocks.append((text.count("\n", 0, match.start()) + 2, body))
    return blocks


PAGES = sorted(GUIDES.glob("*.md"))
PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p.read_text())]


def test_guides_exist() -> None:
    assert len(PAGES) >= 10, f"expected the guides in {GUIDES}, found {PAGES}"
    assert sum(len(python_blocks(p.read_text())) for p in PAGES) >= 20


def test_python_blocks_finds_fences() -> None:
    text = "a\n```python\nx = 1\n```\n\n```bash\nls\n```\n  ```{code-block} python\n  y = 2\n  ```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (10, "y = 2\n")]


@pytest.mark.parametrize("page", [*PAGES_WITH_CODE, ROOT / "README.md"],
                         ids=[*(p.stem for p in PAGES_WITH_CODE), "README"])
def test_guide_code_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(page.read_text())
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
    namespace: dict[str, object] = {"__name__": f"guide_{page.stem.replace('-', '_')}"}
    for line, code in blocks:
        try:
            exec(compile(code, f"{page}:{line}", "exec"), namespace)  # noqa: S102
        except Exception as exc:
            raise AssertionError(f"{page.name}, code block at line {line} failed: {exc!r}") from exc
    assert os.getcwd() == str(tmp_path)
