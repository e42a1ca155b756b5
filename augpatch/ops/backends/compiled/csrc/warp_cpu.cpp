// augpatch's compiled CPU kernel for warp_patches (glue in augpatch/ops/backends/compiled/__init__.py).
//
// It runs the same plan as the eager kernel in augpatch/ops/backends/eager.py, with the same
// arithmetic per pixel (the sampling location of F.affine_grid + F.grid_sample,
// operation for operation, then the taps), but fused: one pass over the pixels of
// a level, no temporaries per tap. Compiled with -ffp-contract=off so that the
// compiler fuses no multiply-add the eager kernel rounds twice.
//
// Layout: every offset is an element offset into a dense buffer with the plan's
// strides (s_b, s_c, s_h, s_w). Rows are the pixel rows of every patch, in
// processing order: by level, then image, then object.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace {

enum Mode : int64_t { kNearest = 0, kBilinear = 1, kBicubic = 2 };
enum Padding : int64_t { kZeros = 0, kBorder = 1, kReflection = 2, kImage = 3 };

// the options of a call, in the order _sampler.compiled_warp passes them (save_from,
// need_loc and need_img are filled in by the operator: with_needs)
struct Params {
  int64_t mode, padding;
  bool align, parallel;
  int64_t save_from;  // first level whose location derivatives are saved (forward)
  int64_t s_b, s_c, s_h, s_w, channels;
  bool need_loc, need_img;
  int64_t height, width;  // of the images

  explicit Params(c10::IntArrayRef v)
      : mode(v[0]), padding(v[1]), align(v[2] != 0), parallel(v[3] != 0), save_from(v[4]),
        s_b(v[5]), s_c(v[6]), s_h(v[7]), s_w(v[8]), channels(v[9]), need_loc(v[10] != 0),
        need_img(v[11] != 0), height(v[12]), width(v[13]) {
    TORCH_CHECK(v.size() == 14, "augpatch: malformed kernel options");
  }
};

struct Levels {
  std::vector<int64_t> rows, pix;  // [L + 1] row and pixel bounds of the levels
  int64_t count() const { return static_cast<int64_t>(rows.size()) - 1; }
};

// The objects in processing order (by level, then image, then index) and the pixel
// rows of their patches: a row's pixels are consecutive, an object's rows too. Only
// each row's object is stored; the rest of a row follows from its object: its pixels,
// first pixel, first entry of the object's columns, element offset of its first
// output pixel, offset of the frame's top-left pixel, frame size, image, and the patch
// origin inside the frame (padding "image").
struct Plan {
  std::vector<int64_t> x0, y0, image, width, height;     // [K]
  std::vector<int64_t> first_row, first_col, first_pix;  // [K + 1]
  std::vector<int64_t> row_object;                       // [R]
  Levels levels;
  int64_t s_b, s_h, s_w, frame_w, frame_h;
  bool frame_is_image;

  // `objects` [K, 5] int64: x0, y0, width, height, image of every object in processing
  // order; `level_objects` [L + 1]: the levels' bounds in it (see WarpPlan).
  Plan(const at::Tensor& objects, c10::IntArrayRef level_objects, const Params& p);
  int64_t count() const { return static_cast<int64_t>(width.size()); }
  int64_t n_rows() const { return first_row.back(); }
  int64_t columns() const { return first_col.back(); }

  int64_t obj(int64_t r) const { return row_object[r]; }
  int64_t len(int64_t r) const { return width[row_object[r]]; }
  int64_t pix(int64_t r) const {
    const int64_t k = row_object[r];
    return first_pix[k] + (r - first_row[k]) * width[k];
  }
  int64_t col(int64_t r) const { return first_col[row_object[r]]; }
  int64_t out(int64_t r) const {
    const int64_t k = row_object[r];
    return image[k] * s_b + (y0[k] + r - first_row[k]) * s_h + x0[k] * s_w;
  }
  int64_t frame(int64_t r) const {
    const int64_t k = row_object[r];
    return frame_is_image ? image[k] * s_b : image[k] * s_b + y0[k] * s_h + x0[k] * s_w;
  }
  int64_t fw(int64_t r) const { return frame_is_image ? frame_w : width[row_object[r]]; }
  int64_t fh(int64_t r) const { return frame_is_image ? frame_h : height[row_object[r]]; }
  int64_t img(int64_t r) const { return image[row_object[r]]; }
  int64_t fx(int64_t r) const { return frame_is_image ? x0[row_object[r]] : 0; }
  int64_t fy(int64_t r) const { return frame_is_image ? y0[row_object[r]] : 0; }
};

template <typename T>
struct Tables {
  const T *col_x, *col_y, *row_x, *row_y, *obj;
};

constexpr int taps_per_axis(int64_t mode) { return mode == kNearest ? 1 : (mode == kBilinear ? 2 : 4); }

// One pixel's taps along both axes, and what its location gradient needs.
template <typename T, int64_t M>
struct Taps {
  static constexpr int N = taps_per_axis(M);
  int64_t idx_x[N], idx_y[N];  // tap indices inside the frame
  T wx[N], wy[N], dwx[N], dwy[N];
  T gx1, gy1, sx, sy, dpx, dpy;
};

constexpr double kCubicA = -0.75;  // F.grid_sample's bicubic constant

#define AUGPATCH_INLINE inline __attribute__((always_inline))

template <typename T>
AUGPATCH_INLINE T pad_location(T coord, int64_t size, bool reflection, bool align, T& grad) {
  // grid_sample's border / reflection transform of a location (see _pad_location)
  const T size_f = static_cast<T>(size);
  grad = T(1);
  if (reflection) {
    const T low = align ? T(0) : T(-0.5);
    const T twice_span = align ? T(2) * (size_f - T(1)) : T(2) * size_f;
    const T shifted = coord - low;
    const bool neg = shifted < T(0);
    const T mag = std::abs(shifted);
    const T safe = twice_span > T(0) ? twice_span : T(1);
    const T extra = mag - std::trunc(mag / safe) * safe;
    const T reflected = safe - extra;
    const bool flip = extra > reflected;
    grad = (flip != neg) ? T(-1) : T(1);
    coord = (flip ? reflected : extra) + low;
    if (twice_span <= T(0)) {
      coord = T(0);
      grad = T(0);
    }
  }
  const T max_val = size_f - T(1);
  const bool inside = coord > T(0) && coord < max_val;
  if (!inside) {
    coord = coord <= T(0) ? T(0) : max_val;
    grad = T(0);
  }
  return coord;
}

