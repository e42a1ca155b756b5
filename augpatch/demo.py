"""The augpatch demo: per-object augmentation of the embedded coins photograph.

``python -m augpatch demo [--out FILE] [--seed N]`` loads the small public-domain
photograph shipped in ``augpatch/assets`` (24 Greek coins, see its README for the
provenance and licence) with one box per coin, builds a batch with one copy of the
image per panel, gives every coin its own random affine transform, applies all of
them in one vectorised call of :func:`augpatch.functional.warp_patches`, maps the
boxes with :func:`augpatch.functional.transform_boxes`, draws them and writes a
grid of panels to a PNG. The first panel is the untouched original with its boxes.

The demo needs torchvision (drawing; Pillow, which torchvision depends on, decodes
and encodes the PNGs because ``torchvision.io``'s image codecs are deprecated since
torchvision 0.29); the augpatch core does not.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augpatch.functional import patch_affine_matrix, transform_boxes, warp_patches

__all__ = [
    "ASSET_BOXES",
    "ASSET_IMAGE",
    "DEFAULT_OUT",
    "GRID_NROW",
    "GRID_PADDING",
    "MissingDependencyError",
    "Panel",
    "grid_size",
    "load_asset",
    "main",
    "make_panels",
    "render",
]

ASSET_IMAGE = "coins.png"
"""File name of the demo photograph inside ``augpatch/assets``."""
ASSET_BOXES = "coins_boxes.json"
"""File name of its boxes (``xyxy``, pixels, x = column) inside ``augpatch/assets``."""
DEFAULT_OUT = "augpatch_demo.png"
"""Where the demo writes its PNG by default (relative to the current directory)."""
GRID_NROW = 3
"""Panels per row of the output grid."""
GRID_PADDING = 2
"""Padding in pixels between panels (``torchvision.utils.make_grid``)."""

_INSTALL_HINT = 'pip install "augpatch[torchvision]"'
_TITLE_HEIGHT = 13  # pixels of the title band drawn over the top-left of each panel
_BOX_COLOUR_ORIGINAL = (0, 255, 0)
_BOX_COLOUR_AUGMENTED = (255, 210, 0)


class MissingDependencyError(ImportError):
    """Raised when the demo's optional dependency (torchvision) cannot be imported."""


@dataclass(frozen=True)
class Panel:
    """One panel of the demo grid.

    Attributes:
        title: Short description drawn on the panel.
        image: ``[3, H, W]`` float image in ``[0, 1]``.
        boxes: ``[N, 4]`` ``xyxy`` boxes of the objects in ``image``.
    """

    title: str
    image: Tensor
    boxes: Tensor


def _torchvision() -> Any:
    """Import torchvision, or raise :class:`MissingDependencyError` with an install hint."""
    try:
        import torchvision
        import torchvision.transforms.functional
        import torchvision.utils
        from PIL import Image  # noqa: F401  (a dependency of torchvision)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the augpatch demo needs torchvision, which is not installed ({exc}).\n"
            f"Install it with: {_INSTALL_HINT}"
        ) from exc
    except (RuntimeError, OSError) as exc:  # e.g. a torchvision built for another torch
        raise MissingDependencyError(
            f"the augpatch demo needs torchvision, which failed to import: {exc}\n"
            "torchvision must match the installed torch; install both in one command, "
            f'e.g. pip install "torch>=2.4,<3" "torchvision>=0.23,<1", or {_INSTALL_HINT}'
        ) from exc
    return torchvision


def load_asset() -> tuple[Tensor, Tensor]:
    """Load the embedded demo photograph and its boxes.

    Returns:
        ``(image, boxes)``: a ``[3, H, W]`` uint8 RGB image (the grayscale photograph
        repeated over three channels so that coloured boxes can be drawn on it) and
        ``[N, 4]`` float32 ``xyxy`` boxes in pixels (``x`` = column).
    """
    tv = _torchvision()
    from PIL import Image

    assets = resources.files("augpatch") / "assets"
    with Image.open(io.BytesIO(assets.joinpath(ASSET_IMAGE).read_bytes())) as pil:
        image = tv.transforms.functional.pil_to_tensor(pil.convert("RGB"))
    meta = json.loads(assets.joinpath(ASSET_BOXES).read_text(encoding="utf-8"))
    boxes = torch.tensor(meta["boxes"], dtype=torch.float32).reshape(-1, 4)
    return image, boxes


def _uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    """Samples from ``U(low, high)`` drawn from ``generator`` (CPU, float32)."""
    return low + (high - low) * torch.rand(shape, generator=generator)


