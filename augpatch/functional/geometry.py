"""Per-object affine matrices and the mapping of boxes and points through them.

Conventions (see the project's SPEC)
------------------------------------
* **Pixels.** Pixel ``(row i, col j)`` has its centre at continuous coordinates
  ``(x, y) = (j + 0.5, i + 0.5)``; ``x`` runs along the width. Boxes are ``xyxy``
  in these coordinates, so an integer box ``(x1, y1, x2, y2)`` covers exactly
  ``img[..., y1:y2, x1:x2]``.
* **Patch.** A box's *patch* is the box clipped to the canvas ``[0, W] x [0, H]``
  when the canvas size is known (``canvas_size=(H, W)``), otherwise the box itself.
  Functions whose argument is called ``patches`` take the patch as given.
* **Normalised patch coordinates.** For the patch ``(x1, y1, x2, y2)`` let
  ``cx = (x1 + x2) / 2`` and

  - ``align_corners=False``: ``sx = (x2 - x1) / 2`` -- the patch *edges* are ``u = -1, +1``;
  - ``align_corners=True``: ``sx = (x2 - x1 - 1) / 2`` -- the corner pixel *centres*
    are ``u = -1, +1``;

  then ``u = (x - cx) / sx`` (same for ``y``/``v`` with ``cy``, ``sy``). These are
  exactly the coordinates of ``F.affine_grid`` / ``F.grid_sample`` applied to the
  patch crop.
* **Degenerate axes.** When ``sx <= 0`` (an empty patch, or a 1-pixel-wide patch
  with ``align_corners=True``) every ``x`` has ``u = 0``, mirroring
  ``F.affine_grid`` for a size-1 axis. Along such an axis the object cannot move:
  the pixel-space maps act as the identity on ``x`` (and ``y`` is mapped as seen from
  ``x = cx``), ``theta``'s row and column for that axis are irrelevant, and the
  ``theta`` produced here holds the identity row ``[1, 0, 0]`` (``[0, 1, 0]``) and a
  zero coupling column there. No NaN is ever produced by a degenerate patch; as a
  consequence the ``pixel matrix -> theta -> pixel matrix`` round trip is exact only
  for non-degenerate patches.
* **theta** ``[N, 2, 3]`` (``[N, 6]`` accepted) is the ``F.affine_grid`` matrix: it maps
  an OUTPUT normalised location to the INPUT normalised location it reads from.
  The object's content therefore moves by the FORWARD map ``theta^-1``.
* **Pixel matrix** ``[N, 3, 3]``: the forward map in continuous pixel coordinates --
  content at ``p = (x, y, 1)`` moves to ``A @ p``. With ``D`` the normalised -> pixel
  map of the patch (``x = cx + sx u``), ``theta = (D^-1 A D)^-1`` (top two rows) and
  ``A = D theta^-1 D^-1``.
* **Human parameters** (:func:`patch_affine_matrix`) live in pixel space about the
  patch centre ``c``: ``A = T(c + translate) R(angle) Shear(shear) S(scale) T(-c)``.
  ``angle`` is in degrees and POSITIVE = COUNTER-CLOCKWISE on screen (``y`` down),
  like ``torchvision.transforms.v2.functional.rotate`` and ``kornia...rotate``
  (``torchvision...functional.affine`` and Kornia's ``get_affine_matrix2d`` use the
  opposite sign). ``shear = (shx, shy)`` in degrees uses torchvision's ``F.affine``
  convention: ``Shear = SHy(shy) @ SHx(shx)`` with ``SHx = [[1, -tan shx], [0, 1]]``
  and ``SHy = [[1, 0], [-tan shy, 1]]``. Converting with each patch's own size is what
  keeps a rotated square object square in a non-square box.
* **dtype.** Everything is computed and returned in float64 if any floating input is
  float64, else in float32 (integer boxes are accepted).
* **Singular maps.** A forward map needs ``theta`` (or the pixel matrix) to be
  invertible; a singular one raises ``ValueError`` naming the argument and objects.

All functions are batched over ``N`` objects (no Python loop), differentiable with
respect to every floating input, device-agnostic, and never modify their inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from augpatch.functional._boxes import check_canvas_size, clip_boxes
from augpatch.functional.checks import (
    check_bool,
    check_boxes,
    check_finite,
    check_points,
    check_same_device,
    check_tensor,
    check_theta,
    compute_dtype,
    host_arithmetic,
    values_visible,
)
from augpatch.functional.parameters import (  # noqa: F401  (parse_* re-exported)
    parse_angle,
    parse_scale,
    parse_shear,
    parse_translate,
)

__all__ = [
    "affine_inverse",
    "invert_theta",
    "inverse_transform_boxes",
    "inverse_transform_points",
    "patch_affine_matrix",
    "pixel_matrix_to_theta",
    "theta_to_pixel_matrix",
    "transform_boxes",
    "to3x3",
    "transform_points",
]

# --------------------------------------------------------------------------- helpers


def _patches(boxes: Tensor, canvas_size: object) -> Tensor:
    """The patch of each box: the box clipped to the canvas when its size is given."""
    if canvas_size is None:
        return boxes
    return clip_boxes(boxes, check_canvas_size(canvas_size))


def _frames(patches: Tensor, align_corners: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Normalised <-> pixel maps of each patch.

    Returns ``(D [N, 3, 3], D_pinv [N, 3, 3], degenerate [N, 3] bool)`` where
    ``D`` maps normalised -> pixel, ``D_pinv`` pixel -> normalised (with ``u = 0`` on a
    degenerate axis) and ``degenerate[:, k]`` flags the degenerate axes (last is False).
    """
    x1, y1, x2, y2 = patches.unbind(-1)
    off = 1.0 if align_corners else 0.0
    c = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2), -1)  # [N, 2]
    s = torch.stack(((x2 - x1 - off) / 2, (y2 - y1 - off) / 2), -1)  # [N, 2]
    deg = s <= 0
    s_safe = torch.where(deg, torch.ones_like(s), s)
    s_d = torch.where(deg, torch.zeros_like(s), s)  # normalised -> pixel scale (0 if degenerate)
    inv = torch.where(deg, torch.zeros_like(s), 1.0 / s_safe)  # pixel -> normalised scale
    zero = torch.zeros_like(s[:, 0])
    one = torch.ones_like(zero)
    d = torch.stack(
        (
            torch.stack((s_d[:, 0], zero, c[:, 0]), -1),
            torch.stack((zero, s_d[:, 1], c[:, 1]), -1),
            torch.stack((zero, zero, one), -1),
        ),
        1,
    )
    d_pinv = torch.stack(
        (
            torch.stack((inv[:, 0], zero, -c[:, 0] * inv[:, 0]), -1),
            torch.stack((zero, inv[:, 1], -c[:, 1] * inv[:, 1]), -1),
            torch.stack((zero, zero, one), -1),
        ),
        1,
    )
    degenerate = torch.cat((deg, torch.zeros_like(deg[:, :1])), -1)
    return d, d_pinv, degenerate


