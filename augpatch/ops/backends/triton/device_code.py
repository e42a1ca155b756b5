"""The Triton kernels of ``warp_patches`` (device code only; the host side is ``__init__.py``).

This module is loaded by ``__init__.py`` as two separate module objects: one while
Triton's interpreter is on (``TRITON_INTERPRET=1``: ``@triton.jit`` then makes
interpreted functions, which run on CPU tensors) and one while it is off (compiled
for the GPU), so that both can exist in one process. Do not import it directly.

Every kernel works on *tiles*: a ``BH x BW`` block of one object's patch (rows
``i0 .. i0 + BH``, columns ``j0 .. j0 + BW`` of object ``k``), times ``NCB`` blocks of
``BC`` channels (an unrolled loop: one block for up to 4 channels; a loop with a
runtime bound would not run in Triton 3.6's interpreter). A level of the plan is one
launch over its tiles (``tile0 + program_id``).
The per-pixel arithmetic is that of ``eager._Chunk`` / ``csrc/warp_cpu.cpp``,
operation for operation (launched with ``enable_fp_fusion=False`` so that no
multiply-add the reference rounds twice is fused).

Tables (see ``_Layout`` in ``__init__.py``): ``obj`` ``[K, 6]`` int64 (``x0, y0, w, h, image,
first pixel``), ``tiles`` ``[T, 3]`` int32 (``k, i0, j0``), ``prm`` ``[K, 14]``
(``_warp.object_params``). ``F.affine_grid``'s base coordinates are computed per tile
row and column (``_base``), as ``_plan.exact_base_grid`` does.

*Packed* buffers hold a run of objects' pixels, channel-major: element ``(c, k, i, j)``
at ``c * pn + (first_pixel[k] - p0) + i * w + j``.
"""

from __future__ import annotations

import triton
import triton.language as tl


def _no_spec(names: str) -> list[str]:
    """Integer arguments not to specialise on their values (1, multiples of 16): fewer
    compilations (flags and strides vary between calls), and these kernels gather anyway."""
    return names.split()


# ----------------------------------------------------------------------------- helpers


@triton.jit
def _fma(a, b, c, F64: tl.constexpr):
    """``a * b + c`` rounded once, as ``_plan.fused_multiply_add`` (``b`` has few bits)."""
    if F64:
        split = a * 134217729.0  # 2**27 + 1 (Veltkamp)
        a_hi = split - (split - a)
        a_lo = a - a_hi
        p_hi = a_hi * b
        p_lo = a_lo * b
        s = p_hi + c
        bb = s - p_hi
        err = (p_hi - (s - bb)) + (c - bb)
        res = s + (err + p_lo)
    else:
        res = (a.to(tl.float64) * b.to(tl.float64) + c).to(tl.float32)
    return res


@triton.jit
def _sum(x, axis: tl.constexpr):
    """``tl.sum`` without its wrapper: ``tl.sum`` is a jit function of Triton's own, compiled or
    interpreted as ``TRITON_INTERPRET`` was when Triton was imported; the interpreter runs
    this combine function with numpy whichever it is."""
    return tl.reduce(x, axis, tl.standard._sum_combine)


@triton.jit
def _rint(x, F64: tl.constexpr):
    """Round half to even (``nearbyint``) without libdevice (the interpreter has none)."""
    if F64:
        big = 4503599627370496.0  # 2**52: from here on every double is an integer
    else:
        big = 8388608.0  # 2**23
    ax = tl.abs(x)
    r = tl.where(ax < big, (ax + big) - big, ax)
    return tl.where(x < 0, -r, r)


@triton.jit
def _div(a, b, F64: tl.constexpr):
    """IEEE division (float32 ``/`` is approximate on NVIDIA GPUs: ``div.full.f32``)."""
    if F64:
        res = a / b
    else:
        res = tl.math.div_rn(a, b)
    return res


