// The compiled warp's backward row by row (warp_cpu.cpp's backward_impl), on sampling.h's
// plan, tables and per-pixel arithmetic. Included by warp_cpu.cpp only.

#pragma once

#include "sampling.h"
#include "warp_rows.h"  // first_tap

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace {

// ------------------------------------------------------------ the backward, row by row
//
// The backward of a row with patch-relative padding (zeros, border, reflection; nearest
// and bilinear): the same arithmetic as backward_impl's per-pixel loop (locate + Grid +
// derivatives + the scatter), operation for operation and in the same order, so the same
// bits, but in passes over the row's pixels with nothing decided per pixel: the locations
// and their padding's derivative (the padding mode chosen once per row), each axis' tap
// indices (clamped into the frame), weights and weight derivatives (zero for a tap outside
// the frame, as axis_taps with zeros padding gives them), then per pixel the location
// gradient (the derivatives of its value from the source the level read, times the output
// gradient, summed over the channels), then the table entries and the row's sums (in
// pixel order), then the scatter of every pixel's output gradient to its taps (in pixel
// order, every channel, every tap, as the per-pixel loop: taps of neighbouring pixels
// coincide, so the order of the additions is kept).

// Per-thread scratch of backward_row, [n] each.
template <typename T>
struct RowGradScratch {
  std::vector<T> gx1, gy1, ix, iy, dpx, dpy, wx0, wx1, wy0, wy1, dwx0, dwx1, dwy0, dwy1, gix, giy;
  std::vector<int32_t> kx0, kx1, ky0, ky1;
  explicit RowGradScratch(int64_t n)
      : gx1(n), gy1(n), ix(n), iy(n), dpx(n), dpy(n), wx0(n), wx1(n), wy0(n), wy1(n), dwx0(n), dwx1(n), dwy0(n),
        dwy1(n), gix(n), giy(n), kx0(n), kx1(n), ky0(n), ky1(n) {}
};

// What a row's pixels add to its row's and its object's table entries (backward_impl's sums).
template <typename T>
struct RowSums {
  T dgx = T(0), dgy = T(0), x1 = T(0), y1 = T(0), ix = T(0), iy = T(0);
};

// Along one axis, pixels [0, n) of a row: locate's gx + 1 (g1), its sampling location
// (loc, padded by `pad` as locate pads it) and the padding's derivative (dp).
template <typename T>
AUGPATCH_INLINE void row_locations_grad(const T* col, T r, T t2, T s, T o, int64_t pad, bool align, int64_t size,
                                        int64_t n, T* g1, T* loc, T* dp) {
  for (int64_t j = 0; j < n; ++j) g1[j] = ((col[j] + r) + t2) + T(1);
  if (align) {
    for (int64_t j = 0; j < n; ++j) loc[j] = g1[j] * s + o;
  } else {
    for (int64_t j = 0; j < n; ++j) loc[j] = fused_multiply_add(g1[j], s, T(-0.5)) + o;
  }
  if (pad == kBorder || pad == kReflection) {
    const bool refl = pad == kReflection;
    for (int64_t j = 0; j < n; ++j) loc[j] = pad_location(loc[j], size, refl, align, dp[j]);
  } else {
    std::fill(dp, dp + n, T(1));
  }
}

// The taps along one axis of locations loc[0, n) in a frame of `size`: axis_taps' indices
// (k0, k1), weights (w0, w1) and weight derivatives (dw0, dw1) for zeros padding. The first
// tap is row_axis' (warp_rows.h, first_tap).
template <typename T, int64_t M>
AUGPATCH_INLINE void row_axis_grad(const T* loc, int64_t n, int64_t size, int32_t* k0, T* w0, T* dw0, int32_t* k1,
                                   T* w1, T* dw1) {
  const int32_t last = static_cast<int32_t>(size - 1);
  for (int64_t j = 0; j < n; ++j) {
    int32_t i, a, b = 0;
    T t = T(0);
    first_tap<T, M>(loc[j], last, i, a, b, t);
    k0[j] = a;
    if constexpr (M == kNearest) {
      w0[j] = a == i ? T(1) : T(0);
      dw0[j] = T(0);
    } else {
      k1[j] = b;
      w0[j] = a == i ? T(1) - t : T(0);
      w1[j] = b == i + 1 ? t : T(0);
      dw0[j] = a == i ? T(-1) : T(0);
      dw1[j] = b == i + 1 ? T(1) : T(0);
    }
  }
}

#if defined(__AVX2__)
// AVX2 (float, 8 pixels a lane each) twins of row_axis_grad and of backward_row's
// derivative loop: every lane runs the scalar code's operations in the scalar code's order
// (no FMA: mul then add, each rounded; the same clamps, comparisons and conversions), so
// every lane's result has the scalar code's bits; the pixels left over (n % 8) run the
// scalar code. Checked bit for bit against the per-pixel loop by
// tests/test_warp_backward_rows.py.

// row_axis_grad for float, pixels [0, n - n % 8); returns the first pixel not done.
template <int64_t M>
AUGPATCH_INLINE int64_t row_axis_grad_avx2(const float* loc, int64_t n, int64_t size, int32_t* k0, float* w0,
                                           float* dw0, int32_t* k1, float* w1, float* dw1) {
  const __m256 big = _mm256_set1_ps(static_cast<float>(int64_t(1) << 30));
  const __m256 nbig = _mm256_set1_ps(-static_cast<float>(int64_t(1) << 30));
  const __m256 one = _mm256_set1_ps(1.0f), mone = _mm256_set1_ps(-1.0f), zero = _mm256_setzero_ps();
  const __m256i izero = _mm256_setzero_si256(), ione = _mm256_set1_epi32(1);
  const __m256i last = _mm256_set1_epi32(static_cast<int32_t>(size - 1));
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    // first_tap: std::min(std::max(loc, -big), big) (max_ps / min_ps return their second
    // operand when one is NaN, as std::max(loc, -big) / std::min(., big) return loc)
    const __m256 c = _mm256_min_ps(big, _mm256_max_ps(nbig, _mm256_loadu_ps(loc + j)));
    if constexpr (M == kNearest) {
      const __m256i i = _mm256_cvttps_epi32(_mm256_round_ps(c, _MM_FROUND_CUR_DIRECTION));
      const __m256i a = _mm256_min_epi32(_mm256_max_epi32(i, izero), last);
      const __m256 in0 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(k0 + j), a);
      _mm256_storeu_ps(w0 + j, _mm256_blendv_ps(zero, one, in0));
      _mm256_storeu_ps(dw0 + j, zero);
    } else {
      const __m256 lo = _mm256_round_ps(c, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      const __m256 t = _mm256_sub_ps(c, lo);
      const __m256i i = _mm256_cvttps_epi32(lo);
      const __m256i i1 = _mm256_add_epi32(i, ione);
      const __m256i a = _mm256_min_epi32(_mm256_max_epi32(i, izero), last);
      const __m256i b = _mm256_min_epi32(_mm256_max_epi32(i1, izero), last);
      const __m256 in0 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, i));
      const __m256 in1 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(b, i1));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(k0 + j), a);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(k1 + j), b);
      _mm256_storeu_ps(w0 + j, _mm256_blendv_ps(zero, _mm256_sub_ps(one, t), in0));
      _mm256_storeu_ps(w1 + j, _mm256_blendv_ps(zero, t, in1));
      _mm256_storeu_ps(dw0 + j, _mm256_blendv_ps(zero, mone, in0));
      _mm256_storeu_ps(dw1 + j, _mm256_blendv_ps(zero, one, in1));
    }
  }
  return j;
}