inline int64_t reflect_index(int64_t idx, int64_t size, bool align) {
  if (align) {
    const int64_t period = std::max<int64_t>(2 * (size - 1), 1);
    int64_t r = idx % period;
    if (r < 0) r += period;
    return size == 1 ? 0 : std::min(r, period - r);
  }
  const int64_t period = 2 * size;
  int64_t r = idx % period;
  if (r < 0) r += period;
  return std::min(r, period - 1 - r);
}

// Tap indices, weights and their derivatives along one axis (see _taps_1d, _bound).
template <typename T, int64_t M>
AUGPATCH_INLINE void axis_taps(T coord, int64_t size, int64_t pad, bool align, int64_t* index, T* w, T* dw) {
  constexpr int N = taps_per_axis(M);
  // keep the integer conversion defined for absurd locations (all taps are then outside)
  const T big = static_cast<T>(int64_t(1) << 40);
  coord = std::min(std::max(coord, -big), big);
  int64_t first;
  if constexpr (M == kNearest) {
    first = static_cast<int64_t>(std::rint(coord));  // round half to even
    w[0] = T(1);
    dw[0] = T(0);
  } else if constexpr (M == kBilinear) {
    const T lo = std::floor(coord);
    const T t = coord - lo;
    first = static_cast<int64_t>(lo);
    w[0] = T(1) - t;
    w[1] = t;
    dw[0] = T(-1);
    dw[1] = T(1);
  } else {
    const T lo = std::floor(coord);
    const T t = coord - lo;
    const T a = static_cast<T>(kCubicA);
    const T a5 = static_cast<T>(5 * kCubicA), a8 = static_cast<T>(8 * kCubicA);
    const T a4 = static_cast<T>(4 * kCubicA), a10 = static_cast<T>(10 * kCubicA);
    const T a3 = static_cast<T>(3 * kCubicA);
    const T b2 = static_cast<T>(kCubicA + 2), b3 = static_cast<T>(kCubicA + 3);
    const T c2 = static_cast<T>(3 * (kCubicA + 2)), c3 = static_cast<T>(2 * (kCubicA + 3));
    const T t1 = t + T(1), t2 = T(1) - t, t3 = T(2) - t;
    w[0] = ((a * t1 - a5) * t1 + a8) * t1 - a4;
    w[1] = (b2 * t - b3) * t * t + T(1);
    w[2] = (b2 * t2 - b3) * t2 * t2 + T(1);
    w[3] = ((a * t3 - a5) * t3 + a8) * t3 - a4;
    dw[0] = (a3 * t1 - a10) * t1 + a8;
    dw[1] = (c2 * t - c3) * t;
    dw[2] = -((c2 * t2 - c3) * t2);
    dw[3] = -((a3 * t3 - a10) * t3 + a8);
    first = static_cast<int64_t>(lo) - 1;
  }
  for (int k = 0; k < N; ++k) {
    int64_t idx = first + k;
    if (pad == kZeros) {
      const int64_t clamped = std::min(std::max<int64_t>(idx, 0), size - 1);
      if (clamped != idx) {
        w[k] = T(0);
        dw[k] = T(0);
      }
      idx = clamped;
    } else {
      if (pad == kReflection) idx = reflect_index(idx, size, align);
      idx = std::min(std::max<int64_t>(idx, 0), size - 1);
    }
    index[k] = idx;
  }
}

// a * b + c rounded once (grid_sample's compiled unnormalize). float: the product is
// exact in double and the sum is rounded as the eager kernel's fused_multiply_add does.
AUGPATCH_INLINE float fused_multiply_add(float a, float b, float c) {
  return static_cast<float>(static_cast<double>(a) * static_cast<double>(b) + static_cast<double>(c));
}
AUGPATCH_INLINE double fused_multiply_add(double a, double b, double c) { return std::fma(a, b, c); }

// F.affine_grid's base coordinate of pixel `index` of `size`, bit for bit (see
// _plan.exact_base_grid): linspace(-1, 1, size) by a fused multiply-add from the
// nearer end, times (size - 1) / size without align_corners.
template <typename T>
T base_coordinate(int64_t index, int64_t size, bool align) {
  if (size <= 1) return T(0);
  const T n = static_cast<T>(size);
  const T step = T(2) / std::max(n - T(1), T(1));
  const bool first_half = index < size / 2;
  const T k = static_cast<T>(first_half ? index : size - 1 - index);
  const T base = fused_multiply_add((first_half ? T(1) : T(-1)) * step, k, first_half ? T(-1) : T(1));
  return align ? base : base * (n - T(1)) / n;
}

// Columns of the per-object parameters [K, 14] (see _warp._object_params).
enum Param : int64_t {
  kT00 = 0, kT01, kT02, kT10, kT11, kT12, kKx, kKy, kCx, kCy, kSx, kSy, kOx, kOy, kParams
};

Plan::Plan(const at::Tensor& objects, c10::IntArrayRef level_objects, const Params& p)
    : s_b(p.s_b), s_h(p.s_h), s_w(p.s_w), frame_w(p.width), frame_h(p.height), frame_is_image(p.padding == kImage) {
  TORCH_CHECK(objects.dim() == 2 && objects.size(1) == 5 && objects.is_contiguous() &&
                  objects.scalar_type() == at::kLong && objects.device().is_cpu(),
              "augpatch: object table");
  const int64_t count = objects.size(0);
  TORCH_CHECK(level_objects.size() >= 2 && level_objects.front() == 0 && level_objects.back() == count,
              "augpatch: level bounds");
  const int64_t* o = objects.const_data_ptr<int64_t>();
  for (auto* v : {&x0, &y0, &image, &width, &height}) v->resize(count);
  first_row.assign(count + 1, 0);
  first_col.assign(count + 1, 0);
  first_pix.assign(count + 1, 0);
  for (int64_t k = 0; k < count; ++k) {
    x0[k] = o[5 * k];
    y0[k] = o[5 * k + 1];
    width[k] = o[5 * k + 2];
    height[k] = o[5 * k + 3];
    image[k] = o[5 * k + 4];
    TORCH_CHECK(width[k] > 0 && height[k] > 0, "augpatch: empty patch in the plan");
    first_row[k + 1] = first_row[k] + height[k];
    first_col[k + 1] = first_col[k] + width[k];
    first_pix[k + 1] = first_pix[k] + width[k] * height[k];
  }
  row_object.resize(first_row[count]);
  for (int64_t k = 0; k < count; ++k) {
    std::fill(row_object.begin() + first_row[k], row_object.begin() + first_row[k + 1], k);
  }
  for (const int64_t k : level_objects) {
    TORCH_CHECK(k >= 0 && k <= count, "augpatch: level bounds");
    levels.rows.push_back(first_row[k]);
    levels.pix.push_back(first_pix[k]);
  }
}