@triton.jit
def _pad_location(coord, size_f, align, reflect, F64: tl.constexpr):
    """``grid_sample``'s border / reflection transform of a location and its derivative
    (``augpatch.ops.backends.eager._pad_location``)."""
    grad = tl.full(coord.shape, 1.0, coord.dtype)
    if reflect:
        low = tl.where(align != 0, 0.0, -0.5).to(coord.dtype)
        twice_span = tl.where(align != 0, 2.0 * (size_f - 1.0), 2.0 * size_f).to(coord.dtype)
        shifted = coord - low
        neg = shifted < 0.0
        mag = tl.abs(shifted)
        safe = tl.where(twice_span > 0.0, twice_span, 1.0).to(coord.dtype)
        extra = mag - tl.floor(_div(mag, safe, F64)) * safe  # trunc == floor: mag >= 0
        reflected = safe - extra
        flip = extra > reflected
        grad = tl.where(flip != neg, -1.0, 1.0).to(coord.dtype)
        coord = tl.where(flip, reflected, extra) + low
        empty = twice_span <= 0.0
        coord = tl.where(empty, 0.0, coord)
        grad = tl.where(empty, 0.0, grad)
    max_val = size_f - 1.0
    inside = (coord > 0.0) & (coord < max_val)
    coord = tl.where(inside, coord, tl.where(coord <= 0.0, 0.0, max_val))
    grad = tl.where(inside, grad, 0.0)
    return coord, grad


@triton.jit
def _first(coord, MODE: tl.constexpr, F64: tl.constexpr):
    """First tap index (int64) and the fraction ``t`` of a location (``_taps_1d``)."""
    big = 1099511627776.0  # 2**40: keeps the integer conversion defined
    coord = tl.minimum(tl.maximum(coord, -big), big)
    if MODE == 0:
        lo = _rint(coord, F64)
    else:
        lo = tl.floor(coord)
    first = lo.to(tl.int64)
    if MODE == 2:
        first = first - 1
    return first, coord - lo


@triton.jit
def _weight(t, m: tl.constexpr, MODE: tl.constexpr):
    """Weight of tap ``m`` and its derivative along one axis (``_taps_1d``)."""
    if MODE == 0:
        w = tl.full(t.shape, 1.0, t.dtype)
        dw = tl.full(t.shape, 0.0, t.dtype)
    elif MODE == 1:
        if m == 0:
            w = 1.0 - t
            dw = tl.full(t.shape, -1.0, t.dtype)
        else:
            w = t
            dw = tl.full(t.shape, 1.0, t.dtype)
    else:  # cubic convolution, A = -0.75 (the constants are products of A, exact)
        if m == 0:
            t1 = t + 1.0
            w = ((-0.75 * t1 - -3.75) * t1 + -6.0) * t1 - -3.0
            dw = (-2.25 * t1 - -7.5) * t1 + -6.0
        elif m == 1:
            w = (1.25 * t - 2.25) * t * t + 1.0
            dw = (3.75 * t - 4.5) * t
        elif m == 2:
            t2 = 1.0 - t
            w = (1.25 * t2 - 2.25) * t2 * t2 + 1.0
            dw = -((3.75 * t2 - 4.5) * t2)
        else:
            t3 = 2.0 - t
            w = ((-0.75 * t3 - -3.75) * t3 + -6.0) * t3 - -3.0
            dw = -((-2.25 * t3 - -7.5) * t3 + -6.0)
    return w, dw


