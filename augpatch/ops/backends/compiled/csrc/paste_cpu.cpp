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
// [C, P], the derivatives of the sampled values [2, C, P] and of the alpha [2, P]. The
// backward (eager_paste_backward's walk) reads only those, never the sources' or the
// alpha's values; either kernel's backward can follow either kernel's forward.

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

// where the backward writes (null: not needed)
template <typename T>
struct PasteGrads {
  T* src = nullptr;    // the sources' gradient (their strides)
  T* alpha = nullptr;  // the alpha's gradient (its strides)
  const TableGrads<T>* loc = nullptr;   // the image's location tables
  const TableGrads<T>* aloc = nullptr;  // the alpha's (the image's when shared)
};

// What one pixel's location gradient adds to the tables (see _location_grads): gix, giy
// the gradient of its sampling location, before padding.
template <typename T, int64_t M>
AUGPATCH_INLINE void location_grads(const Taps<T, M>& tp, T gix, T giy, const TableGrads<T>& gr, int64_t col,
                                    T* row_sums) {
  gix *= tp.dpx;
  giy *= tp.dpy;
  // ix = (gx + 1) * scale + off (- 0.5);  gx = col + row + t02
  const T dgx = gix * tp.sx, dgy = giy * tp.sy;
  gr.col_x[col] += dgx;
  gr.col_y[col] += dgy;
  row_sums[0] += dgx;
  row_sums[1] += dgy;
  row_sums[2] += gix * tp.gx1;
  row_sums[3] += giy * tp.gy1;
  row_sums[4] += gix;
  row_sums[5] += giy;
}

// the sums of a row's pixels onto the row's and the object's entries
template <typename T>
AUGPATCH_INLINE void flush_row(const T* sums, const TableGrads<T>& gr, int64_t r, int64_t k) {
  gr.row_x[r] += sums[0];
  gr.row_y[r] += sums[1];
  T* go = gr.obj + k * 6;
  for (int m = 0; m < 6; ++m) go[m] += sums[m];
}