// backward_row's derivative loop for float images and float compute, pixels
// [0, n - n % 8): gix / giy of each pixel. The taps' offsets are int32: the caller checks
// that every offset of the frame fits. Returns the first pixel not done.
template <int64_t M>
AUGPATCH_INLINE int64_t row_derivatives_avx2(int64_t n, int64_t C, const float* gv, int64_t gv_c, const float* src,
                                             int32_t s_h, int32_t s_w, int32_t s_c, const int32_t* kx0,
                                             const int32_t* kx1, const int32_t* ky0, const int32_t* ky1,
                                             const float* wx0, const float* wx1, const float* wy0, const float* wy1,
                                             const float* dwx0, const float* dwx1, const float* dwy0,
                                             const float* dwy1, const float* dpx, const float* dpy, float* gix,
                                             float* giy) {
  const __m256i vs_h = _mm256_set1_epi32(s_h), vs_w = _mm256_set1_epi32(s_w);
  const __m256 zero = _mm256_setzero_ps();
  auto ld = [](const float* a) { return _mm256_loadu_ps(a); };
  auto ldi = [](const int32_t* a) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)); };
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 gx = zero, gy = zero;
    if constexpr (M == kNearest) {
      const __m256 wdx = _mm256_mul_ps(ld(wy0 + j), ld(dwx0 + j)), wdy = _mm256_mul_ps(ld(dwy0 + j), ld(wx0 + j));
      const __m256i o = _mm256_add_epi32(_mm256_mullo_epi32(ldi(ky0 + j), vs_h), _mm256_mullo_epi32(ldi(kx0 + j), vs_w));
      for (int64_t c = 0; c < C; ++c) {
        const __m256i oc = _mm256_add_epi32(o, _mm256_set1_epi32(static_cast<int32_t>(c) * s_c));
        const __m256 v = _mm256_i32gather_ps(src, oc, 4);
        const __m256 ax = _mm256_add_ps(zero, _mm256_mul_ps(wdx, v));
        const __m256 ay = _mm256_add_ps(zero, _mm256_mul_ps(wdy, v));
        const __m256 g = ld(gv + c * gv_c + j);
        gx = _mm256_add_ps(gx, _mm256_mul_ps(g, ax));
        gy = _mm256_add_ps(gy, _mm256_mul_ps(g, ay));
      }
    } else {
      const __m256 vwy0 = ld(wy0 + j), vwy1 = ld(wy1 + j), vdwx0 = ld(dwx0 + j), vdwx1 = ld(dwx1 + j);
      const __m256 vdwy0 = ld(dwy0 + j), vdwy1 = ld(dwy1 + j), vwx0 = ld(wx0 + j), vwx1 = ld(wx1 + j);
      const __m256 dx0 = _mm256_mul_ps(vwy0, vdwx0), dx1 = _mm256_mul_ps(vwy0, vdwx1);
      const __m256 dx2 = _mm256_mul_ps(vwy1, vdwx0), dx3 = _mm256_mul_ps(vwy1, vdwx1);
      const __m256 dy0 = _mm256_mul_ps(vdwy0, vwx0), dy1 = _mm256_mul_ps(vdwy0, vwx1);
      const __m256 dy2 = _mm256_mul_ps(vdwy1, vwx0), dy3 = _mm256_mul_ps(vdwy1, vwx1);
      const __m256i a0 = _mm256_mullo_epi32(ldi(ky0 + j), vs_h), a1 = _mm256_mullo_epi32(ldi(ky1 + j), vs_h);
      const __m256i b0 = _mm256_mullo_epi32(ldi(kx0 + j), vs_w), b1 = _mm256_mullo_epi32(ldi(kx1 + j), vs_w);
      const __m256i o0 = _mm256_add_epi32(a0, b0), o1 = _mm256_add_epi32(a0, b1);
      const __m256i o2 = _mm256_add_epi32(a1, b0), o3 = _mm256_add_epi32(a1, b1);
      for (int64_t c = 0; c < C; ++c) {
        const float* q = src + c * s_c;
        const __m256 v0 = _mm256_i32gather_ps(q, o0, 4), v1 = _mm256_i32gather_ps(q, o1, 4);
        const __m256 v2 = _mm256_i32gather_ps(q, o2, 4), v3 = _mm256_i32gather_ps(q, o3, 4);
        __m256 ax = _mm256_add_ps(zero, _mm256_mul_ps(dx0, v0));
        __m256 ay = _mm256_add_ps(zero, _mm256_mul_ps(dy0, v0));
        ax = _mm256_add_ps(ax, _mm256_mul_ps(dx1, v1));
        ay = _mm256_add_ps(ay, _mm256_mul_ps(dy1, v1));
        ax = _mm256_add_ps(ax, _mm256_mul_ps(dx2, v2));
        ay = _mm256_add_ps(ay, _mm256_mul_ps(dy2, v2));
        ax = _mm256_add_ps(ax, _mm256_mul_ps(dx3, v3));
        ay = _mm256_add_ps(ay, _mm256_mul_ps(dy3, v3));
        const __m256 g = ld(gv + c * gv_c + j);
        gx = _mm256_add_ps(gx, _mm256_mul_ps(g, ax));
        gy = _mm256_add_ps(gy, _mm256_mul_ps(g, ay));
      }
    }
    _mm256_storeu_ps(gix + j, _mm256_mul_ps(gx, ld(dpx + j)));
    _mm256_storeu_ps(giy + j, _mm256_mul_ps(gy, ld(dpy + j)));
  }
  return j;
}
#endif  // __AVX2__