@triton.jit
def _tap(first, t, m: tl.constexpr, size, align, tap_pad, MODE: tl.constexpr):
    """Index (int32, inside ``[0, size)``), weight and weight derivative of tap ``m``
    (``_bound``: zeros padding zeroes the weight of a tap outside; reflection reflects the
    index; border clamps it). ``tap_pad``: the tap padding (0 zeros, 1 border, 2
    reflection)."""
    w, dw = _weight(t, m, MODE)
    idx = first + m
    if tap_pad == 0:
        clamped = tl.minimum(tl.maximum(idx, 0), size - 1)
        valid = clamped == idx
        w = tl.where(valid, w, 0.0)
        dw = tl.where(valid, dw, 0.0)
        idx = clamped
    else:
        if tap_pad == 2:
            # integer indices reflect about -0.5 and size - 0.5 (period 2 size), or with
            # align_corners about 0 and size - 1 (period 2 (size - 1))
            period = tl.where(align != 0, tl.maximum(2 * (size - 1), 1), 2 * size)
            r = idx % period
            r = tl.where(r < 0, r + period, r)
            reflected = tl.where(align != 0, tl.minimum(r, period - r), tl.minimum(r, period - 1 - r))
            idx = tl.where((align != 0) & (size == 1), 0, reflected)
        idx = tl.minimum(tl.maximum(idx, 0), size - 1)
    return idx.to(tl.int32), w, dw


@triton.jit
def _taps(first, t, size, align, tap_pad, MODE: tl.constexpr, NT: tl.constexpr):
    """The ``NT`` taps of one axis: tuples of indices, weights and weight derivatives."""
    i0, w0, d0 = _tap(first, t, 0, size, align, tap_pad, MODE)
    if NT == 1:
        res = (i0,), (w0,), (d0,)
    elif NT == 2:
        i1, w1, d1 = _tap(first, t, 1, size, align, tap_pad, MODE)
        res = (i0, i1), (w0, w1), (d0, d1)
    else:
        i1, w1, d1 = _tap(first, t, 1, size, align, tap_pad, MODE)
        i2, w2, d2 = _tap(first, t, 2, size, align, tap_pad, MODE)
        i3, w3, d3 = _tap(first, t, 3, size, align, tap_pad, MODE)
        res = (i0, i1, i2, i3), (w0, w1, w2, w3), (d0, d1, d2, d3)
    return res


@triton.jit
def _scaled(idx, stride, NT: tl.constexpr):
    """Tap indices (a tuple) times a stride: element offsets."""
    if NT == 1:
        res = (idx[0] * stride,)
    elif NT == 2:
        res = (idx[0] * stride, idx[1] * stride)
    else:
        res = (idx[0] * stride, idx[1] * stride, idx[2] * stride, idx[3] * stride)
    return res


@triton.jit
def _tile(tile_ptr, obj_ptr, tile0, BH: tl.constexpr, BW: tl.constexpr):
    """This program's tile: object ``k``, its table entries, row / column indices, mask."""
    t = tile0 + tl.program_id(0)
    k = tl.load(tile_ptr + 3 * t).to(tl.int64)
    i0 = tl.load(tile_ptr + 3 * t + 1)
    j0 = tl.load(tile_ptr + 3 * t + 2)
    o = obj_ptr + 6 * k
    x0 = tl.load(o)
    y0 = tl.load(o + 1)
    w = tl.load(o + 2).to(tl.int32)
    h = tl.load(o + 3).to(tl.int32)
    b = tl.load(o + 4)
    fp = tl.load(o + 5)
    ii = i0 + tl.arange(0, BH)[:, None]  # [BH, 1] rows of the patch
    jj = j0 + tl.arange(0, BW)[None, :]  # [1, BW] columns of the patch
    pm = (ii < h) & (jj < w)
    return k, x0, y0, w, h, b, fp, ii, jj, pm


@triton.jit
def _base(index, size, align, F64: tl.constexpr):
    """``F.affine_grid``'s base coordinate of pixel ``index`` of ``size``, bit for bit
    (``_plan.exact_base_grid``): ``linspace(-1, 1, size)`` by a fused multiply-add from the
    nearer end, times ``(size - 1) / size`` without ``align_corners``."""
    if F64:
        n = size.to(tl.float64)
    else:
        n = size.to(tl.float32)
    step = _div(n * 0.0 + 2.0, tl.maximum(n - 1.0, 1.0), F64)
    first_half = index < size // 2
    k = tl.where(first_half, index, size - 1 - index).to(n.dtype)
    start = tl.where(first_half, -1.0, 1.0).to(n.dtype)
    sign = tl.where(first_half, 1.0, -1.0).to(n.dtype)
    base = _fma(sign * step, k, start, F64)
    if align == 0:
        base = _div(base * (n - 1.0), n, F64)
    return tl.where(size <= 1, 0.0, base).to(n.dtype)