// The eager backward's walk (eager_paste_backward): levels in reverse over the gradient
// buffer `g` (output strides); a level's pixels pass (1 - alpha) g to what was below them and
// alpha g to what they sampled (the sources, the location). Objects of a level run in
// parallel unless the sources' gradient is needed (objects may read one source image).
template <typename T, int64_t M, int64_t NC>
void paste_backward_impl(T* g, const Tables<T>& tb, const Tables<T>* atb, const Plan& rw, const Params& p,
                         const Reader& rd, const Frames& fr, const Frames* afr, bool shared, const T* k_a,
                         const T* k_diff, const T* k_dv, const T* k_da, const PasteGrads<T>& out) {
  const int64_t C = NC > 0 ? NC : p.channels;
  const Levels& lv = rw.levels;
  const int64_t P = lv.pix.back();
  const bool has_alpha = k_a != nullptr;
  const bool need_loc = out.loc != nullptr;
  for (int64_t l = lv.count() - 1; l >= 0; --l) {
    const int64_t k0 = rw.levels.rows[l], k1 = rw.levels.rows[l + 1];  // rows of the level
    // objects of the level: those whose rows are in [k0, k1)
    const int64_t o0 = rw.obj(k0), o1 = rw.obj(k1 - 1) + 1;
    auto objects = [&](int64_t ob, int64_t oe) {
      std::vector<T> scratch(static_cast<size_t>(2 * C));
      T* gv = scratch.data();
      T* gn = gv + C;
      Taps<T, M> tp, tpa;
      T sums[6], asums[6];
      for (int64_t k = ob; k < oe; ++k) {
        for (int64_t r = rw.first_row[k]; r < rw.first_row[k + 1]; ++r) {
          Row<T> row(tb, rw, r, false);
          fr.apply(row, k);
          std::optional<Row<T>> arow;
          if (has_alpha) {
            arow.emplace(shared ? tb : *atb, rw, r, false);
            afr->apply(*arow, k);
          }
          std::fill(sums, sums + 6, T(0));
          std::fill(asums, asums + 6, T(0));
          const int64_t n = rw.len(r), p0 = rw.pix(r), out0 = rw.out(r), col0 = rw.col(r);
          for (int64_t jj = 0; jj < n; ++jj) {
            const int64_t px = p0 + jj;
            T* o = g + out0 + jj * p.s_w;
            for (int64_t c = 0; c < C; ++c) gv[c] = o[c * p.s_c];
            T g_a = T(0);
            bool alpha_grad = false;
            if (has_alpha) {
              const T a_raw = k_a[px];
              const T a = std::min(std::max(a_raw, T(0)), T(1));
              for (int64_t c = 0; c < C; ++c) {
                o[c * p.s_c] = (T(1) - a) * gv[c];
                gn[c] = a * gv[c];
              }
              if (k_diff != nullptr) {  // the clamp passes the gradient where the sample was inside
                for (int64_t c = 0; c < C; ++c) g_a += gv[c] * k_diff[c * P + px];
                if (!(a_raw >= T(0) && a_raw <= T(1))) g_a = T(0);
                alpha_grad = true;
              }
            } else {
              for (int64_t c = 0; c < C; ++c) {
                o[c * p.s_c] = T(0);
                gn[c] = gv[c];
              }
            }
            if (out.src == nullptr && !need_loc && !alpha_grad) continue;
            locate<T, M>(p, row, jj, tp);
            if (out.src != nullptr) {
              const Grid<T, M> gd(tp, false, row.frame, fr.s_h, fr.s_w);
              for (int64_t c = 0; c < C; ++c) {
                T* s = out.src + c * rd.s_c;
                for (int t = 0; t < Grid<T, M>::K; ++t) s[gd.off[t]] += gd.w[t] * gn[c];
              }
            }
            if (need_loc) {
              T gix = T(0), giy = T(0);
              for (int64_t c = 0; c < C; ++c) {
                gix += gn[c] * k_dv[c * P + px];
                giy += gn[c] * k_dv[(C + c) * P + px];
              }
              location_grads<T, M>(tp, gix, giy, *out.loc, col0 + jj, sums);
            }
            if (!alpha_grad) continue;
            if (!shared) locate<T, M>(p, *arow, jj, tpa);
            const Taps<T, M>& ta = shared ? tp : tpa;
            if (out.aloc != nullptr) {
              location_grads<T, M>(ta, g_a * k_da[px], g_a * k_da[P + px], *out.aloc, col0 + jj,
                                   shared ? sums : asums);
            }
            if (out.alpha != nullptr) {
              const Grid<T, M> ga(ta, false, arow->frame, afr->s_h, afr->s_w);
              for (int t = 0; t < Grid<T, M>::K; ++t) out.alpha[ga.off[t]] += ga.w[t] * g_a;
            }
          }
          if (need_loc) {
            flush_row(sums, *out.loc, r, k);
            if (out.aloc != nullptr && !shared) flush_row(asums, *out.aloc, r, k);
          }
        }
      }
    };
    if (out.src != nullptr) {
      objects(o0, o1);
    } else {
      parallel_dynamic(o1 - o0, [&](int64_t ib, int64_t ie) { objects(o0 + ib, o0 + ie); });
    }
  }
}

// The alpha as the kernel reads it: bool and uint8 as bytes, other dtypes in the compute dtype
// (what the eager kernel converts every sample to), always with the alpha's own strides (the
// alpha's Frames were made from them).
at::Tensor readable_alpha(const at::Tensor& alpha, at::ScalarType compute) {
  if (alpha.scalar_type() == at::kBool) return alpha.view(at::kByte);
  if (alpha.scalar_type() == at::kByte || alpha.scalar_type() == compute) return alpha;
  at::Tensor converted = at::empty_strided(alpha.sizes(), alpha.strides(), alpha.options().dtype(compute));
  converted.copy_(alpha);
  return converted;
}

// The plan of a call and its tables (what the forward and the backward share). `like`: the
// images (or the output gradient) [B, C, H, W]; options: mode, padding, align, the output's
// strides (4); `objects` [K, 5] the destination rects in processing order (x0, y0, width,
// height, image), `frames` / `aframes` [K, 5] the rects the image / the alpha reads, `params`
// / `aparams` [K, 14] their parameters (`shared`: the alpha reads with the image's locations
// and taps, `aparams` is then ignored).
struct Call {
  const at::Tensor params;
  const Params p;
  const Plan plan;
  const Frames fr;
  const bool has_alpha, shared;
  const Reader rd;
  at::Tensor aparams;
  std::optional<Frames> afr;

