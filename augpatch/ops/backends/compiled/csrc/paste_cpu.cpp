// augpatch's compiled CPU kernel of the copy-paste operator (augpatch/ops/paste.py; glue:
// CompiledPaste in augpatch/ops/backends/compiled/__init__.py).
//
// It runs the plan of the eager kernel (eager_paste_forward in augpatch/ops/backends/eager.py)
// with the same arithmetic per pixel, fused: per level of the schedule, in parallel over the
// pixel rows of the level (destination rects of one level never share a pixel), every
// destination pixel computes its location from the parameter table (F.affine_grid's
// arithmetic, sampling.h), samples the source frame there, samples the alpha at the same
// location (the same taps where the alpha shares the image's locations), composites
// a * new + (1 - a) * below into the output and rounds to the image dtype. Cost: the
// pasted pixels plus one copy of the batch. It keeps, in the eager kernel's layout (pixel
// order = the plan's rows), what the backward needs: the sampled alpha [P], new - below
// [C, P], the derivatives of the sampled values [2, C, P] and of the alpha [2, P].

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "sampling.h"

namespace {

// what sample() needs of a buffer it reads: its channels and channel stride
struct Reader {
  int64_t channels, s_c;
};

// The frame object k of a plan reads: frames [K, 5] (x0, y0, width, height, index of the
// frame in the read buffer), the read buffer's strides and (height, width).
struct Frames {
  const int64_t* f;
  int64_t s_b, s_h, s_w, height, width;
  bool whole_image;  // padding "image": taps address the whole frame around the rect

  Frames(const at::Tensor& frames, const at::Tensor& buffer, int64_t count, bool image)
      : s_b(buffer.stride(0)), s_h(buffer.stride(2)), s_w(buffer.stride(3)), height(buffer.size(2)),
        width(buffer.size(3)), whole_image(image) {
    TORCH_CHECK(frames.dim() == 2 && frames.size(0) == count && frames.size(1) == 5 && frames.is_contiguous() &&
                    frames.scalar_type() == at::kLong && frames.device().is_cpu(),
                "augpatch: frame table");
    f = frames.const_data_ptr<int64_t>();
  }

