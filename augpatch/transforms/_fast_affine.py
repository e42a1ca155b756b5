"""The few-objects draw of :class:`~augpatch.transforms.RandomPatchAffine` in NumPy (private).

A per-sample adapter draws for a handful of objects per call; on tensors, every small
operation costs microseconds and the generic path a millisecond. These functions repeat
the tensor path's elementary operations in the same order on NumPy arrays, so that the
results are the same bit for bit (``tests/test_affine_fast_draw.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__: list[str] = []


def _patch_affine_theta_arrays(
    patches: Any,
    cos: Any,
    sin: Any,
    tan_shear: Any,
    scale: Any,
    translate: Any,
    align_corners: bool,
) -> Any:
    """:func:`augpatch.functional.patch_affine_matrix`'s arithmetic on NumPy arrays, bit for bit (no checks).

    For a handful of objects drawn inside the library (a transform's own, checked
    parameters, no gradient), where the 60-odd small tensor operations and the argument
    checks of :func:`patch_affine_matrix` cost a millisecond: the same elementary
    operations in the same order (a ``+ 0 * x`` term of its 3x3 products is left out,
    which changes at most the sign of a zero), in the arrays' dtype.

    Args:
        patches: ``[N, 4]`` ``xyxy`` patches (already clipped), float32 or float64.
        cos, sin: ``[N]`` ``torch.cos`` / ``torch.sin`` of ``torch.deg2rad(angle)``.
        tan_shear: ``[N, 2]`` ``torch.tan(torch.deg2rad(shear))``.
        scale: ``[N, 2]`` ``(sx, sy)``.
        translate: ``[N, 2]`` pixels.
        align_corners: normalisation convention of the result.

    Returns:
        ``theta`` ``[N, 2, 3]`` as an array of the patches' dtype.

    Example:
        >>> import numpy as np, torch
        >>> from augpatch.functional import patch_affine_matrix
        >>> boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0]])
        >>> r = torch.deg2rad(torch.tensor([90.0]))
        >>> zeros = np.zeros((1, 2), np.float32)
        >>> fast = _patch_affine_theta_arrays(boxes.numpy(), torch.cos(r).numpy(),
        ...     torch.sin(r).numpy(), zeros, np.ones((1, 2), np.float32), zeros, False)
        >>> torch.equal(torch.from_numpy(fast), patch_affine_matrix(boxes, angle=90.0))
        True
    """
    x1, y1, x2, y2 = patches[:, 0], patches[:, 1], patches[:, 2], patches[:, 3]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    sx, sy = scale[:, 0], scale[:, 1]
    tx, ty = tan_shear[:, 0], tan_shear[:, 1]
    # lin = R(angle) @ Shear @ diag(sx, sy)
    s00, s01, s10, s11 = sx, (-tx) * sy, (-ty) * sx, (1 + tx * ty) * sy
    a, b = cos * s00 + sin * s10, cos * s01 + sin * s11
    c, d = (-sin) * s00 + cos * s10, (-sin) * s01 + cos * s11
    t0 = (cx + translate[:, 0]) - (a * cx + b * cy)
    t1 = (cy + translate[:, 1]) - (c * cx + d * cy)
    # affine_inverse of the forward map: the read map
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, (-b) / det, (-c) / det, a / det
    itx, ity = -(ia * t0 + ib * t1), -(ic * t0 + id_ * t1)
    # _theta_from_read: D^-1 @ read @ D with the patch frames
    off = 1.0 if align_corners else 0.0
    half_w, half_h = (x2 - x1 - off) / 2, (y2 - y1 - off) / 2
    deg_x, deg_y = half_w <= 0, half_h <= 0
    zero, one = patches.dtype.type(0), patches.dtype.type(1)
    sd0, sd1 = np.where(deg_x, zero, half_w), np.where(deg_y, zero, half_h)
    inv0 = np.where(deg_x, zero, one / np.where(deg_x, one, half_w))
    inv1 = np.where(deg_y, zero, one / np.where(deg_y, one, half_h))
    m00, m01, m02 = inv0 * ia, inv0 * ib, inv0 * itx + (-cx) * inv0
    m10, m11, m12 = inv1 * ic, inv1 * id_, inv1 * ity + (-cy) * inv1
    row0 = np.stack((m00 * sd0, m01 * sd1, (m00 * cx + m01 * cy) + m02), -1)
    row1 = np.stack((m10 * sd0, m11 * sd1, (m10 * cx + m11 * cy) + m12), -1)
    row0 = np.where(deg_x[:, None], np.array([one, zero, zero]), row0)
    row1 = np.where(deg_y[:, None], np.array([zero, one, zero]), row1)
    return np.stack((row0, row1), 1)