  static std::vector<int64_t> plan_options(c10::IntArrayRef options, const at::Tensor& like, bool need_loc) {
    TORCH_CHECK(options.size() == 7 && like.dim() == 4, "augpatch: malformed paste options");
    return {options[0], options[1], options[2], 0, 0, options[3], options[4], options[5], options[6],
            like.size(1), need_loc, 0, like.size(2), like.size(3)};
  }

  Call(const at::Tensor& like, const at::Tensor& sources, const at::Tensor& params_in, const at::Tensor& objects,
       const at::Tensor& frames, c10::IntArrayRef level_objects, const std::optional<at::Tensor>& alpha,
       const std::optional<at::Tensor>& aparams_in, const std::optional<at::Tensor>& aframes,
       c10::IntArrayRef options, bool need_loc, bool shared_alpha)
      : params(params_in.contiguous()),
        p(plan_options(options, like, need_loc)),
        plan(objects, level_objects, p),
        fr(frames, sources, plan.count(), p.padding == kImage),
        has_alpha(alpha.has_value() && alpha->defined()),
        shared(shared_alpha && has_alpha),
        rd{like.size(1), sources.stride(1)} {
    TORCH_CHECK(sources.dim() == 4 && sources.size(1) == like.size(1), "augpatch: paste sources");
    check_table(params);
    if (has_alpha) {
      TORCH_CHECK(alpha->dim() == 4 && alpha->size(1) == 1 && aframes.has_value(), "augpatch: paste alpha");
      afr.emplace(*aframes, *alpha, plan.count(), p.padding == kImage);
      aparams = shared ? params : aparams_in.value().contiguous();
      check_table(aparams);
    }
  }

  void check_table(const at::Tensor& t) const {
    TORCH_CHECK(t.dim() == 2 && t.size(0) == plan.count() && t.size(1) == kParams && t.is_contiguous() &&
                    t.device().is_cpu() && t.scalar_type() == params.scalar_type(),
                "augpatch: paste parameter table");
  }
  int64_t pixels() const { return plan.levels.pix.back(); }
  std::vector<int64_t> strides() const { return {p.s_b, p.s_c, p.s_h, p.s_w}; }
  // f(tables of the image, of the alpha or null) with the compute dtype's tables built
  template <typename T, typename F>
  void with_tables(F&& f) const {
    const Locations<T> loc(params.const_data_ptr<T>(), plan, p.align);
    const Tables<T> tb = tables_of<T>(loc);
    if (has_alpha && !shared) {
      const Locations<T> aloc(aparams.const_data_ptr<T>(), plan, p.align);
      const Tables<T> atb = tables_of<T>(aloc);
      f(loc, tb, &aloc, &atb);
    } else {
      f(loc, tb, static_cast<const Locations<T>*>(nullptr), static_cast<const Tables<T>*>(nullptr));
    }
  }
};

