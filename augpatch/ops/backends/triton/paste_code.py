"""The Triton kernels of ``paste_objects`` (device code only; the host side is ``paste.py``).

Loaded like ``device_code.py`` (the warp's device code): one module object per variant
(compiled for the GPU, or interpreted with ``TRITON_INTERPRET=1``), by
:func:`augpatch.ops.backends.triton.paste_kernels`, which first loads the warp's device code
of the same variant and hands it over as ``_warp_code``: the paste samples with the warp's
helpers (location, padding, taps, the parameter gradient, the store with rounding), so the
two kernels share the per-pixel arithmetic of the eager kernel, operation for operation.
Do not import it directly (doctest collection may: it then takes the current variant).

A program computes a tile (``BH x BW`` pixels, every channel) of one pasted object's
destination box: the location every pixel reads (``_locate`` with the image's ``[K, 14]``
parameters), the taps of the object's *source frame* (the source box's pixels, or the whole
source image with ``padding_mode="image"``) and, with an alpha, the taps of the alpha's frame
(the same locations where the alpha shares the image's parameters, else its own), then the
composite ``a * new + (1 - a) * below`` stored with the image dtype's rounding. A level of
the paste's schedule is one launch (objects of one level never overlap in one image, so a
program reads ``below`` and writes the same pixels without a race).

Tables: ``obj`` ``[K, 6]`` int64 and ``tiles`` ``[T, 3]`` int32 as the warp's (the destination
rects); ``frm`` ``[K, 10]`` int64: the source frame (``x0, y0, w, h, index``) then the
alpha's. Saved buffers (compute dtype, flat, pixel ``p = first_pixel[k] + i * w + j`` of
``P``): ``sa`` the alpha as sampled ``[P]``, ``sdiff`` ``new - below`` ``[C, P]``, ``sdv`` the
derivatives of the sampled values ``[2, C, P]``, ``sda`` those of the alpha ``[2, P]``: the
eager kernel's layout, so either backward reads the other's forward.
"""

from __future__ import annotations

import importlib

import triton
import triton.language as tl

_warp = globals().get("_warp_code")  # set by the loader: the warp's device code of this variant
if _warp is None:  # imported directly (doctest collection): the current variant
    _warp = importlib.import_module("augpatch.ops.backends.triton").kernels()

_base_grid = _warp._base
_first = _warp._first
_frame = _warp._frame
_locate = _warp._locate
_no_spec = _warp._no_spec
_param_grads = _warp._param_grads
_scaled = _warp._scaled
_store_value = _warp._store_value
_sum = _warp._sum
_taps = _warp._taps
_tile = _warp._tile


# ----------------------------------------------------------------------------- helpers


@triton.jit
def _frame_taps(prm_ptr, frm_ptr, k, FIRST: tl.constexpr, w, h, ii, jj, W, H, sb, sh, sw, align, pad, tap_pad,
                MODE: tl.constexpr, F64: tl.constexpr, NT: tl.constexpr):
    """Where the tile's pixels read a frame (the source's: ``FIRST = 0``, the alpha's: 5) of a
    buffer ``[*, *, H, W]`` with strides ``sb, sh, sw``: the frame's element offset, the taps'
    column / row indices, weights and weight derivatives, the padding's derivatives and what the
    parameter gradient needs (``_locate``'s ``gx1, gy1, sx, sy``)."""
    ix, iy, gx1, gy1, sx, sy = _locate(prm_ptr, k, w, h, ii, jj, align, F64)
    f = frm_ptr + 10 * k + FIRST
    fx0 = tl.load(f)
    fy0 = tl.load(f + 1)
    fw = tl.load(f + 2).to(tl.int32)
    fh = tl.load(f + 3).to(tl.int32)
    fb = tl.load(f + 4)
    frame, size_x, size_y, ix, iy, dpx, dpy = _frame(fx0, fy0, fw, fh, fb, W, H, sb, sh, sw, ix, iy, align, pad,
                                                     MODE, F64)
    first_x, tx = _first(ix, MODE, F64)
    first_y, ty = _first(iy, MODE, F64)
    xi, xw, xd = _taps(first_x, tx, size_x, align, tap_pad, MODE, NT)
    yi, yw, yd = _taps(first_y, ty, size_y, align, tap_pad, MODE, NT)
    return frame, xi, yi, xw, xd, yw, yd, dpx, dpy, gx1, gy1, sx, sy


@triton.jit
def _origin(frm_ptr, k, FIRST: tl.constexpr, sb, sh, sw, pad):
    """The element offset of a frame (``_frame``'s, without the locations)."""
    f = frm_ptr + 10 * k + FIRST
    if pad == 3:
        res = tl.load(f + 4) * sb
    else:
        res = tl.load(f + 4) * sb + tl.load(f + 1) * sh + tl.load(f) * sw
    return res


