// augpatch's compiled CPU kernel for warp_patches (glue in augpatch/ops/backends/compiled/__init__.py).
//
// It runs the same plan as the eager kernel in augpatch/ops/backends/eager.py, with the same
// arithmetic per pixel (the sampling location of F.affine_grid + F.grid_sample,
// operation for operation, then the taps), but fused: one pass over the pixels of
// a level, no temporaries per tap. Compiled with -ffp-contract=off so that the
// compiler fuses no multiply-add the eager kernel rounds twice.
//
// The plan, location tables, taps and sampling it shares with the paste's kernel are in
// sampling.h (layout of offsets and rows described there).

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "sampling.h"
#include "warp_rows.h"
#include "warp_rows_bwd.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace {

// Where each saved object's pixel bits start (padding other than "image", see Compact):
// objects k0..K-1 (those of the levels >= save_from), ceil(pixels / 64) words each,
// after the K - k0 + 1 value offsets at the head of kept1.
struct MaskLayout {
  int64_t k0 = 0;
  std::vector<int64_t> word;  // [K - k0 + 1]: first word of each object's bits in kept1

  MaskLayout() = default;
  MaskLayout(const Plan& rw, int64_t first) : k0(first), word(rw.count() - first + 1, 0) {
    const int64_t head = rw.count() - first + 1;
    word[0] = head;
    for (int64_t k = first; k < rw.count(); ++k) {
      word[k - first + 1] = word[k - first] + (rw.width[k] * rw.height[k] + 63) / 64;
    }
  }
  int64_t size() const { return word.empty() ? 0 : word.back(); }  // int64 entries of kept1
};

// With patch-relative padding, what a level >= save_from read that is not the input batch:
// `kept1` (int64 words, stored in a tensor of the compute dtype: the dtype the operator
// declares for it, so that graphs recorded before keep their output metadata) holds, per saved object k, the offset of its first kept value
// (kept1[k - k0], the running count; kept1[K - k0] the total), then one bit per pixel of
// its patch (row-major, MaskLayout), set where the value the level read differs bit for bit
// from the input batch (an earlier level wrote it); `kept0` (image dtype) holds those values,
// pixel-major [count, C]. Every other pixel the level read is the input batch's, which the
// backward reads again: so only the pixels earlier levels overwrote are kept.
// The pixels of object k's box in `images` (plan layout: `out` of each row), channel-major
// into `patch` ([C, h * w]).
template <typename S, typename P>
void box_of(int64_t k, const Plan& rw, const P& p, const S* images, std::vector<S>& patch) {
  const int64_t w = rw.width[k], h = rw.height[k], n = w * h, C = p.channels;
  patch.resize(static_cast<size_t>(C * n));
  for (int64_t y = 0; y < h; ++y) {
    const S* src = images + rw.out(rw.first_row[k] + y);
    for (int64_t c = 0; c < C; ++c) {
      S* dst = patch.data() + c * n + y * w;
      if (p.s_w == 1) {
        std::copy(src + c * p.s_c, src + c * p.s_c + w, dst);
      } else {
        for (int64_t x = 0; x < w; ++x) dst[x] = src[x * p.s_w + c * p.s_c];
      }
    }
  }
}

template <typename S>
struct Compact {
  MaskLayout ml;
  const int64_t* offsets = nullptr;  // [K - k0 + 1]
  const uint64_t* mask = nullptr;
  const S* values = nullptr;         // [count, C]

  bool present() const { return offsets != nullptr; }

  // The patch object k read ([C, h * w], into `patch`): the kept values where its bit is
  // set, else the input batch `images` (plan layout: `out` of each row).
  template <typename P>
  void patch_of(int64_t k, const Plan& rw, const P& p, const S* images, std::vector<S>& patch) const {
    box_of(k, rw, p, images, patch);
    const int64_t n = rw.width[k] * rw.height[k], C = p.channels;
    const S* v = values + offsets[k - ml.k0] * C;  // then the kept values, in pixel order
    const uint64_t* bits = mask + (ml.word[k - ml.k0] - ml.word[0]);
    for (int64_t wd = 0; wd < ml.word[k - ml.k0 + 1] - ml.word[k - ml.k0]; ++wd) {
      for (uint64_t m = bits[wd]; m != 0; m &= m - 1) {
        const int64_t i = wd * 64 + __builtin_ctzll(m);
        for (int64_t c = 0; c < C; ++c) patch[c * n + i] = v[c];
        v += C;
      }
    }
  }
};

// Whether *a and *b hold the same bits.
template <typename S>
AUGPATCH_INLINE bool same_bits(const S* a, const S* b) {
  using U = std::conditional_t<sizeof(S) == 8, uint64_t,
                               std::conditional_t<sizeof(S) == 4, uint32_t,
                                                  std::conditional_t<sizeof(S) == 2, uint16_t, uint8_t>>>;
  static_assert(sizeof(U) == sizeof(S), "augpatch: element size");
  U x, y;
  std::memcpy(&x, a, sizeof(S));
  std::memcpy(&y, b, sizeof(S));
  return x == y;
}

// The forward's side of Compact: after each level writes, its patches are marked as
// written (`written`, a byte per pixel of the images of the group being warped, see
// forward_impl); before each saved level runs, the pixels of its patches that an earlier
// level wrote and that differ from the input batch (`images`, any strides; read only where
// written) are marked in the bits and copied out. Objects may be kept in any order of
// levels' parts (forward_impl goes image by image): each object's count goes to kept1's
// head and its values to a chunk; `values` sums the counts up into offsets and joins the
// chunks in object order.
template <typename S>
struct Keeper {
  const Plan& rw;
  MaskLayout ml;
  int64_t* offsets;  // kept1's head, then its bits
  uint64_t* mask;
  const S* images;
  int64_t i_b, i_c, i_h, i_w, height, width;
  int64_t group0 = 0;                                   // first image of the group in `written`
  std::vector<uint8_t> written;                         // [images of the group, H, W]
  std::vector<std::pair<int64_t, int64_t>> marked;      // object ranges marked in `written`
  std::vector<std::pair<int64_t, std::vector<S>>> chunks;  // (first object, its objects' values)

  Keeper(const Plan& plan, int64_t k0, at::Tensor& kept1, const at::Tensor& input)
      : rw(plan), ml(plan, k0), offsets(static_cast<int64_t*>(kept1.data_ptr())),
        mask(reinterpret_cast<uint64_t*>(offsets + ml.word[0])),
        images(input.const_data_ptr<S>()), i_b(input.stride(0)), i_c(input.stride(1)), i_h(input.stride(2)),
        i_w(input.stride(3)), height(input.size(2)), width(input.size(3)) {}