def make_panels(image: Tensor, boxes: Tensor, seed: int = 0) -> list[Panel]:
    """Augment every object of ``image`` in a few different ways.

    Each augmented panel gives every object its own random transform (drawn from a
    ``torch.Generator`` seeded with ``seed``, so the result is deterministic). All
    panels that share a ``padding_mode`` are augmented in a single batched call of
    :func:`~augpatch.functional.warp_patches`.

    Args:
        image: ``[C, H, W]`` uint8 or float image (uint8 is scaled to ``[0, 1]``).
        boxes: ``[N, 4]`` ``xyxy`` boxes of its objects.
        seed: Seed of the random parameters.

    Returns:
        The original panel first, then one panel per augmentation.
    """
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    boxes = boxes.to(torch.float32)
    _, height, width = image.shape
    n = boxes.shape[0]
    g = torch.Generator().manual_seed(seed)

    angle = _uniform(g, (n,), -35.0, 35.0)
    zoom = _uniform(g, (n,), 0.55, 0.85)
    shear = _uniform(g, (n, 2), -15.0, 15.0)
    ones, zeros = torch.ones(n), torch.zeros(n)

    # (title, padding_mode, angle [N], scale [N, 2], shear [N, 2])
    specs: list[tuple[str, str, Tensor, Tensor, Tensor]] = [
        ("rotate, padding zeros", "zeros", angle, torch.stack([ones, ones], 1),
         torch.zeros(n, 2)),
        ("rotate, padding image", "image", angle, torch.stack([ones, ones], 1),
         torch.zeros(n, 2)),
        ("scale 0.55-0.85", "zeros", zeros, torch.stack([zoom, zoom], 1), torch.zeros(n, 2)),
        ("shear", "zeros", zeros, torch.stack([ones, ones], 1), shear),
        ("flip: scale (-1, 1)", "zeros", zeros, torch.stack([-ones, ones], 1),
         torch.zeros(n, 2)),
    ]

    results: dict[int, tuple[Tensor, Tensor]] = {}
    for padding_mode in dict.fromkeys(spec[1] for spec in specs):
        idx = [i for i, spec in enumerate(specs) if spec[1] == padding_mode]
        b = len(idx)
        batch = image.unsqueeze(0).expand(b, -1, -1, -1)
        batch_boxes = boxes.repeat(b, 1)
        obj_to_img = torch.arange(b).repeat_interleave(n)
        theta = patch_affine_matrix(
            batch_boxes,
            angle=torch.cat([specs[i][2] for i in idx]),
            scale=torch.cat([specs[i][3] for i in idx]),
            shear=torch.cat([specs[i][4] for i in idx]),
        )
        out = warp_patches(batch, batch_boxes, theta, obj_to_img, padding_mode=padding_mode)
        new_boxes = transform_boxes(batch_boxes, theta, canvas_size=(height, width))
        for k, i in enumerate(idx):
            results[i] = (out[k], new_boxes[k * n:(k + 1) * n])

    panels = [Panel("original", image, boxes)]
    panels += [Panel(spec[0], *results[i]) for i, spec in enumerate(specs)]
    return panels


def grid_size(num_panels: int, height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` of the grid that :func:`render` makes of ``num_panels`` panels."""
    ncol = min(GRID_NROW, num_panels)
    nrow = math.ceil(num_panels / ncol)
    return (nrow * (height + GRID_PADDING) + GRID_PADDING,
            ncol * (width + GRID_PADDING) + GRID_PADDING)


def _to_uint8(image: Tensor) -> Tensor:
    return image.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


def _draw_title(tv: Any, image: Tensor, title: str) -> Tensor:
    """Write ``title`` on a dark band in the top-left corner of a uint8 ``[3, H, W]`` image."""
    from PIL import ImageDraw, ImageFont  # a dependency of torchvision

    pil = tv.transforms.functional.to_pil_image(image)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), title, font=font)
    draw.rectangle((0, 0, right - left + 6, _TITLE_HEIGHT - 1), fill=(0, 0, 0))
    draw.text((3 - left, (_TITLE_HEIGHT - (bottom - top)) // 2 - top), title,
              fill=(255, 255, 255), font=font)
    return tv.transforms.functional.pil_to_tensor(pil)


def render(seed: int = 0) -> tuple[Tensor, list[Panel]]:
    """Run the demo in memory.

    Returns:
        ``(grid, panels)``: the ``[3, H', W']`` uint8 grid that :func:`main` writes,
        and the panels it is made of (before drawing).
    """
    tv = _torchvision()
    image, boxes = load_asset()
    panels = make_panels(image, boxes, seed=seed)
    drawn = []
    for i, panel in enumerate(panels):
        colour = _BOX_COLOUR_ORIGINAL if i == 0 else _BOX_COLOUR_AUGMENTED
        img = tv.utils.draw_bounding_boxes(
            _to_uint8(panel.image.detach()), panel.boxes.detach(), colors=colour, width=1
        )
        drawn.append(_draw_title(tv, img, panel.title))
    grid = tv.utils.make_grid(drawn, nrow=GRID_NROW, padding=GRID_PADDING, pad_value=255)
    return grid, panels


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m augpatch demo",
        description=(
            "Augment each coin of the embedded demo photograph (public domain) with its "
            "own random affine transform and write a grid of panels to a PNG: the "
            "original with its boxes first, then rotations (zeros and 'image' padding), "
            "a scale, a shear and a horizontal flip, with the transformed boxes."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), metavar="FILE",
                        help=f"PNG file to write (default: ./{DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the random per-object parameters (default: 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point of ``python -m augpatch demo``; returns an exit status."""
    args = _parser().parse_args(argv)
    try:
        tv = _torchvision()
        grid, panels = render(seed=args.seed)
    except MissingDependencyError as exc:
        print(f"augpatch demo: {exc}", file=sys.stderr)
        return 1
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tv.transforms.functional.to_pil_image(grid).save(out, format="PNG")
    n = panels[0].boxes.shape[0]
    titles = ", ".join(p.title for p in panels)
    print(f"augpatch demo: wrote {out} ({grid.shape[2]}x{grid.shape[1]} PNG, "
          f"{len(panels)} panels x {n} objects, seed {args.seed}): {titles}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