@triton.jit
def _gather(ptr, cm, xo, yo, xw, xd, yw, yd, DERIV: tl.constexpr, NT: tl.constexpr, BC: tl.constexpr,
            BH: tl.constexpr, BW: tl.constexpr):
    """The sampled values of a ``[BC, BH, BW]`` block (``ptr``: ``[BC, 1, 1]`` pointers to the
    frame of each channel; ``xo``, ``yo``: the taps' element offsets) and, with ``DERIV``, their
    two location derivatives (else zeros), accumulated tap by tap in ``grid_sample``'s order
    (``eager._sample``)."""
    acc = tl.full((BC, BH, BW), 0, xw[0].dtype)
    ax = tl.full((BC, BH, BW), 0, xw[0].dtype)
    ay = tl.full((BC, BH, BW), 0, xw[0].dtype)
    for m in tl.static_range(NT):
        for n in tl.static_range(NT):
            vals = tl.load(ptr + (yo[m] + xo[n])[None, :, :], mask=cm, other=0).to(xw[0].dtype)
            acc += (yw[m] * xw[n])[None, :, :] * vals
            if DERIV:
                ax += (yw[m] * xd[n])[None, :, :] * vals
                ay += (yd[m] * xw[n])[None, :, :] * vals
    return acc, ax, ay


@triton.jit
def _scatter(ptr, cm, xo, yo, xw, yw, g, NT: tl.constexpr):
    """Add ``weight * g`` to every tap (``ptr``: ``[BC, 1, 1]`` pointers to the frame of each
    channel; atomics: the taps of neighbouring pixels and of objects coincide)."""
    for m in tl.static_range(NT):
        for n in tl.static_range(NT):
            tl.atomic_add(ptr + (yo[m] + xo[n])[None, :, :], (yw[m] * xw[n])[None, :, :] * g, mask=cm,
                          sem="relaxed")  # no ordering needed: sums only


# ----------------------------------------------------------------------------- kernels


@triton.jit(do_not_specialize=_no_spec(
    "tile0 P s_sb s_sc s_sh s_sw o_sb o_sc o_sh o_sw a_sb a_sh a_sw C SH SW AH AW align pad tap_pad"))