  // the images [b0, b1) come next: nothing of them is written yet
  void begin(int64_t b0, int64_t b1) {
    const size_t size = static_cast<size_t>((b1 - b0) * height * width);
    if (written.size() < size) {
      written.assign(size, 0);
    } else {
      fill_marks(0);
    }
    marked.clear();
    group0 = b0;
  }

  // the first written byte of row y of object k's patch
  uint8_t* written_row(int64_t k, int64_t y) {
    return written.data() + ((rw.image[k] - group0) * height + rw.y0[k] + y) * width + rw.x0[k];
  }

  void fill_marks(uint8_t value) {
    for (const auto& [ka, kb] : marked) {
      for (int64_t k = ka; k < kb; ++k) {
        for (int64_t y = 0; y < rw.height[k]; ++y) std::fill_n(written_row(k, y), rw.width[k], value);
      }
    }
  }

  // objects [ka, kb) (one level's part) have written their patches
  void mark(int64_t ka, int64_t kb) {
    marked.emplace_back(ka, kb);
    for (int64_t k = ka; k < kb; ++k) {
      for (int64_t y = 0; y < rw.height[k]; ++y) std::fill_n(written_row(k, y), rw.width[k], uint8_t(1));
    }
  }

  // objects [ka, kb) (one level's part) in `base` (plan layout) as that level will read them
  template <typename P>
  void keep(const S* base, const P& p, int64_t ka, int64_t kb) {
    const int64_t C = p.channels, k0 = ml.k0;
    auto each = [&](int64_t k, auto&& f) {  // f(i, work pixel, input pixel) where written
      const int64_t w = rw.width[k], h = rw.height[k];
      for (int64_t y = 0; y < h; ++y) {
        const uint8_t* wr = written_row(k, y);
        const S* o = base + rw.out(rw.first_row[k] + y);
        const S* in = images + rw.image[k] * i_b + (rw.y0[k] + y) * i_h + rw.x0[k] * i_w;
        for (int64_t x = 0; x < w; ++x) {
          if (wr[x]) f(y * w + x, o + x * p.s_w, in + x * i_w);
        }
      }
    };
    std::vector<int64_t> first(static_cast<size_t>(kb - ka + 1), 0);  // the chunk's own offsets
    at::parallel_for(ka, kb, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        uint64_t* bits = mask + (ml.word[k - k0] - ml.word[0]);
        int64_t count = 0;
        each(k, [&](int64_t i, const S* o, const S* in) {
          bool differ = false;
          for (int64_t c = 0; c < C; ++c) differ |= !same_bits(o + c * p.s_c, in + c * i_c);
          bits[i / 64] |= uint64_t(differ) << (i % 64);
          count += differ;
        });
        offsets[k - k0 + 1] = count;  // summed up in `values`
        first[k - ka + 1] = count;
      }
    });
    for (int64_t k = ka; k < kb; ++k) first[k - ka + 1] += first[k - ka];
    chunks.emplace_back(ka, std::vector<S>(static_cast<size_t>(first.back() * C)));
    S* const chunk = chunks.back().second.data();
    at::parallel_for(ka, kb, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const uint64_t* bits = mask + (ml.word[k - k0] - ml.word[0]);
        S* v = chunk + first[k - ka] * C;
        const int64_t w = rw.width[k], n_words = ml.word[k - k0 + 1] - ml.word[k - k0];
        for (int64_t wd = 0; wd < n_words; ++wd) {  // the set bits only, in pixel order
          for (uint64_t m = bits[wd]; m != 0; m &= m - 1) {
            const int64_t i = wd * 64 + __builtin_ctzll(m), y = i / w;
            const S* o = base + rw.out(rw.first_row[k] + y) + (i - y * w) * p.s_w;
            for (int64_t c = 0; c < C; ++c) *v++ = o[c * p.s_c];
          }
        }
      }
    });
  }

  // `other`'s chunks (kept by another thread, for other objects) joined to these
  void take_chunks(Keeper& other) {
    for (auto& ch : other.chunks) chunks.push_back(std::move(ch));
    other.chunks.clear();
  }

  // the kept values as one tensor (kept0); the counts in kept1's head become offsets
  at::Tensor values(const at::TensorOptions& options, int64_t C) {
    for (int64_t k = ml.k0; k < rw.count(); ++k) offsets[k - ml.k0 + 1] += offsets[k - ml.k0];
    std::sort(chunks.begin(), chunks.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    at::Tensor out = at::empty({offsets[rw.count() - ml.k0] * C}, options);
    S* dst = out.data_ptr<S>();
    for (auto& ch : chunks) {
      std::copy(ch.second.begin(), ch.second.end(), dst);
      dst += ch.second.size();
      std::vector<S>().swap(ch.second);
    }
    return out;
  }
};

// What the forward keeps for the location gradient of the levels that read earlier
// levels' output (sequential levels >= save_from): with patch-relative padding the values
// earlier levels wrote where those levels read (Compact / Keeper), from which and the
// input batch the backward recomputes the derivatives; with padding "image" (an object
// reads around its box) the two derivatives of every sampled value (`dvdx`, `dvdy`,
// [C, n] each, pixel px at px - pix0).
template <typename PS, typename PT>
struct Saved {
  PT* dvdx = nullptr;
  PT* dvdy = nullptr;
  int64_t pix0 = 0, n = 0;

  // over [dvdx, dvdy] (padding "image")
  Saved(const std::vector<at::Tensor>& kept, bool present, int64_t first, int64_t count) : pix0(first), n(count) {
    if (!present || kept.size() != 2) return;
    dvdx = kept[0].data_ptr<std::remove_const_t<PT>>();
    dvdy = kept[1].data_ptr<std::remove_const_t<PT>>();
  }
};

// Images [b0, b1) of `from` copied into `work` (the plan's layout): a block copy when `from`
// has that layout (`same`) and each image is one dense block, else Tensor::copy_.
inline void copy_images(at::Tensor& work, const at::Tensor& from, bool same, int64_t b0, int64_t b1) {
  const int64_t B = work.size(0);
  if (b0 >= b1) return;
  if (same && work.is_non_overlapping_and_dense() && work.stride(0) * B == work.numel()) {
    const int64_t item = static_cast<int64_t>(work.element_size());
    const int64_t bytes = (b1 - b0) * work.stride(0) * item, at0 = b0 * work.stride(0) * item;
    char* dst = static_cast<char*>(work.data_ptr()) + at0;
    const char* src = static_cast<const char*>(from.const_data_ptr()) + at0;
    at::parallel_for(0, bytes, int64_t(1) << 20, [&](int64_t a, int64_t e) { std::memcpy(dst + a, src + a, e - a); });
    return;
  }
  work.narrow(0, b0, b1 - b0).copy_(from.narrow(0, b0, b1 - b0));
}