// The parameters of one axis of a patch: the map u = base * k + c of its base
// coordinates, and the two theta entries that multiply u (x: theta[0, 0] and
// theta[1, 0]; y: theta[0, 1] and theta[1, 1]).
struct AxisParams {
  int64_t k, c, tx, ty;
};
constexpr AxisParams kAxisX{kKx, kCx, kT00, kT10};
constexpr AxisParams kAxisY{kKy, kCy, kT01, kT11};

// The location tables the pixel loops read (see _warp._object_params): per patch
// column u * theta[0, 0] and u * theta[1, 0], per patch row v * theta[0, 1] and
// v * theta[1, 1] (u, v: base coordinates mapped onto the continuous box), per
// object theta[:, 2], the unnormalize scales and the float-box offsets.
template <typename T>
struct Locations {
  std::vector<T> col_x, col_y, row_x, row_y, obj;

  // zeros, shaped as the tables of `ob` (their gradients)
  explicit Locations(const Plan& ob)
      : col_x(ob.columns(), T(0)), col_y(ob.columns(), T(0)), row_x(ob.n_rows(), T(0)),
        row_y(ob.n_rows(), T(0)), obj(6 * ob.count(), T(0)) {}

  Locations(const T* prm, const Plan& ob, bool align)
      : col_x(ob.columns()), col_y(ob.columns()), row_x(ob.n_rows()), row_y(ob.n_rows()), obj(6 * ob.count()) {
    for (int64_t k = 0; k < ob.count(); ++k) {
      const T* q = prm + k * kParams;
      fill(q, kAxisX, ob.width[k], align, col_x.data() + ob.first_col[k], col_y.data() + ob.first_col[k]);
      fill(q, kAxisY, ob.height[k], align, row_x.data() + ob.first_row[k], row_y.data() + ob.first_row[k]);
      const T per_object[6] = {q[kT02], q[kT12], q[kSx], q[kSy], q[kOx], q[kOy]};
      std::copy(per_object, per_object + 6, obj.begin() + 6 * k);
    }
  }

 private:
  // the n entries of one axis of the object with parameters q: u * t_x and u * t_y
  static void fill(const T* q, AxisParams a, int64_t n, bool align, T* tx, T* ty) {
    for (int64_t j = 0; j < n; ++j) {
      const T u = base_coordinate<T>(j, n, align) * q[a.k] + q[a.c];
      tx[j] = u * q[a.tx];
      ty[j] = u * q[a.ty];
    }
  }
};

// What one axis of an object adds to the gradient `o` of its parameters q, from the
// gradients gx, gy of its n table entries (the chain rule through Locations::fill).
template <typename T>
void axis_grads(const T* q, AxisParams a, int64_t n, bool align, const T* gx, const T* gy, T* o) {
  for (int64_t j = 0; j < n; ++j) {
    const T base = base_coordinate<T>(j, n, align);
    const T u = base * q[a.k] + q[a.c];
    o[a.tx] += gx[j] * u;
    o[a.ty] += gy[j] * u;
    const T gu = gx[j] * q[a.tx] + gy[j] * q[a.ty];
    o[a.k] += gu * base;
    o[a.c] += gu;
  }
}

// The gradient of the parameters from that of the location tables (the chain rule
// through Locations).
template <typename T>
void parameter_grads(const T* prm, const Plan& ob, bool align, const Locations<T>& g, T* out) {
  for (int64_t k = 0; k < ob.count(); ++k) {
    const T* q = prm + k * kParams;
    T* o = out + k * kParams;
    axis_grads(q, kAxisX, ob.width[k], align, g.col_x.data() + ob.first_col[k], g.col_y.data() + ob.first_col[k], o);
    axis_grads(q, kAxisY, ob.height[k], align, g.row_x.data() + ob.first_row[k], g.row_y.data() + ob.first_row[k], o);
    const int64_t slots[6] = {kT02, kT12, kSx, kSy, kOx, kOy};
    for (int m = 0; m < 6; ++m) o[slots[m]] += g.obj[6 * k + m];
  }
}

// What every pixel of a row shares (see _Chunk).
template <typename T>
struct Row {
  const T* col_x;  // this object's columns
  const T* col_y;
  T rx, ry, t02, t12, sx, sy, ox, oy, fx, fy;
  int64_t fw, fh, frame;

  AUGPATCH_INLINE Row(const Tables<T>& tb, const Plan& rw, int64_t r, bool image) {
    const T* ob = tb.obj + rw.obj(r) * 6;
    col_x = tb.col_x + rw.col(r);
    col_y = tb.col_y + rw.col(r);
    rx = tb.row_x[r];
    ry = tb.row_y[r];
    t02 = ob[0];
    t12 = ob[1];
    sx = ob[2];
    sy = ob[3];
    ox = ob[4];
    oy = ob[5];
    fx = image ? static_cast<T>(rw.fx(r)) : T(0);
    fy = image ? static_cast<T>(rw.fy(r)) : T(0);
    fw = rw.fw(r);
    fh = rw.fh(r);
    frame = rw.frame(r);
  }
};

// The sampling location of pixel jj of a row and its taps (see _Chunk): the bmm's
// (u * t0 + v * t1) + t2, then grid_sample's unnormalize and padding.
template <typename T, int64_t M>
AUGPATCH_INLINE void locate(const Params& p, const Row<T>& row, int64_t jj, Taps<T, M>& tp) {
  const T gx = (row.col_x[jj] + row.rx) + row.t02;
  const T gy = (row.col_y[jj] + row.ry) + row.t12;
  tp.gx1 = gx + T(1);
  tp.gy1 = gy + T(1);
  tp.sx = row.sx;
  tp.sy = row.sy;
  T ix, iy;
  if (p.align) {
    ix = tp.gx1 * row.sx + row.ox;
    iy = tp.gy1 * row.sy + row.oy;
  } else {
    ix = fused_multiply_add(tp.gx1, row.sx, T(-0.5)) + row.ox;
    iy = fused_multiply_add(tp.gy1, row.sy, T(-0.5)) + row.oy;
  }
  int64_t tap_pad = p.padding;
  tp.dpx = tp.dpy = T(1);
  if (p.padding == kImage) {
    ix = ix + row.fx;
    iy = iy + row.fy;
    tap_pad = kZeros;
  } else if (M != kBicubic && p.padding != kZeros) {
    const bool refl = p.padding == kReflection;
    ix = pad_location(ix, row.fw, refl, p.align, tp.dpx);
    iy = pad_location(iy, row.fh, refl, p.align, tp.dpy);
    tap_pad = kZeros;  // locations are inside; an edge's far tap has weight 0
  }
  axis_taps<T, M>(ix, row.fw, tap_pad, p.align, tp.idx_x, tp.wx, tp.dwx);
  axis_taps<T, M>(iy, row.fh, tap_pad, p.align, tp.idx_y, tp.wy, tp.dwy);
}