// One row's backward (pixels [0, n) of `row`). `gv`: the output gradient of pixel jj's
// channel c at gv[c * gv_c + jj]. With `loc`: the location gradient, the derivatives of
// each value read from `src` (the frame's top-left element, strides s_h, s_w, s_c: the
// input batch or the patch the level read), added to the table entries col_x / col_y
// (this row's columns) and returned as the row's sums. With `scatter`: w * gv of every tap
// added to `g` (the frame's top-left element of where the gradient is summed, strides g_h,
// g_w, g_c: the gradient buffer in the plan's strides, or backward_impl's dense sums of one
// patch). Requires M != kBicubic and patch-relative padding.
template <typename S, typename T, int64_t M, int64_t NC, typename P>
RowSums<T> backward_row(const P& p, const Row<T>& row, int64_t n, const T* gv, int64_t gv_c, bool loc,
                        const S* src, int64_t s_h, int64_t s_w, int64_t s_c, T* col_x, T* col_y, bool scatter, T* g,
                        int64_t g_h, int64_t g_w, int64_t g_c, RowGradScratch<T>& sc) {
  static_assert(M != kBicubic, "backward_row: nearest and bilinear only");
  const int64_t C = NC > 0 ? NC : p.channels;
  T *ix = sc.ix.data(), *iy = sc.iy.data(), *dpx = sc.dpx.data(), *dpy = sc.dpy.data();
  T *gx1 = sc.gx1.data(), *gy1 = sc.gy1.data();
  row_locations_grad<T>(row.col_x, row.rx, row.t02, row.sx, row.ox, p.padding, p.align, row.fw, n, gx1, ix, dpx);
  row_locations_grad<T>(row.col_y, row.ry, row.t12, row.sy, row.oy, p.padding, p.align, row.fh, n, gy1, iy, dpy);
  T *wx0 = sc.wx0.data(), *wx1 = sc.wx1.data(), *wy0 = sc.wy0.data(), *wy1 = sc.wy1.data();
  T *dwx0 = sc.dwx0.data(), *dwx1 = sc.dwx1.data(), *dwy0 = sc.dwy0.data(), *dwy1 = sc.dwy1.data();
  int32_t *kx0 = sc.kx0.data(), *kx1 = sc.kx1.data(), *ky0 = sc.ky0.data(), *ky1 = sc.ky1.data();
  int64_t jx = 0, jy = 0;  // the first pixels left to the scalar code
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
    jx = row_axis_grad_avx2<M>(ix, n, row.fw, kx0, wx0, dwx0, kx1, wx1, dwx1);
    jy = row_axis_grad_avx2<M>(iy, n, row.fh, ky0, wy0, dwy0, ky1, wy1, dwy1);
  }