// Whether spreading the images of a call over `threads` threads keeps them busy: the
// estimated speedup, total work / max(the largest image's work, total / min(threads, G)),
// is at least 3/4 of min(threads, G). An image's work: the copy of its `image_pixels` and
// kWarpCost per pixel of its boxes (every level; a warped pixel costs several copied ones).
// Two images with every box on one: about 1, so no (each level's rows are spread over the
// threads instead); eight images with one of them busy: yes (measured:
// benchmarks/forward_kernel.py, docs/notes/fwdpar6.md). The outputs do not depend on it.
inline bool balanced_images(const Plan& rw, const std::vector<std::vector<int64_t>>& part, int64_t image_pixels,
                            int threads) {
  constexpr double kWarpCost = 8.0;
  const int64_t G = part.empty() ? 0 : static_cast<int64_t>(part[0].size()) - 1;
  double total = 0.0, largest = 0.0;
  for (int64_t g = 0; g < G; ++g) {
    int64_t pixels = 0;
    for (const auto& pl : part) pixels += rw.first_pix[pl[g + 1]] - rw.first_pix[pl[g]];
    const double work = static_cast<double>(image_pixels) + kWarpCost * static_cast<double>(pixels);
    total += work;
    largest = std::max(largest, work);
  }
  const double used = static_cast<double>(std::min<int64_t>(threads, G));
  return total >= 0.75 * used * std::max(largest, total / used);
}

// `input`: the input batch in the working layout, or null. Levels that read it (every
// level of "parallel", the first of "sequential") then write straight into `work`;
// the others read `work` itself and so keep their values aside until the level has read.
// `per_pixel`: every pixel through locate + Grid + sample (warp_forward_per_pixel, the
// check of the row path: both give the same bits). `fill`: the batch `work` is to be a copy
// of (null: `work` holds it already).
//
// The images are warped one at a time when every level lists its objects by image (the
// plan's order): the image is copied into `work`, then every level of its objects runs,
// then the next image. An object reads and writes its own image only, so this is the same
// arithmetic on the same values in the same order as all images level by level, while
// the levels read what the copy has just brought into the cache (a 50 MB batch copied
// whole is out of it before the first level reads it). Else (and when there is nothing to
// copy: warp_forward_) one group of all images. With several intra-op threads the images
// may go to the threads whole (`spread` below; the same bits).
template <typename S, typename T, int64_t M, int64_t NC>
void forward_impl(at::Tensor& work, const S* input, const Tables<T>& tb, const Plan& rw,
                  const Levels& lv, const Params& p, const Saved<S, T>& sv, Keeper<S>* keeper,
                  bool per_pixel, const at::Tensor* fill) {
  T* const dvdx = sv.dvdx;
  T* const dvdy = sv.dvdy;
  const int64_t save_pix0 = sv.pix0, save_n = sv.n;
  S* base = work.data_ptr<S>();
  const int64_t C = NC > 0 ? NC : p.channels;  // NC: channels known when compiled
  const int64_t L = lv.count();
  auto direct = [&](int64_t l) { return input != nullptr && (p.parallel || l == 0); };
  // the groups: part[l][g] is the first object of group g in level l ([G + 1] each)
  const int64_t B = work.size(0);
  std::vector<std::vector<int64_t>> part(static_cast<size_t>(L));
  bool by_image = true;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t ka = lv.rows[l] < lv.rows[l + 1] ? rw.obj(lv.rows[l]) : 0;
    const int64_t kb = lv.rows[l] < lv.rows[l + 1] ? rw.obj(lv.rows[l + 1] - 1) + 1 : 0;
    for (int64_t k = ka + 1; k < kb; ++k) by_image = by_image && rw.image[k - 1] <= rw.image[k];
    part[l] = {ka, kb};
  }
  by_image = by_image && fill != nullptr;  // without a copy to follow, as before: all at once
  const int64_t G = by_image ? B : 1;
  if (by_image) {
    for (int64_t l = 0; l < L; ++l) {
      const int64_t ka = part[l][0], kb = part[l][1];
      part[l].assign(static_cast<size_t>(G + 1), kb);
      part[l][0] = ka;
      for (int64_t g = 1, k = ka; g <= G; ++g) {  // first object of image >= g
        while (k < kb && rw.image[k] < g) ++k;
        part[l][g] = k;
      }
    }
  }
  // Several images and intra-op threads: the images themselves are spread over the threads
  // (`spread`; dynamically, one image at a time: their box work differs), each image copied
  // and warped whole by one thread with its own `result` and Keeper state (the nested
  // parallel_for calls run inline). An image's work is the same arithmetic on the same values
  // in the same order whichever thread runs it, and images share nothing they write (the kept
  // bits and counts are per object, the kept values per chunk, joined in object order by
  // Keeper::values): the same bits as one thread. One thread, or images too uneven to keep
  // the threads busy (balanced_images): image after image, each level's rows over the
  // threads, as before.
  const int threads = at::get_num_threads();
  bool spread = false;
#ifdef _OPENMP
  spread = G > 1 && threads > 1 && !at::in_parallel_region() && balanced_images(rw, part, p.height * p.width, threads);