template <typename S, typename T>
AUGPATCH_INLINE S store(T v) {
  if constexpr (std::is_same_v<S, uint8_t>) {
    return static_cast<uint8_t>(std::min(std::max(std::rint(v), T(0)), T(255)));
  } else {
    return static_cast<S>(v);
  }
}

// The taps of a pixel over both axes, in grid_sample's order (y outer, x inner), as
// element offsets into a buffer whose frame starts at `frame` with row and column
// strides s_h, s_w.
template <typename T, int64_t M>
struct Grid {
  static constexpr int K = taps_per_axis(M) * taps_per_axis(M);
  int64_t off[K];
  T w[K], wdx[K], wdy[K];

  AUGPATCH_INLINE Grid(const Taps<T, M>& tp, bool derivatives, int64_t frame, int64_t s_h, int64_t s_w) {
    constexpr int N = taps_per_axis(M);
    for (int m = 0; m < N; ++m) {
      for (int k = 0; k < N; ++k) {
        off[m * N + k] = frame + tp.idx_y[m] * s_h + tp.idx_x[k] * s_w;
        w[m * N + k] = tp.wy[m] * tp.wx[k];
        if (derivatives) {
          wdx[m * N + k] = tp.wy[m] * tp.dwx[k];
          wdy[m * N + k] = tp.dwy[m] * tp.wx[k];
        }
      }
    }
  }
};

// Value (and, with dx/dy, its location derivatives) of one pixel, every channel.
template <typename S, typename T, int64_t M, int64_t NC>
AUGPATCH_INLINE void sample(const Params& p, const Grid<T, M>& gd, const S* src, T* acc, T* dx,
                            T* dy) {
  constexpr int K = Grid<T, M>::K;
  const int64_t C = NC > 0 ? NC : p.channels;
  for (int64_t c = 0; c < C; ++c) {
    const S* s = src + c * p.s_c;
    T a = T(0);
    if (dx == nullptr) {
      for (int t = 0; t < K; ++t) a += gd.w[t] * static_cast<T>(s[gd.off[t]]);
    } else {
      T ax = T(0), ay = T(0);
      for (int t = 0; t < K; ++t) {
        const T v = static_cast<T>(s[gd.off[t]]);
        a += gd.w[t] * v;
        ax += gd.wdx[t] * v;
        ay += gd.wdy[t] * v;
      }
      dx[c] = ax;
      dy[c] = ay;
    }
    acc[c] = a;
  }
}

// Only the location derivatives of one pixel's value, every channel.
template <typename S, typename T, int64_t M, int64_t NC>
AUGPATCH_INLINE void derivatives(const Params& p, const Grid<T, M>& gd, const S* src, int64_t s_c, T* dx,
                                 T* dy) {
  const int64_t C = NC > 0 ? NC : p.channels;
  for (int64_t c = 0; c < C; ++c) {
    const S* s = src + c * s_c;
    T ax = T(0), ay = T(0);
    for (int t = 0; t < Grid<T, M>::K; ++t) {
      const T v = static_cast<T>(s[gd.off[t]]);
      ax += gd.wdx[t] * v;
      ay += gd.wdy[t] * v;
    }
    dx[c] = ax;
    dy[c] = ay;
  }
}

// f(i, i + 1) for every i in [0, n) on the intra-op threads, one index at a time
// (units of unequal size); serially without OpenMP or inside a parallel region.
template <typename F>
void parallel_dynamic(int64_t n, const F& f) {
#ifdef _OPENMP
  const int threads = at::get_num_threads();
  if (n > 1 && threads > 1 && !at::in_parallel_region()) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) f(i, i + 1);
    return;
  }
#endif
  if (n > 0) f(0, n);
}

constexpr int64_t kRowGrain = 16;

// f(out, px) for every pixel of level l (element offset of its output pixel, pixel
// index), the level's rows split over the intra-op threads.
template <typename F>
void for_each_pixel(const Plan& rw, const Levels& lv, int64_t l, const Params& p, const F& f) {
  at::parallel_for(lv.rows[l], lv.rows[l + 1], kRowGrain, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const int64_t n = rw.len(r), p0 = rw.pix(r), o0 = rw.out(r);
      for (int64_t jj = 0; jj < n; ++jj) f(o0 + jj * p.s_w, p0 + jj);
    }
  });
}

// What the forward keeps for the location gradient of the levels that read earlier
// levels' output (sequential levels >= save_from), [C, n] each, pixel px at px - pix0:
// with patch-relative padding the values each object's patch held before its level
// (`patch`, image dtype), from which the backward recomputes the derivatives; with
// padding "image" (an object reads around its box) the two derivatives of every
// sampled value (`dvdx`, `dvdy`).
template <typename PS, typename PT>
struct Saved {
  PS* patch = nullptr;
  PT* dvdx = nullptr;
  PT* dvdy = nullptr;
  int64_t pix0 = 0, n = 0;

  // over the tensors warp_forward returns: [patches] or [dvdx, dvdy]
  Saved(const std::vector<at::Tensor>& kept, bool present, int64_t first, int64_t count) : pix0(first), n(count) {
    if (!present) return;
    if (kept.size() == 1) {
      patch = kept[0].data_ptr<std::remove_const_t<PS>>();
    } else {
      dvdx = kept[0].data_ptr<std::remove_const_t<PT>>();
      dvdy = kept[1].data_ptr<std::remove_const_t<PT>>();
    }
  }
};

