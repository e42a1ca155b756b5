// The compiled warp's forward row by row (warp_cpu.cpp's forward_impl), on sampling.h's
// plan, tables and per-pixel arithmetic. Included by warp_cpu.cpp only.

#pragma once

#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__SSE4_1__)
#include <immintrin.h>
#endif

namespace {

// ------------------------------------------------------------ the forward, row by row
//
// The forward of a row without saved derivatives (nearest and bilinear): the same
// arithmetic as locate + Grid + sample, operation for operation (so the same bits), but
// in passes over the row's pixels that the compiler vectorises and that branch on
// nothing per pixel: the locations (the padding mode chosen once per row), then each
// axis' taps (element offsets, clamped into the frame, and weights, zero for a tap
// outside it, as axis_taps with zeros padding gives them), then every pixel's taps,
// every channel at once.

// Per-thread scratch of forward_row, [n] each: the locations of both axes, then per
// axis the offsets and weights of its taps (nearest: one; bilinear: two); [C, n] the
// values of the row before they are rounded to uint8 (and 4 more: bilinear_pixels_bytes
// writes a whole 4-lane register per pixel).
template <typename T>
struct RowScratch {
  std::vector<T> ix, iy, wx0, wx1, wy0, wy1, val;
  std::vector<int64_t> ox0, ox1, oy0, oy1;
  RowScratch(int64_t n, int64_t channels)
      : ix(n), iy(n), wx0(n), wx1(n), wy0(n), wy1(n), val(n * channels + 4), ox0(n), ox1(n), oy0(n), oy1(n) {}
};

// The longest row of a plan (its widest patch), and its tallest patch.
inline int64_t max_row(const Plan& rw) {
  return rw.count() > 0 ? *std::max_element(rw.width.begin(), rw.width.end()) : 0;
}
inline int64_t max_height(const Plan& rw) {
  return rw.count() > 0 ? *std::max_element(rw.height.begin(), rw.height.end()) : 0;
}

// The sampling locations of pixels [0, n) of a row along one axis: locate's ix (iy),
// padded (pad: the padding mode, once per row).
template <typename T>
AUGPATCH_INLINE void row_locations(const T* col, T r, T t2, T s, T o, T f, int64_t pad, bool align, int64_t size,
                                   int64_t n, T* out) {
  if (align) {
    for (int64_t j = 0; j < n; ++j) out[j] = (((col[j] + r) + t2) + T(1)) * s + o;
  } else {
    for (int64_t j = 0; j < n; ++j) out[j] = fused_multiply_add(((col[j] + r) + t2) + T(1), s, T(-0.5)) + o;
  }
  if (pad == kImage) {
    for (int64_t j = 0; j < n; ++j) out[j] = out[j] + f;
  } else if (pad == kBorder || pad == kReflection) {
    const bool refl = pad == kReflection;
    for (int64_t j = 0; j < n; ++j) {
      T unused;
      out[j] = pad_location(out[j], size, refl, align, unused);
    }
  }
}

// The first tap of location c along an axis of last index `last`, as axis_taps with zeros
// padding finds it, in int32 after clamping c to +-2^30 (axis_taps: 2^40, int64; no
// in-frame decision changes for frames under 2^30): nearest, the rounded index i and its
// clamp k0; bilinear, i = floor(c), its fraction t and the clamps k0 of i and k1 of i + 1.
// Shared by row_axis (forward) and row_axis_grad (warp_rows_bwd.h).
template <typename T, int64_t M>
AUGPATCH_INLINE void first_tap(T loc, int32_t last, int32_t& i, int32_t& k0, int32_t& k1, T& t) {
  const T big = static_cast<T>(int64_t(1) << 30);
  const T c = std::min(std::max(loc, -big), big);
  if constexpr (M == kNearest) {
    i = static_cast<int32_t>(std::rint(c));
    k0 = std::min(std::max(i, int32_t(0)), last);
  } else {
    const T lo = std::floor(c);
    t = c - lo;
    i = static_cast<int32_t>(lo);
    k0 = std::min(std::max(i, int32_t(0)), last);
    k1 = std::min(std::max(i + 1, int32_t(0)), last);
  }
}

// The taps along one axis of locations loc[0, n) in a frame of `size` with element
// stride `stride`: axis_taps' indices and weights for zeros padding (every padding runs
// its taps so once its locations are padded), as offsets. The first tap is computed in
// int32 after clamping the location to +-2^30 (axis_taps: 2^40, int64): no in-frame
// decision changes for frames under 2^30 (forward_impl runs larger ones per pixel).
template <typename T, int64_t M>
AUGPATCH_INLINE void row_axis(const T* loc, int64_t n, int64_t size, int64_t stride, int64_t* o0, T* w0,
                              int64_t* o1, T* w1) {
  const int32_t last = static_cast<int32_t>(size - 1);
  for (int64_t j = 0; j < n; ++j) {
    int32_t i, k0, k1 = 0;
    T t = T(0);
    first_tap<T, M>(loc[j], last, i, k0, k1, t);
    o0[j] = static_cast<int64_t>(k0) * stride;
    if constexpr (M == kNearest) {
      w0[j] = k0 == i ? T(1) : T(0);
    } else {
      o1[j] = static_cast<int64_t>(k1) * stride;
      w0[j] = k0 == i ? T(1) - t : T(0);
      w1[j] = k1 == i + 1 ? t : T(0);
    }
  }
}

// uint8 nearest where a pixel's C channels are C consecutive bytes in the source and the
// destination (channels-last, Pillow's 4-byte pixels): each pixel moves whole (4 bytes as
// one 32-bit word, else C bytes), or zeros where its tap is outside the frame. The same
// bytes as forward_row's channel loop (a tap inside: its value; outside: 0).
AUGPATCH_INLINE void copy_pixel(const uint8_t* s, bool inside, int64_t C, uint8_t* o) {
  if (C == 4) {  // no branch: the word and-ed with all ones (inside) or zeros
    uint32_t v;
    std::memcpy(&v, s, 4);
    v &= uint32_t(0) - static_cast<uint32_t>(inside);
    std::memcpy(o, &v, 4);
  } else if (inside) {
    std::memcpy(o, s, static_cast<size_t>(C));
  } else {
    std::memset(o, 0, static_cast<size_t>(C));
  }
}

template <typename T>
AUGPATCH_INLINE void nearest_pixels(const uint8_t* frame, const int64_t* oy0, const int64_t* ox0, const T* wy0, const T* wx0,
                    int64_t n, int64_t C, uint8_t* dst, int64_t d_px) {
  if (C == 4 && d_px == 4) {
    for (int64_t jj = 0; jj < n; ++jj) {
      copy_pixel(frame + oy0[jj] + ox0[jj], wy0[jj] * wx0[jj] != T(0), 4, dst + jj * 4);
    }
    return;
  }
  for (int64_t jj = 0; jj < n; ++jj) {
    copy_pixel(frame + oy0[jj] + ox0[jj], wy0[jj] * wx0[jj] != T(0), C, dst + jj * d_px);
  }
}

#if defined(__SSE4_1__)
// uint8 bilinear where a pixel's C (3 or 4) channels are consecutive bytes on both sides
// (channels-last: Pillow's 4-byte pixels, albumentations' HWC arrays): each pixel's
// channels in the lanes of one SSE register, every lane repeating forward_row's scalar
// operations in their order (the weights' products, then 0 + w0 * v0, + w1 * v1, ...: mul
// then add, each rounded, no FMA), so every channel gets the scalar code's bits. The
// values go to val [n, C] for forward_row's rounding pass; pixel jj's register is stored at
// val + jj * C (with C = 3 its fourth lane, 0, lands where pixel jj + 1 is stored next, or
// in val's slack after the last pixel). A 3-byte pixel is read byte by byte (a 4-byte read
// could pass the end of the batch); tests/test_warp_packed_pixels.py checks the bytes
// against the planar warp.
AUGPATCH_INLINE __m128 pixel_lanes(const uint8_t* q, int64_t C) {
  uint32_t u;
  if (C == 4) {
    std::memcpy(&u, q, 4);
  } else {
    u = uint32_t(q[0]) | (uint32_t(q[1]) << 8) | (uint32_t(q[2]) << 16);
  }
  return _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(u))));
}