@triton.jit
def _box_coordinates(q, w, h, ii, jj, align, F64: tl.constexpr):
    """``F.affine_grid``'s base coordinates of the tile's columns ``cb`` ``[1, BW]`` and rows ``rb``
    ``[BH, 1]``, and the same mapped onto the continuous box: ``u = cb * kx + cx``, ``v = rb * ky
    + cy`` (``q``: the object's ``[14]`` parameters)."""
    kx = tl.load(q + 6)
    ky = tl.load(q + 7)
    cx = tl.load(q + 8)
    cy = tl.load(q + 9)
    cb = _base(jj, w, align, F64)  # [1, BW]
    rb = _base(ii, h, align, F64)  # [BH, 1]
    return cb, rb, cb * kx + cx, rb * ky + cy


@triton.jit
def _locate(prm_ptr, k, w, h, ii, jj, align, F64: tl.constexpr):
    """Sampling location of every pixel of the tile, before padding (``_Chunk``): the
    bmm's ``(u * t00 + v * t01) + t02``, then ``grid_sample``'s unnormalize."""
    q = prm_ptr + 14 * k
    t00 = tl.load(q)
    t01 = tl.load(q + 1)
    t02 = tl.load(q + 2)
    t10 = tl.load(q + 3)
    t11 = tl.load(q + 4)
    t12 = tl.load(q + 5)
    sx = tl.load(q + 10)
    sy = tl.load(q + 11)
    ox = tl.load(q + 12)
    oy = tl.load(q + 13)
    cb, rb, u, v = _box_coordinates(q, w, h, ii, jj, align, F64)
    gx1 = ((u * t00 + v * t01) + t02) + 1.0
    gy1 = ((u * t10 + v * t11) + t12) + 1.0
    if align != 0:
        ix = gx1 * sx + ox
        iy = gy1 * sy + oy
    else:  # grid_sample computes (g + 1) * size / 2 - 0.5 as one fused multiply-add
        ix = _fma(gx1, sx, -0.5, F64) + ox
        iy = _fma(gy1, sy, -0.5, F64) + oy
    return ix, iy, gx1, gy1, sx, sy


@triton.jit
def _frame(x0, y0, w, h, b, W, H, sb, sh, sw, ix, iy, align, pad, MODE: tl.constexpr, F64: tl.constexpr):
    """The frame an object samples (its patch, or the image for padding ``"image"``):
    element offset of its top-left pixel, size, and the locations moved into it, padded
    (``grid_sample``'s border / reflection for bilinear and nearest), with the padding's
    derivatives."""
    if pad == 3:
        frame = b * sb
        fw = W
        fh = H
        ix = ix + x0.to(ix.dtype)
        iy = iy + y0.to(iy.dtype)
    else:
        frame = b * sb + y0 * sh + x0 * sw
        fw = w
        fh = h
    dpx = tl.full(ix.shape, 1.0, ix.dtype)
    dpy = tl.full(iy.shape, 1.0, iy.dtype)
    if MODE != 2:  # noqa: SIM102  (constexpr, then a runtime test) bicubic pads its taps instead
        if (pad == 1) | (pad == 2):
            ix, dpx = _pad_location(ix, w.to(ix.dtype), align, pad == 2, F64)
            iy, dpy = _pad_location(iy, h.to(iy.dtype), align, pad == 2, F64)
    return frame, fw, fh, ix, iy, dpx, dpy


