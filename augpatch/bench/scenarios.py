"""The benchmarks' scenarios: ONE table, for every benchmark, full and quick sizes.

A new scenario is one :func:`_row` in :data:`TABLE` (its full size, its ``--quick`` size,
and the benchmarks that run it); :data:`SCENARIOS` / :data:`QUICK_SCENARIOS` and
:func:`scenarios_for` are derived from it.

Example:
    >>> sorted(scenarios_for("policies"))
    ['M', 'many']
    >>> QUICK_SCENARIOS["M"].height, SCENARIOS["M"].height
    (96, 512)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """One benchmark input configuration.

    ``layout`` is ``"random"`` (independent uniform boxes, they may overlap),
    ``"clustered"`` (objects of an image grouped in clusters of >= 2 boxes whose centres
    are so close that every box overlaps every other box of its cluster) or ``"grid"``
    (no two boxes of an image overlap: each sits in its own grid cell).
    """

    name: str
    batch: int
    channels: int
    height: int
    width: int
    num_objects: int
    min_side: int
    max_side: int
    layout: str = "random"
    description: str = ""

    def image_numel(self) -> int:
        """Number of elements of one image batch."""
        return self.batch * self.channels * self.height * self.width


Size = tuple[int, int, int, int, int, int, int]  # batch, channels, height, width, N, min, max side


def _row(name: str, full: Size, quick: Size, description: str, layout: str = "random",
         benchmarks: tuple[str, ...] = ("warp",)) -> tuple[Scenario, Scenario, tuple[str, ...]]:
    return (Scenario(name, *full, layout=layout, description=description),
            Scenario(name, *quick, layout=layout, description=f"quick {name}"), benchmarks)


TABLE = (
    _row("tiny", (1, 3, 64, 64, 1, 16, 48), (1, 3, 64, 64, 1, 16, 48), "one object, call overhead"),
    _row("S", (8, 3, 256, 256, 64, 16, 64), (2, 3, 64, 64, 8, 8, 24), "small batch"),
    _row("M", (16, 3, 512, 512, 256, 16, 96), (2, 3, 96, 96, 16, 8, 32), "medium batch",
         benchmarks=("warp", "policies")),
    _row("many", (4, 3, 512, 512, 2000, 8, 24), (1, 3, 96, 96, 64, 4, 12), "many small objects",
         benchmarks=("warp", "policies")),
    _row("overlap", (8, 3, 256, 256, 64, 16, 64), (2, 3, 64, 64, 8, 8, 24),
         "S, every box overlaps others", layout="clustered"),
    _row("paste", (16, 3, 512, 512, 320, 20, 102), (2, 3, 64, 64, 6, 2, 12),
         "copy-paste: 20 elliptic objects with masks per image, the batch rolled by one",
         benchmarks=("copypaste",)),
    _row("sample640", (1, 3, 480, 640, 7, 32, 160), (1, 3, 48, 64, 3, 6, 16),
         "one 640x480 detection sample, 7 boxes (per-sample adapters)", benchmarks=("adapters",)),
    _row("sample512", (1, 3, 512, 512, 8, 51, 154), (1, 3, 64, 64, 3, 6, 19),
         "one 512x512 image, 8 boxes (albumentations adapter)", benchmarks=("adapters",)),
)


def scenarios_for(benchmark: str, quick: bool = False) -> dict[str, Scenario]:
    """The scenarios (by name) that ``benchmark`` (``"warp"``, ``"policies"``, ``"copypaste"``,
    ``"adapters"``) runs."""
    return {(q if quick else f).name: (q if quick else f) for f, q, b in TABLE if benchmark in b}


SCENARIOS: dict[str, Scenario] = scenarios_for("warp")
QUICK_SCENARIOS: dict[str, Scenario] = scenarios_for("warp", quick=True)
