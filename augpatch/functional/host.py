"""NumPy arithmetic of the few-objects paths: bit for bit the tensor path's (internal).

A per-sample adapter moves a handful of objects per call; on tensors every small
operation costs microseconds, so :func:`augpatch.functional.patch_affine_matrix` (as
``RandomPatchAffine`` uses it) and :func:`augpatch.functional.transform_boxes` cost
about a millisecond for 7 objects, mostly in 40-60 operations on ``[N, 3, 3]`` tensors.
These functions repeat those paths' elementary operations in the same order on NumPy
arrays of the same dtype, so their results are the same bit for bit: the 3x3 products
of the tensor path add their terms one by one from zero (the small-matrix kernel of
``torch.bmm``), and a ``+ 0 * x`` term is left out here, which changes at most the sign
of a zero (``tests/test_affine_fast_draw.py``). No checks: the callers pass checked
values. NumPy is imported here only (``augpatch`` does not require it: the callers fall
back to the tensor path without it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["identity_objects", "move_boxes_arrays", "patch_affine_theta", "patch_frames",
           "transform_boxes_arrays"]


_IDENTITY_6 = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def identity_objects(theta: Any) -> Any:
    """``[N]`` bool array: True where ``theta`` (``[N, 2, 3]``) is EXACTLY the identity, as
    :func:`augpatch.transforms.pipeline.identity_rows` tells for a tensor (``-0.0`` counts
    as ``0``, ``NaN`` as not the identity).

    Example:
        >>> identity_objects(np.stack((np.eye(2, 3), 2 * np.eye(2, 3)))).tolist()
        [True, False]
    """
    return (np.asarray(theta).reshape(-1, 6) == _IDENTITY_6).all(1)


def patch_frames(patches: Any, align_corners: bool) -> tuple[Any, ...]:
    """The patch frames of ``geometry._frames``: ``(cx, cy, sd0, sd1, inv0, inv1, deg_x,
    deg_y)`` (``[N]`` each): the centre, the normalised -> pixel scales (0 on a degenerate
    axis), the pixel -> normalised scales (0 there) and the degenerate axes. Both axes are
    computed at once (``[N, 2]`` arrays: half the NumPy calls; the same operations on
    every value)."""
    centre, scale, inverse, degenerate = _frames(patches, align_corners)
    return (centre[:, 0], centre[:, 1], scale[:, 0], scale[:, 1], inverse[:, 0],
            inverse[:, 1], degenerate[:, 0], degenerate[:, 1])


def _frames(patches: Any, align_corners: bool) -> tuple[Any, Any, Any, Any]:
    """:func:`patch_frames` as ``[N, 2]`` arrays, ``(x, y)`` per row: ``(centre, scale,
    inverse, degenerate)``."""
    lo, hi = patches[:, :2], patches[:, 2:]
    off = 1.0 if align_corners else 0.0
    centre = (lo + hi) / 2
    half = (hi - lo - off) / 2
    degenerate = half <= 0
    zero, one = patches.dtype.type(0), patches.dtype.type(1)
    scale = np.where(degenerate, zero, half)
    inverse = np.where(degenerate, zero, one / np.where(degenerate, one, half))
    return centre, scale, inverse, degenerate


_IDENTITY_2 = np.eye(2, dtype=bool)


def transform_boxes_arrays(patches: Any, theta: Any, clip: bool, align_corners: bool) -> Any:
    """:func:`augpatch.functional.transform_boxes`'s arithmetic on ``patches [N, 4]`` and
    ``theta [N, 2, 3]`` (one dtype): the read map ``(D @ theta) @ D^-1`` (identity rows on
    degenerate axes), its inverse, the envelope of the 4 corners moved forward, the clip
    to the patch. Raises ``ValueError`` as ``affine_inverse`` does for a singular map.
    Each value goes through the tensor path's operations in its order; the rows and
    columns of the small matrices are computed together (``[N, 2, k]`` arrays).

    Example:
        >>> box = np.array([[0.0, 0.0, 20.0, 40.0]], np.float32)
        >>> half = np.array([[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]], np.float32)  # zoom in x2
        >>> transform_boxes_arrays(box, half, True, False).tolist()
        [[0.0, 0.0, 20.0, 40.0]]
    """
    centre, scale, inverse, degenerate = _frames(patches, align_corners)
    zero, one = patches.dtype.type(0), patches.dtype.type(1)
    # _read_matrix: (D @ theta) @ D^-1, identity rows on degenerate axes; row i of m is
    # (sd_i * t_i0, sd_i * t_i1, sd_i * t_i2 + c_i)
    m = scale[:, :, None] * theta
    shift = m[:, :, 2] + centre
    p = (-centre) * inverse  # (p02, p12)
    lin = np.where(degenerate[:, :, None], np.where(_IDENTITY_2, one, zero),
                   m[:, :, :2] * inverse[:, None, :])
    move = np.where(degenerate, zero, (m[:, :, 0] * p[:, None, 0] + m[:, :, 1] * p[:, None, 1]) + shift)
    a, b, c, d = lin[:, 0, 0], lin[:, 0, 1], lin[:, 1, 0], lin[:, 1, 1]
    # affine_inverse
    det = a * d - b * c
    if bool((det == 0).any()):
        idx = np.flatnonzero(det == 0)[:10].tolist()
        raise ValueError(
            f"theta is singular (not invertible) for object(s) {idx} (its forward map is undefined)"
        )
    inv = np.empty((det.shape[0], 2, 2), det.dtype)  # ia ib; ic id
    inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 0], inv[:, 1, 1] = d / det, (-b) / det, (-c) / det, a / det
    back = -(inv[:, :, 0] * move[:, None, 0] + inv[:, :, 1] * move[:, None, 1])  # itx, ity
    # the 4 corners moved forward and their envelope
    xs, ys = patches[:, None, [0, 2, 2, 0]], patches[:, None, [1, 1, 3, 3]]
    moved = (xs * inv[:, :, 0, None] + ys * inv[:, :, 1, None]) + back[:, :, None]  # [N, 2, 4]
    lower, upper = moved.min(2), moved.max(2)
    if clip:
        lower, upper = np.maximum(lower, patches[:, :2]), np.minimum(upper, patches[:, 2:])
    return np.concatenate((lower, upper), -1)


def move_boxes_arrays(boxes: Any, patches: Any, theta: Any, applied: Any, align_corners: bool) -> Any:
    """``PatchAugmentationBase.move_object_boxes``'s arithmetic on NumPy arrays (``patches``
    and ``theta`` of one dtype): :func:`transform_boxes_arrays` of the patches, clipped to
    the patch; content that left its patch as an exactly zero-width/height box on the
    patch's edge; ``boxes`` where not ``applied`` (``[N]`` bool).

    Example:
        >>> patch = np.array([[0.0, 0.0, 20.0, 40.0]])
        >>> away = np.array([[[1.0, 0.0, -5.0], [0.0, 1.0, 0.0]]])  # content far to the right
        >>> move_boxes_arrays(patch, patch, away, np.array([True]), False).tolist()
        [[20.0, 0.0, 20.0, 40.0]]
    """
    moved = transform_boxes_arrays(patches, theta.reshape(-1, 2, 3), True, align_corners)
    lo = np.minimum(moved[:, :2], patches[:, 2:])
    moved = np.concatenate((lo, np.maximum(moved[:, 2:], lo)), -1)
    return np.where(applied[:, None], moved, boxes.astype(moved.dtype))


def patch_affine_theta(
    patches: Any,
    cos: Any,
    sin: Any,
    tan_shear: Any,
    scale: Any,
    translate: Any,
    align_corners: bool,
) -> Any:
    """:func:`augpatch.functional.patch_affine_matrix`'s arithmetic, bit for bit (no checks).

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
        >>> fast = patch_affine_theta(boxes.numpy(), torch.cos(r).numpy(),
        ...     torch.sin(r).numpy(), zeros, np.ones((1, 2), np.float32), zeros, False)
        >>> torch.equal(torch.from_numpy(fast), patch_affine_matrix(boxes, angle=90.0))
        True
    """
    cx, cy, sd0, sd1, inv0, inv1, deg_x, deg_y = patch_frames(patches, align_corners)
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
    zero, one = patches.dtype.type(0), patches.dtype.type(1)
    m00, m01, m02 = inv0 * ia, inv0 * ib, inv0 * itx + (-cx) * inv0
    m10, m11, m12 = inv1 * ic, inv1 * id_, inv1 * ity + (-cy) * inv1
    theta = np.empty((patches.shape[0], 2, 3), patches.dtype)  # filled element by element
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = m00 * sd0, m01 * sd1, (m00 * cx + m01 * cy) + m02
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = m10 * sd0, m11 * sd1, (m10 * cx + m11 * cy) + m12
    if deg_x.any():
        theta[deg_x, 0] = (one, zero, zero)
    if deg_y.any():
        theta[deg_y, 1] = (zero, one, zero)
    return theta