AUGPATCH_INLINE void bilinear_pixels_bytes(const uint8_t* frame, const int64_t* oy0, const int64_t* ox0,
                                           const int64_t* oy1, const int64_t* ox1, const float* wy0,
                                           const float* wx0, const float* wy1, const float* wx1, int64_t n,
                                           int64_t C, float* val) {
  for (int64_t jj = 0; jj < n; ++jj) {
    // Grid's order: (y0, x0), (y0, x1), (y1, x0), (y1, x1)
    const float w0 = wy0[jj] * wx0[jj], w1 = wy0[jj] * wx1[jj], w2 = wy1[jj] * wx0[jj], w3 = wy1[jj] * wx1[jj];
    const uint8_t* s0 = frame + oy0[jj] + ox0[jj];
    const int64_t d1 = ox1[jj] - ox0[jj], d2 = oy1[jj] - oy0[jj];
    __m128 a = _mm_setzero_ps();
    a = _mm_add_ps(a, _mm_mul_ps(_mm_set1_ps(w0), pixel_lanes(s0, C)));
    a = _mm_add_ps(a, _mm_mul_ps(_mm_set1_ps(w1), pixel_lanes(s0 + d1, C)));
    a = _mm_add_ps(a, _mm_mul_ps(_mm_set1_ps(w2), pixel_lanes(s0 + d2, C)));
    a = _mm_add_ps(a, _mm_mul_ps(_mm_set1_ps(w3), pixel_lanes(s0 + d1 + d2, C)));
    _mm_storeu_ps(val + jj * C, a);
  }
}
#endif  // __SSE4_1__