#endif
  // `result` holds the values of the levels that cannot write straight into `work`: level l
  // of group g at pixel px - res0[l][g], `span` pixels (parallel, without the input: every
  // level waits for all of the group to read, so the levels one after another; else one
  // level at a time). Spread: one group's from 0 (each thread its own); else as the levels
  // lie in the plan (one buffer for every group, its size as before).
  std::vector<std::vector<int64_t>> res0(static_cast<size_t>(L), std::vector<int64_t>(static_cast<size_t>(G), 0));
  int64_t span = 0;
  for (int64_t g = 0; g < G; ++g) {
    int64_t used = 0;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t first = spread ? rw.first_pix[part[l][g]] : lv.pix[l];
      const int64_t n = spread ? rw.first_pix[part[l][g + 1]] - first : lv.pix[l + 1] - lv.pix[l];
      if (direct(l)) continue;
      res0[l][g] = first - (p.parallel ? used + (spread ? 0 : lv.pix[0]) : 0);
      used = p.parallel ? used + n : std::max(used, n);
    }
    span = std::max(span, used);
  }
  // Where a pixel's channels are C consecutive elements of the batch (channels-last: s_c 1,
  // s_w C; e.g. Pillow's 4-byte pixels), the levels that cannot write straight into `work`
  // keep their values pixel-major in `result` ([span, C]), so that `write` moves each row as
  // one block; else channel-major ([C, span]), one block per channel of a row. The same
  // values either way.
  const bool packed = C > 1 && p.s_c == 1 && p.s_w == C;
  const int64_t r_px = packed ? C : 1, r_c = packed ? 1 : span;  // result's strides
  const int64_t longest = max_row(rw);
  // the row path's first taps are int32 (warp_rows.h, row_axis): frames under 2^30 a side
  const bool row_sized = std::max({longest, max_height(rw), p.width, p.height}) < (int64_t(1) << 30);

  // objects [ka, kb) of level l (one group's part of it), values not written straight into
  // `work` into `result` (pixel px at px - res0)
  auto compute = [&](int64_t l, int64_t ka, int64_t kb, S* result, int64_t res0) {
    const bool to_work = direct(l);
    const S* src = to_work ? input : base;
    const bool save = dvdx != nullptr && l >= p.save_from;
    // nearest and bilinear without saved derivatives: row by row (warp_rows.h, forward_row)
    const bool by_row = M != kBicubic && !save && !per_pixel && row_sized;
    at::parallel_for(rw.first_row[ka], rw.first_row[kb], kRowGrain, [&](int64_t rb, int64_t re) {
      std::vector<T> scratch(static_cast<size_t>(3 * C));
      T* acc = scratch.data();
      T* dx = save ? acc + C : nullptr;
      T* dy = save ? acc + 2 * C : nullptr;
      Taps<T, M> tp;
      RowScratch<T> rows(by_row ? longest : 0, C);
      for (int64_t r = rb; r < re; ++r) {
        const Row<T> row(tb, rw, r, p.padding == kImage);
        const int64_t n = rw.len(r), p0 = rw.pix(r), o0 = rw.out(r);
        if constexpr (M != kBicubic) {
          if (by_row) {
            if (to_work) {
              forward_row<S, T, M, NC>(p, row, n, src, base + o0, p.s_w, p.s_c, rows);
            } else {
              forward_row<S, T, M, NC>(p, row, n, src, result + (p0 - res0) * r_px, r_px, r_c, rows);
            }
            continue;
          }
        }
        for (int64_t jj = 0; jj < n; ++jj) {
          const int64_t px = p0 + jj;
          locate<T, M>(p, row, jj, tp);
          const Grid<T, M> gd(tp, save, row.frame, p.s_h, p.s_w);
          sample<S, T, M, NC>(p, gd, src, acc, dx, dy);
          if (to_work) {
            S* o = base + o0 + jj * p.s_w;
            for (int64_t c = 0; c < C; ++c) o[c * p.s_c] = store<S>(acc[c]);
          } else {
            for (int64_t c = 0; c < C; ++c) result[c * r_c + (px - res0) * r_px] = store<S>(acc[c]);
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
  auto write = [&](int64_t ka, int64_t kb, const S* const res, int64_t res0) {
    const int64_t s_c = p.s_c, s_w = p.s_w, stride = span;
    // row by row, one channel at a time, with every pointer and stride in a local (a
    // byte store may alias anything the lambda reaches by reference)
    const bool whole = packed;  // pixel-major values: a row is one block
    at::parallel_for(rw.first_row[ka], rw.first_row[kb], kRowGrain, [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        const int64_t n = rw.len(r);
        S* const o = base + rw.out(r);
        if (whole) {
          const S* const v = res + (rw.pix(r) - res0) * C;
          std::copy(v, v + n * C, o);
          continue;
        }
        const S* const v = res + (rw.pix(r) - res0);
        for (int64_t c = 0; c < C; ++c) {
          S* const oc = o + c * s_c;
          const S* const vc = v + c * stride;
          if (s_w == 1) {
            std::copy(vc, vc + n, oc);
          } else {
            for (int64_t jj = 0; jj < n; ++jj) oc[jj * s_w] = vc[jj];
          }
        }
      }
    });
  };
  // group g (images [b0, b1)), with `result` ([C * span]) and `kp` (the Keeper's state of
  // the group) the calling thread's own
  auto run_group = [&](int64_t g, S* result, Keeper<S>* kp) {
    const int64_t b0 = by_image ? g : 0, b1 = by_image ? g + 1 : B;
    if (fill != nullptr) copy_images(work, *fill, input != nullptr, b0, b1);
    if (kp != nullptr) kp->begin(b0, b1);
    if (p.parallel && input == nullptr) {  // all read the batch as it was; higher levels write last
      for (int64_t l = 0; l < L; ++l) {
        if (part[l][g] < part[l][g + 1]) compute(l, part[l][g], part[l][g + 1], result, res0[l][g]);
      }
      for (int64_t l = 0; l < L; ++l) {
        if (part[l][g] < part[l][g + 1]) write(part[l][g], part[l][g + 1], result, res0[l][g]);
      }
      return;
    }
    for (int64_t l = 0; l < L; ++l) {  // parallel with the input: levels write in order (higher wins)
      const int64_t ka = part[l][g], kb = part[l][g + 1];
      if (ka == kb) continue;
      if (kp != nullptr && l >= p.save_from) kp->keep(base, p, ka, kb);  // the patches as this level will read them
      compute(l, ka, kb, result, res0[l][g]);
      if (!direct(l)) write(ka, kb, result, res0[l][g]);
      if (kp != nullptr && l + 1 < L) kp->mark(ka, kb);  // read by later levels
    }
  };
#ifdef _OPENMP
  if (spread) {
    std::atomic<int64_t> next{0};  // the next image to take
    std::exception_ptr failure;
    // each thread's Keeper state (copies of the unused `keeper`), its chunks joined after
    std::vector<Keeper<S>> own;
    for (int t = 0; keeper != nullptr && t < threads; ++t) own.push_back(*keeper);
#pragma omp parallel num_threads(threads)
    {
      try {
        std::vector<S> result(static_cast<size_t>(C * span));
        Keeper<S>* kp = keeper != nullptr ? &own[static_cast<size_t>(omp_get_thread_num())] : nullptr;
        for (int64_t g = next++; g < G; g = next++) run_group(g, result.data(), kp);
      } catch (...) {
        next = G;  // the others stop after their image
#pragma omp critical(augpatch_forward_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
    for (auto& k : own) keeper->take_chunks(k);
    return;
  }
#endif
  std::vector<S> result(static_cast<size_t>(C * span));
  for (int64_t g = 0; g < G; ++g) run_group(g, result.data(), keeper);
}

// Units of the backward scatter: runs of rows [r0, r1) whose reads land in memory no other
// unit of the level touches. With patch-relative padding an object reads only its own
// patch, and a level's patches do not overlap (schedule.py): one object per unit
// ("sequential"), so the output gradients taken out at a time are one patch's. Padding
// "image" reads around the box, and "parallel" takes every level out first: one image's
// part of the level per unit.
std::vector<int64_t> scatter_units(const Plan& rw, const Params& p, int64_t r0, int64_t r1) {
  if (p.padding == kImage || p.parallel) return image_runs(rw, r0, r1);
  std::vector<int64_t> units;
  for (int64_t r = r0; r < r1; r = rw.first_row[rw.obj(r) + 1]) units.push_back(r);
  units.push_back(r1);
  return units;
}

// `per_pixel`: every pixel through the per-pixel loop (warp_backward_per_pixel, the check
// of the row path: both give the same bits).
template <typename S, typename T, int64_t M, int64_t NC>
void backward_impl(at::Tensor& g_buf, const S* images, const Tables<T>& tb, const Plan& rw,
                   const Levels& lv, const Params& p, const Saved<const S, const T>& sv,
                   const Compact<S>& cp, const TableGrads<T>& gr, bool per_pixel) {
  const T* const dvdx = sv.dvdx;
  const T* const dvdy = sv.dvdy;
  const int64_t save_pix0 = sv.pix0, save_n = sv.n;
  T* g = g_buf.data_ptr<T>();
  const int64_t C = NC > 0 ? NC : p.channels;  // NC: channels known when compiled
  const int64_t L = lv.count();
  const int64_t total = lv.pix.back();
  // The output gradients of a level's pixels are taken out of g (the state before the
  // level reaches those pixels only via reads) before any of its reads is scattered.
  // sequential: one unit (scatter_units) of a level at a time (its reads land in its own
  // memory); parallel: every level read the input, so all are taken out before any scatter.
  std::vector<T> pending(static_cast<size_t>(p.parallel ? C * total : 0));
  const int64_t longest = max_row(rw);
  // nearest and bilinear with patch-relative padding: row by row (warp_rows_bwd.h); the
  // row path's first taps are int32: frames under 2^30 a side
  const bool by_row = M != kBicubic && p.padding != kImage && !per_pixel &&
                      std::max({longest, max_height(rw), p.width, p.height}) < (int64_t(1) << 30);
  // sequential row path with contiguous rows ("dense"): a unit is one object, whose reads
  // land in its own box (patch-relative padding), the pixels of its output gradients. They
  // are read in g itself (nothing else touches the box meanwhile), and the scatter sums
  // into a dense zeroed [C, h * w] array in cache (not into the batch-sized buffer, whose
  // channel planes alias in the cache), which then replaces the box in g: each address
  // gets the same additions in the same order, starting from the same zero as the
  // taken-out (zeroed) box of the other paths, so the same bits. Its derivatives read the
  // values the object read from a dense copy of its box too ([C, h * w], box_of /
  // patch_of), in cache and without the channel planes' aliasing.
  const bool dense = by_row && !p.parallel && p.s_w == 1;
  auto take = [&](int64_t out, int64_t px, T* dst, int64_t stride) {
    T* o = g + out;
    for (int64_t c = 0; c < C; ++c) {
      dst[c * stride + px] = o[c * p.s_c];
      o[c * p.s_c] = T(0);
    }
  };
  // The rows of the next unit (sequential): its output gradients (taken, then scattered
  // to: a patch's reads stay in its patch with patch-relative padding) and, for the location
  // gradient, its values in the input batch (read by the derivatives or Compact::patch_of),
  // asked for while this unit runs: the unit's first reads then find them in cache (the
  // batch is far larger than the caches, and a patch's rows are short streams the hardware
  // prefetchers pick up late). Contiguous rows only; a hint, no result depends on it.
  auto prefetch_unit = [&](int64_t u0, int64_t u1) {
    if (p.s_w != 1) return;
    constexpr int64_t kLineT = 64 / static_cast<int64_t>(sizeof(T));
    constexpr int64_t kLineS = 64 / static_cast<int64_t>(sizeof(S));
    for (int64_t r = u0; r < u1; ++r) {
      const int64_t o0 = rw.out(r), n = rw.len(r);
      for (int64_t c = 0; c < C; ++c) {
        const T* go = g + o0 + c * p.s_c;
        for (int64_t x = 0; x < n; x += kLineT) __builtin_prefetch(go + x, 1);
        __builtin_prefetch(go + n - 1, 1);
        if (p.need_loc && images != nullptr) {
          const S* io = images + o0 + c * p.s_c;
          for (int64_t x = 0; x < n; x += kLineS) __builtin_prefetch(io + x, 0);
          __builtin_prefetch(io + n - 1, 0);
        }
      }
    }
  };
  auto scatter = [&](int64_t l) {
    // the derivatives of this level's values were kept, or what it read of earlier levels
    const bool saved = dvdx != nullptr && !p.parallel && l >= p.save_from;
    const bool kept = cp.present() && !p.parallel && l >= p.save_from;
    // values read here came from the input or (sequential) from earlier levels' writes
    const bool to_buffer = p.need_img || (l > 0 && !p.parallel);
    const std::vector<int64_t> runs = scatter_units(rw, p, lv.rows[l], lv.rows[l + 1]);
    const int64_t n_runs = static_cast<int64_t>(runs.size()) - 1;
    parallel_dynamic(n_runs, [&](int64_t ib, int64_t ie) {
      std::vector<T> scratch(static_cast<size_t>(3 * C));
      T* dx = scratch.data();
      T* dy = dx + C;
      T* gv = dx + 2 * C;
      Taps<T, M> tp;
      std::vector<T> local;  // sequential: the output gradients of this unit
      std::vector<S> patch;  // kept: the patch the object read, [C, h * w]
      std::vector<T> sums;   // dense: the unit's gradient sums, [C, stride]
      RowGradScratch<T> row_scratch(by_row ? longest : 0);
      for (int64_t run = ib; run < ie; ++run) {
        const int64_t r0 = runs[run], r1 = runs[run + 1];
        if (!p.parallel && run + 1 < ie) prefetch_unit(runs[run + 1], runs[run + 2]);
        const T* taken = pending.data();  // [C, stride], pixel px at px - res0
        int64_t stride = total, res0 = 0;
        // dense: the unit's reads are summed in `sums` (dense, see above), which then
        // replace its output gradients in g; until then g holds them: read there, not taken
        const bool into_sums = dense && to_buffer;
        if (!p.parallel && !into_sums) {
          res0 = rw.pix(r0);
          stride = rw.pix(r1 - 1) + rw.len(r1 - 1) - res0;
          local.resize(static_cast<size_t>(C * stride));
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t n = rw.len(r), p0 = rw.pix(r) - res0, o0 = rw.out(r);
            if (p.s_w == 1) {  // a row of each channel is contiguous: copy, then zero it
              for (int64_t c = 0; c < C; ++c) {
                T* o = g + o0 + c * p.s_c;
                std::copy(o, o + n, local.data() + c * stride + p0);
                std::fill(o, o + n, T(0));
              }
            } else {
              for (int64_t jj = 0; jj < n; ++jj) take(o0 + jj * p.s_w, p0 + jj, local.data(), stride);
            }
          }
          taken = local.data();
        }
        if (into_sums) {
          res0 = rw.pix(r0);
          stride = rw.pix(r1 - 1) + rw.len(r1 - 1) - res0;
          sums.assign(static_cast<size_t>(C * stride), T(0));
        }
        int64_t patch_k = -1;
        bool from_patch = false;  // the derivatives read `patch` (this unit's object)
        for (int64_t r = r0; r < r1; ++r) {
          const Row<T> row(tb, rw, r, p.padding == kImage);
          T* g_col_x = gr.col_x + rw.col(r);
          T* g_col_y = gr.col_y + rw.col(r);
          // what the row's pixels add to the row's and the object's entries, summed here
          T sum_dgx = T(0), sum_dgy = T(0), sum_x1 = T(0), sum_y1 = T(0), sum_ix = T(0), sum_iy = T(0);
          const int64_t n = rw.len(r), p0 = rw.pix(r);
          int64_t n_left = n;  // pixels for the per-pixel loop
          const int64_t k = rw.obj(r);
          if (kept && p.need_loc && k != patch_k) {
            cp.patch_of(k, rw, p, images, patch);
            patch_k = k;
            from_patch = true;
          } else if (dense && p.need_loc && !kept && k != patch_k) {
            box_of(k, rw, p, images, patch);
            patch_k = k;
            from_patch = true;
          }
          if constexpr (M != kBicubic) {
            if (by_row) {
              const int64_t pw = rw.width[k], pn = pw * rw.height[k];
              const RowSums<T> s = backward_row<S, T, M, NC>(
                  p, row, n, into_sums ? g + rw.out(r) : taken + (p0 - res0), into_sums ? p.s_c : stride, p.need_loc, from_patch ? patch.data() : (p.need_loc ? images + row.frame : nullptr),
                  from_patch ? pw : p.s_h, from_patch ? 1 : p.s_w, from_patch ? pn : p.s_c,
                  g_col_x, g_col_y, to_buffer, into_sums ? sums.data() : g + row.frame, into_sums ? pw : p.s_h,
                  into_sums ? 1 : p.s_w, into_sums ? pn : p.s_c, row_scratch);
              sum_dgx = s.dgx;
              sum_dgy = s.dgy;
              sum_x1 = s.x1;
              sum_y1 = s.y1;
              sum_ix = s.ix;
              sum_iy = s.iy;
              n_left = 0;
            }
          }
          for (int64_t jj = 0; jj < n_left; ++jj) {
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
                  const Grid<T, M> gp(tp, true, 0, rw.width[k], 1);
                  derivatives<S, T, M, NC>(p, gp, patch.data(), rw.width[k] * rw.height[k], dx, dy);
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
        if (into_sums) {  // the unit's sums replace its output gradients (read above)
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t n = rw.len(r), p0 = rw.pix(r) - res0, o0 = rw.out(r);
            for (int64_t c = 0; c < C; ++c) {
              const T* a = sums.data() + c * stride + p0;
              std::copy(a, a + n, g + o0 + c * p.s_c);
            }
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

void check_params(const at::Tensor& params, const Plan& plan) {
  TORCH_CHECK(params.dim() == 2 && params.size(0) == plan.count() && params.size(1) == kParams &&
                  params.is_contiguous() && params.device().is_cpu(),
              "augpatch: object parameters");
}

// forward: warps `work` in place (a copy of the batch, or with `fill` a batch-sized buffer
// that it first copies `original` into, image by image: forward_impl; `input`, the batch
// itself in the same layout, or an empty tensor; `original`, the batch itself in any layout);
// `params` [K, 14] the per-object parameters in processing order (see
// _warp._object_params). Returns what the backward needs for the location gradient of
// the levels >= save_from (empty tensors when nothing is needed): with patch-relative
// padding [kept0, kept1] (Compact), with padding "image" [dvdx, dvdy] ([C, pixels of
// those levels] each).
std::vector<at::Tensor> warp_forward(at::Tensor work, at::Tensor input, const at::Tensor& original,
                                     at::Tensor params, at::Tensor objects, c10::IntArrayRef level_objects,
                                     c10::IntArrayRef options, bool per_pixel = false, bool fill = false) {
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
  std::vector<at::Tensor> kept;
  if (p.padding != kImage) {
    // kept1: int64 words in a compute-dtype tensor (the dtype the operator declares)
    const int64_t words = save ? MaskLayout(plan, level_objects[p.save_from]).size() : 0;
    kept.push_back(at::empty({0}, work.options()));
    kept.push_back(at::zeros({words * 8 / static_cast<int64_t>(params.element_size())}, params.options()));
  } else {
    kept.push_back(at::empty({rows_saved, save_n}, params.options()));
    kept.push_back(at::empty({rows_saved, save_n}, params.options()));
  }
  dispatch_image(work.scalar_type(), compute, [&](auto image_tag, auto compute_tag) {
    using S = decltype(image_tag);
    using T = decltype(compute_tag);
    const Locations<T> loc(params.const_data_ptr<T>(), plan, p.align);
    const Tables<T> tb = tables_of<T>(loc);
    const Saved<S, T> sv(kept, save && p.padding == kImage, save_pix0, save_n);
    TORCH_CHECK(input.numel() == 0 || input.scalar_type() == work.scalar_type(), "augpatch: input dtype");
    TORCH_CHECK(original.scalar_type() == work.scalar_type() && original.sizes() == work.sizes(),
                "augpatch: input batch");
    const S* in = input.numel() > 0 ? input.const_data_ptr<S>() : nullptr;
    std::optional<Keeper<S>> keeper;
    if (save && p.padding != kImage) keeper.emplace(plan, level_objects[p.save_from], kept[1], original);
    dispatch_mode(p.mode, [&](auto mode) {
      constexpr int64_t Mo = decltype(mode)::value;
      Keeper<S>* kp = keeper ? &*keeper : nullptr;
      if (p.channels == 3) {  // RGB: loops over channels unrolled
        forward_impl<S, T, Mo, 3>(work, in, tb, rw, lv, p, sv, kp, per_pixel, fill ? &original : nullptr);
      } else {
        forward_impl<S, T, Mo, 0>(work, in, tb, rw, lv, p, sv, kp, per_pixel, fill ? &original : nullptr);
      }
    });
    if (keeper) kept[0] = keeper->values(work.options(), p.channels);
  });
  return kept;
}

// backward: g_buf (the output gradient, compute dtype, plan strides) becomes the
// input gradient in place; returns [the gradient of `params`] (empty when no
// location gradient is needed). `images` is read where a level read the input batch
// and its derivatives were not saved.
std::vector<at::Tensor> warp_backward(at::Tensor g_buf, at::Tensor images, at::Tensor params,
                                      at::Tensor objects, c10::IntArrayRef level_objects,
                                      std::vector<at::Tensor> saved, c10::IntArrayRef options,
                                      bool per_pixel = false) {
  const Params p(options);
  const Plan plan(objects, level_objects, p);
  check_params(params, plan);
  TORCH_CHECK(g_buf.scalar_type() == params.scalar_type(), "augpatch: gradient buffer dtype");
  const Plan& rw = plan;
  const Levels& lv = plan.levels;
  at::Tensor grad = at::zeros({p.need_loc ? params.size(0) : 0, kParams}, params.options());
  // what the forward kept: [kept0, kept1] (Compact) or [dvdx, dvdy] (empty when nothing was needed)
  TORCH_CHECK(saved.size() == 2, "augpatch: saved tensors");
  const bool has_saved = (p.padding != kImage ? saved[1] : saved[0]).numel() > 0;
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
    const Saved<const S, const T> sv(saved, has_saved && p.padding == kImage, save_pix0, save_n);
    Compact<S> cp;
    if (has_saved && p.padding != kImage) {
      cp.ml = MaskLayout(plan, level_objects[p.save_from]);
      TORCH_CHECK(saved[1].scalar_type() == params.scalar_type() && saved[1].is_contiguous() &&
                      saved[1].numel() * static_cast<int64_t>(saved[1].element_size()) == cp.ml.size() * 8 &&
                      saved[0].is_contiguous() &&
                      saved[0].scalar_type() == images.scalar_type(),
                  "augpatch: saved tensors");
      cp.offsets = static_cast<const int64_t*>(saved[1].const_data_ptr());
      cp.mask = reinterpret_cast<const uint64_t*>(cp.offsets + cp.ml.word[0]);
      TORCH_CHECK(saved[0].numel() == cp.offsets[rw.count() - cp.ml.k0] * p.channels, "augpatch: saved tensors");
      cp.values = saved[0].const_data_ptr<S>();
    }
    const S* src = images.numel() > 0 ? images.const_data_ptr<S>() : nullptr;
    TORCH_CHECK(src != nullptr || !p.need_loc || (!p.parallel && p.save_from == 0),
                "augpatch: the input batch is needed for the location gradient");
    dispatch_mode(p.mode, [&](auto mode) {
      constexpr int64_t Mo = decltype(mode)::value;
      if (p.channels == 3) {
        backward_impl<S, T, Mo, 3>(g_buf, src, tb, rw, lv, p, sv, cp, gr, per_pixel);
      } else {
        backward_impl<S, T, Mo, 0>(g_buf, src, tb, rw, lv, p, sv, cp, gr, per_pixel);
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

// An uninitialised batch-sized CPU buffer that the caller fills whole right away (the
// working copy, the gradient buffer). Linux: its 2 MiB-aligned interior is advised to be
// backed by transparent huge pages (THP "madvise" mode), so that its first touch faults 2 MiB
// at a time instead of 4 KiB: a fresh 50 MB buffer (M) costs the kernel about a third of its
// page-fault time (python benchmarks/forward_kernel.py, docs/notes/fwd3.md). Advice only: a
// kernel without THP ignores it and the buffer is the same; nothing is mapped beyond the
// buffer's own pages, which the caller writes anyway. AUGPATCH_CPU_HUGE_PAGES=0 (read once)
// turns it off.
at::Tensor empty_batch(c10::IntArrayRef sizes, c10::IntArrayRef strides, const at::TensorOptions& options) {
  at::Tensor out = at::empty_strided(sizes, strides, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(out.data_ptr());
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + out.nbytes()) & ~(kHuge - 1);
  static const bool advise = [] {  // AUGPATCH_CPU_HUGE_PAGES=0 turns the advice off
    const char* v = std::getenv("AUGPATCH_CPU_HUGE_PAGES");
    return v == nullptr || std::string(v) != "0";
  }();
  if (advise && out.device().is_cpu() && last > first) {
    madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
    // With several intra-op threads the copy that fills the buffer faults its huge pages from
    // several threads at once, which some kernels (virtual machines: this project's 2-core
    // machines) serialise at a cost of 10-100x: a 50 MB buffer took 200-350 ms where one
    // thread takes 8 ms (benchmarks/huge_page_faults.py). So the calling thread faults them
    // first, one write per huge page (the caller overwrites the whole buffer anyway).
    if (at::get_num_threads() > 1) {
      for (uintptr_t a = first; a < last; a += kHuge) *reinterpret_cast<volatile char*>(a) = 0;
    }
  }
#endif
  return out;
}

// Whether `t`'s elements lie where `strides` puts them: the same strides, but for a dimension
// of size 1, whose stride no element uses (a [1, C, H, W] view made by unsqueeze or [None]
// has the plan's layout whatever its batch stride).
bool same_layout(const at::Tensor& t, c10::IntArrayRef strides) {
  if (t.dim() != static_cast<int64_t>(strides.size())) return false;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) != 1 && t.stride(d) != strides[d]) return false;
  }
  return true;
}

// A copy of `images` with the plan's strides (the working copy of the batch).
at::Tensor plan_copy(const at::Tensor& images, const Params& p) {
  at::Tensor out = empty_batch(images.sizes(), strides_of(p), images.options());
  out.copy_(images);
  return out;
}

// The gradient buffer of the backward: a copy of the output gradient (compute dtype, plan
// strides) that becomes the input gradient in place.
at::Tensor gradient_buffer(const at::Tensor& grad, const Params& p, at::ScalarType compute) {
  at::Tensor buf = empty_batch(grad.sizes(), strides_of(p), grad.options().dtype(compute));
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
// flat tensors (patch-relative padding: of the patches read by "sequential" levels after
// the first, only the values earlier levels wrote (image dtype) and where they lie (int64
// words in a compute-dtype tensor), see Compact; padding "image": the two derivatives of every value sampled by those
// levels, compute dtype). No autograd here:
// augpatch's operator (augpatch::warp, _op.py) owns it.
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_op(const at::Tensor& images, const at::Tensor& params,
                                                          const at::Tensor& objects, c10::IntArrayRef level_objects,
                                                          c10::IntArrayRef options, bool need_loc, bool per_pixel) {
  const auto opt = with_needs(options, level_objects, need_loc, false);
  const Params p(opt);
  // the working copy, filled image by image by the forward itself (forward_impl)
  at::Tensor work = empty_batch(images.sizes(), strides_of(p), images.options());
  // levels that read the input batch read it directly where its layout is the plan's
  const bool same = same_layout(images, strides_of(p));
  const at::Tensor read = same ? images : at::empty({0}, images.options());
  auto kept = warp_forward(work, read, images, params.contiguous(), objects, level_objects, opt, per_pixel, true);
  return {work, kept[0].reshape({-1}), kept[1].reshape({-1})};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> warp_forward_op(const at::Tensor& images, const at::Tensor& params,
                                                               const at::Tensor& objects,
                                                               c10::IntArrayRef level_objects,
                                                               c10::IntArrayRef options, bool need_loc) {
  return forward_op(images, params, objects, level_objects, options, need_loc, false);
}

// warp_forward_per_pixel: warp_forward with every pixel on the per-pixel path (no row
// path); for tests, which check that both give the same bits.
std::tuple<at::Tensor, at::Tensor, at::Tensor> warp_forward_per_pixel_op(
    const at::Tensor& images, const at::Tensor& params, const at::Tensor& objects, c10::IntArrayRef level_objects,
    c10::IntArrayRef options, bool need_loc) {
  return forward_op(images, params, objects, level_objects, options, need_loc, true);
}

// warp_backward on the operators' arguments: `g_buf` becomes the images' gradient in place;
// `images` is read again (in the plan's layout) only for the location gradient; kept0 /
// kept1 are what warp_forward_op returned.
std::vector<at::Tensor> backward_into_buffer(at::Tensor& g_buf, const at::Tensor& images, const at::Tensor& params,
                                             const at::Tensor& objects, c10::IntArrayRef level_objects,
                                             const at::Tensor& kept0, const at::Tensor& kept1,
                                             const std::vector<int64_t>& opt, bool per_pixel = false) {
  const Params p(opt);
  const bool need_loc = p.need_loc;
  at::Tensor source = at::empty({0}, images.options());
  if (need_loc) {
    source = same_layout(images, strides_of(p)) ? images : plan_copy(images, p);
  }
  std::vector<at::Tensor> kept{kept0, kept1};
  if (p.padding == kImage) {  // [dvdx, dvdy], [C, pixels] each
    const int64_t rows = kept0.numel() > 0 ? p.channels : 0;
    kept = {kept0.reshape({rows, rows > 0 ? -1 : 0}), kept1.reshape({rows, rows > 0 ? -1 : 0})};
  }
  return warp_backward(g_buf, source, params.contiguous(), objects, level_objects, kept, opt, per_pixel);
}

// warp_backward(grad, images, params, objects, level_objects, kept0, kept1, options,
// need_img, need_loc) -> (grad_images, grad_params); an output that is not
// needed is an empty tensor. `images` is the input batch of the forward (read again where
// a level read it), `kept0`/`kept1` what warp_forward returned.
std::tuple<at::Tensor, at::Tensor> backward_op(const at::Tensor& grad, const at::Tensor& images,
                                               const at::Tensor& params, const at::Tensor& objects,
                                               c10::IntArrayRef level_objects, const at::Tensor& kept0,
                                               const at::Tensor& kept1, c10::IntArrayRef options, bool need_img,
                                               bool need_loc, bool per_pixel) {
  const auto opt = with_needs(options, level_objects, need_loc, need_img);
  const Params p(opt);
  at::Tensor g_buf = gradient_buffer(grad, p, params.scalar_type());
  auto g = backward_into_buffer(g_buf, images, params, objects, level_objects, kept0, kept1, opt, per_pixel);
  at::Tensor grad_images = need_img ? g_buf.to(images.scalar_type()) : at::empty({0}, images.options());
  at::Tensor grad_params = need_loc ? g[0] : at::empty({0}, params.options());
  return {grad_images, grad_params};
}

std::tuple<at::Tensor, at::Tensor> warp_backward_op(const at::Tensor& grad, const at::Tensor& images,
                                                    const at::Tensor& params, const at::Tensor& objects,
                                                    c10::IntArrayRef level_objects, const at::Tensor& kept0,
                                                    const at::Tensor& kept1, c10::IntArrayRef options,
                                                    bool need_img, bool need_loc) {
  return backward_op(grad, images, params, objects, level_objects, kept0, kept1, options, need_img, need_loc, false);
}

// warp_backward_per_pixel: warp_backward with every pixel on the per-pixel loop (no row
// path); for tests, which check that both give the same bits.
std::tuple<at::Tensor, at::Tensor> warp_backward_per_pixel_op(const at::Tensor& grad, const at::Tensor& images,
                                                              const at::Tensor& params, const at::Tensor& objects,
                                                              c10::IntArrayRef level_objects, const at::Tensor& kept0,
                                                              const at::Tensor& kept1, c10::IntArrayRef options,
                                                              bool need_img, bool need_loc) {
  return backward_op(grad, images, params, objects, level_objects, kept0, kept1, options, need_img, need_loc, true);
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

// warp_forward_(work, params, objects, level_objects, options): warp_forward in place on
// `work` (the plan's layout; every level reads `work` itself), no gradient, nothing kept.
// For callers that own the batch and warp a few boxes of it (augpatch.policies' box-only
// ops): no copy of the batch, no canvas.
void warp_forward_inplace_op(at::Tensor work, const at::Tensor& params, const at::Tensor& objects,
                             c10::IntArrayRef level_objects, c10::IntArrayRef options) {
  const auto opt = with_needs(options, level_objects, false, false);
  const Params p(opt);
  TORCH_CHECK(work.device().is_cpu() && work.dim() == 4 && work.strides() == c10::IntArrayRef(strides_of(p)),
              "augpatch: warp_forward_ needs a CPU batch in the plan's layout");
  // nothing is kept (no location gradient), so `work` stands for the original batch
  warp_forward(work, at::empty({0}, work.options()), work, params.contiguous(), objects, level_objects, opt);
}

}  // namespace

TORCH_LIBRARY(augpatch_cpu, m) {
  m.def(
      "warp_forward(Tensor images, Tensor params, Tensor objects, int[] level_objects, int[] options, "
      "bool need_loc) -> (Tensor, Tensor, Tensor)");
  m.def(
      "warp_forward_per_pixel(Tensor images, Tensor params, Tensor objects, int[] level_objects, "
      "int[] options, bool need_loc) -> (Tensor, Tensor, Tensor)");
  m.def(
      "warp_backward(Tensor grad, Tensor images, Tensor params, Tensor objects, int[] level_objects, "
      "Tensor kept0, Tensor kept1, int[] options, bool need_img, bool need_loc) "
      "-> (Tensor, Tensor)");
  m.def(
      "warp_backward_per_pixel(Tensor grad, Tensor images, Tensor params, Tensor objects, int[] level_objects, "
      "Tensor kept0, Tensor kept1, int[] options, bool need_img, bool need_loc) "
      "-> (Tensor, Tensor)");
  m.def(
      "warp_backward_into(Tensor(a!) grad, Tensor images, Tensor params, Tensor objects, int[] level_objects, "
      "Tensor kept0, Tensor kept1, int[] options, bool need_loc) -> Tensor");
  m.def(
      "warp_forward_(Tensor(a!) work, Tensor params, Tensor objects, int[] level_objects, "
      "int[] options) -> ()");
}

TORCH_LIBRARY_IMPL(augpatch_cpu, CPU, m) {
  m.impl("warp_forward", &warp_forward_op);
  m.impl("warp_forward_per_pixel", &warp_forward_per_pixel_op);
  m.impl("warp_backward", &warp_backward_op);
  m.impl("warp_backward_per_pixel", &warp_backward_per_pixel_op);
  m.impl("warp_backward_into", &warp_backward_into_op);
  m.impl("warp_forward_", &warp_forward_inplace_op);
}