// paste_forward(images, sources, params, objects, frames, level_objects, alpha, aparams,
// aframes, options, need_loc, need_diff, shared) -> (out, a, diff, dv, da): the pasted batch
// and the four saved tensors, flat, compute dtype, empty where not needed (see the file's
// comment). Arguments: see Call.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> paste_forward_op(
    const at::Tensor& images, const at::Tensor& sources, const at::Tensor& params, const at::Tensor& objects,
    const at::Tensor& frames, c10::IntArrayRef level_objects, const std::optional<at::Tensor>& alpha_in,
    const std::optional<at::Tensor>& aparams, const std::optional<at::Tensor>& aframes, c10::IntArrayRef options,
    bool need_loc, bool need_diff, bool shared) {
  TORCH_CHECK(sources.scalar_type() == images.scalar_type(), "augpatch: paste sources dtype");
  const Call call(images, sources, params, objects, frames, level_objects, alpha_in, aparams, aframes, options,
                  need_loc, shared);
  const Params& p = call.p;
  const int64_t C = p.channels, P = call.pixels();
  const bool has_alpha = call.has_alpha;
  const at::ScalarType compute = call.params.scalar_type();
  at::Tensor out = at::empty_strided(images.sizes(), call.strides(), images.options());
  out.copy_(images);
  auto flat = [&](bool needed, int64_t rows) { return at::empty({needed ? rows * P : 0}, call.params.options()); };
  at::Tensor k_a = flat(has_alpha, 1), k_diff = flat(has_alpha && need_diff, C);
  at::Tensor k_dv = flat(need_loc, 2 * C), k_da = flat(has_alpha && need_loc, 2);
  const at::Tensor alpha = has_alpha ? readable_alpha(*alpha_in, compute) : at::Tensor();
  Keep kp;
  kp.a = has_alpha ? k_a.data_ptr() : nullptr;
  kp.diff = has_alpha && need_diff ? k_diff.data_ptr() : nullptr;
  kp.dv = need_loc ? k_dv.data_ptr() : nullptr;
  kp.da = has_alpha && need_loc ? k_da.data_ptr() : nullptr;
  const Frames* afr = call.afr ? &*call.afr : nullptr;
  dispatch_image(images.scalar_type(), compute, [&](auto image_tag, auto compute_tag) {
    using S = decltype(image_tag);
    using T = decltype(compute_tag);
    S* o = out.data_ptr<S>();
    const S* s = sources.const_data_ptr<S>();
    call.with_tables<T>([&](const auto&, const Tables<T>& tb, const auto*, const Tables<T>* atb) {
      dispatch_mode(p.mode, [&](auto mode) {
        constexpr int64_t Mo = decltype(mode)::value;
        auto run = [&](const auto* a) {
          using A = std::remove_const_t<std::remove_pointer_t<decltype(a)>>;
          if (C == 3) {
            paste_impl<S, A, T, Mo, 3>(o, s, a, tb, atb, call.plan, p, call.rd, call.fr, afr, call.shared, kp);
          } else {
            paste_impl<S, A, T, Mo, 0>(o, s, a, tb, atb, call.plan, p, call.rd, call.fr, afr, call.shared, kp);
          }
        };
        if (has_alpha && alpha.scalar_type() != at::kByte) {
          run(alpha.const_data_ptr<T>());
        } else {
          run(has_alpha ? alpha.const_data_ptr<uint8_t>() : static_cast<const uint8_t*>(nullptr));
        }
      });
    });
  });
  return {out, k_a, k_diff, k_dv, k_da};
}