@triton.jit
def _store_value(ptr, acc, mask):
    """Store computed values in the buffer's dtype (uint8: round half to even, clamp)."""
    if ptr.dtype.element_ty == tl.uint8:
        r = tl.minimum(tl.maximum(_rint(acc, False), 0.0), 255.0)
        tl.store(ptr, r.to(tl.uint8), mask=mask)
    elif ptr.dtype.element_ty == tl.bfloat16:
        # round to nearest even by hand: the interpreter's float32 -> bfloat16 cast truncates
        bits = acc.to(tl.uint32, bitcast=True)
        rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
        half = tl.where(acc != acc, (bits >> 16) | 0x40, rounded).to(tl.uint16)  # NaN stays NaN
        tl.store(ptr, half.to(tl.bfloat16, bitcast=True), mask=mask)
    else:
        tl.store(ptr, acc.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _param_grads(gprm_ptr, prm_ptr, k, w, h, ii, jj, pm, gix, giy, dpx, dpy, gx1, gy1, sx, sy, align,
                 F64: tl.constexpr):
    """Add the gradient of object ``k``'s ``[14]`` parameters (at ``gprm_ptr``) from the gradient
    of the tile's sampling locations ``gix``, ``giy`` (before padding's derivatives ``dpx``,
    ``dpy``): reduced per column, per row, per tile, added with atomics (the chain rule of
    ``_Locations.param_grads``)."""
    gix = tl.where(pm, gix * dpx, 0.0)
    giy = tl.where(pm, giy * dpy, 0.0)
    # ix = (gx + 1) * scale + offset (- 0.5); gx = u * t00 + v * t01 + t02
    dgx = gix * sx
    dgy = giy * sy
    q = prm_ptr + 14 * k
    t00 = tl.load(q)
    t01 = tl.load(q + 1)
    t10 = tl.load(q + 3)
    t11 = tl.load(q + 4)
    cb, rb, u, v = _box_coordinates(q, w, h, ii, jj, align, F64)
    # per column (x) and per row (y) of the tile, then onto the parameters
    col_x = _sum(dgx, 0)[None, :]
    col_y = _sum(dgy, 0)[None, :]
    gu = col_x * t00 + col_y * t10
    row_x = _sum(dgx, 1)[:, None]
    row_y = _sum(dgy, 1)[:, None]
    gv = row_x * t01 + row_y * t11
    o = gprm_ptr + 14 * k
    tl.atomic_add(o, _sum(_sum(col_x * u, 1), 0), sem="relaxed")  # t00
    tl.atomic_add(o + 1, _sum(_sum(row_x * v, 1), 0), sem="relaxed")  # t01
    tl.atomic_add(o + 2, _sum(_sum(dgx, 1), 0), sem="relaxed")  # t02
    tl.atomic_add(o + 3, _sum(_sum(col_y * u, 1), 0), sem="relaxed")  # t10
    tl.atomic_add(o + 4, _sum(_sum(row_y * v, 1), 0), sem="relaxed")  # t11
    tl.atomic_add(o + 5, _sum(_sum(dgy, 1), 0), sem="relaxed")  # t12
    tl.atomic_add(o + 6, _sum(_sum(gu * cb, 1), 0), sem="relaxed")  # kx
    tl.atomic_add(o + 7, _sum(_sum(gv * rb, 1), 0), sem="relaxed")  # ky
    tl.atomic_add(o + 8, _sum(_sum(gu, 1), 0), sem="relaxed")  # cx
    tl.atomic_add(o + 9, _sum(_sum(gv, 1), 0), sem="relaxed")  # cy
    tl.atomic_add(o + 10, _sum(_sum(gix * gx1, 1), 0), sem="relaxed")  # sx
    tl.atomic_add(o + 11, _sum(_sum(giy * gy1, 1), 0), sem="relaxed")  # sy
    tl.atomic_add(o + 12, _sum(_sum(gix, 1), 0), sem="relaxed")  # ox
    tl.atomic_add(o + 13, _sum(_sum(giy, 1), 0), sem="relaxed")  # oy


# ----------------------------------------------------------------------------- kernels


@triton.jit(do_not_specialize=_no_spec(
    "tile0 pack0 pack_n save0 save_n src_sb src_sc src_sh src_sw dst_sb dst_sc dst_sh dst_sw C H W "
    "align pad tap_pad packed"))
def warp_forward(
    src_ptr, dst_ptr, dx_ptr, dy_ptr, prm_ptr, obj_ptr, tile_ptr,
    tile0, pack0, pack_n, save0, save_n,
    src_sb, src_sc, src_sh, src_sw, dst_sb, dst_sc, dst_sh, dst_sw,
    C, H, W, align, pad, tap_pad, packed,
    MODE: tl.constexpr, DERIV: tl.constexpr,
    F64: tl.constexpr, NT: tl.constexpr, BC: tl.constexpr, NCB: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
):
    """One level's warp: sample every pixel of the tile from ``src`` (strided: images or
    the working copy) and store it into ``dst``: strided (the working copy) or, with
    ``packed``, the packed result buffer of the level (``pack0``, ``pack_n``). ``DERIV``:
    also store the two location derivatives of every value (packed at ``save0``,
    ``save_n``)."""
    k, x0, y0, w, h, b, fp, ii, jj, pm = _tile(tile_ptr, obj_ptr, tile0, BH, BW)
    ix, iy, gx1, gy1, sx, sy = _locate(prm_ptr, k, w, h, ii, jj, align, F64)
    frame, fw, fh, ix, iy, dpx, dpy = _frame(
        x0, y0, w, h, b, W, H, src_sb, src_sh, src_sw, ix, iy, align, pad, MODE, F64)
    first_x, tx = _first(ix, MODE, F64)
    first_y, ty = _first(iy, MODE, F64)
    xi, xw, xd = _taps(first_x, tx, fw, align, tap_pad, MODE, NT)
    yi, yw, yd = _taps(first_y, ty, fh, align, tap_pad, MODE, NT)
    cc = tl.arange(0, BC)[:, None, None]
    pm3 = pm[None, :, :]
    xo = _scaled(xi, src_sw, NT)
    yo = _scaled(yi, src_sh, NT)
    for cbk in tl.static_range(NCB):  # blocks of channels (unrolled: most images have <= 4)
        c0 = cbk * BC
        cm = ((c0 + cc) < C) & pm3
        src = src_ptr + frame + (c0 + cc) * src_sc  # [BC, 1, 1] pointers: this block's channels
        acc = tl.full((BC, BH, BW), 0, ix.dtype)
        ax = tl.full((BC, BH, BW), 0, ix.dtype)
        ay = tl.full((BC, BH, BW), 0, ix.dtype)
        for m in tl.static_range(NT):
            for n in tl.static_range(NT):
                vals = tl.load(src + (yo[m] + xo[n])[None, :, :], mask=cm, other=0).to(ix.dtype)
                acc += (yw[m] * xw[n])[None, :, :] * vals
                if DERIV:
                    ax += (yw[m] * xd[n])[None, :, :] * vals
                    ay += (yd[m] * xw[n])[None, :, :] * vals
        if packed != 0:
            pix = (fp - pack0) + ii * w + jj
            dst = dst_ptr + pix[None, :, :] + (c0 + cc).to(tl.int64) * pack_n
        else:
            out = b * dst_sb + (y0 + ii) * dst_sh + (x0 + jj) * dst_sw
            dst = dst_ptr + out[None, :, :] + (c0 + cc) * dst_sc
        _store_value(dst, acc, cm)
        if DERIV:
            spix = (fp - save0) + ii * w + jj
            soff = spix[None, :, :] + (c0 + cc).to(tl.int64) * save_n
            tl.store(dx_ptr + soff, ax, mask=cm)
            tl.store(dy_ptr + soff, ay, mask=cm)


@triton.jit(do_not_specialize=_no_spec(
    "tile0 pack0 pack_n save0 save_n dst_sb dst_sc dst_sh dst_sw C keep"))
def write_level(
    res_ptr, work_ptr, keep_ptr, obj_ptr, tile_ptr,
    tile0, pack0, pack_n, save0, save_n, dst_sb, dst_sc, dst_sh, dst_sw, C, keep,
    BC: tl.constexpr, NCB: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
):
    """Write a level's results (packed) into the working copy; with ``keep``, first keep
    the values they replace (packed at ``save0``, ``save_n``: the patches as the level
    read them, for the backward)."""
    k, x0, y0, w, h, b, fp, ii, jj, pm = _tile(tile_ptr, obj_ptr, tile0, BH, BW)
    cc = tl.arange(0, BC)[:, None, None]
    out = b * dst_sb + (y0 + ii) * dst_sh + (x0 + jj) * dst_sw
    pix = (fp - pack0) + ii * w + jj
    for cbk in tl.static_range(NCB):  # blocks of channels (unrolled: most images have <= 4)
        c0 = cbk * BC
        cm = ((c0 + cc) < C) & pm[None, :, :]
        wp = work_ptr + out[None, :, :] + (c0 + cc) * dst_sc
        if keep != 0:
            spix = (fp - save0) + ii * w + jj
            old = tl.load(wp, mask=cm)
            tl.store(keep_ptr + spix[None, :, :] + (c0 + cc).to(tl.int64) * save_n, old, mask=cm)
        new = tl.load(res_ptr + pix[None, :, :] + (c0 + cc).to(tl.int64) * pack_n, mask=cm)
        tl.store(wp, new, mask=cm)


@triton.jit(do_not_specialize=_no_spec("tile0 pack0 pack_n dst_sb dst_sc dst_sh dst_sw C"))
def take_level(
    g_ptr, pend_ptr, obj_ptr, tile_ptr,
    tile0, pack0, pack_n, dst_sb, dst_sc, dst_sh, dst_sw, C,
    BC: tl.constexpr, NCB: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
):
    """Move the output gradient of a level's pixels out of the gradient buffer into the
    packed ``pend`` (the state before the level reaches those pixels only via reads)."""
    k, x0, y0, w, h, b, fp, ii, jj, pm = _tile(tile_ptr, obj_ptr, tile0, BH, BW)
    cc = tl.arange(0, BC)[:, None, None]
    out = b * dst_sb + (y0 + ii) * dst_sh + (x0 + jj) * dst_sw
    pix = (fp - pack0) + ii * w + jj
    for cbk in tl.static_range(NCB):  # blocks of channels (unrolled: most images have <= 4)
        c0 = cbk * BC
        cm = ((c0 + cc) < C) & pm[None, :, :]
        gp = g_ptr + out[None, :, :] + (c0 + cc) * dst_sc
        g = tl.load(gp, mask=cm)
        tl.store(pend_ptr + pix[None, :, :] + (c0 + cc).to(tl.int64) * pack_n, g, mask=cm)
        tl.store(gp, tl.full((BC, BH, BW), 0, g.dtype), mask=cm)


@triton.jit(do_not_specialize=_no_spec(
    "tile0 pack0 pack_n save0 save_n src_sb src_sc src_sh src_sw dst_sb dst_sc dst_sh dst_sw C H W "
    "align pad tap_pad packed to_buffer"))
def warp_backward(
    g_ptr, pend_ptr, src_ptr, dx_ptr, dy_ptr, gprm_ptr, prm_ptr, obj_ptr, tile_ptr,
    tile0, pack0, pack_n, save0, save_n,
    src_sb, src_sc, src_sh, src_sw, dst_sb, dst_sc, dst_sh, dst_sw,
    C, H, W, align, pad, tap_pad, packed, to_buffer,
    MODE: tl.constexpr, NEED_LOC: tl.constexpr,
    SAVED_D: tl.constexpr, F64: tl.constexpr, NT: tl.constexpr, BC: tl.constexpr, NCB: tl.constexpr,
    BH: tl.constexpr, BW: tl.constexpr,
):
    """One level's backward from its output gradients (packed ``pend``).

    ``to_buffer``: add ``weight * gradient`` to every tap the level read, in the gradient
    buffer ``g`` (strided like the working copy; atomics). ``NEED_LOC``: the location
    gradient of every pixel, from the derivatives of its value: saved ones (``SAVED_D``,
    packed at ``save0``) or recomputed from the values the level read: ``src`` strided
    (the input images) or, with ``packed``, the kept patches (packed at ``save0``). It is
    reduced over the tile and added to the gradient of the object's ``[14]`` parameters
    (the chain rule of ``_Locations.param_grads``)."""
    k, x0, y0, w, h, b, fp, ii, jj, pm = _tile(tile_ptr, obj_ptr, tile0, BH, BW)
    ix, iy, gx1, gy1, sx, sy = _locate(prm_ptr, k, w, h, ii, jj, align, F64)
    frame, fw, fh, ix, iy, dpx, dpy = _frame(
        x0, y0, w, h, b, W, H, dst_sb, dst_sh, dst_sw, ix, iy, align, pad, MODE, F64)
    first_x, tx = _first(ix, MODE, F64)
    first_y, ty = _first(iy, MODE, F64)
    xi, xw, xd = _taps(first_x, tx, fw, align, tap_pad, MODE, NT)
    yi, yw, yd = _taps(first_y, ty, fh, align, tap_pad, MODE, NT)
    cc = tl.arange(0, BC)[:, None, None]
    pm3 = pm[None, :, :]
    pix = (fp - pack0) + ii * w + jj
    spix = (fp - save0) + ii * w + jj
    go_x = _scaled(xi, dst_sw, NT)
    go_y = _scaled(yi, dst_sh, NT)
    # where the values the level read are (for the derivatives)
    if packed != 0:
        sbase = src_ptr + (fp - save0)
        s_h = w
        s_w = 1
        s_c = save_n
    else:
        if pad == 3:
            sbase = src_ptr + b * src_sb
        else:
            sbase = src_ptr + (b * src_sb + y0 * src_sh + x0 * src_sw)
        s_h = src_sh
        s_w = src_sw
        s_c = src_sc
    so_x = _scaled(xi, s_w, NT)
    so_y = _scaled(yi, s_h, NT)
    gix = tl.full((BH, BW), 0, ix.dtype)
    giy = tl.full((BH, BW), 0, ix.dtype)
    for cbk in tl.static_range(NCB):  # blocks of channels (unrolled: most images have <= 4)
        c0 = cbk * BC
        cm = ((c0 + cc) < C) & pm3
        g = tl.load(pend_ptr + pix[None, :, :] + (c0 + cc).to(tl.int64) * pack_n, mask=cm, other=0.0)
        gbuf = g_ptr + frame + (c0 + cc) * dst_sc  # [BC, 1, 1] pointers
        vbuf = sbase + (c0 + cc).to(tl.int64) * s_c
        ax = tl.full((BC, BH, BW), 0, ix.dtype)
        ay = tl.full((BC, BH, BW), 0, ix.dtype)
        for m in tl.static_range(NT):
            for n in tl.static_range(NT):
                if to_buffer != 0:
                    tl.atomic_add(gbuf + (go_y[m] + go_x[n])[None, :, :], (yw[m] * xw[n])[None, :, :] * g,
                                  mask=cm, sem="relaxed")  # no ordering needed: sums only
                if NEED_LOC and SAVED_D == 0:
                    vals = tl.load(vbuf + (so_y[m] + so_x[n])[None, :, :], mask=cm, other=0).to(ix.dtype)
                    ax += (yw[m] * xd[n])[None, :, :] * vals
                    ay += (yd[m] * xw[n])[None, :, :] * vals
        if NEED_LOC:
            if SAVED_D:
                soff = spix[None, :, :] + (c0 + cc).to(tl.int64) * save_n
                ax = tl.load(dx_ptr + soff, mask=cm, other=0.0)
                ay = tl.load(dy_ptr + soff, mask=cm, other=0.0)
            gix += _sum(g * ax, 0)
            giy += _sum(g * ay, 0)
    if NEED_LOC:
        _param_grads(gprm_ptr, prm_ptr, k, w, h, ii, jj, pm, gix, giy, dpx, dpy, gx1, gy1, sx, sy, align, F64)