  // point `row` (built for the destination rect of object k) at object k's frame
  template <typename T>
  AUGPATCH_INLINE void apply(Row<T>& row, int64_t k) const {
    const int64_t* q = f + 5 * k;
    if (whole_image) {
      row.frame = q[4] * s_b;
      row.fw = width;
      row.fh = height;
      row.fx = static_cast<T>(q[0]);
      row.fy = static_cast<T>(q[1]);
    } else {
      row.frame = q[4] * s_b + q[1] * s_h + q[0] * s_w;
      row.fw = q[2];
      row.fh = q[3];
      row.fx = row.fy = T(0);
    }
  }
};

// where the forward keeps what the backward needs (null: not needed), pixel px of the plan
struct Keep {
  void* a = nullptr;     // [P]
  void* diff = nullptr;  // [C, P]
  void* dv = nullptr;    // [2, C, P]
  void* da = nullptr;    // [2, P]
};

template <typename S, typename A, typename T, int64_t M, int64_t NC>
void paste_impl(S* out, const S* src, const A* alpha, const Tables<T>& tb, const Tables<T>* atb,
                const Plan& rw, const Params& p, const Reader& rd, const Frames& fr, const Frames* afr,
                bool shared, const Keep& kp) {
  const int64_t C = NC > 0 ? NC : p.channels;
  const Levels& lv = rw.levels;
  const int64_t P = lv.pix.back();
  const bool need_loc = kp.dv != nullptr;
  T* k_a = static_cast<T*>(kp.a);
  T* k_diff = static_cast<T*>(kp.diff);
  T* k_dv = static_cast<T*>(kp.dv);
  T* k_da = static_cast<T*>(kp.da);
  const Reader ard{1, 0};
  for (int64_t l = 0; l < lv.count(); ++l) {
    at::parallel_for(lv.rows[l], lv.rows[l + 1], kRowGrain, [&](int64_t rb, int64_t re) {
      std::vector<T> scratch(static_cast<size_t>(3 * C));
      T* acc = scratch.data();
      T* dx = need_loc ? acc + C : nullptr;
      T* dy = need_loc ? acc + 2 * C : nullptr;
      Taps<T, M> tp, tpa;
      for (int64_t r = rb; r < re; ++r) {
        const int64_t k = rw.obj(r);
        Row<T> row(tb, rw, r, false);
        fr.apply(row, k);
        std::optional<Row<T>> arow;
        if (alpha != nullptr) {
          arow.emplace(shared ? tb : *atb, rw, r, false);
          afr->apply(*arow, k);
        }
        const int64_t n = rw.len(r), p0 = rw.pix(r), o0 = rw.out(r);
        for (int64_t jj = 0; jj < n; ++jj) {
          const int64_t px = p0 + jj;
          locate<T, M>(p, row, jj, tp);
          const Grid<T, M> gd(tp, need_loc, row.frame, fr.s_h, fr.s_w);
          sample<S, T, M, NC>(rd, gd, src, acc, dx, dy);
          if (need_loc) {
            for (int64_t c = 0; c < C; ++c) {
              k_dv[c * P + px] = dx[c];
              k_dv[(C + c) * P + px] = dy[c];
            }
          }
          S* o = out + o0 + jj * p.s_w;
          if (alpha == nullptr) {
            for (int64_t c = 0; c < C; ++c) o[c * p.s_c] = store<S>(acc[c]);
            continue;
          }
          if (!shared) locate<T, M>(p, *arow, jj, tpa);
          const Grid<T, M> ga(shared ? tp : tpa, need_loc, arow->frame, afr->s_h, afr->s_w);
          T a, dax, day;
          sample<A, T, M, 1>(ard, ga, alpha, &a, need_loc ? &dax : nullptr, need_loc ? &day : nullptr);
          k_a[px] = a;  // as sampled: the backward redoes the clamp
          if (need_loc) {
            k_da[px] = dax;
            k_da[P + px] = day;
          }
          const T ac = std::min(std::max(a, T(0)), T(1));
          for (int64_t c = 0; c < C; ++c) {
            const T below = static_cast<T>(o[c * p.s_c]);
            if (k_diff != nullptr) k_diff[c * P + px] = acc[c] - below;
            o[c * p.s_c] = store<S>(ac * acc[c] + (T(1) - ac) * below);
          }
        }
      }
    });
  }
}

// The alpha as the kernel reads it: bool and uint8 as bytes, other dtypes in the compute dtype
// (what the eager kernel converts every sample to).
at::Tensor readable_alpha(const at::Tensor& alpha, at::ScalarType compute) {
  if (alpha.scalar_type() == at::kBool) return alpha.view(at::kByte);
  if (alpha.scalar_type() == at::kByte || alpha.scalar_type() == compute) return alpha;
  return alpha.to(compute);
}

// paste_forward(images, sources, params, objects, frames, level_objects, alpha, aparams,
// aframes, options, need_loc, need_diff, shared) -> (out, a, diff, dv, da).
// `objects` [K, 5] the destination rects in processing order (x0, y0, width, height, image),
// `frames` / `aframes` [K, 5] the rects the image / the alpha reads; `params` / `aparams`
// [K, 14] their parameters (`shared`: the alpha reads with the image's locations and taps);
// options: mode, padding, align, the output's strides (4). The four saved tensors are flat,
// compute dtype, empty where not needed (see the file's comment).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> paste_forward_op(
    const at::Tensor& images, const at::Tensor& sources, const at::Tensor& params_in, const at::Tensor& objects,
    const at::Tensor& frames, c10::IntArrayRef level_objects, const std::optional<at::Tensor>& alpha_in,
    const std::optional<at::Tensor>& aparams_in, const std::optional<at::Tensor>& aframes, c10::IntArrayRef options,
    bool need_loc, bool need_diff, bool shared) {
  TORCH_CHECK(options.size() == 7, "augpatch: malformed paste options");
  TORCH_CHECK(images.dim() == 4 && sources.dim() == 4 && sources.size(1) == images.size(1) &&
                  sources.scalar_type() == images.scalar_type(),
              "augpatch: paste images / sources");
  const int64_t C = images.size(1);
  const at::Tensor params = params_in.contiguous();
  // the destination plan: rows of the destination rects, output offsets with its strides
  const std::vector<int64_t> pv{options[0], options[1], options[2], 0, 0, options[3], options[4], options[5],
                                options[6], C, need_loc, 0, images.size(2), images.size(3)};
  const Params p(pv);
  const Plan plan(objects, level_objects, p);
  auto check_table = [&](const at::Tensor& t) {
    TORCH_CHECK(t.dim() == 2 && t.size(0) == plan.count() && t.size(1) == kParams && t.is_contiguous() &&
                    t.device().is_cpu() && t.scalar_type() == params.scalar_type(),
                "augpatch: paste parameter table");
  };
  check_table(params);
  const at::ScalarType compute = params.scalar_type();
  const bool has_alpha = alpha_in.has_value() && alpha_in->defined();
  at::Tensor out = at::empty_strided(images.sizes(), {p.s_b, p.s_c, p.s_h, p.s_w}, images.options());
  out.copy_(images);
  const int64_t P = plan.levels.pix.back();
  auto flat = [&](bool needed, int64_t rows) {
    return at::empty({needed ? rows * P : 0}, params.options());
  };
  at::Tensor k_a = flat(has_alpha, 1), k_diff = flat(has_alpha && need_diff, C);
  at::Tensor k_dv = flat(need_loc, 2 * C), k_da = flat(has_alpha && need_loc, 2);
  const bool image = p.padding == kImage;
  const Frames fr(frames, sources, plan.count(), image);
  at::Tensor alpha, aparams;
  std::optional<Frames> afr;
  if (has_alpha) {
    alpha = readable_alpha(*alpha_in, compute);
    TORCH_CHECK(alpha.dim() == 4 && alpha.size(1) == 1 && aframes.has_value(), "augpatch: paste alpha");
    afr.emplace(*aframes, alpha, plan.count(), image);
    aparams = shared ? params : aparams_in.value().contiguous();
    check_table(aparams);
  }
  const Reader rd{C, sources.stride(1)};
  Keep kp;
  kp.a = has_alpha ? k_a.data_ptr() : nullptr;
  kp.diff = has_alpha && need_diff ? k_diff.data_ptr() : nullptr;
  kp.dv = need_loc ? k_dv.data_ptr() : nullptr;
  kp.da = has_alpha && need_loc ? k_da.data_ptr() : nullptr;
  dispatch_image(images.scalar_type(), compute, [&](auto image_tag, auto compute_tag) {
    using S = decltype(image_tag);
    using T = decltype(compute_tag);
    const Locations<T> loc(params.const_data_ptr<T>(), plan, p.align);
    const Tables<T> tb = tables_of<T>(loc);
    std::optional<Locations<T>> aloc;
    std::optional<Tables<T>> atb;
    if (has_alpha && !shared) {
      aloc.emplace(aparams.const_data_ptr<T>(), plan, p.align);
      atb = tables_of<T>(*aloc);
    }
    S* o = out.data_ptr<S>();
    const S* s = sources.const_data_ptr<S>();
    const Tables<T>* at_ptr = atb ? &*atb : nullptr;
    const Frames* af_ptr = afr ? &*afr : nullptr;
    dispatch_mode(p.mode, [&](auto mode) {
      constexpr int64_t Mo = decltype(mode)::value;
      auto run = [&](const auto* a) {
        using A = std::remove_const_t<std::remove_pointer_t<decltype(a)>>;
        if (C == 3) {
          paste_impl<S, A, T, Mo, 3>(o, s, a, tb, at_ptr, plan, p, rd, fr, af_ptr, shared, kp);
        } else {
          paste_impl<S, A, T, Mo, 0>(o, s, a, tb, at_ptr, plan, p, rd, fr, af_ptr, shared, kp);
        }
      };
      if (has_alpha && alpha.scalar_type() != at::kByte) {
        run(alpha.const_data_ptr<T>());
      } else {
        run(has_alpha ? alpha.const_data_ptr<uint8_t>() : static_cast<const uint8_t*>(nullptr));
      }
    });
  });
  return {out, k_a, k_diff, k_dv, k_da};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(augpatch_cpu, m) {
  m.def(
      "paste_forward(Tensor images, Tensor sources, Tensor params, Tensor objects, Tensor frames, "
      "int[] level_objects, Tensor? alpha, Tensor? aparams, Tensor? aframes, int[] options, bool need_loc, "
      "bool need_diff, bool shared) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(augpatch_cpu, CPU, m) { m.impl("paste_forward", &paste_forward_op); }
