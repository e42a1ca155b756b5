// The warp's planning in C++ (augpatch_cpu::warp_plan): augpatch.ops.plan.prepare for CPU
// tensors, the same plan in a few microseconds instead of about a millisecond of small
// tensor operations (issue 21: the fixed costs of a call at S).
//
// It mirrors, step by step and with the same arithmetic (so the same bits), the Python
// functions of augpatch/ops/plan.py and augpatch/ops/schedule.py:
//   metadata       the value checks (a status code here: the caller then runs the Python
//                  planning, which raises the error with its message),
//   pixel_rects    pixel j is in [x1, x2) iff ceil(x1 - .5) <= j < ceil(x2 - .5), clipped,
//   source_rects   with `reads` (padding "image", sequential): the conservative pixel rect
//                  each object reads around its box,
//   overlap_edges  pairs of objects of one image, by a sweep along the axis with fewer
//                  candidate pairs: without `reads` the boxes that share a pixel (an object
//                  reads its own patch); with them strict edges (an earlier object writes
//                  where a later one writes or reads) and loose ones (it only reads where
//                  the later one writes),
//   schedule_levels the longest path over the edges, loose ones of length 0 (every edge
//                  goes from a lower to a higher index, so one pass in index order),
//   prepare        the order (stable: by level, then image, then index), objects, levels,
//   object_params  the per-object parameter table [K, 14] in the compute dtype.
// tests/test_warp_plan_cpp.py checks that both give equal plans on random inputs.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <tuple>
#include <vector>

namespace {

struct Rect {
  int64_t x0, y0, x1, y1, img, index;
};

// A pixel rect alone (x0, y0, x1, y1): what an object reads.
struct Area {
  int64_t x0, y0, x1, y1;
};

// clip_to_canvas of one box (float64)
inline void clip_box(const double* box, double width, double height, double* out) {
  const double lim[4] = {width, height, width, height};
  for (int k = 0; k < 4; ++k) out[k] = std::min(std::max(box[k], 0.0), lim[k]);
}

// pixel_rects of one box (float64, as the Python planning reads the metadata)
inline void pixel_rect(const double* box, double width, double height, int64_t* out) {
  const double lim[4] = {width, height, width, height};
  double clipped[4];
  clip_box(box, width, height, clipped);
  for (int k = 0; k < 4; ++k) {
    int64_t p = static_cast<int64_t>(std::ceil(clipped[k] - 0.5));               // ceil(. - .5).long()
    out[k] = std::min(std::max(p, int64_t(0)), static_cast<int64_t>(lim[k]));  // clamp
  }
  out[2] = std::max(out[2], out[0]);
  out[3] = std::max(out[3], out[1]);
}

template <typename A, typename B>
inline bool intersect(const A& a, const B& b) {
  return std::max(a.x0, b.x0) < std::min(a.x1, b.x1) && std::max(a.y0, b.y0) < std::min(a.y1, b.y1);
}

// source_rects (plan.py) of one object: `clipped` its box clipped to the canvas (float64),
// `o` its pixel rect, `t` its theta (float64, 6 entries). Torch's operations in their order,
// each rounded once (the file is compiled without contraction): `pix + 0.5` is a float32
// operation there (an int64 tensor plus a Python float), the rest float64.
inline Area source_rect(const double* clipped, const Rect& o, const double* t, bool align, int64_t height,
                        int64_t width) {
  const double n_w = static_cast<double>(o.x1 - o.x0), n_h = static_cast<double>(o.y1 - o.y0);
  const double cx = (clipped[0] + clipped[2]) / 2, cy = (clipped[1] + clipped[3]) / 2;
  double hx = (clipped[2] - clipped[0]) / 2, hy = (clipped[3] - clipped[1]) / 2;
  if (align) {
    hx = std::max(hx - 0.5, 0.0);
    hy = std::max(hy - 0.5, 0.0);
  }
  const double read_x = align ? (n_w > 1 ? hx : 0.0) : hx;
  const double read_y = align ? (n_h > 1 ? hy : 0.0) : hy;
  const double xs[2] = {static_cast<double>(static_cast<float>(o.x0) + 0.5f), (static_cast<double>(o.x0) + n_w) - 0.5};
  const double ys[2] = {static_cast<double>(static_cast<float>(o.y0) + 0.5f), (static_cast<double>(o.y0) + n_h) - 0.5};
  double u[2], v[2];
  for (int i = 0; i < 2; ++i) {
    u[i] = hx > 0 ? (xs[i] - cx) / std::max(hx, 1e-12) : 0.0;
    v[i] = hy > 0 ? (ys[i] - cy) / std::max(hy, 1e-12) : 0.0;
  }
  double lo_x = 0, lo_y = 0, hi_x = 0, hi_y = 0;
  for (int c = 0; c < 4; ++c) {  // the corners (u[i], v[j]), i = c / 2, j = c % 2
    const double uu = u[c / 2], vv = v[c % 2];
    const double su = (t[0] * uu + t[1] * vv) + t[2];
    const double sv = (t[3] * uu + t[4] * vv) + t[5];
    const double px = (cx + read_x * su) - 0.5, py = (cy + read_y * sv) - 0.5;
    lo_x = c ? std::min(lo_x, px) : px;
    hi_x = c ? std::max(hi_x, px) : px;
    lo_y = c ? std::min(lo_y, py) : py;
    hi_y = c ? std::max(hi_y, py) : py;
  }
  constexpr double kMargin = 3;  // bicubic reaches floor(x) - 1 .. floor(x) + 2; one more for rounding
  auto clamp = [](double x, int64_t hi) { return static_cast<int64_t>(std::min(std::max(x, 0.0), static_cast<double>(hi))); };
  return {clamp(std::floor(lo_x) - kMargin, width), clamp(std::floor(lo_y) - kMargin, height),
          clamp((std::floor(hi_x) + kMargin) + 1, width), clamp((std::floor(hi_y) + kMargin) + 1, height)};
}

// Positions (into `rects`) sorted by image, then by the low edge along `axis`, and the number
// of candidates of each sorted position (the later ones of its image whose low edge lies
// before its high edge): the sweep of schedule.py's _sweep.
std::pair<std::vector<int64_t>, int64_t> sweep(const std::vector<Rect>& rects, int axis,
                                               std::vector<int64_t>& count) {
  const int64_t k = static_cast<int64_t>(rects.size());
  auto low = [&](int64_t i) { return axis == 0 ? rects[i].x0 : rects[i].y0; };
  auto high = [&](int64_t i) { return axis == 0 ? rects[i].x1 : rects[i].y1; };
  std::vector<int64_t> order(k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return rects[a].img != rects[b].img ? rects[a].img < rects[b].img : low(a) < low(b);
  });
  count.assign(k, 0);
  int64_t total = 0;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t a = order[i];
    // first sorted position whose (image, low) is not below (image of a, high of a)
    auto stop = std::lower_bound(order.begin() + i + 1, order.end(), a, [&](int64_t b, int64_t ref) {
      return rects[b].img != rects[ref].img ? rects[b].img < rects[ref].img : low(b) < high(ref);
    });
    count[i] = (stop - order.begin()) - i - 1;
    total += count[i];
  }
  return {order, total};
}

