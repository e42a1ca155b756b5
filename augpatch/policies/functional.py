"""Pure kernels of the detection AutoAugment ops that torchvision has no batched form of.

Box-only photometric ops act on the pixels of every given box at once, each box with
its own parameters (no Python loop over boxes):

* :func:`equalize_boxes`: histogram equalisation of each box's pixels, per channel
  (PIL's algorithm, as ``torchvision.transforms.v2.functional.equalize``);
* :func:`solarize_boxes`: invert the pixels at or above each box's threshold;
* :func:`fill_rects`: fill rectangles with a constant (the cutouts).

plus :func:`solarize_add` (the reference's ``SolarizeAdd``, absent from torchvision)
and :func:`box_pixel_rects`. The box-only geometric ops are
:func:`augpatch.functional.warp_patches_fill` with the matrices of
:func:`box_only_theta`.

Pixels and boxes follow augpatch's SPEC: pixel ``(i, j)`` belongs to box
``(x1, y1, x2, y2)`` iff ``x1 <= j + 0.5 < x2`` and ``y1 <= i + 0.5 < y2`` (for
integer boxes, the slice ``[y1:y2, x1:x2]``). Overlapping boxes are handled as the
sequential loop over boxes in index order (``overlap="sequential"``: each box reads
the image as the earlier ones left it) or all read the input and the higher index
wins (``"parallel"``); the work is one pass per *level* of overlapping boxes (see
:mod:`augpatch.functional._plan`), one in total when no two boxes of an image overlap.

Two implementations, one result (tested bit for bit): the torch code here, for every
device and dtype, gathers the boxes' pixels with index tensors; on the CPU, when
augpatch's compiled kernel is in use (``AUGPATCH_CPU_KERNEL`` / ``set_cpu_kernel`` not
``eager``) and nothing needs a gradient, compiled loops (``csrc/box_ops_cpu.cpp``) do the
photometric ops of uint8 images in place box by box in index order, and copy the rows of
the boxes into and out of ``warp_in_boxes``' canvas. Either way the cost follows the
boxes' area: no pass over whole images.
"""

from __future__ import annotations

import torch  # noqa: F401  (the docstring examples use it)
from torch import Tensor

from augpatch.policies._box_kernels import (
    box_pixel_rects,
    equalize_boxes,
    fill_rects,
    shear_degrees,
    solarize_add,
    solarize_boxes,
    warp_in_boxes,
)
from augpatch.policies._table import OPS

__all__ = [
    "box_only_theta",
    "box_pixel_rects",
    "equalize_boxes",
    "fill_rects",
    "shear_degrees",
    "solarize_add",
    "solarize_boxes",
    "warp_in_boxes",
]


def box_only_theta(
    op: str, patches: Tensor, magnitude: Tensor, *, align_corners: bool = False
) -> Tensor:
    """``theta [N, 2, 3]`` of a box-only geometric op about each box's own centre.

    The reference applies the op to the box's crop (``Rotate``, ``ShearX/Y``,
    ``TranslateX/Y`` and a left-right flip); ``magnitude`` is its argument per box:

    * ``Rotate_Only_BBoxes``: degrees, counter-clockwise on screen;
    * ``ShearX_Only_BBoxes``: coefficient ``s``: content moves ``x -> x - s (y - cy)``
      (the reference shears the crop about its top-left corner: augpatch shears about
      the centre so that the object stays in its box);
    * ``ShearY_Only_BBoxes``: ``y -> y - s (x - cx)``;
    * ``TranslateX_Only_BBoxes`` / ``TranslateY_Only_BBoxes``: pixels ``p``: content
      moves by ``-p`` (the reference's ``translate_x(image, pixels)``);
    * ``Flip_Only_BBoxes``: mirror left-right (magnitude ignored).

    Args:
        op: the op name. patches: ``[N, 4]`` boxes clipped to the canvas.
        magnitude: ``[N]`` the op's signed argument.

    Example:
        >>> box_only_theta("TranslateX_Only_BBoxes", torch.tensor([[0.0, 0, 10, 10]]),
        ...                torch.tensor([5.0]))
        tensor([[[1., 0., 1.],
                 [0., 1., 0.]]])
    """
    spec = OPS.get(op)
    if spec is None or spec.kind != "box_geometric":
        raise ValueError(f"{op!r} is not a box-only geometric op")
    return spec.box_theta(patches, magnitude, align_corners=align_corners)