def paste_forward(
    src_ptr, out_ptr, alpha_ptr, prm_ptr, aprm_ptr, obj_ptr, frm_ptr, tile_ptr,
    sa_ptr, sdiff_ptr, sdv_ptr, sda_ptr,
    tile0, P, s_sb, s_sc, s_sh, s_sw, o_sb, o_sc, o_sh, o_sw, a_sb, a_sh, a_sw,
    C, SH, SW, AH, AW, align, pad, tap_pad,
    MODE: tl.constexpr, ALPHA: tl.constexpr, SHARED: tl.constexpr, NEED_LOC: tl.constexpr,
    NEED_DIFF: tl.constexpr, F64: tl.constexpr, NT: tl.constexpr, BC: tl.constexpr, NCB: tl.constexpr,
    BH: tl.constexpr, BW: tl.constexpr,
):
    """One level's paste: sample every pixel of the tile from its source frame (``src``,
    strided ``[B_s, C, SH, SW]``) and, with ``ALPHA``, the alpha (``[N, 1, AH, AW]``; ``SHARED``:
    at the image's locations), composite onto the output (strided, read and written in place)
    and store with the output dtype's rounding. Saves what the backward needs (module
    docstring): the alpha with ``ALPHA``, ``new - below`` with ``NEED_DIFF``, the derivatives
    with ``NEED_LOC``."""
    k, x0, y0, w, h, b, fp, ii, jj, pm = _tile(tile_ptr, obj_ptr, tile0, BH, BW)
    frame, xi, yi, xw, xd, yw, yd, dpx, dpy, gx1, gy1, sx, sy = _frame_taps(
        prm_ptr, frm_ptr, k, 0, w, h, ii, jj, SW, SH, s_sb, s_sh, s_sw, align, pad, tap_pad, MODE, F64, NT)
    pix = fp + ii * w + jj  # [BH, BW]: the pixels' index in the saved buffers
    pm1 = pm[None, :, :]
    if ALPHA:
        one = tl.arange(0, 1)[:, None, None]
        if SHARED:  # a frame of the source's size read at the same locations: the same taps
            a_ptr = alpha_ptr + _origin(frm_ptr, k, 5, a_sb, a_sh, a_sw, pad) + one
            a3, dax3, day3 = _gather(a_ptr, pm1, _scaled(xi, a_sw, NT), _scaled(yi, a_sh, NT), xw, xd, yw, yd,
                                     NEED_LOC, NT, 1, BH, BW)
        else:
            a_frame, axi, ayi, axw, axd, ayw, ayd, adpx, adpy, agx1, agy1, asx, asy = _frame_taps(
                aprm_ptr, frm_ptr, k, 5, w, h, ii, jj, AW, AH, a_sb, a_sh, a_sw, align, pad, tap_pad, MODE, F64,
                NT)
            a3, dax3, day3 = _gather(alpha_ptr + a_frame + one, pm1, _scaled(axi, a_sw, NT),
                                     _scaled(ayi, a_sh, NT), axw, axd, ayw, ayd, NEED_LOC, NT, 1, BH, BW)
        a_raw = _sum(a3, 0)  # [BH, BW] (one channel)
        tl.store(sa_ptr + pix, a_raw, mask=pm)
        if NEED_LOC:
            tl.store(sda_ptr + pix, _sum(dax3, 0), mask=pm)
            tl.store(sda_ptr + P + pix, _sum(day3, 0), mask=pm)
        a = tl.minimum(tl.maximum(a_raw, 0.0), 1.0)[None, :, :]
    xo = _scaled(xi, s_sw, NT)
    yo = _scaled(yi, s_sh, NT)
    cc = tl.arange(0, BC)[:, None, None]
    out = (b * o_sb + (y0 + ii) * o_sh + (x0 + jj) * o_sw)[None, :, :]
    for cbk in tl.static_range(NCB):  # blocks of channels (unrolled: most images have <= 4)
        c0 = cbk * BC
        cm = ((c0 + cc) < C) & pm1
        new, ax, ay = _gather(src_ptr + frame + (c0 + cc) * s_sc, cm, xo, yo, xw, xd, yw, yd, NEED_LOC, NT, BC,
                              BH, BW)
        cpix = pix[None, :, :] + (c0 + cc).to(tl.int64) * P
        if NEED_LOC:
            tl.store(sdv_ptr + cpix, ax, mask=cm)
            tl.store(sdv_ptr + C.to(tl.int64) * P + cpix, ay, mask=cm)
        dst = out_ptr + out + (c0 + cc) * o_sc
        if ALPHA:
            below = tl.load(dst, mask=cm, other=0).to(new.dtype)
            if NEED_DIFF:
                tl.store(sdiff_ptr + cpix, new - below, mask=cm)
            new = a * new + (1.0 - a) * below
        _store_value(dst, new, cm)


@triton.jit(do_not_specialize=_no_spec(
    "tile0 P s_sb s_sc s_sh s_sw o_sb o_sc o_sh o_sw a_sb a_sh a_sw C SH SW AH AW align pad tap_pad"))
