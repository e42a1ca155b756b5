"""``warp_patches``: affine-transform every object's patch and paste it back, in one pass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from augpatch.functional._checks import (
    MODES,
    OVERLAPS,
    PADDING_MODES,
    check_boxes,
    check_choice,
    check_images,
    check_obj_to_img,
    check_same_device,
    check_theta,
    flatten_box_list,
)
from augpatch.functional._plan import exact_base_grid, overlap_edges, schedule_levels
from augpatch.functional._sampler import PatchSampler, SamplePlan

BoxesLike = Tensor | Sequence[Tensor]


def warp_patches(
    images: Tensor,
    boxes: BoxesLike,
    theta: Tensor,
    obj_to_img: Tensor | None = None,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
    overlap: str = "sequential",
) -> Tensor:
    """Warp each object's patch by its own affine ``theta`` and paste it back.

    For an integer box ``n`` of image ``b`` the result inside the box is exactly::

        patch = current[b:b+1, :, y1:y2, x1:x2]
        grid = F.affine_grid(theta[n:n+1], patch.shape, align_corners=align_corners)
        new = F.grid_sample(patch, grid, mode=mode, padding_mode=padding_mode,
                            align_corners=align_corners)

    computed for all objects in one vectorised, differentiable pass (no Python
    loop over objects, nothing of size ``N x image``). Pixels outside every box
    are copied unchanged; the inputs are never modified.

    Args:
        images: ``[B, C, H, W]`` float16/bfloat16/float32/float64 or uint8, any
            memory format (kept in the output).
        boxes: ``[N, 4]`` ``xyxy`` boxes in pixels (float or int; ``x`` along the
            width), or a list of ``B`` tensors ``[N_i, 4]`` (``obj_to_img`` is
            then implied and must be omitted). Pixel ``(i, j)`` (centre
            ``(j + .5, i + .5)``) belongs to a box iff ``x1 <= j + .5 < x2`` and
            ``y1 <= i + .5 < y2``, after clipping the box to the canvas. A box
            with no pixel leaves the image unchanged.
        theta: ``[N, 2, 3]`` or ``[N, 6]``: ``F.affine_grid`` matrices in each
            patch's normalised coordinates (output location -> input location).
        obj_to_img: ``[N]`` int64 image index of each box; may be omitted when
            ``B == 1``.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"`` (as ``grid_sample``).
        padding_mode: ``"zeros"``, ``"border"``, ``"reflection"`` (relative to
            the patch, as ``grid_sample`` on the cropped patch) or ``"image"``
            (read the object's real surroundings from the whole image; outside
            the image reads zeros).
        align_corners: as in ``F.affine_grid``/``F.grid_sample``.
        overlap: ``"sequential"`` (objects applied in index order, each reading
            the image as the earlier ones left it: the SPEC's loop) or
            ``"parallel"`` (all read the original image; the higher index wins
            where boxes overlap). Identical when no two boxes of an image overlap.

    Returns:
        ``[B, C, H, W]`` tensor of the dtype and memory format of ``images``.

    Float boxes: normalised coordinates follow the continuous box (``u = 2(x -
    x1)/(x2 - x1) - 1``; with ``align_corners=True`` the centres of the first
    and last pixel, ``x1 + .5`` and ``x2 - .5``, are ``-1`` and ``1``), padding
    is relative to the box's pixels, and gradients reach the box coordinates
    through the sampling locations (membership is piecewise constant). uint8
    and half-precision images are computed in float32 and rounded back after
    every paste (uint8: round half to even, clamp to ``[0, 255]``); uint8 has no
    gradient. Gradients w.r.t. ``images``, ``theta`` and float ``boxes`` equal
    those of the loop; the backward pass is as cheap as the forward.

    Example:
        >>> import torch
        >>> from augpatch.functional import warp_patches
        >>> images = torch.rand(2, 3, 64, 64)
        >>> boxes = torch.tensor([[8, 8, 40, 24], [10, 30, 50, 60]])
        >>> flip = torch.tensor([[-1.0, 0, 0], [0, 1, 0]]).expand(2, 2, 3)
        >>> out = warp_patches(images, boxes, flip, torch.tensor([0, 1]))
        >>> torch.equal(out[0, :, 8:24, 8:40], images[0, :, 8:24, 8:40].flip(-1))
        True
    """
    images = check_images(images)
    check_choice("mode", mode, MODES)
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    check_choice("overlap", overlap, OVERLAPS)
    if not isinstance(align_corners, bool):
        raise TypeError(f"align_corners must be a bool, got {type(align_corners).__name__}")
    batch, _, height, width = images.shape
    if isinstance(boxes, (list, tuple)):
        if obj_to_img is not None:
            raise ValueError("obj_to_img must be omitted when boxes is a list of per-image tensors")
        boxes, obj_to_img = flatten_box_list(boxes, batch)
    else:
        boxes = check_boxes(boxes)
    num = boxes.shape[0]
    theta = check_theta(theta, num)
    obj_to_img = check_obj_to_img(obj_to_img, num, batch)
    check_same_device(images=images, boxes=boxes, theta=theta, obj_to_img=obj_to_img)
    compute = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    if num == 0:
        return images.clone(memory_format=torch.preserve_format)

    theta = theta.to(compute)
    fboxes = boxes.to(compute)
    fboxes = torch.stack(
        [fboxes[:, 0].clamp(0, width), fboxes[:, 1].clamp(0, height),
         fboxes[:, 2].clamp(0, width), fboxes[:, 3].clamp(0, height)], 1
    )
    if obj_to_img is None:
        obj_to_img = torch.zeros(num, dtype=torch.long, device=boxes.device)

    # ---- N-sized metadata on the CPU (one transfer) ------------------------
    meta = torch.cat([boxes.detach().double(), obj_to_img.double()[:, None]], 1).cpu()
    if padding_mode == "image":
        theta_cpu = theta.detach().double().cpu()
    cl = meta[:, :4].clone()
    cl[:, 0::2] = cl[:, 0::2].clamp(0, width)
    cl[:, 1::2] = cl[:, 1::2].clamp(0, height)
    # pixel j is inside iff x1 <= j + .5 < x2  <=>  ceil(x1 - .5) <= j < ceil(x2 - .5)
    pix = torch.ceil(cl - 0.5).long()
    pix[:, 0::2] = pix[:, 0::2].clamp(0, width)
    pix[:, 1::2] = pix[:, 1::2].clamp(0, height)
    n_w = (pix[:, 2] - pix[:, 0]).clamp(min=0)
    n_h = (pix[:, 3] - pix[:, 1]).clamp(min=0)
    alive = ((n_w > 0) & (n_h > 0)).nonzero().flatten()
    if alive.numel() == 0:
        return images.clone(memory_format=torch.preserve_format)
    img_of = meta[alive, 4].long()
    write = pix[alive]

    # ---- schedule ----------------------------------------------------------
    read = None
    if padding_mode == "image":
        read = _source_rects(cl[alive], pix[alive], theta_cpu[alive], align_corners, height, width)
    if overlap == "sequential":
        src, dst, strict = overlap_edges(write, read, img_of)
        level = schedule_levels(alive.numel(), src, dst, strict)
        parallel_conflicts = False
    else:
        level = torch.zeros(alive.numel(), dtype=torch.long)
        src, _, _ = overlap_edges(write, None, img_of)
        parallel_conflicts = src.numel() > 0
    order = torch.sort(level, stable=True).indices
    level_sizes = torch.bincount(level, minlength=1)
    obj = alive[order]  # original object index, in processing order
    counts = (n_w[obj] * n_h[obj])
    bounds = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    level_bounds = bounds[torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(level_sizes, 0)])]

    # ---- per-pixel coordinates (differentiable) -----------------------------
    dev = images.device
    obj_d = obj.to(dev)
    x0 = pix[obj, 0]
    y0 = pix[obj, 1]
    geo = _pixel_coordinates(
        fboxes[obj_d], theta[obj_d], x0.to(dev), y0.to(dev), n_w[obj].to(dev), n_h[obj].to(dev),
        int(bounds[-1]), align_corners, compute,
    )
    ix, iy, jj, ii, pobj = geo
    b_of = obj_to_img[obj_d][pobj]
    s_b, s_c, s_h, s_w = _work_strides(images)
    gx = x0.to(dev)[pobj] + jj
    gy = y0.to(dev)[pobj] + ii
    out_off = b_of * s_b + gy * s_h + gx * s_w

    levels = level_bounds.tolist()
    if parallel_conflicts:
        keep = _winners(b_of, gy, gx, obj_d[pobj], batch, height, width)
        ix, iy, out_off, pobj, b_of = ix[keep], iy[keep], out_off[keep], pobj[keep], b_of[keep]
        gx, gy = gx[keep], gy[keep]
        levels = [0, int(keep.sum())]

    if padding_mode == "image":
        ix = ix + x0.to(dev)[pobj].to(compute)
        iy = iy + y0.to(dev)[pobj].to(compute)
        frame_off = b_of * s_b
        frame_w = torch.full_like(b_of, width)
        frame_h = torch.full_like(b_of, height)
        tap_padding = "zeros"
    else:
        frame_w = n_w[obj].to(dev)[pobj]
        frame_h = n_h[obj].to(dev)[pobj]
        frame_off = b_of * s_b + y0.to(dev)[pobj] * s_h + x0.to(dev)[pobj] * s_w
        if mode != "bicubic" and padding_mode != "zeros":
            ix = _pad_coordinate(ix, frame_w, padding_mode, align_corners)
            iy = _pad_coordinate(iy, frame_h, padding_mode, align_corners)
            tap_padding = "zeros"  # coordinates are inside; the far tap of an edge has weight 0
        else:
            tap_padding = padding_mode

    plan = SamplePlan(
        out_off=out_off, frame_off=frame_off, frame_w=frame_w, frame_h=frame_h,
        levels=levels, mode=mode, tap_padding=tap_padding, align_corners=align_corners,
        strides=(s_b, s_c, s_h, s_w), channels=images.shape[1],
    )
    return PatchSampler.apply(images, ix, iy, plan, compute)


def _work_strides(images: Tensor) -> tuple[int, int, int, int]:
    """Strides of ``images.clone(memory_format=torch.preserve_format)``."""
    if _dense_non_overlapping(images):
        return tuple(images.stride())  # type: ignore[return-value]
    return tuple(torch.empty(images.shape, device="meta").stride())  # type: ignore[return-value]


def _dense_non_overlapping(t: Tensor) -> bool:
    dims = sorted((st, sz) for st, sz in zip(t.stride(), t.shape, strict=True) if sz != 1)
    expected = 1
    for st, sz in dims:
        if st != expected:
            return False
        expected *= sz
    return True


def _pixel_coordinates(
    boxes: Tensor, theta: Tensor, x0: Tensor, y0: Tensor, n_w: Tensor, n_h: Tensor,
    total: int, align_corners: bool, dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Sampling location (patch pixel units) of every output pixel, in plan order.

    Returns ``ix, iy`` (float, differentiable w.r.t. ``boxes``/``theta``), the
    pixel's column/row inside its patch ``jj, ii`` and its object position.
    For integer boxes the arithmetic is that of ``affine_grid`` + ``grid_sample``
    operation for operation, so the locations are bit-identical to the loop's.
    """
    dev = boxes.device
    k = boxes.shape[0]
    ar = torch.arange(k, device=dev)
    # per object: normalised -> patch pixel scale, and the float-box correction
    ext_x = boxes[:, 2] - boxes[:, 0]
    ext_y = boxes[:, 3] - boxes[:, 1]
    if align_corners:
        ext_x, ext_y = (ext_x - 1).clamp(min=0), (ext_y - 1).clamp(min=0)
        span_x, span_y = (n_w - 1).to(dtype), (n_h - 1).to(dtype)
    else:
        span_x, span_y = n_w.to(dtype), n_h.to(dtype)
    # u = base * kx + bx maps the pixel-grid linspace onto the continuous box;
    # for integer boxes kx == 1 and bx == 0 exactly
    safe_x = torch.where(ext_x > 0, ext_x, torch.ones_like(ext_x))
    safe_y = torch.where(ext_y > 0, ext_y, torch.ones_like(ext_y))
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    kx = torch.where(ext_x > 0, span_x / safe_x, torch.zeros_like(ext_x))
    ky = torch.where(ext_y > 0, span_y / safe_y, torch.zeros_like(ext_y))
    bx = torch.where(ext_x > 0, 2 * ((x0.to(dtype) + n_w.to(dtype) / 2) - cx) / safe_x, torch.zeros_like(ext_x))
    by = torch.where(ext_y > 0, 2 * ((y0.to(dtype) + n_h.to(dtype) / 2) - cy) / safe_y, torch.zeros_like(ext_y))
    off_x = boxes[:, 0] - x0.to(dtype)  # 0 for integer boxes
    off_y = boxes[:, 1] - y0.to(dtype)
    scale_x = ext_x / 2
    scale_y = ext_y / 2

    # column and row base vectors (small: sum of widths / heights)
    col_obj = torch.repeat_interleave(ar, n_w)
    col_start = torch.cumsum(n_w, 0) - n_w
    col_idx = torch.arange(col_obj.numel(), device=dev) - col_start[col_obj]
    u = exact_base_grid(col_idx, n_w[col_obj], align_corners, dtype)
    u = u * kx[col_obj] + bx[col_obj]
    row_obj = torch.repeat_interleave(ar, n_h)
    row_start = torch.cumsum(n_h, 0) - n_h
    row_idx = torch.arange(row_obj.numel(), device=dev) - row_start[row_obj]
    v = exact_base_grid(row_idx, n_h[row_obj], align_corners, dtype)
    v = v * ky[row_obj] + by[row_obj]
    # products of the bmm, evaluated once per column / row (same rounding as per pixel)
    u_t00 = u * theta[col_obj, 0, 0]
    u_t10 = u * theta[col_obj, 1, 0]
    v_t01 = v * theta[row_obj, 0, 1]
    v_t11 = v * theta[row_obj, 1, 1]

    # pixels: row-major inside each patch
    row_len = n_w[row_obj]
    row_pix_start = torch.cumsum(row_len, 0) - row_len
    prow = torch.repeat_interleave(torch.arange(row_obj.numel(), device=dev), row_len, output_size=total)
    jj = torch.arange(total, device=dev) - row_pix_start[prow]
    pobj = row_obj[prow]
    ii = row_idx[prow]
    col = col_start[pobj] + jj
    gx = u_t00[col] + v_t01[prow] + theta[pobj, 0, 2]
    gy = u_t10[col] + v_t11[prow] + theta[pobj, 1, 2]
    # grid_sample's unnormalize: (g + 1) * size / 2 - 0.5 (or * (size - 1) / 2)
    if align_corners:
        ix = (gx + 1) * scale_x[pobj] + off_x[pobj]
        iy = (gy + 1) * scale_y[pobj] + off_y[pobj]
    else:
        ix = (gx + 1) * scale_x[pobj] - 0.5 + off_x[pobj]
        iy = (gy + 1) * scale_y[pobj] - 0.5 + off_y[pobj]
    return ix, iy, jj, ii, pobj


def _pad_coordinate(coord: Tensor, size: Tensor, padding_mode: str, align_corners: bool) -> Tensor:
    """``grid_sample``'s border / reflection transform of a location (with its gradient)."""
    size_f = size.to(coord.dtype)
    if padding_mode == "reflection":
        if align_corners:
            low = torch.zeros_like(size_f)
            twice_span = 2 * (size_f - 1)
        else:
            low = torch.full_like(size_f, -0.5)
            twice_span = 2 * size_f
        shifted = coord - low
        neg = shifted < 0
        mag = torch.where(neg, -shifted, shifted)
        safe_span = torch.where(twice_span > 0, twice_span, torch.ones_like(twice_span))
        extra = mag - torch.trunc(mag.detach() / safe_span) * safe_span
        reflected = safe_span - extra
        flip = extra > reflected
        folded = torch.where(flip, reflected, extra)  # gradient sign: -1 per reflection
        coord = torch.where(twice_span > 0, folded + low, torch.zeros_like(coord))
    max_val = size_f - 1
    inside = (coord > 0) & (coord < max_val)
    clipped = torch.where(coord <= 0, torch.zeros_like(coord), max_val)
    return torch.where(inside, coord, clipped.detach())


def _source_rects(
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
    xs = torch.stack([pix[:, 0] + 0.5, pix[:, 0] + n_w - 0.5], 1)  # first / last column centre
    ys = torch.stack([pix[:, 1] + 0.5, pix[:, 1] + n_h - 0.5], 1)
    u = torch.where(hx[:, None] > 0, (xs - cx[:, None]) / hx[:, None].clamp(min=1e-12), 0.0)
    v = torch.where(hy[:, None] > 0, (ys - cy[:, None]) / hy[:, None].clamp(min=1e-12), 0.0)
    uu = u[:, :, None].expand(-1, 2, 2).reshape(-1, 4)
    vv = v[:, None, :].expand(-1, 2, 2).reshape(-1, 4)
    su = theta[:, 0, 0, None] * uu + theta[:, 0, 1, None] * vv + theta[:, 0, 2, None]
    sv = theta[:, 1, 0, None] * uu + theta[:, 1, 1, None] * vv + theta[:, 1, 2, None]
    px = cx[:, None] + hx[:, None] * su - 0.5  # pixel-index units of the image
    py = cy[:, None] + hy[:, None] * sv - 0.5
    margin = 3  # bicubic reaches floor(x) - 1 .. floor(x) + 2; one more for rounding
    rect = torch.stack([
        torch.floor(px.min(1).values) - margin, torch.floor(py.min(1).values) - margin,
        torch.floor(px.max(1).values) + margin + 1, torch.floor(py.max(1).values) + margin + 1,
    ], 1)
    rect[:, 0::2] = rect[:, 0::2].clamp(0, width)
    rect[:, 1::2] = rect[:, 1::2].clamp(0, height)
    return rect.long()


def _winners(b: Tensor, gy: Tensor, gx: Tensor, rank: Tensor, batch: int, height: int, width: int) -> Tensor:
    """Mask of pixels whose object has the highest index among those covering them."""
    lin = (b * height + gy) * width + gx
    owner = torch.full((batch * height * width,), -1, dtype=torch.long, device=b.device)
    owner.scatter_reduce_(0, lin, rank, reduce="amax", include_self=True)
    return owner[lin] == rank