// `input`: the input batch in the working layout, or null. Levels that read it (every
// level of "parallel", the first of "sequential") then write straight into `work`;
// the others read `work` itself and so keep their values aside until the level has read.
template <typename S, typename T, int64_t M, int64_t NC>
void forward_impl(at::Tensor& work, const S* input, const Tables<T>& tb, const Plan& rw,
                  const Levels& lv, const Params& p, const Saved<S, T>& sv) {
  T* const dvdx = sv.dvdx;
  T* const dvdy = sv.dvdy;
  const int64_t save_pix0 = sv.pix0, save_n = sv.n;
  S* base = work.data_ptr<S>();
  const int64_t C = NC > 0 ? NC : p.channels;  // NC: channels known when compiled
  const int64_t L = lv.count();
  auto direct = [&](int64_t l) { return input != nullptr && (p.parallel || l == 0); };
  int64_t span = 0;  // parallel, without the input: every level waits for all to read
  for (int64_t l = 0; l < L; ++l) {
    if (!direct(l)) span = p.parallel ? lv.pix.back() : std::max(span, lv.pix[l + 1] - lv.pix[l]);
  }
  std::vector<S> result(static_cast<size_t>(C * span));

  auto compute = [&](int64_t l) {
    const bool to_work = direct(l);
    const S* src = to_work ? input : base;
    const int64_t res0 = p.parallel ? 0 : lv.pix[l];
    const bool save = dvdx != nullptr && l >= p.save_from;
    at::parallel_for(lv.rows[l], lv.rows[l + 1], kRowGrain, [&](int64_t rb, int64_t re) {
      std::vector<T> scratch(static_cast<size_t>(3 * C));
      T* acc = scratch.data();
      T* dx = save ? acc + C : nullptr;
      T* dy = save ? acc + 2 * C : nullptr;
      Taps<T, M> tp;
      for (int64_t r = rb; r < re; ++r) {
        const Row<T> row(tb, rw, r, p.padding == kImage);
        const int64_t n = rw.len(r), p0 = rw.pix(r), o0 = rw.out(r);
        for (int64_t jj = 0; jj < n; ++jj) {
          const int64_t px = p0 + jj;
          locate<T, M>(p, row, jj, tp);
          const Grid<T, M> gd(tp, save, row.frame, p.s_h, p.s_w);
          sample<S, T, M, NC>(p, gd, src, acc, dx, dy);
          if (to_work) {
            S* o = base + o0 + jj * p.s_w;
            for (int64_t c = 0; c < C; ++c) o[c * p.s_c] = store<S>(acc[c]);
          } else {
            for (int64_t c = 0; c < C; ++c) result[c * span + px - res0] = store<S>(acc[c]);
          }
          if (save) {
            for (int64_t c = 0; c < C; ++c) {
              dvdx[c * save_n + px - save_pix0] = dx[c];
              dvdy[c * save_n + px - save_pix0] = dy[c];
            }
          }
        }
      }
    });
  };
  auto write = [&](int64_t l) {
    const int64_t res0 = p.parallel ? 0 : lv.pix[l];
    for_each_pixel(rw, lv, l, p, [&](int64_t out, int64_t px) {
      S* o = base + out;
      for (int64_t c = 0; c < C; ++c) o[c * p.s_c] = result[c * span + px - res0];
    });
  };
  auto keep = [&](int64_t l) {  // the patches as this level will read them
    for_each_pixel(rw, lv, l, p, [&](int64_t out, int64_t px) {
      for (int64_t c = 0; c < C; ++c) sv.patch[c * save_n + px - save_pix0] = base[out + c * p.s_c];
    });
  };
  if (p.parallel && input == nullptr) {  // all read the batch as it was; higher levels write last
    for (int64_t l = 0; l < L; ++l) compute(l);
    for (int64_t l = 0; l < L; ++l) write(l);
  } else {  // parallel with the input: levels write in order (higher wins)
    for (int64_t l = 0; l < L; ++l) {
      if (sv.patch != nullptr && l >= p.save_from) keep(l);
      compute(l);
      if (!direct(l)) write(l);
    }
  }
}

template <typename T>
struct TableGrads {
  T *col_x, *col_y, *row_x, *row_y, *obj;
};

// Runs of rows [r0, r1) that belong to one image: units of work that touch
// disjoint memory in the backward scatter.
std::vector<int64_t> image_runs(const Plan& rw, int64_t r0, int64_t r1) {
  std::vector<int64_t> runs{r0};
  for (int64_t r = r0 + 1; r < r1; ++r) {
    if (rw.img(r) != rw.img(r - 1)) runs.push_back(r);
  }
  runs.push_back(r1);
  return runs;
}

