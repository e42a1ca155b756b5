"""The augpatch demo: per-object augmentation of the embedded coins photograph.

``python -m augpatch demo [--out FILE] [--seed N]`` loads the small public-domain
photograph shipped in ``augpatch/assets`` (24 Greek coins, see its README for the
provenance and licence) with one box per coin, builds a batch with one copy of the
image per panel, gives every coin its own random affine transform, applies all of
them in one vectorised call of :func:`augpatch.functional.warp_patches`, maps the
boxes with :func:`augpatch.functional.transform_boxes`, draws them and writes a
grid of panels to a PNG. The first panel is the untouched original with its boxes.

Because a rotated, sheared or mirrored object keeps (after clipping to its patch) the
same axis-aligned box, every augmented panel also shows how each object moved: its
box's outline mapped forward with the object (:func:`augpatch.functional.transform_points`
of the 4 corners, a tilted rectangle or a parallelogram; cyan) and a dot where its
top-left corner went (red; on the original panel, at the top-left corner itself), so a
mirrored object shows its dot at the top-right. The new axis-aligned boxes are yellow,
the original boxes green.

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

from augpatch.functional import (
    clip_boxes,
    patch_affine_matrix,
    transform_boxes,
    transform_points,
    warp_patches,
)

__all__ = [
    "ASSET_BOXES",
    "ASSET_IMAGE",
    "DEFAULT_OUT",
    "GRID_NROW",
    "GRID_PADDING",
    "LEGEND",
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
_OUTLINE_COLOUR = (0, 200, 255)
_CORNER_COLOUR = (255, 40, 40)
_CORNER_RADIUS = 2
LEGEND = (
    "green: the original boxes; yellow: each object's new box (clipped to its patch); "
    "cyan: its box's outline moved with it; red dot: where its top-left corner went"
)
"""What the colours of the demo's drawings mean (printed by :func:`main`)."""


class MissingDependencyError(ImportError):
    """Raised when the demo's optional dependency (torchvision) cannot be imported."""


@dataclass(frozen=True)
class Panel:
    """One panel of the demo grid.

    Attributes:
        title: Short description drawn on the panel, in plain words.
        image: ``[3, H, W]`` float image in ``[0, 1]``.
        boxes: ``[N, 4]`` ``xyxy`` boxes of the objects in ``image``.
        outlines: ``[N, 4, 2]`` each object's outline: the corners (top-left, top-right,
            bottom-right, bottom-left) of its original box mapped forward with the object,
            in continuous pixel coordinates (not clipped; for the original panel, the
            box corners themselves).
    """

    title: str
    image: Tensor
    boxes: Tensor
    outlines: Tensor


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
            f'e.g. pip install "torch>=2.8,<3" "torchvision>=0.23,<1", or {_INSTALL_HINT}'
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
        ("rotated up to 35 degrees, black corners", "zeros", angle,
         torch.stack([ones, ones], 1), torch.zeros(n, 2)),
        ("rotated, corners filled from the photo", "image", angle,
         torch.stack([ones, ones], 1), torch.zeros(n, 2)),
        ("shrunk to 55-85 %", "zeros", zeros, torch.stack([zoom, zoom], 1), torch.zeros(n, 2)),
        ("sheared up to 15 degrees", "zeros", zeros, torch.stack([ones, ones], 1), shear),
        ("mirrored left-right", "zeros", zeros, torch.stack([-ones, ones], 1),
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
        patches = clip_boxes(batch_boxes, (height, width))
        outlines = transform_points(_corners(patches), patches, theta)
        for k, i in enumerate(idx):
            rows = slice(k * n, (k + 1) * n)
            results[i] = (out[k], new_boxes[rows], outlines[rows])

    panels = [Panel("original; red dot = top-left corner", image, boxes, _corners(boxes))]
    panels += [Panel(spec[0], *results[i]) for i, spec in enumerate(specs)]
    return panels


def _corners(boxes: Tensor) -> Tensor:
    """``[N, 4, 2]`` corners (top-left, top-right, bottom-right, bottom-left) of ``xyxy`` boxes."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([x1, y1, x2, y1, x2, y2, x1, y2], -1).reshape(-1, 4, 2)


def grid_size(num_panels: int, height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` of the grid that :func:`render` makes of ``num_panels`` panels."""
    ncol = min(GRID_NROW, num_panels)
    nrow = math.ceil(num_panels / ncol)
    return (nrow * (height + GRID_PADDING) + GRID_PADDING,
            ncol * (width + GRID_PADDING) + GRID_PADDING)


def _to_uint8(image: Tensor) -> Tensor:
    return image.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


def _draw_objects(tv: Any, image: Tensor, panel: Panel, box_colour: tuple[int, int, int],
                  outline: bool) -> Tensor:
    """Draw a panel's boxes, outlines (if ``outline``) and corner dots on a uint8 image.

    Continuous coordinates are drawn as PIL pixel coordinates, as
    ``torchvision.utils.draw_bounding_boxes`` does, so an unmoved outline lies exactly on
    its box. The box is drawn over the outline (a mirrored object's outline is its box).
    """
    from PIL import ImageDraw  # a dependency of torchvision

    pil = tv.transforms.functional.to_pil_image(image)
    draw = ImageDraw.Draw(pil)
    corners = panel.outlines.detach().double().tolist()
    if outline:
        for quad in corners:
            draw.polygon([tuple(p) for p in quad], outline=_OUTLINE_COLOUR)
    for x1, y1, x2, y2 in panel.boxes.detach().double().tolist():
        draw.rectangle((x1, y1, x2, y2), outline=box_colour)
    r = _CORNER_RADIUS
    for (x, y), *_ in corners:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_CORNER_COLOUR)
    return tv.transforms.functional.pil_to_tensor(pil)


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
        img = _draw_objects(tv, _to_uint8(panel.image.detach()), panel, colour, outline=i > 0)
        drawn.append(_draw_title(tv, img, panel.title))
    grid = tv.utils.make_grid(drawn, nrow=GRID_NROW, padding=GRID_PADDING, pad_value=255)
    return grid, panels


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m augpatch demo",
        description=(
            "Augment each coin of the embedded demo photograph (public domain) with its "
            "own random affine transform and write a grid of panels to a PNG: the "
            "original with its boxes first, then the coins rotated (the corners left "
            "black, or filled from the photo), shrunk, sheared and mirrored, with their new "
            "boxes and their moved outlines. " + LEGEND + "."
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
    print(f"augpatch demo: {LEGEND}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
