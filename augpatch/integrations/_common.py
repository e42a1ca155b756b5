"""Library-independent helpers shared by the adapters (private).

Coordinates follow augpatch's SPEC: pixel ``(i, j)`` has its centre at
``(j + 0.5, i + 0.5)``. Kornia, torchvision and albumentations put keypoints in
*pixel-index* coordinates (centre at ``(j, i)``): :data:`PIXEL_INDEX_OFFSET` is
added on the way in and subtracted on the way out.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from augpatch.functional import (
    inverse_transform_points,
    theta_to_pixel_matrix,
    transform_points,
)
from augpatch.functional.checks import compute_dtype

#: Pixel-index keypoints (centre at ``j``) -> augpatch coordinates (centre at ``j + 0.5``).
PIXEL_INDEX_OFFSET = 0.5


# The core classes every adapter module is generated from, in documentation order.
CORE_CLASS_NAMES: tuple[str, ...] = (
    "RandomPatchAffine",
    "RandomPatchRotation",
    "RandomPatchTranslate",
    "RandomPatchScale",
    "RandomPatchShear",
    "RandomPatchHorizontalFlip",
    "RandomPatchVerticalFlip",
    "PatchAffine",
)


def core_classes() -> Iterator[tuple[str, type]]:
    """Yield ``(name, class)`` for every core transform in :data:`CORE_CLASS_NAMES`.

    Raises ``ImportError`` naming the missing class if ``augpatch.transforms``
    lacks one, so a renamed core class cannot silently drop an adapter.
    """
    transforms = importlib.import_module("augpatch.transforms")
    for name in CORE_CLASS_NAMES:
        cls = getattr(transforms, name, None)
        if cls is None:
            raise ImportError(f"augpatch.transforms has no {name}; the adapters need it")
        yield name, cls


#: Constructor arguments used in the generated classes' examples.
EXAMPLE_ARGS: dict[str, str] = {
    "RandomPatchAffine": "degrees=15.0, scale=(0.8, 1.2)",
    "RandomPatchRotation": "15.0",
    "RandomPatchTranslate": "0.1",
    "RandomPatchScale": "(0.8, 1.2)",
    "RandomPatchShear": "10.0",
    "PatchAffine": "angle=30.0",
}


def copy_docs(adapter: type, core: type, library: str, extra: str, example: str) -> None:
    """Give a generated adapter class a docstring: its core class's, without the core example.

    ``example`` is a doctest body formatted with ``name`` (the class) and ``args``
    (constructor arguments from :data:`EXAMPLE_ARGS`).
    """
    kept: list[str] = []
    for line in (inspect.getdoc(core) or "").splitlines():
        if line.strip().startswith(("Example", "Subclassing")):
            break
        kept.append(line)
    name = core.__name__
    body = example.format(name=name, args=EXAMPLE_ARGS.get(name, ""))
    adapter.__doc__ = (
        f"{library} adapter of :class:`augpatch.transforms.{name}`: the same arguments{extra}.\n\n"
        + "\n".join(kept).rstrip()
        + "\n\nExample:\n"
        + "\n".join("    " + line for line in body.strip().splitlines())
        + "\n"
    )


# --------------------------------------------------------------------------- points


def rank_within_image(obj_to_img: Tensor, batch_size: int) -> Tensor:
    """Position of each object among the objects of its image, in index order ``[N]``."""
    if obj_to_img.numel() == 0:
        return obj_to_img.new_zeros(0)
    one_hot = F.one_hot(obj_to_img, batch_size)
    return (torch.cumsum(one_hot, 0) - one_hot).gather(1, obj_to_img[:, None]).squeeze(1)


def map_image_points(
    points: Tensor,
    patches: Tensor,
    theta: Tensor,
    obj_to_img: Tensor | None,
    *,
    applied: Tensor | None = None,
    align_corners: bool = False,
    inverse: bool = False,
    return_linear: bool = False,
) -> Any:
    """Move image-level points through per-object transforms.

    A point belongs to object ``n`` when it lies in its patch
    (``x1 <= x < x2``, ``y1 <= y < y2``); it then moves exactly like the
    object's content (:func:`augpatch.functional.transform_points`). Objects act
    in index order, each on the points as the previous ones left them (the
    ``sequential`` rule; exact for both overlap modes when boxes of one image do
    not overlap). ``inverse=True`` undoes this: objects act in reverse order and
    points inside a patch are mapped back through ``theta``.

    Args:
        points: ``[B, K, 2]`` ``(x, y)`` in augpatch coordinates.
        patches: ``[N, 4]`` ``xyxy`` patches the ``theta`` refer to.
        theta: ``[N, 2, 3]``.
        obj_to_img: ``[N]`` int64, or ``None`` when ``B == 1``.
        applied: ``[N]`` bool, objects that were transformed (default: all).
        align_corners: the convention of ``theta``.
        inverse: map output points back to input points.
        return_linear: also return the accumulated linear part ``[B, K, 2, 2]`` of
            the pixel-space map each point went through (forward only), e.g. to
            rotate and scale keypoint orientations.

    Returns:
        ``[B, K, 2]`` float points (a new tensor), and the linear parts if asked.

    Example:
        >>> from augpatch.functional import patch_affine_matrix
        >>> patches = torch.tensor([[0.0, 0.0, 20.0, 40.0]])
        >>> theta = patch_affine_matrix(patches, angle=90.0)
        >>> pts = torch.tensor([[[15.0, 20.0], [30.0, 30.0]]])  # the 2nd is outside the box
        >>> map_image_points(pts, patches, theta, None).round(decimals=4)
        tensor([[[10., 15.],
                 [30., 30.]]])
    """
    if inverse and return_linear:
        raise ValueError("return_linear is only available for the forward map")
    batch_size = points.shape[0]
    n = patches.shape[0]
    dtype = compute_dtype(points)
    out = points.to(dtype).clone()
    linear = torch.eye(2, dtype=dtype, device=points.device).expand(*out.shape[:2], 2, 2).clone()
    keep = torch.ones(n, dtype=torch.bool, device=points.device) if applied is None else applied
    idx = torch.nonzero(keep).squeeze(1)
    if idx.numel() == 0 or points.shape[1] == 0:
        return (out, linear) if return_linear else out
    if obj_to_img is None:
        obj_to_img = torch.zeros(n, dtype=torch.long, device=points.device)
    rank = rank_within_image(obj_to_img[idx], batch_size)
    mapper = inverse_transform_points if inverse else transform_points
    levels = range(int(rank.max()) + 1)
    for r in reversed(levels) if inverse else levels:
        sel = idx[rank == r]  # at most one object per image
        b = obj_to_img[sel]
        pts = out[b]  # [S, K, 2]
        box = patches[sel].to(dtype)
        moved = mapper(pts, box, theta[sel], align_corners=align_corners).to(dtype)
        x, y = pts[..., 0], pts[..., 1]
        inside = (x >= box[:, None, 0]) & (x < box[:, None, 2])
        inside &= (y >= box[:, None, 1]) & (y < box[:, None, 3])
        out[b] = torch.where(inside[..., None], moved, pts)
        if return_linear:
            lin = theta_to_pixel_matrix(theta[sel], box, align_corners=align_corners)[:, :2, :2]
            new = lin.to(dtype)[:, None] @ linear[b]
            linear[b] = torch.where(inside[..., None, None], new, linear[b])
    return (out, linear) if return_linear else out


def lazy_import(name: str, extra: str) -> Any:
    """Import a third-party library or raise an ``ImportError`` that says how to get it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:  # pragma: no cover - exercised only without the library
        raise ImportError(
            f"augpatch.integrations.{extra} needs {name}: pip install 'augpatch[{extra}]'"
        ) from err


def check_version(module: Any, name: str) -> None:
    """Check ``module.__version__`` against ``augpatch.integrations.SUPPORTED[name]``.

    Below the lower bound raises ``ImportError`` (the adapter relies on APIs that
    appeared there); at or above the upper bound warns (untested, may work).
    """
    from augpatch.integrations import SUPPORTED

    version = parse_version(module.__version__)
    for part in SUPPORTED[name].split(","):
        part = part.strip()
        if part.startswith(">=") and version < parse_version(part[2:]):
            raise ImportError(
                f"augpatch.integrations.{name} needs {name}{SUPPORTED[name]}, "
                f"found {module.__version__}: pip install 'augpatch[{name}]'"
            )
        if part.startswith("<") and version >= parse_version(part[1:]):
            warnings.warn(
                f"augpatch.integrations.{name} is tested with {name}{SUPPORTED[name]}, "
                f"found {module.__version__}",
                stacklevel=3,
            )


def parse_version(text: str) -> tuple[int, ...]:
    """``'0.29.2+cu132'`` -> ``(0, 29, 2)`` (pre-release tags are ignored)."""
    parts: list[int] = []
    for piece in text.split("+")[0].split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)