template <typename S, typename T, int64_t M, int64_t NC>
void backward_impl(at::Tensor& g_buf, const S* images, const Tables<T>& tb, const Plan& rw,
                   const Levels& lv, const Params& p, const Saved<const S, const T>& sv,
                   const TableGrads<T>& gr) {
  const T* const dvdx = sv.dvdx;
  const T* const dvdy = sv.dvdy;
  const int64_t save_pix0 = sv.pix0, save_n = sv.n;
  T* g = g_buf.data_ptr<T>();
  const int64_t C = NC > 0 ? NC : p.channels;  // NC: channels known when compiled
  const int64_t L = lv.count();
  const int64_t total = lv.pix.back();
  // The output gradients of a level's pixels are taken out of g (the state before the
  // level reaches those pixels only via reads) before any of its reads is scattered.
  // sequential: one image's part of a level at a time (it touches only that image);
  // parallel: every level read the input, so all are taken out before any scatter.
  std::vector<T> pending(static_cast<size_t>(p.parallel ? C * total : 0));
  auto take = [&](int64_t out, int64_t px, T* dst, int64_t stride) {
    T* o = g + out;
    for (int64_t c = 0; c < C; ++c) {
      dst[c * stride + px] = o[c * p.s_c];
      o[c * p.s_c] = T(0);
    }
  };
  auto scatter = [&](int64_t l) {
    // the derivatives of this level's values were kept, or the patches it read
    const bool saved = dvdx != nullptr && !p.parallel && l >= p.save_from;
    const bool kept = sv.patch != nullptr && !p.parallel && l >= p.save_from;
    // values read here came from the input or (sequential) from earlier levels' writes
    const bool to_buffer = p.need_img || (l > 0 && !p.parallel);
    const std::vector<int64_t> runs = image_runs(rw, lv.rows[l], lv.rows[l + 1]);
    const int64_t n_runs = static_cast<int64_t>(runs.size()) - 1;
    parallel_dynamic(n_runs, [&](int64_t ib, int64_t ie) {
      std::vector<T> scratch(static_cast<size_t>(3 * C));
      T* dx = scratch.data();
      T* dy = dx + C;
      T* gv = dx + 2 * C;
      Taps<T, M> tp;
      std::vector<T> local;  // sequential: the output gradients of this image's part
      for (int64_t run = ib; run < ie; ++run) {
        const int64_t r0 = runs[run], r1 = runs[run + 1];
        const T* taken = pending.data();  // [C, stride], pixel px at px - res0
        int64_t stride = total, res0 = 0;
        if (!p.parallel) {
          res0 = rw.pix(r0);
          stride = rw.pix(r1 - 1) + rw.len(r1 - 1) - res0;
          local.resize(static_cast<size_t>(C * stride));
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t n = rw.len(r), p0 = rw.pix(r) - res0, o0 = rw.out(r);
            for (int64_t jj = 0; jj < n; ++jj) take(o0 + jj * p.s_w, p0 + jj, local.data(), stride);
          }
          taken = local.data();
        }
        for (int64_t r = r0; r < r1; ++r) {
          const Row<T> row(tb, rw, r, p.padding == kImage);
          T* g_col_x = gr.col_x + rw.col(r);
          T* g_col_y = gr.col_y + rw.col(r);
          // what the row's pixels add to the row's and the object's entries, summed here
          T sum_dgx = T(0), sum_dgy = T(0), sum_x1 = T(0), sum_y1 = T(0), sum_ix = T(0), sum_iy = T(0);
          const int64_t n = rw.len(r), p0 = rw.pix(r);
          const int64_t k = rw.obj(r), patch0 = rw.first_pix[k] - save_pix0;  // kept patch: [h, w]
          for (int64_t jj = 0; jj < n; ++jj) {
            const int64_t px = p0 + jj;
            locate<T, M>(p, row, jj, tp);
            const Grid<T, M> gd(tp, p.need_loc && !saved && !kept, row.frame, p.s_h, p.s_w);
            for (int64_t c = 0; c < C; ++c) gv[c] = taken[c * stride + px - res0];
            if (p.need_loc) {
              T gix = T(0), giy = T(0);
              if (saved) {
                for (int64_t c = 0; c < C; ++c) {
                  gix += gv[c] * dvdx[c * save_n + px - save_pix0];
                  giy += gv[c] * dvdy[c * save_n + px - save_pix0];
                }
              } else {
                if (kept) {  // from the patch as this level read it
                  const Grid<T, M> gp(tp, true, patch0, rw.width[k], 1);
                  derivatives<S, T, M, NC>(p, gp, sv.patch, save_n, dx, dy);
                } else {  // this level read the input batch: from it
                  derivatives<S, T, M, NC>(p, gd, images, p.s_c, dx, dy);
                }
                for (int64_t c = 0; c < C; ++c) {
                  gix += gv[c] * dx[c];
                  giy += gv[c] * dy[c];
                }
              }
              gix *= tp.dpx;
              giy *= tp.dpy;
              // ix = (gx + 1) * scale + off (- 0.5);  gx = col + row + t02
              const T dgx = gix * tp.sx, dgy = giy * tp.sy;
              g_col_x[jj] += dgx;
              g_col_y[jj] += dgy;
              sum_dgx += dgx;
              sum_dgy += dgy;
              sum_x1 += gix * tp.gx1;
              sum_y1 += giy * tp.gy1;
              sum_ix += gix;
              sum_iy += giy;
            }
            if (to_buffer) {
              for (int64_t c = 0; c < C; ++c) {
                T* o = g + c * p.s_c;
                for (int t = 0; t < Grid<T, M>::K; ++t) o[gd.off[t]] += gd.w[t] * gv[c];
              }
            }
          }
          if (p.need_loc) {
            gr.row_x[r] += sum_dgx;
            gr.row_y[r] += sum_dgy;
            T* go = gr.obj + rw.obj(r) * 6;
            go[0] += sum_dgx;
            go[1] += sum_dgy;
            go[2] += sum_x1;
            go[3] += sum_y1;
            go[4] += sum_ix;
            go[5] += sum_iy;
          }
        }
      }
    });
  };
  if (!p.parallel) {
    for (int64_t l = L - 1; l >= 0; --l) scatter(l);
    return;
  }
  for (int64_t l = L - 1; l >= 0; --l) {  // the higher level's write is the one that counts
    for_each_pixel(rw, lv, l, p, [&](int64_t out, int64_t px) { take(out, px, pending.data(), total); });
  }
  for (int64_t l = 0; l < L; ++l) scatter(l);
}

template <typename T>
Tables<T> tables_of(const Locations<T>& loc) {
  return Tables<T>{loc.col_x.data(), loc.col_y.data(), loc.row_x.data(), loc.row_y.data(), loc.obj.data()};
}

// The image dtypes warp_patches accepts, each with its compute dtype (float64 for
// float64 images, float32 otherwise); f receives a value of each element type.
template <typename F>
void dispatch_image(at::ScalarType image, at::ScalarType compute, F&& f) {
  const at::ScalarType expected = image == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(compute == expected, "augpatch: compute dtype ", compute, " for images of ", image);
  switch (image) {
    case at::kFloat: return f(float{}, float{});
    case at::kDouble: return f(double{}, double{});
    case at::kHalf: return f(c10::Half{}, float{});
    case at::kBFloat16: return f(c10::BFloat16{}, float{});
    case at::kByte: return f(uint8_t{}, float{});
    default: TORCH_CHECK(false, "augpatch: unsupported image dtype ", image);
  }
}

template <typename F>
void dispatch_mode(int64_t mode, F&& f) {
  switch (mode) {
    case kNearest: return f(std::integral_constant<int64_t, kNearest>{});
    case kBilinear: return f(std::integral_constant<int64_t, kBilinear>{});
    case kBicubic: return f(std::integral_constant<int64_t, kBicubic>{});
    default: TORCH_CHECK(false, "augpatch: unknown mode ", mode);
  }
}

void check_params(const at::Tensor& params, const Plan& plan) {
  TORCH_CHECK(params.dim() == 2 && params.size(0) == plan.count() && params.size(1) == kParams &&
                  params.is_contiguous() && params.device().is_cpu(),
              "augpatch: object parameters");
}