def _identity_rows(m: Tensor, degenerate: Tensor) -> Tensor:
    """Replace the rows of ``m [N, 3, 3]`` flagged in ``degenerate [N, 3]`` by identity rows."""
    eye = torch.eye(3, dtype=m.dtype, device=m.device).expand_as(m)
    return torch.where(degenerate[:, :, None], eye, m)


def to3x3(m: Tensor) -> Tensor:
    """``[N, 2, 3] -> [N, 3, 3]`` homogeneous matrices (appends the row ``[0, 0, 1]``)."""
    last = torch.zeros_like(m[:, :1, :])
    last[:, :, 2] = 1
    return torch.cat((m, last), 1)


def affine_inverse(m: Tensor, name: str = "theta", hint: str = "") -> Tensor:
    """Inverse of affine ``[N, 3, 3]`` matrices (closed form, differentiable).

    Raises ``ValueError`` naming ``name`` and the objects (and ``hint``) if singular.
    """
    a, b, tx = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    c, d, ty = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    det = a * d - b * c
    bad = det == 0
    if not values_visible(det):  # tracing: the check runs when the compiled graph runs
        torch._assert_async(~bad.any(), f"{name} is singular (not invertible){hint}")
    elif bool(bad.any()):
        idx = torch.nonzero(bad).flatten()[:10].tolist()
        raise ValueError(f"{name} is singular (not invertible) for object(s) {idx}{hint}")
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    itx = -(ia * tx + ib * ty)
    ity = -(ic * tx + id_ * ty)
    zero = torch.zeros_like(a)
    one = torch.ones_like(a)
    return torch.stack(
        (
            torch.stack((ia, ib, itx), -1),
            torch.stack((ic, id_, ity), -1),
            torch.stack((zero, zero, one), -1),
        ),
        1,
    )