#endif
  row_axis_grad<T, M>(ix + jx, n - jx, row.fw, kx0 + jx, wx0 + jx, dwx0 + jx, kx1 + jx, wx1 + jx, dwx1 + jx);
  row_axis_grad<T, M>(iy + jy, n - jy, row.fh, ky0 + jy, wy0 + jy, dwy0 + jy, ky1 + jy, wy1 + jy, dwy1 + jy);
  RowSums<T> sums;
  if (loc) {
    T *gix = sc.gix.data(), *giy = sc.giy.data();
    int64_t j0 = 0;  // the first pixel left to the scalar loop
#if defined(__AVX2__)
    if constexpr (std::is_same_v<T, float> && std::is_same_v<S, float>) {
      // the taps' offsets in int32: every offset of the frame must fit
      const int64_t reach = (row.fh - 1) * s_h + (row.fw - 1) * s_w + (C - 1) * s_c;
      if (s_h >= 0 && s_w >= 0 && s_c >= 0 && reach < (int64_t(1) << 31)) {
        j0 = row_derivatives_avx2<M>(n, C, gv, gv_c, src, static_cast<int32_t>(s_h), static_cast<int32_t>(s_w),
                                     static_cast<int32_t>(s_c), kx0, kx1, ky0, ky1, wx0, wx1, wy0, wy1, dwx0, dwx1,
                                     dwy0, dwy1, dpx, dpy, gix, giy);
      }
    }
#endif
    for (int64_t jj = j0; jj < n; ++jj) {  // derivatives (see derivatives()), times the output gradient
      T ax_c, ay_c, gx = T(0), gy = T(0);
      if constexpr (M == kNearest) {
        const T wdx = wy0[jj] * dwx0[jj], wdy = dwy0[jj] * wx0[jj];
        const S* q = src + ky0[jj] * s_h + kx0[jj] * s_w;
        for (int64_t c = 0; c < C; ++c) {
          const T v = static_cast<T>(q[c * s_c]);
          ax_c = T(0);
          ay_c = T(0);
          ax_c += wdx * v;
          ay_c += wdy * v;
          gx += gv[c * gv_c + jj] * ax_c;
          gy += gv[c * gv_c + jj] * ay_c;
        }
      } else {
        // Grid's order: (y0, x0), (y0, x1), (y1, x0), (y1, x1)
        const T dx0 = wy0[jj] * dwx0[jj], dx1 = wy0[jj] * dwx1[jj], dx2 = wy1[jj] * dwx0[jj],
                dx3 = wy1[jj] * dwx1[jj];
        const T dy0 = dwy0[jj] * wx0[jj], dy1 = dwy0[jj] * wx1[jj], dy2 = dwy1[jj] * wx0[jj],
                dy3 = dwy1[jj] * wx1[jj];
        const int64_t a0 = ky0[jj] * s_h, a1 = ky1[jj] * s_h, b0 = kx0[jj] * s_w, b1 = kx1[jj] * s_w;
        for (int64_t c = 0; c < C; ++c) {
          const S* q = src + c * s_c;
          const T v0 = static_cast<T>(q[a0 + b0]), v1 = static_cast<T>(q[a0 + b1]);
          const T v2 = static_cast<T>(q[a1 + b0]), v3 = static_cast<T>(q[a1 + b1]);
          ax_c = T(0);
          ay_c = T(0);
          ax_c += dx0 * v0;
          ay_c += dy0 * v0;
          ax_c += dx1 * v1;
          ay_c += dy1 * v1;
          ax_c += dx2 * v2;
          ay_c += dy2 * v2;
          ax_c += dx3 * v3;
          ay_c += dy3 * v3;
          gx += gv[c * gv_c + jj] * ax_c;
          gy += gv[c * gv_c + jj] * ay_c;
        }
      }
      gix[jj] = gx * dpx[jj];
      giy[jj] = gy * dpy[jj];
    }
    const T sx = row.sx, sy = row.sy;
    for (int64_t jj = 0; jj < n; ++jj) {  // the table entries of the columns
      col_x[jj] += gix[jj] * sx;
      col_y[jj] += giy[jj] * sy;
    }
    for (int64_t jj = 0; jj < n; ++jj) {  // the row's sums, in pixel order
      sums.dgx += gix[jj] * sx;
      sums.dgy += giy[jj] * sy;
      sums.x1 += gix[jj] * gx1[jj];
      sums.y1 += giy[jj] * gy1[jj];
      sums.ix += gix[jj];
      sums.iy += giy[jj];
    }
  }
  if (scatter) {
    for (int64_t jj = 0; jj < n; ++jj) {
      if constexpr (M == kNearest) {
        const T w = wy0[jj] * wx0[jj];
        T* o = g + ky0[jj] * g_h + kx0[jj] * g_w;
        for (int64_t c = 0; c < C; ++c) o[c * g_c] += w * gv[c * gv_c + jj];
      } else {
        const T w0 = wy0[jj] * wx0[jj], w1 = wy0[jj] * wx1[jj], w2 = wy1[jj] * wx0[jj], w3 = wy1[jj] * wx1[jj];
        const int64_t a0 = ky0[jj] * g_h, a1 = ky1[jj] * g_h, b0 = kx0[jj] * g_w, b1 = kx1[jj] * g_w;
        for (int64_t c = 0; c < C; ++c) {
          T* o = g + c * g_c;
          const T v = gv[c * gv_c + jj];
          o[a0 + b0] += w0 * v;
          o[a0 + b1] += w1 * v;
          o[a1 + b0] += w2 * v;
          o[a1 + b1] += w3 * v;
        }
      }
    }
  }
  return sums;
}

}  // namespace