// forward: warps `work` in place (a copy of the batch; `input`, the batch itself in the
// same layout, or an empty tensor); `params` [K, 14] the per-object parameters in
// processing order (see _warp._object_params). Returns the saved location derivatives
// [dvdx, dvdy] ([C, pixels of levels >= save_from] each; empty when not needed).
std::vector<at::Tensor> warp_forward(at::Tensor work, at::Tensor input, at::Tensor params,
                                     at::Tensor objects, c10::IntArrayRef level_objects,
                                     c10::IntArrayRef options) {
  const Params p(options);
  const Plan plan(objects, level_objects, p);
  check_params(params, plan);
  const Plan& rw = plan;
  const Levels& lv = plan.levels;
  const auto compute = params.scalar_type();
  const bool save = p.need_loc && !p.parallel && p.save_from < lv.count();
  const int64_t save_pix0 = save ? lv.pix[p.save_from] : 0;
  const int64_t save_n = save ? lv.pix.back() - save_pix0 : 0;
  const int64_t rows_saved = save ? p.channels : 0;
  // patch-relative padding: the patches (image dtype); padding "image": two derivatives
  std::vector<at::Tensor> kept;
  if (p.padding != kImage) {
    kept.push_back(at::empty({rows_saved, save_n}, work.options()));
  } else {
    kept.push_back(at::empty({rows_saved, save_n}, params.options()));
    kept.push_back(at::empty({rows_saved, save_n}, params.options()));
  }
  dispatch_image(work.scalar_type(), compute, [&](auto image_tag, auto compute_tag) {
    using S = decltype(image_tag);
    using T = decltype(compute_tag);
    const Locations<T> loc(params.const_data_ptr<T>(), plan, p.align);
    const Tables<T> tb = tables_of<T>(loc);
    const Saved<S, T> sv(kept, save, save_pix0, save_n);
    TORCH_CHECK(input.numel() == 0 || input.scalar_type() == work.scalar_type(), "augpatch: input dtype");
    const S* in = input.numel() > 0 ? input.const_data_ptr<S>() : nullptr;
    dispatch_mode(p.mode, [&](auto mode) {
      constexpr int64_t Mo = decltype(mode)::value;
      if (p.channels == 3) {  // RGB: loops over channels unrolled
        forward_impl<S, T, Mo, 3>(work, in, tb, rw, lv, p, sv);
      } else {
        forward_impl<S, T, Mo, 0>(work, in, tb, rw, lv, p, sv);
      }
    });
  });
  return kept;
}

// backward: g_buf (the output gradient, compute dtype, plan strides) becomes the
// input gradient in place; returns [the gradient of `params`] (empty when no
// location gradient is needed). `images` is read where a level read the input batch
// and its derivatives were not saved.
std::vector<at::Tensor> warp_backward(at::Tensor g_buf, at::Tensor images, at::Tensor params,
                                      at::Tensor objects, c10::IntArrayRef level_objects,
                                      std::vector<at::Tensor> saved, c10::IntArrayRef options) {
  const Params p(options);
  const Plan plan(objects, level_objects, p);
  check_params(params, plan);
  TORCH_CHECK(g_buf.scalar_type() == params.scalar_type(), "augpatch: gradient buffer dtype");
  const Plan& rw = plan;
  const Levels& lv = plan.levels;
  at::Tensor grad = at::zeros({p.need_loc ? params.size(0) : 0, kParams}, params.options());
  // what the forward kept: [patches] or [dvdx, dvdy] (empty when nothing was needed)
  const bool has_saved = !saved.empty() && saved[0].numel() > 0;
  TORCH_CHECK(!has_saved || saved.size() == (p.padding != kImage ? 1u : 2u), "augpatch: saved tensors");
  const int64_t save_pix0 = has_saved ? lv.pix[p.save_from] : 0;
  const int64_t save_n = has_saved ? lv.pix.back() - save_pix0 : 0;
  dispatch_image(images.scalar_type(), g_buf.scalar_type(), [&](auto image_tag, auto compute_tag) {
    using S = decltype(image_tag);
    using T = decltype(compute_tag);
    const T* prm = params.const_data_ptr<T>();
    const Locations<T> loc(prm, plan, p.align);
    const Tables<T> tb = tables_of<T>(loc);
    Locations<T> g_loc(plan);  // the gradients of the location tables
    const TableGrads<T> gr{g_loc.col_x.data(), g_loc.col_y.data(), g_loc.row_x.data(), g_loc.row_y.data(),
                           g_loc.obj.data()};
    const Saved<const S, const T> sv(saved, has_saved, save_pix0, save_n);
    const S* src = images.numel() > 0 ? images.const_data_ptr<S>() : nullptr;
    TORCH_CHECK(src != nullptr || !p.need_loc || (!p.parallel && p.save_from == 0),
                "augpatch: the input batch is needed for the location gradient");
    dispatch_mode(p.mode, [&](auto mode) {
      constexpr int64_t Mo = decltype(mode)::value;
      if (p.channels == 3) {
        backward_impl<S, T, Mo, 3>(g_buf, src, tb, rw, lv, p, sv, gr);
      } else {
        backward_impl<S, T, Mo, 0>(g_buf, src, tb, rw, lv, p, sv, gr);
      }
    });
    if (p.need_loc) parameter_grads<T>(prm, plan, p.align, g_loc, grad.data_ptr<T>());
  });
  if (!p.need_loc) return {};
  return {grad};
}

// ------------------------------------------------------------------ the operator

// the plan's strides (those of the working copy)
std::vector<int64_t> strides_of(const Params& p) { return {p.s_b, p.s_c, p.s_h, p.s_w}; }

// A copy of `images` with the plan's strides (the working copy of the batch).
at::Tensor plan_copy(const at::Tensor& images, const Params& p) {
  at::Tensor out = at::empty_strided(images.sizes(), strides_of(p), images.options());
  out.copy_(images);
  return out;
}

// The gradient buffer of the backward: a copy of the output gradient (compute dtype, plan
// strides) that becomes the input gradient in place.
at::Tensor gradient_buffer(const at::Tensor& grad, const Params& p, at::ScalarType compute) {
  at::Tensor buf = at::empty_strided(grad.sizes(), strides_of(p), grad.options().dtype(compute));
  buf.copy_(grad);
  return buf;
}

// The options of a call (see Params) with what the operator decides itself: the first
// level whose reads are kept for the location gradient (every level of "parallel", and
// the first of "sequential", reads the input batch, which the backward reads again), and
// which gradients are needed.
std::vector<int64_t> with_needs(c10::IntArrayRef options, c10::IntArrayRef level_objects, bool need_loc,
                                bool need_img) {
  std::vector<int64_t> v = options.vec();
  TORCH_CHECK(v.size() == 14 && level_objects.size() >= 2, "augpatch: malformed kernel options");
  v[4] = v[3] != 0 ? static_cast<int64_t>(level_objects.size()) - 1 : 1;
  v[10] = need_loc;
  v[11] = need_img;
  return v;
}