def invert_theta(theta: Tensor, name: str = "theta") -> Tensor:
    """Inverse ``[N, 2, 3]`` of affine ``theta [N, 2, 3]`` (closed form, differentiable).

    ``theta`` and its inverse refer to the same patch coordinates, so warping with one
    and then the other gives back the original patch (up to what was cut off and
    resampling). Raises ``ValueError`` if a ``theta`` is singular.
    """
    return affine_inverse(to3x3(theta), name, ": the inverse is undefined")[:, :2, :]


def _read_matrix(theta3: Tensor, patches: Tensor, align_corners: bool) -> Tensor:
    """Pixel-space map ``output location -> input location`` (``D theta D^-1``), ``[N, 3, 3]``."""
    d, d_pinv, deg = _frames(patches, align_corners)
    return _identity_rows(d @ theta3 @ d_pinv, deg)


def _theta_from_read(read: Tensor, patches: Tensor, align_corners: bool) -> Tensor:
    """Normalised ``theta [N, 2, 3]`` of a pixel-space read map (``D^-1 R D``)."""
    d, d_pinv, deg = _frames(patches, align_corners)
    return _identity_rows(d_pinv @ read @ d, deg)[:, :2, :]


def _apply(m: Tensor, points: Tensor) -> Tensor:
    """Apply affine ``[N, 3, 3]`` to points ``[N, K, 2]``."""
    lin = m[:, :2, :2]
    t = m[:, :2, 2]
    return points @ lin.transpose(1, 2) + t[:, None, :]