// paste_backward(grad, sources, params, objects, frames, level_objects, alpha, aparams,
// aframes, a, diff, dv, da, options, need_src, need_loc, need_alpha, shared) -> (grad_images,
// grad_sources, grad_alpha, grad_params, grad_aparams), compute dtype; an output not needed is
// an empty tensor (grad_aparams also where the alpha is shared). `sources` and `alpha` are
// read for their shapes and strides only; a, diff, dv, da: what paste_forward kept.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> paste_backward_op(
    const at::Tensor& grad, const at::Tensor& sources, const at::Tensor& params, const at::Tensor& objects,
    const at::Tensor& frames, c10::IntArrayRef level_objects, const std::optional<at::Tensor>& alpha,
    const std::optional<at::Tensor>& aparams, const std::optional<at::Tensor>& aframes, const at::Tensor& k_a,
    const at::Tensor& k_diff, const at::Tensor& k_dv, const at::Tensor& k_da, c10::IntArrayRef options,
    bool need_src, bool need_loc, bool need_alpha, bool shared) {
  const Call call(grad, sources, params, objects, frames, level_objects, alpha, aparams, aframes, options,
                  need_loc, shared);
  const Params& p = call.p;
  const int64_t C = p.channels, P = call.pixels();
  const bool has_alpha = call.has_alpha;
  const auto topt = call.params.options();
  const bool need_diff = has_alpha && k_diff.numel() > 0;
  TORCH_CHECK(!has_alpha || k_a.numel() == P, "augpatch: saved alpha");
  TORCH_CHECK(!need_diff || k_diff.numel() == C * P, "augpatch: saved differences");
  TORCH_CHECK(!need_loc || (k_dv.numel() == 2 * C * P && (!has_alpha || !need_diff || k_da.numel() == 2 * P)),
              "augpatch: saved derivatives");
  at::Tensor g_buf = at::empty_strided(grad.sizes(), call.strides(), topt);
  g_buf.copy_(grad);
  auto zeros_like_strided = [&](const at::Tensor& t) {
    return at::empty_strided(t.sizes(), t.strides(), topt).zero_();
  };
  at::Tensor g_src = need_src ? zeros_like_strided(sources) : at::empty({0}, topt);
  const bool alpha_grad = need_alpha && need_diff;
  at::Tensor g_alpha = alpha_grad ? zeros_like_strided(*alpha) : at::empty({0}, topt);
  at::Tensor g_params = at::zeros({need_loc ? call.plan.count() : 0, kParams}, topt);
  const bool separate = need_loc && need_diff && !call.shared;
  at::Tensor g_aparams = at::zeros({separate ? call.plan.count() : 0, kParams}, topt);
  const Frames* afr = call.afr ? &*call.afr : nullptr;
  AT_DISPATCH_FLOATING_TYPES(call.params.scalar_type(), "augpatch_paste_backward", [&] {
    using T = scalar_t;
    call.with_tables<T>([&](const Locations<T>& loc, const Tables<T>& tb, const Locations<T>* aloc,
                            const Tables<T>* atb) {
      Locations<T> g_loc(call.plan);
      const TableGrads<T> gr{g_loc.col_x.data(), g_loc.col_y.data(), g_loc.row_x.data(), g_loc.row_y.data(),
                             g_loc.obj.data()};
      Locations<T> g_aloc(call.plan);
      const TableGrads<T> agr{g_aloc.col_x.data(), g_aloc.col_y.data(), g_aloc.row_x.data(),
                              g_aloc.row_y.data(), g_aloc.obj.data()};
      PasteGrads<T> out;
      out.src = need_src ? g_src.data_ptr<T>() : nullptr;
      out.alpha = alpha_grad ? g_alpha.data_ptr<T>() : nullptr;
      out.loc = need_loc ? &gr : nullptr;
      out.aloc = need_loc && need_diff ? (call.shared ? &gr : &agr) : nullptr;
      const T* a = has_alpha ? k_a.const_data_ptr<T>() : nullptr;
      const T* diff = need_diff ? k_diff.const_data_ptr<T>() : nullptr;
      const T* dv = need_loc ? k_dv.const_data_ptr<T>() : nullptr;
      const T* da = need_loc && need_diff ? k_da.const_data_ptr<T>() : nullptr;
      T* g = g_buf.data_ptr<T>();
      dispatch_mode(p.mode, [&](auto mode) {
        constexpr int64_t Mo = decltype(mode)::value;
        if (C == 3) {
          paste_backward_impl<T, Mo, 3>(g, tb, atb, call.plan, p, call.rd, call.fr, afr, call.shared, a, diff, dv, da,
                                        out);
        } else {
          paste_backward_impl<T, Mo, 0>(g, tb, atb, call.plan, p, call.rd, call.fr, afr, call.shared, a, diff, dv, da,
                                        out);
        }
      });
      if (need_loc) {
        parameter_grads<T>(call.params.const_data_ptr<T>(), call.plan, p.align, g_loc, g_params.data_ptr<T>());
      }
      if (separate && aloc != nullptr) {
        parameter_grads<T>(call.aparams.const_data_ptr<T>(), call.plan, p.align, g_aloc, g_aparams.data_ptr<T>());
      }
      (void)loc;
    });
  });
  return {g_buf, g_src, g_alpha, g_params, g_aparams};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(augpatch_cpu, m) {
  m.def(
      "paste_forward(Tensor images, Tensor sources, Tensor params, Tensor objects, Tensor frames, "
      "int[] level_objects, Tensor? alpha, Tensor? aparams, Tensor? aframes, int[] options, bool need_loc, "
      "bool need_diff, bool shared) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "paste_backward(Tensor grad, Tensor sources, Tensor params, Tensor objects, Tensor frames, "
      "int[] level_objects, Tensor? alpha, Tensor? aparams, Tensor? aframes, Tensor a, Tensor diff, Tensor dv, "
      "Tensor da, int[] options, bool need_src, bool need_loc, bool need_alpha, bool shared) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(augpatch_cpu, CPU, m) {
  m.impl("paste_forward", &paste_forward_op);
  m.impl("paste_backward", &paste_backward_op);
}