// level of every rect (index order = the call's order): longest path over the edges.
// `reads` (empty, or what each rect's object reads): see overlap_edges above.
std::vector<int64_t> levels_of(const std::vector<Rect>& rects, const std::vector<Area>& reads) {
  const int64_t k = static_cast<int64_t>(rects.size());
  std::vector<int64_t> level(k, 0);
  if (k < 2) return level;
  const bool with_reads = !reads.empty();
  // what each object touches (writes, or with reads writes or reads): the rects the sweep pairs
  std::vector<Rect> touch;
  if (with_reads) {
    touch = rects;
    for (int64_t i = 0; i < k; ++i) {
      touch[i].x0 = std::min(rects[i].x0, reads[i].x0);
      touch[i].y0 = std::min(rects[i].y0, reads[i].y0);
      touch[i].x1 = std::max(rects[i].x1, reads[i].x1);
      touch[i].y1 = std::max(rects[i].y1, reads[i].y1);
    }
  }
  const std::vector<Rect>& swept = with_reads ? touch : rects;
  std::vector<int64_t> count_x, count_y;
  auto by_x = sweep(swept, 0, count_x);
  auto by_y = sweep(swept, 1, count_y);
  const bool use_x = by_x.second <= by_y.second;
  const std::vector<int64_t>& order = use_x ? by_x.first : by_y.first;
  const std::vector<int64_t>& count = use_x ? count_x : count_y;
  // predecessors of every rect with the edge's length (CSR), then one pass in index order
  std::vector<int64_t> preds_start(k + 1, 0);
  std::vector<std::tuple<int64_t, int64_t, int64_t>> edges;  // (later, earlier, length)
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = i + 1; j <= i + count[i]; ++j) {
      const int64_t m = std::min(order[i], order[j]), n = std::max(order[i], order[j]);
      if (!with_reads) {
        if (intersect(rects[m], rects[n])) edges.emplace_back(n, m, 1);
        continue;
      }
      if (intersect(rects[m], rects[n]) || intersect(rects[m], reads[n])) {
        edges.emplace_back(n, m, 1);  // strict: m writes where n writes or reads
      } else if (intersect(reads[m], rects[n])) {
        edges.emplace_back(n, m, 0);  // loose: m only reads where n writes
      }
    }
  }
  for (const auto& e : edges) ++preds_start[std::get<0>(e) + 1];
  for (int64_t i = 0; i < k; ++i) preds_start[i + 1] += preds_start[i];
  std::vector<std::pair<int64_t, int64_t>> preds(edges.size());
  std::vector<int64_t> fill(preds_start.begin(), preds_start.end() - 1);
  for (const auto& e : edges) preds[fill[std::get<0>(e)]++] = {std::get<1>(e), std::get<2>(e)};
  for (int64_t n = 0; n < k; ++n) {
    for (int64_t p = preds_start[n]; p < preds_start[n + 1]; ++p) {
      level[n] = std::max(level[n], level[preds[p].first] + preds[p].second);
    }
  }
  return level;
}