def paste_backward(
    g_ptr, gsrc_ptr, galpha_ptr, gprm_ptr, gaprm_ptr, prm_ptr, aprm_ptr, obj_ptr, frm_ptr, tile_ptr,
    sa_ptr, sdiff_ptr, sdv_ptr, sda_ptr,
    tile0, P, s_sb, s_sc, s_sh, s_sw, o_sb, o_sc, o_sh, o_sw, a_sb, a_sh, a_sw,
    C, SH, SW, AH, AW, align, pad, tap_pad,
    MODE: tl.constexpr, ALPHA: tl.constexpr, SHARED: tl.constexpr, NEED_SRC: tl.constexpr,
    NEED_LOC: tl.constexpr, ALPHA_LOC: tl.constexpr, NEED_ALPHA: tl.constexpr, HAS_DIFF: tl.constexpr,
    PARAMS: tl.constexpr, F64: tl.constexpr, NT: tl.constexpr, BC: tl.constexpr, NCB: tl.constexpr, BH: tl.constexpr,
    BW: tl.constexpr,
):
    """One level's backward (``eager_paste_backward``), from the output gradient of its pixels
    in the gradient buffer ``g`` (strided like the output): the pixels pass ``(1 - a) g`` to
    what was below them (written back into ``g``; without alpha 0) and ``a g`` to what they
    sampled: ``NEED_SRC`` the sources' gradient (strided like the sources; atomics),
    ``NEED_LOC`` the gradient of the image's ``[14]`` parameters (from the saved derivatives).
    With the alpha's gradient ``g_a = sum_c g (new - below)`` (``HAS_DIFF``; 0 where the clamp
    cut the alpha): ``ALPHA_LOC`` its location gradient (into the image's parameters where
    ``SHARED``, else the alpha's), ``NEED_ALPHA`` the alpha's gradient (atomics). ``PARAMS``:
    whether the image's parameters get a gradient (``NEED_LOC``, or ``SHARED`` and ``ALPHA_LOC``)."""
    k, x0, y0, w, h, b, fp, ii, jj, pm = _tile(tile_ptr, obj_ptr, tile0, BH, BW)
    frame, xi, yi, xw, xd, yw, yd, dpx, dpy, gx1, gy1, sx, sy = _frame_taps(
        prm_ptr, frm_ptr, k, 0, w, h, ii, jj, SW, SH, s_sb, s_sh, s_sw, align, pad, tap_pad, MODE, F64, NT)
    pix = fp + ii * w + jj
    pm1 = pm[None, :, :]
    xo = _scaled(xi, s_sw, NT)
    yo = _scaled(yi, s_sh, NT)
    cc = tl.arange(0, BC)[:, None, None]
    out = (b * o_sb + (y0 + ii) * o_sh + (x0 + jj) * o_sw)[None, :, :]
    gix = tl.full((BH, BW), 0, xw[0].dtype)
    giy = tl.full((BH, BW), 0, xw[0].dtype)
    g_a = tl.full((BH, BW), 0, xw[0].dtype)
    if ALPHA:
        a_raw = tl.load(sa_ptr + pix, mask=pm, other=0.0)
        inside = ((a_raw >= 0.0) & (a_raw <= 1.0)).to(a_raw.dtype)  # the clamp passes the gradient there
        a = tl.minimum(tl.maximum(a_raw, 0.0), 1.0)[None, :, :]
    for cbk in tl.static_range(NCB):  # blocks of channels (unrolled: most images have <= 4)
        c0 = cbk * BC
        cm = ((c0 + cc) < C) & pm1
        gp = g_ptr + out + (c0 + cc) * o_sc
        g = tl.load(gp, mask=cm, other=0.0)
        cpix = pix[None, :, :] + (c0 + cc).to(tl.int64) * P
        if ALPHA:
            tl.store(gp, (1.0 - a) * g, mask=cm)
            g_new = a * g
            if HAS_DIFF:
                g_a += _sum(g * tl.load(sdiff_ptr + cpix, mask=cm, other=0.0), 0)
        else:
            tl.store(gp, tl.full((BC, BH, BW), 0, g.dtype), mask=cm)
            g_new = g
        if NEED_SRC:
            _scatter(gsrc_ptr + frame + (c0 + cc) * s_sc, cm, xo, yo, xw, yw, g_new, NT)
        if NEED_LOC:
            gix += _sum(g_new * tl.load(sdv_ptr + cpix, mask=cm, other=0.0), 0)
            giy += _sum(g_new * tl.load(sdv_ptr + C.to(tl.int64) * P + cpix, mask=cm, other=0.0), 0)
    if ALPHA:
        g_a = g_a * inside
        if SHARED:
            if ALPHA_LOC:  # the same locations: the alpha's location gradient joins the image's
                gix += g_a * tl.load(sda_ptr + pix, mask=pm, other=0.0)
                giy += g_a * tl.load(sda_ptr + P + pix, mask=pm, other=0.0)
            if NEED_ALPHA:
                one = tl.arange(0, 1)[:, None, None]
                a_ptr = galpha_ptr + _origin(frm_ptr, k, 5, a_sb, a_sh, a_sw, pad) + one
                _scatter(a_ptr, pm1, _scaled(xi, a_sw, NT), _scaled(yi, a_sh, NT), xw, yw, g_a[None, :, :], NT)
        elif ALPHA_LOC or NEED_ALPHA:
            a_frame, axi, ayi, axw, axd, ayw, ayd, adpx, adpy, agx1, agy1, asx, asy = _frame_taps(
                aprm_ptr, frm_ptr, k, 5, w, h, ii, jj, AW, AH, a_sb, a_sh, a_sw, align, pad, tap_pad, MODE, F64,
                NT)
            if ALPHA_LOC:
                agix = g_a * tl.load(sda_ptr + pix, mask=pm, other=0.0)
                agiy = g_a * tl.load(sda_ptr + P + pix, mask=pm, other=0.0)
                _param_grads(gaprm_ptr, aprm_ptr, k, w, h, ii, jj, pm, agix, agiy, adpx, adpy, agx1, agy1, asx,
                             asy, align, F64)
            if NEED_ALPHA:
                one = tl.arange(0, 1)[:, None, None]
                _scatter(galpha_ptr + a_frame + one, pm1, _scaled(axi, a_sw, NT), _scaled(ayi, a_sh, NT), axw,
                         ayw, g_a[None, :, :], NT)
    if PARAMS:  # NEED_LOC, or the alpha's location gradient where SHARED
        _param_grads(gprm_ptr, prm_ptr, k, w, h, ii, jj, pm, gix, giy, dpx, dpy, gx1, gy1, sx, sy, align, F64)