// One row of the forward (pixels [0, n) of `row`): reads `src`, writes pixel jj's
// channel c to dst[jj * d_px + c * d_c]. Requires M != kBicubic.
template <typename S, typename T, int64_t M, int64_t NC, typename P>
void forward_row(const P& p, const Row<T>& row, int64_t n, const S* src, S* dst, int64_t d_px, int64_t d_c,
                 RowScratch<T>& sc) {
  static_assert(M != kBicubic, "forward_row: nearest and bilinear only");
  const int64_t C = NC > 0 ? NC : p.channels;
  const int64_t s_c = p.s_c;
  row_locations<T>(row.col_x, row.rx, row.t02, row.sx, row.ox, row.fx, p.padding, p.align, row.fw, n, sc.ix.data());
  row_locations<T>(row.col_y, row.ry, row.t12, row.sy, row.oy, row.fy, p.padding, p.align, row.fh, n, sc.iy.data());
  row_axis<T, M>(sc.ix.data(), n, row.fw, p.s_w, sc.ox0.data(), sc.wx0.data(), sc.ox1.data(), sc.wx1.data());
  row_axis<T, M>(sc.iy.data(), n, row.fh, p.s_h, sc.oy0.data(), sc.wy0.data(), sc.oy1.data(), sc.wy1.data());
  const S* frame = src + row.frame;
  const int64_t *ox0 = sc.ox0.data(), *ox1 = sc.ox1.data(), *oy0 = sc.oy0.data(), *oy1 = sc.oy1.data();
  const T *wx0 = sc.wx0.data(), *wx1 = sc.wx1.data(), *wy0 = sc.wy0.data(), *wy1 = sc.wy1.data();
  if constexpr (M == kNearest && std::is_same_v<S, uint8_t>) {
    if (s_c == 1 && d_c == 1) {  // a pixel's channels are C consecutive bytes on both sides
      nearest_pixels(frame, oy0, ox0, wy0, wx0, n, C, dst, d_px);
      return;
    }
  }
  // uint8 bilinear: the values go to a buffer first, then are rounded and stored in a
  // pass the compiler vectorises (store's rint and clamp): [n, C] when the destination's
  // pixels are C contiguous channels (channels-last), so that pass is one contiguous
  // loop, else [C, n], one loop per channel. (Nearest: 0 + w * v with w 0 or 1 rounds
  // back to v or 0: stored directly.)
  constexpr bool kBytes = std::is_same_v<S, uint8_t> && M != kNearest;
  const bool packed = d_c == 1 && d_px == C;
  const int64_t v_px = packed ? C : 1, v_c = packed ? 1 : n;
  T* const val = sc.val.data();
  bool done = false;  // the values are in val already
#if defined(__SSE4_1__)
  if constexpr (kBytes && std::is_same_v<T, float>) {
    if (s_c == 1 && packed && (C == 3 || C == 4)) {
      bilinear_pixels_bytes(frame, oy0, ox0, oy1, ox1, wy0, wx0, wy1, wx1, n, C, val);
      done = true;
    }
  }
#endif
  for (int64_t jj = 0; jj < (done ? 0 : n); ++jj) {
    S* o = dst + jj * d_px;
    T* v = val + jj * v_px;
    if constexpr (M == kNearest) {
      const S* s = frame + oy0[jj] + ox0[jj];
      const T w = wy0[jj] * wx0[jj];
      if constexpr (std::is_same_v<S, uint8_t>) {
        const bool inside = w != T(0);
        for (int64_t c = 0; c < C; ++c) o[c * d_c] = inside ? s[c * s_c] : uint8_t(0);
      } else {
        for (int64_t c = 0; c < C; ++c) {
          T a = T(0);
          a += w * static_cast<T>(s[c * s_c]);
          o[c * d_c] = store<S>(a);
        }
      }
    } else {
      // Grid's order: (y0, x0), (y0, x1), (y1, x0), (y1, x1)
      const T w0 = wy0[jj] * wx0[jj], w1 = wy0[jj] * wx1[jj], w2 = wy1[jj] * wx0[jj], w3 = wy1[jj] * wx1[jj];
      const S* s0 = frame + oy0[jj] + ox0[jj];
      const int64_t d1 = ox1[jj] - ox0[jj], d2 = oy1[jj] - oy0[jj];
      for (int64_t c = 0; c < C; ++c) {
        const S* q = s0 + c * s_c;
        T a = T(0);
        a += w0 * static_cast<T>(q[0]);
        a += w1 * static_cast<T>(q[d1]);
        a += w2 * static_cast<T>(q[d2]);
        a += w3 * static_cast<T>(q[d1 + d2]);
        if constexpr (kBytes) {
          v[c * v_c] = a;
        } else {
          o[c * d_c] = store<S>(a);
        }
      }
    }
  }
  if constexpr (kBytes) {
    if (packed) {
      for (int64_t k = 0; k < n * C; ++k) dst[k] = store<S>(val[k]);
      return;
    }
    for (int64_t c = 0; c < C; ++c) {
      const T* vc = val + c * n;
      S* oc = dst + c * d_c;
      if (d_px == 1) {
        for (int64_t jj = 0; jj < n; ++jj) oc[jj] = store<S>(vc[jj]);
      } else {
        for (int64_t jj = 0; jj < n; ++jj) oc[jj * d_px] = store<S>(vc[jj]);
      }
    }
  }
}

}  // namespace