// object_params (plan.py) for the planned objects, in scalar_t
template <typename scalar_t>
void fill_params(const at::Tensor& boxes, const at::Tensor& theta, const std::vector<Rect>& objects,
                 bool align, int64_t height, int64_t width, at::Tensor& params) {
  const auto box = boxes.to(params.scalar_type()).contiguous();
  const auto mat = theta.to(params.scalar_type()).reshape({-1, 6}).contiguous();
  const scalar_t* bp = box.data_ptr<scalar_t>();
  const scalar_t* tp = mat.data_ptr<scalar_t>();
  scalar_t* out = params.data_ptr<scalar_t>();
  const scalar_t lim[2] = {static_cast<scalar_t>(width), static_cast<scalar_t>(height)};
  for (size_t r = 0; r < objects.size(); ++r) {
    const Rect& o = objects[r];
    scalar_t* row = out + r * 14;
    for (int c = 0; c < 6; ++c) row[c] = tp[o.index * 6 + c];
    const int64_t extent[2] = {o.x1 - o.x0, o.y1 - o.y0};
    const int64_t origin_i[2] = {o.x0, o.y0};
    for (int a = 0; a < 2; ++a) {  // x, then y
      const scalar_t lo = std::min(std::max(bp[o.index * 4 + a], scalar_t(0)), lim[a]);
      const scalar_t hi = std::min(std::max(bp[o.index * 4 + 2 + a], scalar_t(0)), lim[a]);
      const scalar_t origin = static_cast<scalar_t>(origin_i[a]);
      scalar_t ext = hi - lo;
      scalar_t span;
      if (align) {
        ext = std::max(ext - scalar_t(1), scalar_t(0));
        span = static_cast<scalar_t>(extent[a] - 1);
      } else {
        span = static_cast<scalar_t>(extent[a]);
      }
      const scalar_t centre = (lo + hi) / scalar_t(2);
      const bool pos = ext > 0;
      const bool reads = align ? (pos && span > 0) : true;
      const scalar_t safe = pos ? ext : scalar_t(1);
      const scalar_t arm = (origin + static_cast<scalar_t>(extent[a]) / scalar_t(2)) - centre;
      row[6 + a] = pos ? span / safe : scalar_t(0);                    // k
      row[8 + a] = pos ? scalar_t(2) * arm / safe : scalar_t(0);       // c
      row[10 + a] = (reads ? ext : scalar_t(0)) / scalar_t(2);         // s
      row[12 + a] = reads ? lo - origin : scalar_t(0);                 // o
    }
  }
}