// warp_forward(images, params, objects, level_objects, options, need_loc) -> (out, kept0,
// kept1): the warped batch and what the backward needs for the location gradient, as two
// flat tensors (patch-relative padding: the patches read by "sequential" levels after the
// first, image dtype, and an empty compute-dtype tensor; padding "image": the two
// derivatives of every value sampled by those levels, compute dtype). No autograd here:
// augpatch's operator (augpatch::warp, _op.py) owns it.
std::tuple<at::Tensor, at::Tensor, at::Tensor> warp_forward_op(const at::Tensor& images, const at::Tensor& params,
                                                               const at::Tensor& objects,
                                                               c10::IntArrayRef level_objects,
                                                               c10::IntArrayRef options, bool need_loc) {
  const auto opt = with_needs(options, level_objects, need_loc, false);
  const Params p(opt);
  at::Tensor work = plan_copy(images, p);
  // levels that read the input batch read it directly where its layout is the plan's
  const bool same = images.strides() == c10::IntArrayRef(strides_of(p));
  const at::Tensor read = same ? images : at::empty({0}, images.options());
  auto kept = warp_forward(work, read, params.contiguous(), objects, level_objects, opt);
  at::Tensor first = kept[0].reshape({-1});
  at::Tensor second = kept.size() > 1 ? kept[1].reshape({-1}) : at::empty({0}, params.options());
  return {work, first, second};
}

// warp_backward on the operators' arguments: `g_buf` becomes the images' gradient in place;
// `images` is read again (in the plan's layout) only for the location gradient; kept0 /
// kept1 are what warp_forward_op returned.
std::vector<at::Tensor> backward_into_buffer(at::Tensor& g_buf, const at::Tensor& images, const at::Tensor& params,
                                             const at::Tensor& objects, c10::IntArrayRef level_objects,
                                             const at::Tensor& kept0, const at::Tensor& kept1,
                                             const std::vector<int64_t>& opt) {
  const Params p(opt);
  const bool need_loc = p.need_loc;
  at::Tensor source = at::empty({0}, images.options());
  if (need_loc) {
    source = images.strides() == c10::IntArrayRef(strides_of(p)) ? images : plan_copy(images, p);
  }
  std::vector<at::Tensor> kept;
  const int64_t rows = kept0.numel() > 0 ? p.channels : 0;
  kept.push_back(kept0.reshape({rows, rows > 0 ? -1 : 0}));
  if (p.padding == kImage) kept.push_back(kept1.reshape({rows, rows > 0 ? -1 : 0}));
  return warp_backward(g_buf, source, params.contiguous(), objects, level_objects, kept, opt);
}

// warp_backward(grad, images, params, objects, level_objects, kept0, kept1, options,
// need_img, need_loc) -> (grad_images, grad_params); an output that is not
// needed is an empty tensor. `images` is the input batch of the forward (read again where
// a level read it), `kept0`/`kept1` what warp_forward returned.
std::tuple<at::Tensor, at::Tensor> warp_backward_op(const at::Tensor& grad, const at::Tensor& images,
                                                    const at::Tensor& params, const at::Tensor& objects,
                                                    c10::IntArrayRef level_objects, const at::Tensor& kept0,
                                                    const at::Tensor& kept1, c10::IntArrayRef options,
                                                    bool need_img, bool need_loc) {
  const auto opt = with_needs(options, level_objects, need_loc, need_img);
  const Params p(opt);
  at::Tensor g_buf = gradient_buffer(grad, p, params.scalar_type());
  auto g = backward_into_buffer(g_buf, images, params, objects, level_objects, kept0, kept1, opt);
  at::Tensor grad_images = need_img ? g_buf.to(images.scalar_type()) : at::empty({0}, images.options());
  at::Tensor grad_params = need_loc ? g[0] : at::empty({0}, params.options());
  return {grad_images, grad_params};
}

// warp_backward_into(grad, images, params, objects, level_objects, kept0, kept1, options,
// need_loc) -> grad_params: warp_backward_op writing the images' gradient into `grad`
// itself (compute dtype = image dtype, the plan's strides) instead of a copy of it. Called
// only where nobody else can see `grad` (warp_autograd.cpp: the output gradient is the
// backward's alone), so that the images' gradient needs no batch-sized memory of its own.
at::Tensor warp_backward_into_op(at::Tensor& grad, const at::Tensor& images, const at::Tensor& params,
                                 const at::Tensor& objects, c10::IntArrayRef level_objects,
                                 const at::Tensor& kept0, const at::Tensor& kept1, c10::IntArrayRef options,
                                 bool need_loc) {
  const auto opt = with_needs(options, level_objects, need_loc, true);
  const Params p(opt);
  TORCH_CHECK(grad.scalar_type() == params.scalar_type() && grad.scalar_type() == images.scalar_type() &&
                  grad.device().is_cpu() && grad.strides() == c10::IntArrayRef(strides_of(p)) &&
                  grad.sizes() == images.sizes(),
              "augpatch: warp_backward_into needs a gradient in the images' dtype and the plan's layout");
  auto g = backward_into_buffer(grad, images, params, objects, level_objects, kept0, kept1, opt);
  return need_loc ? g[0] : at::empty({0}, params.options());
}

}  // namespace

TORCH_LIBRARY(augpatch_cpu, m) {
  m.def(
      "warp_forward(Tensor images, Tensor params, Tensor objects, int[] level_objects, int[] options, "
      "bool need_loc) -> (Tensor, Tensor, Tensor)");
  m.def(
      "warp_backward(Tensor grad, Tensor images, Tensor params, Tensor objects, int[] level_objects, "
      "Tensor kept0, Tensor kept1, int[] options, bool need_img, bool need_loc) "
      "-> (Tensor, Tensor)");
  m.def(
      "warp_backward_into(Tensor(a!) grad, Tensor images, Tensor params, Tensor objects, int[] level_objects, "
      "Tensor kept0, Tensor kept1, int[] options, bool need_loc) -> Tensor");
}

TORCH_LIBRARY_IMPL(augpatch_cpu, CPU, m) {
  m.impl("warp_forward", &warp_forward_op);
  m.impl("warp_backward", &warp_backward_op);
  m.impl("warp_backward_into", &warp_backward_into_op);
}