def _corners(boxes: Tensor) -> Tensor:
    """The 4 corners ``[N, 4, 2]`` of ``xyxy`` boxes."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    xs = torch.stack((x1, x2, x2, x1), -1)
    ys = torch.stack((y1, y1, y2, y2), -1)
    return torch.stack((xs, ys), -1)


def _aabb(points: Tensor) -> Tensor:
    """Axis-aligned bounding box ``[N, 4]`` of points ``[N, K, 2]``."""
    lo = points.amin(1)
    hi = points.amax(1)
    return torch.cat((lo, hi), -1)


# --------------------------------------------------------------------------- public API


def pixel_matrix_to_theta(
    matrix: Tensor,
    boxes: Tensor,
    *,
    align_corners: bool = False,
    canvas_size: tuple[int, int] | None = None,
) -> Tensor:
    """Convert forward pixel-space affines into ``F.affine_grid`` thetas of each patch.

    Args:
        matrix: ``[N, 3, 3]`` (or ``[N, 2, 3]``) forward maps in continuous pixel
            coordinates: content at ``(x, y)`` moves to ``matrix @ (x, y, 1)``. Must be
            affine (last row ``[0, 0, 1]``) and invertible.
        boxes: ``[N, 4]`` ``xyxy`` patches (clipped to ``canvas_size`` first if given).
        align_corners: normalisation convention, as in ``F.affine_grid``.
        canvas_size: optional ``(H, W)``; boxes are then clipped to the canvas.

    Returns:
        ``theta [N, 2, 3] = (D^-1 A D)^-1`` (top rows), ``D`` = normalised -> pixel map
        of each patch (see the module docstring for degenerate patches).

    Example:
        >>> boxes = torch.tensor([[10.0, 10.0, 30.0, 50.0]])
        >>> shift = torch.tensor([[[1.0, 0.0, 5.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
        >>> pixel_matrix_to_theta(shift, boxes)  # content moves right by 5 px = half the width
        tensor([[[ 1.0000,  0.0000, -0.5000],
                 [ 0.0000,  1.0000,  0.0000]]])
    """
    matrix = check_tensor("matrix", matrix)
    boxes = check_tensor("boxes", boxes)
    check_same_device(matrix=matrix, boxes=boxes)
    boxes = check_boxes(boxes, "boxes")
    align_corners = check_bool("align_corners", align_corners)
    if not matrix.is_floating_point():
        raise TypeError(f"matrix must be a floating point tensor, got {matrix.dtype}")
    if matrix.dim() != 3 or matrix.shape[-1] != 3 or matrix.shape[-2] not in (2, 3):
        raise ValueError(
            f"matrix must have shape [N, 3, 3] or [N, 2, 3], got {tuple(matrix.shape)}"
        )
    if matrix.shape[0] != boxes.shape[0]:
        raise ValueError(f"matrix has {matrix.shape[0]} rows but there are {boxes.shape[0]} boxes")
    check_finite("matrix", matrix)
    dtype = compute_dtype(matrix, boxes)
    matrix = matrix.to(dtype)
    if matrix.shape[-2] == 3:
        last = matrix[:, 2, :]
        expected = torch.tensor([0.0, 0.0, 1.0], dtype=dtype, device=matrix.device)
        affine = torch.allclose(last, expected.expand_as(last), atol=1e-6, rtol=0)
        if matrix.shape[0] and not affine:
            raise ValueError("matrix must be affine: its last row must be [0, 0, 1]")
        matrix = matrix[:, :2, :]
    patches = _patches(boxes.to(dtype), canvas_size)
    read = affine_inverse(to3x3(matrix), "matrix")
    return _theta_from_read(read, patches, align_corners)


def theta_to_pixel_matrix(
    theta: Tensor,
    boxes: Tensor,
    *,
    align_corners: bool = False,
    canvas_size: tuple[int, int] | None = None,
) -> Tensor:
    """Forward pixel-space affine ``[N, 3, 3]`` of each ``theta`` (inverse of
    :func:`pixel_matrix_to_theta`).

    Args:
        theta: ``[N, 2, 3]`` or ``[N, 6]`` ``F.affine_grid`` matrices, invertible.
        boxes: ``[N, 4]`` ``xyxy`` patches (clipped to ``canvas_size`` first if given).
        align_corners: normalisation convention, as in ``F.affine_grid``.
        canvas_size: optional ``(H, W)``; boxes are then clipped to the canvas.

    Returns:
        ``A [N, 3, 3] = D theta^-1 D^-1``: content at ``(x, y)`` moves to ``A @ (x, y, 1)``.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
        >>> theta = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]])  # zoom in x2
        >>> theta_to_pixel_matrix(theta, boxes)[0, :2] + 0.0
        tensor([[ 2.,  0., -2.],
                [ 0.,  2., -2.]])
    """
    boxes = check_tensor("boxes", boxes)
    theta = check_tensor("theta", theta)
    check_same_device(theta=theta, boxes=boxes)
    boxes = check_boxes(boxes, "boxes")
    theta = check_theta(theta, boxes.shape[0])
    align_corners = check_bool("align_corners", align_corners)
    dtype = compute_dtype(theta, boxes)
    patches = _patches(boxes.to(dtype), canvas_size)
    read = _read_matrix(to3x3(theta.to(dtype)), patches, align_corners)
    return affine_inverse(read, "theta")


def patch_affine_matrix(
    boxes: Tensor,
    angle: Tensor | float | None = None,
    translate: Tensor | None = None,
    scale: Tensor | float | None = None,
    shear: Tensor | None = None,
    *,
    align_corners: bool = False,
    canvas_size: tuple[int, int] | None = None,
) -> Tensor:
    """Build per-object ``theta`` from human parameters defined in pixel space.

    The forward map of object ``n`` (content at ``p`` moves to ``A @ p``) is
    ``A = T(c + translate) @ R(angle) @ Shear(shear) @ S(scale) @ T(-c)`` about the
    patch centre ``c``, and the result is ``pixel_matrix_to_theta(A, boxes)``. Because
    ``A`` is in pixels, a rotated square object stays square whatever the box's aspect
    ratio.

    Args:
        boxes: ``[N, 4]`` ``xyxy`` boxes (clipped to ``canvas_size`` first if given, so
            the centre is then the centre of the visible patch).
        angle: degrees, POSITIVE = COUNTER-CLOCKWISE on screen (as
            ``torchvision.transforms.v2.functional.rotate``; the opposite of
            ``torchvision...functional.affine``). A number, ``[]``, ``[1]`` or ``[N]``.
        translate: pixels, always a pair ``(tx, ty)``: a Python pair or a tensor ``[2]`` /
            ``[1, 2]`` for every object, ``[N, 2]`` per object (a single number ``t``
            shifts both axes by ``t``).
        scale: ONE factor (isotropic) or an ``(sx, sy)`` PAIR, along the object's own
            axes before shear and rotation; non-zero (negative flips). The tensor's
            number of dimensions decides, never ``N``: a number / ``[]`` / ``[1]`` is one
            factor for every object; a 1-D tensor ``[N]`` (or ``[N, 1]``) is one factor
            PER OBJECT; a Python pair ``(sx, sy)`` or a tensor ``[1, 2]`` is one pair for
            every object; ``[N, 2]`` is a pair per object. So with two boxes
            ``torch.tensor([0.5, 2.0])`` halves the first object and doubles the second,
            while ``(0.5, 2.0)`` squeezes both horizontally and stretches them
            vertically; a 1-D tensor of another length than 1 or ``N`` is an error.
        shear: degrees, torchvision ``F.affine`` convention, the forms of ``scale``: one
            value is an x-shear only ``(s, 0)``; a pair is ``(x-shear, y-shear)``.
        align_corners: normalisation convention of the returned theta.
        canvas_size: optional ``(H, W)``: use the box clipped to the canvas as the patch.
            Pass it whenever boxes may extend beyond the image: ``theta`` is expressed in
            the coordinates of the patch, which the warp takes to be the clipped box.

    ``None`` means identity. Every tensor argument may require grad; gradients flow
    to all of them (and to float ``boxes``).

    Returns:
        ``theta [N, 2, 3]``, float64 if any input is float64 else float32.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0]])
        >>> theta = patch_affine_matrix(boxes, angle=90.0)
        >>> theta.round(decimals=4) + 0.0  # aspect 1:2 patch: not a plain rotation matrix
        tensor([[[ 0.0000, -2.0000,  0.0000],
                 [ 0.5000,  0.0000,  0.0000]]])
    """
    boxes = check_tensor("boxes", boxes)
    check_same_device(boxes=boxes, angle=angle, translate=translate, scale=scale, shear=shear)
    boxes = check_boxes(boxes, "boxes")
    align_corners = check_bool("align_corners", align_corners)
    n = boxes.shape[0]
    dtype = compute_dtype(
        boxes, *(p for p in (angle, translate, scale, shear) if isinstance(p, Tensor))
    )
    device = boxes.device
    ang = parse_angle(angle, n, dtype=dtype, device=device)
    tr = parse_translate(translate, n, dtype=dtype, device=device)
    sc = parse_scale(scale, n, dtype=dtype, device=device)
    sh = parse_shear(shear, n, dtype=dtype, device=device)

    patches = _patches(boxes.to(dtype), canvas_size)
    x1, y1, x2, y2 = patches.unbind(-1)
    c = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2), -1)  # [N, 2]

    eye = torch.eye(2, dtype=dtype, device=device)
    lin = eye.expand(n, 2, 2)
    if sc is not None:
        lin = lin * sc[:, None, :]  # S = diag(sx, sy): scales the columns
    if sh is not None:
        tx, ty = torch.tan(torch.deg2rad(sh)).unbind(-1)
        one = torch.ones_like(tx)
        shear_m = torch.stack(
            (torch.stack((one, -tx), -1), torch.stack((-ty, 1 + tx * ty), -1)), 1
        )  # SHy(ty) @ SHx(tx)
        lin = shear_m @ lin
    if ang is not None:
        r = torch.deg2rad(ang)
        cos, sin = torch.cos(r), torch.sin(r)
        rot = torch.stack((torch.stack((cos, sin), -1), torch.stack((-sin, cos), -1)), 1)
        lin = rot @ lin  # counter-clockwise on screen with y pointing down
    shift = c + (tr if tr is not None else 0.0)
    t = shift - (lin @ c[:, :, None])[:, :, 0]
    forward = to3x3(torch.cat((lin, t[:, :, None]), -1))
    read = affine_inverse(
        forward, "the forward map built from scale/shear", " (a zero scale or a +-90 degree shear)"
    )
    return _theta_from_read(read, patches, align_corners)


def transform_boxes(
    boxes: Tensor,
    theta: Tensor,
    *,
    clip: bool = True,
    canvas_size: tuple[int, int] | None = None,
    align_corners: bool = False,
) -> Tensor:
    """New box of each object after its content moved by the forward map ``theta^-1``.

    The patch is the box clipped to ``canvas_size`` (if given). The new box is the
    axis-aligned bounding box of the patch's 4 corners mapped forward; with
    ``clip=True`` it is intersected with the patch (content leaving the patch is cut
    off when it is pasted back). The result may be degenerate (``x2 <= x1`` or
    ``y2 <= y1``) when the content left the patch entirely; it is never NaN.

    Args:
        boxes: ``[N, 4]`` ``xyxy`` boxes.
        theta: ``[N, 2, 3]`` or ``[N, 6]``, invertible.
        clip: intersect the result with the patch.
        canvas_size: optional ``(H, W)`` of the image.
        align_corners: normalisation convention of ``theta``.

    Returns:
        ``[N, 4]`` float boxes (differentiable w.r.t. ``theta`` and float ``boxes``).

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0]])
        >>> theta = patch_affine_matrix(boxes, scale=0.5)
        >>> transform_boxes(boxes, theta)
        tensor([[ 5., 10., 15., 30.]])
    """
    boxes = check_tensor("boxes", boxes)
    theta = check_tensor("theta", theta)
    check_same_device(boxes=boxes, theta=theta)
    boxes = check_boxes(boxes, "boxes")
    theta = check_theta(theta, boxes.shape[0])
    clip = check_bool("clip", clip)
    align_corners = check_bool("align_corners", align_corners)
    dtype = compute_dtype(boxes, theta)
    patches = _patches(boxes.to(dtype), canvas_size)
    if host_arithmetic(patches, theta):
        return _transform_boxes_host(patches, theta.to(dtype), clip, align_corners)
    read = _read_matrix(to3x3(theta.to(dtype)), patches, align_corners)
    forward = affine_inverse(read, "theta", " (its forward map is undefined)")
    out = _aabb(_apply(forward, _corners(patches)))
    if clip:
        lo = torch.maximum(out[:, :2], patches[:, :2])
        hi = torch.minimum(out[:, 2:], patches[:, 2:])
        out = torch.cat((lo, hi), -1)
    return out


def _transform_boxes_host(patches: Tensor, theta: Tensor, clip: bool, align_corners: bool) -> Tensor:
    """:func:`transform_boxes`'s arithmetic in NumPy, bit for bit
    (:func:`augpatch.functional.host.transform_boxes_arrays`)."""
    from augpatch.functional.host import transform_boxes_arrays

    t = theta.reshape(-1, 2, 3)
    return torch.from_numpy(transform_boxes_arrays(patches.numpy(), t.numpy(), clip, align_corners))


def inverse_transform_boxes(
    boxes_out: Tensor, patches: Tensor, theta: Tensor, *, align_corners: bool = False
) -> Tensor:
    """Map boxes back through ``theta`` itself (output location -> source location).

    The result is the axis-aligned bounding box of the 4 corners of each
    ``boxes_out`` mapped by ``theta`` (in pixel space of its patch). It undoes
    :func:`transform_boxes` exactly whenever nothing was cut off and the map sends
    axis-aligned boxes to axis-aligned boxes (translation, scale, flips, multiples of 90
    degrees); otherwise it is the bounding box of the source region.
    ``theta`` need not be invertible.

    Args:
        boxes_out: ``[N, 4]`` ``xyxy`` boxes in the output image.
        patches: ``[N, 4]`` the patches ``theta`` refers to (boxes already clipped).
        theta: ``[N, 2, 3]`` or ``[N, 6]``.
        align_corners: normalisation convention of ``theta``.

    Returns:
        ``[N, 4]`` float boxes, not clipped.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0]])
        >>> theta = patch_affine_matrix(boxes, scale=0.5)
        >>> inverse_transform_boxes(torch.tensor([[5.0, 10.0, 15.0, 30.0]]), boxes, theta)
        tensor([[ 0.,  0., 20., 40.]])
    """
    boxes_out = check_tensor("boxes_out", boxes_out)
    patches = check_tensor("patches", patches)
    theta = check_tensor("theta", theta)
    check_same_device(boxes_out=boxes_out, patches=patches, theta=theta)
    boxes_out = check_boxes(boxes_out, "boxes_out")
    patches = check_boxes(patches, "patches")
    if patches.shape[0] != boxes_out.shape[0]:
        raise ValueError(
            f"patches has {patches.shape[0]} rows but boxes_out has {boxes_out.shape[0]}"
        )
    theta = check_theta(theta, patches.shape[0])
    align_corners = check_bool("align_corners", align_corners)
    dtype = compute_dtype(boxes_out, patches, theta)
    read = _read_matrix(to3x3(theta.to(dtype)), patches.to(dtype), align_corners)
    return _aabb(_apply(read, _corners(boxes_out.to(dtype))))


def transform_points(
    points: Tensor, patches: Tensor, theta: Tensor, *, align_corners: bool = False
) -> Tensor:
    """Move points (keypoints) of each object by its forward map ``theta^-1``, exactly.

    Args:
        points: ``[N, K, 2]`` ``(x, y)`` points in continuous pixel coordinates.
        patches: ``[N, 4]`` the patches ``theta`` refers to (boxes already clipped).
        theta: ``[N, 2, 3]`` or ``[N, 6]``, invertible.
        align_corners: normalisation convention of ``theta``.

    Returns:
        ``[N, K, 2]`` float points (not clipped; differentiable).

    Example:
        >>> patches = torch.tensor([[0.0, 0.0, 20.0, 40.0]])
        >>> theta = patch_affine_matrix(patches, angle=90.0)
        >>> # +90 degrees: a point 5 px right of the centre (10, 20) moves 5 px up
        >>> transform_points(torch.tensor([[[15.0, 20.0]]]), patches, theta).round(decimals=4)
        tensor([[[10., 15.]]])
    """
    points, read = _point_inputs(points, patches, theta, align_corners)
    forward = affine_inverse(read, "theta", " (its forward map is undefined)")
    return _apply(forward, points)


def inverse_transform_points(
    points: Tensor, patches: Tensor, theta: Tensor, *, align_corners: bool = False
) -> Tensor:
    """Map points back through ``theta`` itself (undoes :func:`transform_points`).

    Args:
        points: ``[N, K, 2]`` ``(x, y)`` points in the output image.
        patches: ``[N, 4]`` the patches ``theta`` refers to.
        theta: ``[N, 2, 3]`` or ``[N, 6]`` (need not be invertible).
        align_corners: normalisation convention of ``theta``.

    Returns:
        ``[N, K, 2]`` float points: where each output point reads its content from.

    Example:
        >>> patches = torch.tensor([[0.0, 0.0, 20.0, 40.0]])
        >>> theta = patch_affine_matrix(patches, angle=90.0)
        >>> inverse_transform_points(torch.tensor([[[10.0, 15.0]]]), patches, theta)
        tensor([[[15., 20.]]])
    """
    points, read = _point_inputs(points, patches, theta, align_corners)
    return _apply(read, points)


def _point_inputs(points: Tensor, patches: Tensor, theta: Tensor, align_corners: bool) -> tuple[Tensor, Tensor]:
    """Validate the point mapping arguments; return the points and the read matrix ``[N,3,3]``."""
    points = check_tensor("points", points)
    patches = check_tensor("patches", patches)
    theta = check_tensor("theta", theta)
    check_same_device(points=points, patches=patches, theta=theta)
    patches = check_boxes(patches, "patches")
    points = check_points(points, patches.shape[0])
    theta = check_theta(theta, patches.shape[0])
    align_corners = check_bool("align_corners", align_corners)
    dtype = compute_dtype(points, patches, theta)
    read = _read_matrix(to3x3(theta.to(dtype)), patches.to(dtype), align_corners)
    return points.to(dtype), read