// (objects [K, 6] int64, level bounds [L + 1] int64, params [K, 14] of `dtype`, status):
// status 0 = planned (K == 0: no box has a pixel), 1 = a value check fails (NaN/Inf boxes or
// theta, an image index outside [0, batch)): the caller runs the Python planning, which
// raises the error. `reads`: objects read around their boxes (padding "image" with
// overlap "sequential"), which the levels respect; else each reads its own patch.
std::tuple<at::Tensor, at::Tensor, at::Tensor, int64_t> warp_plan(
    const at::Tensor& boxes, const at::Tensor& theta, const at::Tensor& obj_to_img, int64_t batch,
    int64_t height, int64_t width, at::ScalarType dtype, bool align_corners, bool reads) {
  TORCH_CHECK(boxes.device().is_cpu() && theta.device().is_cpu() && obj_to_img.device().is_cpu(),
              "warp_plan: CPU tensors only");
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "warp_plan: float32 or float64 parameters");
  const int64_t num = boxes.size(0);
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  auto failed = [&]() {
    return std::make_tuple(at::empty({0, 6}, long_opts), at::zeros({1}, long_opts),
                           at::empty({0, 14}, at::TensorOptions().dtype(dtype)), int64_t(1));
  };
  const auto meta = boxes.to(at::kDouble).contiguous();
  const auto img = obj_to_img.to(at::kLong).contiguous();
  const double* mp = meta.data_ptr<double>();
  const int64_t* ip = img.data_ptr<int64_t>();
  for (int64_t i = 0; i < 4 * num; ++i) {
    if (!std::isfinite(mp[i])) return failed();
  }
  if (theta.is_floating_point()) {
    const auto th = theta.to(at::kDouble).contiguous();
    const double* tp = th.data_ptr<double>();
    for (int64_t i = 0; i < th.numel(); ++i) {
      if (!std::isfinite(tp[i])) return failed();
    }
  }
  for (int64_t i = 0; i < num; ++i) {
    if (ip[i] < 0 || ip[i] >= batch) return failed();
  }
  // alive rects, in index order
  std::vector<Rect> rects;
  rects.reserve(num);
  for (int64_t i = 0; i < num; ++i) {
    int64_t pix[4];
    pixel_rect(mp + 4 * i, static_cast<double>(width), static_cast<double>(height), pix);
    if (pix[2] > pix[0] && pix[3] > pix[1]) rects.push_back({pix[0], pix[1], pix[2], pix[3], ip[i], i});
  }
  const int64_t k = static_cast<int64_t>(rects.size());
  std::vector<Area> read_rects;
  if (reads && k > 1) {
    const auto th = theta.to(at::kDouble).reshape({-1, 6}).contiguous();
    const double* tp = th.data_ptr<double>();
    read_rects.reserve(k);
    for (const Rect& o : rects) {
      double clipped[4];
      clip_box(mp + 4 * o.index, static_cast<double>(width), static_cast<double>(height), clipped);
      read_rects.push_back(source_rect(clipped, o, tp + 6 * o.index, align_corners, height, width));
    }
  }
  const auto level = levels_of(rects, read_rects);
  std::vector<int64_t> order(k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return level[a] * batch + rects[a].img < level[b] * batch + rects[b].img;
  });
  const int64_t depth = k ? *std::max_element(level.begin(), level.end()) + 1 : 0;
  auto objects = at::empty({k, 6}, long_opts);
  auto bounds = at::zeros({depth + 1}, long_opts);
  int64_t* op = objects.data_ptr<int64_t>();
  int64_t* bp = bounds.data_ptr<int64_t>();
  std::vector<Rect> planned(k);
  for (int64_t r = 0; r < k; ++r) {
    const Rect& o = rects[order[r]];
    planned[r] = o;
    const int64_t row[6] = {o.x0, o.y0, o.x1 - o.x0, o.y1 - o.y0, o.img, o.index};
    std::copy(row, row + 6, op + 6 * r);
    ++bp[level[order[r]] + 1];
  }
  for (int64_t l = 0; l < depth; ++l) bp[l + 1] += bp[l];
  auto params = at::empty({k, 14}, at::TensorOptions().dtype(dtype));
  if (k) {
    if (dtype == at::kFloat) {
      fill_params<float>(boxes, theta, planned, align_corners, height, width, params);
    } else {
      fill_params<double>(boxes, theta, planned, align_corners, height, width, params);
    }
  }
  return std::make_tuple(objects, bounds, params, int64_t(0));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(augpatch_cpu, m) {
  m.def(
      "warp_plan(Tensor boxes, Tensor theta, Tensor obj_to_img, int batch, int height, int width, "
      "ScalarType dtype, bool align_corners, bool reads=False) -> (Tensor, Tensor, Tensor, int)");
}

TORCH_LIBRARY_IMPL(augpatch_cpu, CPU, m) { m.impl("warp_plan", &warp_plan); }
