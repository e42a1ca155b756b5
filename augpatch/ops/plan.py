"""The planning of a warp: which pixels each object writes and reads, in which order.

:func:`prepare` turns validated arguments into what a backend runs: the objects in
processing order (clipped to the canvas, scheduled into levels by
:mod:`augpatch.ops.schedule`), their per-object parameters ``[K, 14]``
(:data:`~augpatch.ops.layout.PARAM_COLUMNS`, differentiable w.r.t. boxes and ``theta``)
and a :class:`WarpPlan` (the integer addressing). Pixel ``(i, j)`` belongs to box
``(x1, y1, x2, y2)`` iff ``x1 <= j + 0.5 < x2`` and ``y1 <= i + 0.5 < y2``
(:func:`pixel_rects`: the one implementation of that rule in the core).

Example:
    >>> import torch
    >>> pixel_rects(torch.tensor([[1.5, 0.0, 6.5, 2.0]], dtype=torch.float64), 4, 8)
    tensor([[1, 0, 6, 2]])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import torch
from torch import Tensor

from augpatch.ops.layout import PARAM_COLUMNS
from augpatch.ops.schedule import overlap_edges, schedule_levels
from augpatch.ops.values import check_image_index, compute_dtype

# pixels per eager chunk: bounds the temporary memory of a call (about 300 bytes a pixel);
# larger chunks mean fewer, bigger kernels (CPU threads start above 32k elements, and a
# GPU wants far fewer launches)
_CHUNK = 1 << 16
_CHUNK_CUDA = 1 << 19


@dataclass
class WarpPlan:
    """Integer addressing of one warp (built by :func:`prepare`).

    ``objects`` ``[K, 5]`` int64 (CPU): ``x0, y0, width, height, image`` of every
    object's patch, in processing order (by level, then image, then index); the levels
    are ``objects[level_objects[l]:level_objects[l + 1]]``. The compiled kernel expands
    this into pixel rows itself; the eager kernel reads :attr:`row` and :attr:`chunks`,
    built here on first use.
    """

    objects: Tensor
    level_objects: list[int]
    mode: str
    padding_mode: str
    align_corners: bool
    strides: tuple[int, int, int, int]
    channels: int
    size: tuple[int, int]  # (height, width) of the images
    parallel: bool
    device: torch.device

    @cached_property
    def total(self) -> int:
        """Pixels of every patch."""
        return int((self.objects[:, 2] * self.objects[:, 3]).sum())

    @cached_property
    def row(self) -> dict[str, Tensor]:
        """``[R]`` int64 row tables (on :attr:`device`) of the pixel rows of every patch.

        Rows come in processing order and a row's pixels are consecutive. ``obj``
        (position of the row's object), ``len`` (pixels), ``pix`` (first pixel), ``col``
        (first entry of the object's columns), ``out`` (element offset of the row's first
        output pixel), ``frame`` (offset of the frame's top-left pixel), ``fw``/``fh``
        (frame size), ``img`` (image index), ``fx``/``fy`` (patch origin inside the
        frame, ``padding_mode="image"`` only). Rows of a level are grouped by image.
        """
        return {key: val.to(self.device, non_blocking=True) for key, val in self._row_cpu.items()}

    @cached_property
    def _row_cpu(self) -> dict[str, Tensor]:
        s_b, _, s_h, s_w = self.strides
        x0, y0, w, h, b = self.objects.unbind(1)
        row_obj = torch.repeat_interleave(torch.arange(w.numel()), h)
        row_ii = torch.arange(row_obj.numel()) - (torch.cumsum(h, 0) - h)[row_obj]
        row_len = w[row_obj]
        row_pix = torch.cumsum(row_len, 0) - row_len
        rb, rx0, ry0 = b[row_obj], x0[row_obj], y0[row_obj]
        row = {
            "obj": row_obj,
            "len": row_len,
            "pix": row_pix,
            "col": (torch.cumsum(w, 0) - w)[row_obj],
            "out": rb * s_b + (ry0 + row_ii) * s_h + rx0 * s_w,
            "img": rb,
        }
        _frame_rows(row, self.padding_mode == "image", self.strides, self.size, rx0, ry0, row_len, h[row_obj], rb)
        return row

    @cached_property
    def chunks(self) -> list[list[tuple[int, int, int, int]]]:
        """Per level, row-aligned ``(row0, row1, pix0, pix1)`` ranges of about ``_CHUNK`` pixels."""
        row = self._row_cpu
        bounds = torch.tensor(self.level_objects)
        level_of = torch.repeat_interleave(torch.arange(bounds.numel() - 1), bounds.diff())
        row_level = level_of[row["obj"]]
        row_end = row["pix"] + row["len"]
        chunk = _CHUNK_CUDA if self.device.type == "cuda" else _CHUNK
        # chunks never cross a level
        chunk_key = row_level * (int(row_end[-1]) // chunk + 2) + row["pix"] // chunk
        _, counts = torch.unique_consecutive(chunk_key, return_counts=True)
        row_bounds = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
        pix_bounds = torch.cat([row["pix"], row_end[-1:]])[row_bounds]
        chunks: list[list[tuple[int, int, int, int]]] = []
        previous = None
        for r0, r1, p0, p1, lv in zip(row_bounds[:-1].tolist(), row_bounds[1:].tolist(),
                                      pix_bounds[:-1].tolist(), pix_bounds[1:].tolist(),
                                      row_level[row_bounds[:-1]].tolist(), strict=True):
            if lv != previous:
                chunks.append([])
                previous = lv
            chunks[-1].append((r0, r1, p0, p1))
        return chunks


def _frame_rows(
    row: dict[str, Tensor], whole_image: bool, strides: tuple[int, int, int, int], size: tuple[int, int],
    x0: Tensor, y0: Tensor, w: Tensor, h: Tensor, b: Tensor,
) -> None:
    """Fill the frame entries of ``row`` (``frame``, ``fw``, ``fh``; ``fx``, ``fy`` with
    ``whole_image``) for rows reading the rect ``x0, y0, w, h`` of frame ``b`` of a buffer
    with ``strides`` and ``size`` (``whole_image``: ``padding_mode="image"`` reads the whole
    frame, the rect's origin inside it)."""
    s_b, _, s_h, s_w = strides
    if whole_image:
        row["frame"] = b * s_b
        row["fw"] = torch.full_like(w, size[1])
        row["fh"] = torch.full_like(h, size[0])
        row["fx"], row["fy"] = x0, y0
    else:
        row["frame"] = b * s_b + y0 * s_h + x0 * s_w
        row["fw"], row["fh"] = w, h


#: ``augpatch_cpu::warp_plan``: ``(boxes, theta [N, 2, 3], obj_to_img, batch, height, width,
#: dtype, align_corners, reads) -> (objects [K, 6], level bounds [L + 1], params [K, 14],
#: status)``; ``reads``: the objects read around their boxes (padding ``"image"``,
#: ``"sequential"``), and the levels respect what they read.
Planner = Callable[[Tensor, Tensor, Tensor, int, int, int, torch.dtype, bool, bool],
                   tuple[Tensor, Tensor, Tensor, int]]


def compiled_planner(ops: object | None) -> Planner | None:
    """The C++ planner ``warp_plan`` of the compiled kernel's operators ``ops`` (the
    ``torch.ops.augpatch_cpu`` namespace of :mod:`augpatch.ops.backends.compiled`), or
    ``None`` (no compiled kernel, or one built without it): then :func:`prepare` plans in
    Python. The one place that looks the planner up (the warp operator, the policies'
    in-place box warp).

    Example:
        >>> compiled_planner(None) is None
        True
    """
    return getattr(ops, "warp_plan", None) if ops is not None else None


class Prepared(NamedTuple):
    """What the operator runs: the plan, the objects in processing order, their parameters."""

    plan: WarpPlan
    objects: Tensor  # [K, 6] int64 (CPU): x0, y0, width, height, image, index in the call
    params: Tensor  # [K, 14] compute dtype, on the images' device
    levels: Tensor | None = None  # [L + 1] int64 (CPU): plan.level_objects as a tensor, if made


def prepare(
    images: Tensor, boxes: Tensor, theta: Tensor, obj_to_img: Tensor, mode: str,
    padding_mode: str, align_corners: bool, overlap: str, planner: Planner | None = None,
) -> Prepared | None:
    """Plan a warp (real tensors only): clip, schedule levels, build the parameter table.

    ``None`` when no box has a pixel (the image is unchanged). One transfer of the
    ``N``-sized metadata to the CPU; nothing of size ``N x image``.

    ``planner``: the compiled kernel's ``augpatch_cpu::warp_plan`` (``csrc/plan_cpu.cpp``),
    the same plan computed in C++ (bit for bit: the same objects, levels and parameters).
    Used for CPU tensors (with padding ``"image"`` too: it computes the read rects and their
    edges as well); where a value check fails it defers to the planning below, which raises
    the error.
    """
    batch, _, height, width = images.shape
    if planner is not None and images.device.type == "cpu":
        reads = padding_mode == "image" and overlap == "sequential"  # the levels respect the reads
        objects, bounds, params, status = planner(boxes, theta, obj_to_img, batch, height, width,
                                                  compute_dtype(images.dtype), align_corners, reads)
        if status == 0:
            if objects.shape[0] == 0:
                return None
            plan = make_plan(objects, bounds.tolist(), images, mode, padding_mode, align_corners, overlap)
            return Prepared(plan, objects, params, bounds)
    meta, theta_cpu = metadata(boxes, theta, obj_to_img, batch, padding_mode == "image")
    pix = pixel_rects(meta[:, :4], height, width)
    n_w, n_h = pix[:, 2] - pix[:, 0], pix[:, 3] - pix[:, 1]
    alive = ((n_w > 0) & (n_h > 0)).nonzero().flatten()
    if alive.numel() == 0:
        return None
    img_of = meta[alive, 4].long()
    read = None
    if padding_mode == "image":
        cl = clip_to_canvas(meta[:, :4], height, width)
        read = source_rects(cl[alive], pix[alive], theta_cpu[alive],
                             align_corners, height, width)
    # parallel: every object reads the original batch and writes go out level by level
    # (so that the higher index wins where boxes overlap); sequential: levels as in _plan
    src, dst, strict = overlap_edges(pix[alive], read if overlap == "sequential" else None, img_of)
    level = schedule_levels(alive.numel(), src, dst, strict)
    # by level, then image (so that a level's rows come in runs of one image), then index
    order = torch.sort(level * batch + img_of, stable=True).indices
    obj = alive[order]  # original object index, in processing order
    objects = torch.stack([pix[obj, 0], pix[obj, 1], n_w[obj], n_h[obj], img_of[order], obj], 1)
    counts = torch.bincount(level[order], minlength=int(level.max()) + 1)
    plan = make_plan(objects, [0, *torch.cumsum(counts, 0).tolist()], images, mode, padding_mode,
                     align_corners, overlap)
    params = object_params(boxes, theta, objects, align_corners, compute_dtype(images.dtype),
                           (height, width))
    return Prepared(plan, objects, params)


def make_plan(
    objects: Tensor, level_objects: list[int], images: Tensor, mode: str, padding_mode: str,
    align_corners: bool, overlap: str,
) -> WarpPlan:
    """The kernels' plan from the objects in processing order and the levels' bounds."""
    return WarpPlan(
        objects=objects[:, :5].contiguous(), level_objects=level_objects, mode=mode, padding_mode=padding_mode,
        align_corners=align_corners, strides=work_strides(images), channels=images.shape[1],
        size=(images.shape[2], images.shape[3]), parallel=overlap == "parallel", device=images.device,
    )


def work_strides(images: Tensor) -> tuple[int, int, int, int]:
    """Strides of the warp's output: those of ``torch.empty_like(images)`` (preserve format)."""
    return tuple(torch.empty_like(images, device="meta").stride())  # type: ignore[return-value]


def clip_to_canvas(boxes: Tensor, height: int, width: int) -> Tensor:
    """Boxes clipped to the canvas ``[0, W] x [0, H]``."""
    return torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                        boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], 1)


def pixel_rects(boxes: Tensor, height: int, width: int) -> Tensor:
    """``[N, 4]`` int64 half-open pixel rects of the boxes (CPU, float64 boxes)."""
    # pixel j is inside iff x1 <= j + .5 < x2  <=>  ceil(x1 - .5) <= j < ceil(x2 - .5)
    pix = torch.ceil(clip_to_canvas(boxes, height, width) - 0.5).long()
    pix[:, 0::2] = pix[:, 0::2].clamp(0, width)
    pix[:, 1::2] = pix[:, 1::2].clamp(0, height)
    pix[:, 2:] = torch.maximum(pix[:, 2:], pix[:, :2])
    return pix


def object_params(
    boxes: Tensor, theta: Tensor, objects: Tensor, align_corners: bool, dtype: torch.dtype,
    size: tuple[int, int],
) -> Tensor:
    """The differentiable per-object parameters ``[K, 14]`` every sampling location comes from.

    ``objects`` ``[K, 6]`` (see :class:`Prepared`) gives the processing order and each
    patch's pixels. Columns (:data:`~augpatch.ops.layout.PARAM_COLUMNS`, by name): ``theta`` flattened (6),
    then per axis (x, y) the map ``k``, ``c`` of ``F.affine_grid``'s base coordinates onto
    the continuous box (``u = base * k + c``; for integer boxes exactly the identity), the
    ``grid_sample`` unnormalize scale (half the box extent) and the float-box offset of the
    patch inside its pixels. The kernels build their location tables from them with the
    reference's arithmetic, so the locations they compute are those of the reference loop.
    Differentiable w.r.t. ``boxes`` and ``theta`` (the operator's backward uses that).
    """
    dev = boxes.device
    height, width = size
    obj_dev = objects[:, 5].to(dev)
    box = clip_to_canvas(boxes.to(dtype), height, width).index_select(0, obj_dev)
    lo, hi = box[:, :2], box[:, 2:]
    extent = objects[:, 2:4].to(dev)
    origin = objects[:, :2].to(dev).to(dtype)  # first pixel of the patch
    ext = hi - lo
    if align_corners:
        ext, span = (ext - 1).clamp(min=0), (extent - 1).to(dtype)
    else:
        span = extent.to(dtype)
    centre = (lo + hi) / 2
    pos, reads = _extents(ext, span, align_corners)
    safe = torch.where(pos, ext, 1.0)
    scale = torch.where(pos, span / safe, 0.0)
    shift = torch.where(pos, 2 * ((origin + extent.to(dtype) / 2) - centre) / safe, 0.0)
    # an axis without extent (with align_corners: a patch one pixel thick) reads its
    # pixel, as grid_sample on a one-pixel crop does
    offset = torch.where(reads, lo - origin, 0.0)
    half = torch.where(reads, ext, 0.0) / 2
    rows = theta.to(dtype).index_select(0, obj_dev).reshape(-1, 6)
    return torch.cat([rows, scale, shift, half, offset], 1)  # PARAM_COLUMNS' order


def _extents(ext: Tensor, span: Tensor, align_corners: bool) -> tuple[Tensor, Tensor]:
    """Per object and axis: ``(the box has extent, locations move across the patch)``.

    The first decides the normalised coordinates ``u`` of the output pixels (0 on an axis
    without extent). The second decides the unnormalisation onto the patch's pixels:
    with ``align_corners=True``, ``grid_sample`` maps every location of a crop one pixel
    thick onto that pixel (``(x + 1) / 2 * (size - 1)`` is 0), so such an axis
    (``span == 0``) reads its pixel even where a fractional box is wider than one pixel
    and ``u`` (which also feeds the other axis through ``theta``) is not 0. SPEC's
    reference loop samples that one-pixel crop.
    """
    pos = ext > 0
    return pos, (pos & (span > 0)) if align_corners else torch.ones_like(pos)


def object_params_backward(
    grad: Tensor, boxes: Tensor, theta: Tensor, objects: Tensor, align_corners: bool,
    size: tuple[int, int], need_boxes: bool, need_theta: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients of :func:`object_params` w.r.t. ``boxes`` and ``theta``, given ``grad [K, 14]``.

    The chain rule of :func:`object_params` written out (the operator's backward runs
    below autograd); ``clamp`` passes the gradient on its closed interval, as PyTorch's.
    """
    dev, dtype = grad.device, grad.dtype
    height, width = size
    obj_dev = objects[:, 5].to(dev)
    grad_theta = None
    if need_theta:
        grad_theta = torch.zeros(theta.shape[0], 6, dtype=dtype, device=dev)
        rows = grad[:, :6]  # the theta columns come first, row by row (PARAM_COLUMNS; tested)
        grad_theta = grad_theta.index_add_(0, obj_dev, rows).reshape(theta.shape).to(theta.dtype)
    if not need_boxes:
        return None, grad_theta
    raw = boxes.detach().to(dtype)
    box = clip_to_canvas(raw, height, width).index_select(0, obj_dev)
    lo, hi = box[:, :2], box[:, 2:]
    extent = objects[:, 2:4].to(dev)
    origin = objects[:, :2].to(dev).to(dtype)
    ext0 = hi - lo
    if align_corners:
        ext, span, ext_mask = (ext0 - 1).clamp(min=0), (extent - 1).to(dtype), ext0 - 1 >= 0
    else:
        ext, span, ext_mask = ext0, extent.to(dtype), torch.ones_like(ext0, dtype=torch.bool)
    pos, reads = _extents(ext, span, align_corners)
    safe = torch.where(pos, ext, 1.0)
    g_scale, g_shift, g_half, g_off = (grad[:, [PARAM_COLUMNS.index(f"{c}{a}") for a in "xy"]]
                                       for c in "kcso")
    arm = origin + extent.to(dtype) / 2 - (lo + hi) / 2
    g_ext = torch.where(pos, -g_scale * span / safe**2 - 2 * g_shift * arm / safe**2, 0.0)
    g_ext = g_ext + torch.where(reads, g_half / 2, 0.0)
    g_ext0 = torch.where(ext_mask, g_ext, 0.0)
    g_centre = torch.where(pos, -2 * g_shift / safe, 0.0)
    g_lo = g_centre / 2 + torch.where(reads, g_off, 0.0) - g_ext0
    g_hi = g_centre / 2 + g_ext0
    g_box = torch.zeros(boxes.shape[0], 4, dtype=dtype, device=dev)
    g_box.index_add_(0, obj_dev, torch.cat([g_lo, g_hi], 1))
    limit = torch.tensor([width, height, width, height], dtype=dtype, device=dev)
    g_box = torch.where((raw >= 0) & (raw <= limit), g_box, 0.0)
    return g_box.to(boxes.dtype), grad_theta


def source_rects(
    boxes: Tensor, pix: Tensor, theta: Tensor, align_corners: bool, height: int, width: int
) -> Tensor:
    """Conservative pixel rect each object reads with ``padding_mode="image"`` (CPU, float64)."""
    n_w = (pix[:, 2] - pix[:, 0]).double()
    n_h = (pix[:, 3] - pix[:, 1]).double()
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    hx = (boxes[:, 2] - boxes[:, 0]) / 2
    hy = (boxes[:, 3] - boxes[:, 1]) / 2
    if align_corners:
        hx, hy = (hx - 0.5).clamp(min=0), (hy - 0.5).clamp(min=0)
    # half extents of the locations read: an axis one pixel thick with align_corners reads
    # that pixel (see _extents); u and v still come from the box
    read_x = torch.where(n_w > 1, hx, 0.0) if align_corners else hx
    read_y = torch.where(n_h > 1, hy, 0.0) if align_corners else hy
    xs = torch.stack([pix[:, 0] + 0.5, pix[:, 0] + n_w - 0.5], 1)  # first / last column centre
    ys = torch.stack([pix[:, 1] + 0.5, pix[:, 1] + n_h - 0.5], 1)
    u = torch.where(hx[:, None] > 0, (xs - cx[:, None]) / hx[:, None].clamp(min=1e-12), 0.0)
    v = torch.where(hy[:, None] > 0, (ys - cy[:, None]) / hy[:, None].clamp(min=1e-12), 0.0)
    uu = u[:, :, None].expand(-1, 2, 2).reshape(-1, 4)
    vv = v[:, None, :].expand(-1, 2, 2).reshape(-1, 4)
    su = theta[:, 0, 0, None] * uu + theta[:, 0, 1, None] * vv + theta[:, 0, 2, None]
    sv = theta[:, 1, 0, None] * uu + theta[:, 1, 1, None] * vv + theta[:, 1, 2, None]
    px = cx[:, None] + read_x[:, None] * su - 0.5  # pixel-index units of the image
    py = cy[:, None] + read_y[:, None] * sv - 0.5
    margin = 3  # bicubic reaches floor(x) - 1 .. floor(x) + 2; one more for rounding
    rect = torch.stack([
        torch.floor(px.min(1).values) - margin, torch.floor(py.min(1).values) - margin,
        torch.floor(px.max(1).values) + margin + 1, torch.floor(py.max(1).values) + margin + 1,
    ], 1)
    rect[:, 0::2] = rect[:, 0::2].clamp(0, width)
    rect[:, 1::2] = rect[:, 1::2].clamp(0, height)
    return rect.long()


def metadata(
    boxes: Tensor, theta: Tensor, obj_to_img: Tensor, batch: int, with_theta: bool
) -> tuple[Tensor, Tensor | None]:
    """The value checks and the ``N``-sized metadata on the CPU, in one transfer.

    Returns ``[N, 5]`` float64 (``x1, y1, x2, y2, image``) and, ``with_theta``, ``theta``
    ``[N, 2, 3]`` float64. Raises clear errors for NaN/Inf boxes or
    ``theta`` and image indices outside ``[0, batch)``: the operator's checks, which also
    run inside a compiled graph.
    """
    num = boxes.shape[0]
    parts = [boxes.detach().double().reshape(-1), obj_to_img.double(),
             torch.stack([torch.isfinite(boxes.detach()).all(),
                          torch.isfinite(theta.detach()).all()]).double()]
    if with_theta:
        parts.append(theta.detach().double().reshape(-1))
    flat = torch.cat(parts).cpu()  # the one device-to-host copy of a call
    box_ok, theta_ok = flat[5 * num : 5 * num + 2].tolist()
    if not box_ok:
        raise ValueError("boxes contains NaN or Inf values")
    if not theta_ok:
        raise ValueError("theta contains NaN or Inf values")
    meta = torch.cat([flat[: 4 * num].view(num, 4), flat[4 * num : 5 * num, None]], 1)
    if num:
        check_image_index("obj_to_img", meta[:, 4], batch)
    return meta, (flat[5 * num + 2 :].view(num, 2, 3) if with_theta else None)


# --- the paste's planning (``augpatch.ops.paste``): the warp's, destination and source decoupled

#: Columns of the paste's object table ``[K, 11]`` int64 (CPU): the destination rect and
#: image, the object's index in the call, the source rect and image.
PASTE_OBJECT_COLUMNS = ("x0", "y0", "width", "height", "image", "index",
                        "src_x0", "src_y0", "src_width", "src_height", "src_image")
# columns of the parameter table that come from the destination box (theta and the map of
# the output pixels onto the box) and from the source box (unnormalisation, offset)
PASTE_DST_PARAMS = [i for i, name in enumerate(PARAM_COLUMNS) if name[0] in "tkc"]
PASTE_SRC_PARAMS = [i for i, name in enumerate(PARAM_COLUMNS) if name[0] in "so"]


@dataclass
class PastePlan(WarpPlan):
    """A :class:`WarpPlan` whose taps read other frames than the rows they write.

    ``objects`` ``[K, 5]``: the destination rects (``x0, y0, width, height, image``), in
    processing order; ``frames`` ``[K, 5]``: the rect each object reads (``x0, y0,
    width, height, index of the frame`` in the read buffer); ``read_size`` the read
    buffer's ``(height, width)``; ``strides`` the read buffer's strides, ``out_strides``
    the output's.
    """

    frames: Tensor = None  # type: ignore[assignment]
    read_size: tuple[int, int] = (0, 0)
    out_strides: tuple[int, int, int, int] = (0, 0, 0, 0)

    @cached_property
    def _row_cpu(self) -> dict[str, Tensor]:
        row = WarpPlan._row_cpu.func(self)  # type: ignore[attr-defined]
        o_b, _, o_h, o_w = self.out_strides
        x0, y0, _, h, b = self.objects.unbind(1)
        obj = row["obj"]
        row_ii = torch.arange(obj.numel()) - (torch.cumsum(h, 0) - h)[obj]
        row["out"] = b[obj] * o_b + (y0[obj] + row_ii) * o_h + x0[obj] * o_w
        fx0, fy0, fw, fh, fb = (col[obj] for col in self.frames.unbind(1))
        _frame_rows(row, self.padding_mode == "image", self.strides, self.read_size, fx0, fy0, fw, fh, fb)
        return row

    def out_offsets(self, ch) -> Tensor:  # noqa: ANN001  (the eager backend's chunk)
        """Output element offsets of a chunk's pixels (``ch.out`` uses the read strides)."""
        row = self.row
        jj = ch.col - row["col"].index_select(0, ch.prow)
        return row["out"].index_select(0, ch.prow) + jj * self.out_strides[3]


def dense(t: Tensor) -> Tensor:
    """``t`` itself if its storage is dense in its own layout, else a contiguous copy."""
    if tuple(t.stride()) == tuple(torch.empty_like(t, device="meta").stride()):
        return t
    return t.contiguous()


def paste_metadata(
    src_boxes: Tensor, dst_boxes: Tensor, theta: Tensor, src_to_img: Tensor, dst_to_img: Tensor,
    src_batch: int, dst_batch: int,
) -> tuple[Tensor, Tensor]:
    """The paste's value checks and its boxes / image indices on the CPU, in one transfer.

    Returns ``[N, 5]`` float64 ``(x1, y1, x2, y2, image)`` of the sources and of the
    destinations (the paste's :func:`metadata`).
    """
    n = src_boxes.shape[0]
    flags = torch.stack([torch.isfinite(src_boxes.detach()).all(), torch.isfinite(dst_boxes.detach()).all(),
                         torch.isfinite(theta.detach()).all()])
    flat = torch.cat([src_boxes.detach().double().reshape(-1), dst_boxes.detach().double().reshape(-1),
                      src_to_img.double(), dst_to_img.double(), flags.double()]).cpu()
    ok_src, ok_dst, ok_theta = flat[10 * n:].tolist()
    for ok, name in ((ok_src, "src_boxes"), (ok_dst, "dst_boxes"), (ok_theta, "theta")):
        if not ok:
            raise ValueError(f"{name} contains NaN or Inf values")
    src = torch.cat([flat[: 4 * n].view(n, 4), flat[8 * n : 9 * n, None]], 1)
    dst = torch.cat([flat[4 * n : 8 * n].view(n, 4), flat[9 * n : 10 * n, None]], 1)
    check_image_index("src_to_img", src[:, 4], src_batch)
    check_image_index("dst_to_img", dst[:, 4], dst_batch)
    return src, dst


def paste_schedule(
    src_meta: Tensor, dst_meta: Tensor, size: tuple[int, int], src_size: tuple[int, int], batch: int,
) -> tuple[Tensor, list[int]] | None:
    """The pasted objects in processing order ``[K, 11]`` (:data:`PASTE_OBJECT_COLUMNS`) and
    the levels' bounds; ``None`` when no object has a pixel in both its boxes.

    Objects whose destination rects overlap in one image go to successive levels
    (:func:`~augpatch.ops.schedule.schedule_levels`), so later objects land on top.
    """
    dst_pix = pixel_rects(dst_meta[:, :4], *size)
    src_pix = pixel_rects(src_meta[:, :4], *src_size)
    area = lambda pix: (pix[:, 2] - pix[:, 0]) * (pix[:, 3] - pix[:, 1])  # noqa: E731
    alive = ((area(dst_pix) > 0) & (area(src_pix) > 0)).nonzero().flatten()
    if alive.numel() == 0:
        return None
    dst_img = dst_meta[alive, 4].long()
    src, dst, strict = overlap_edges(dst_pix[alive], None, dst_img)
    level = schedule_levels(alive.numel(), src, dst, strict)
    order = torch.sort(level * batch + dst_img, stable=True).indices
    obj = alive[order]
    dp, sp = dst_pix[obj], src_pix[obj]
    objects = torch.stack([
        dp[:, 0], dp[:, 1], dp[:, 2] - dp[:, 0], dp[:, 3] - dp[:, 1], dst_img[order], obj,
        sp[:, 0], sp[:, 1], sp[:, 2] - sp[:, 0], sp[:, 3] - sp[:, 1], src_meta[obj, 4].long(),
    ], 1)
    counts = torch.bincount(level[order], minlength=int(level.max()) + 1)
    return objects, [0, *torch.cumsum(counts, 0).tolist()]


def frame_alpha(alpha: Tensor, sources: Tensor) -> bool:
    """Whether ``alpha`` ``[N, 1, h, w]`` is in the sources' frame (else it covers the source box)."""
    return tuple(alpha.shape[2:]) == tuple(sources.shape[2:])


def _alpha_boxes(alpha: Tensor, dtype: torch.dtype) -> Tensor:
    """The box a box-shaped alpha covers in its own frame: ``[0, 0, w, h]`` per object."""
    box = torch.tensor([0, 0, alpha.shape[3], alpha.shape[2]], dtype=dtype, device=alpha.device)
    return box.expand(alpha.shape[0], 4)


def _alpha_objects(objects: Tensor, alpha: Tensor) -> Tensor:
    """A box-shaped alpha's rects in the layout of ``object_params`` (the whole alpha)."""
    k = objects.shape[0]
    zeros = torch.zeros(k, dtype=torch.long)
    return torch.stack([zeros, zeros, torch.full((k,), alpha.shape[3]), torch.full((k,), alpha.shape[2]),
                        zeros, objects[:, 5]], 1)


def paste_src_objects(objects: Tensor) -> Tensor:
    """The source rects in the layout of ``object_params`` (``x0, y0, w, h, image, index``)."""
    return objects[:, [6, 7, 8, 9, 10, 5]]


def paste_plans(
    objects: Tensor, level_objects: list[int], images: Tensor, sources: Tensor,
    alpha: Tensor | None, mode: str, padding_mode: str, align_corners: bool,
) -> tuple[PastePlan, PastePlan | None]:
    """The image's plan and the alpha's (``None`` without alpha) from the paste's objects."""
    common = {"objects": objects[:, :5].contiguous(), "level_objects": level_objects, "mode": mode,
              "padding_mode": padding_mode, "align_corners": align_corners, "size": tuple(images.shape[2:]),
              "parallel": False, "device": images.device, "out_strides": work_strides(images)}
    plan = PastePlan(strides=tuple(sources.stride()), channels=images.shape[1],
                     frames=objects[:, 6:11].contiguous(), read_size=tuple(sources.shape[2:]),
                     **common)
    if alpha is None:
        return plan, None
    if frame_alpha(alpha, sources):
        frames = objects[:, [6, 7, 8, 9, 5]]
    else:
        frames = _alpha_objects(objects, alpha)[:, [0, 1, 2, 3, 5]]
    aplan = PastePlan(strides=tuple(alpha.stride()), channels=1, frames=frames.contiguous(),
                      read_size=tuple(alpha.shape[2:]), **common)
    return plan, aplan


def paste_params(
    images: Tensor, sources: Tensor, src_boxes: Tensor, theta: Tensor, dst_boxes: Tensor,
    alpha: Tensor | None, objects: Tensor, align_corners: bool,
) -> tuple[Tensor, Tensor | None]:
    """The per-object parameters ``[K, 14]`` of the image and of the alpha (:func:`object_params`'
    table: theta and the output map from the destination box, the unnormalisation from the
    source box). An alpha in the sources' frame shares the image's table (the same tensor)."""
    dtype = compute_dtype(images.dtype)
    dst = object_params(dst_boxes, theta, objects[:, :6], align_corners, dtype, tuple(images.shape[2:]))
    src = object_params(src_boxes, theta, paste_src_objects(objects), align_corners, dtype,
                        tuple(sources.shape[2:]))
    params = dst.clone()
    params[:, PASTE_SRC_PARAMS] = src[:, PASTE_SRC_PARAMS]
    if alpha is None:
        return params, None
    if frame_alpha(alpha, sources):
        return params, params
    box = object_params(_alpha_boxes(alpha, dtype), theta, _alpha_objects(objects, alpha), align_corners,
                        dtype, tuple(alpha.shape[2:]))
    aparams = dst.clone()
    aparams[:, PASTE_SRC_PARAMS] = box[:, PASTE_SRC_PARAMS]
    return params, aparams


def paste_params_backward(
    g_params: Tensor, g_aparams: Tensor | None, src_boxes: Tensor, theta: Tensor, dst_boxes: Tensor,
    objects: Tensor, align_corners: bool, size: tuple[int, int], src_size: tuple[int, int],
    need_sbox: bool, need_theta: bool, need_dbox: bool,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """``(grad_src_boxes, grad_theta, grad_dst_boxes)`` from the gradients of :func:`paste_params`."""
    if g_aparams is not None:  # the alpha's theta and destination columns move with the image's
        g_params = g_params.clone()
        g_params[:, PASTE_DST_PARAMS] += g_aparams[:, PASTE_DST_PARAMS]
    g_dst = g_params.clone()
    g_dst[:, PASTE_SRC_PARAMS] = 0
    g_dbox, g_theta = object_params_backward(g_dst, dst_boxes, theta, objects[:, :6], align_corners, size,
                                             need_dbox, need_theta)
    g_sbox = None
    if need_sbox:
        g_src_cols = torch.zeros_like(g_params)
        g_src_cols[:, PASTE_SRC_PARAMS] = g_params[:, PASTE_SRC_PARAMS]
        g_sbox, _ = object_params_backward(g_src_cols, src_boxes, theta, paste_src_objects(objects),
                                           align_corners, src_size, True, False)
    return g_sbox, g_theta, g_dbox
