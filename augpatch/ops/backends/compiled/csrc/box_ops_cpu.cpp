// augpatch's compiled CPU kernels of the box-only ops of augpatch.policies (see
// augpatch/policies/functional.py, whose torch code is the reference these equal bit
// for bit and the path for other devices and dtypes): equalize, solarize and fill of
// uint8 images inside boxes, and the copies of the boxes' rows into and out of
// warp_in_boxes' canvas (any dtype). Loaded with the warp's kernel (one extension).
//
// The photometric kernels act in place on dst [B, C, H, W] uint8 (any strides) inside pixel
// rects (j0, i0, j1, i1) [K, 4] int64 (half-open, clipped to the canvas), rect k in
// image img[k]. The rects of one image are processed in index order; each reads src
// (the images as given: overlap "parallel") or dst itself (src is dst: overlap
// "sequential", each rect sees what the earlier ones wrote). Images run in parallel.
// The cost follows the rects' area: no pass over whole images.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <array>
#include <cstdint>
#include <vector>

namespace {

struct Canvas {
  uint8_t* dst;
  const uint8_t* src;
  int64_t s_b, s_c, s_h, s_w, channels, height, width;
};

struct Rects {
  std::vector<std::vector<int64_t>> by_image;  // rect indices of each image, in index order
  const int64_t* r;                            // [K, 4] contiguous
};

Canvas canvas_of(at::Tensor& dst, const at::Tensor& src) {
  TORCH_CHECK(dst.dim() == 4 && dst.scalar_type() == at::kByte && dst.device().is_cpu(),
              "augpatch box ops: images must be a [B, C, H, W] uint8 CPU tensor");
  TORCH_CHECK(src.sizes() == dst.sizes() && src.strides() == dst.strides() &&
                  src.scalar_type() == at::kByte,
              "augpatch box ops: src must be laid out like dst");
  return {dst.data_ptr<uint8_t>(), src.data_ptr<uint8_t>(), dst.stride(0), dst.stride(1),
          dst.stride(2),           dst.stride(3),           dst.size(1),   dst.size(2),
          dst.size(3)};
}

Rects rects_of(const at::Tensor& rects, const at::Tensor& img, int64_t batch, int64_t height,
               int64_t width) {
  TORCH_CHECK(rects.dim() == 2 && rects.size(1) == 4 && rects.scalar_type() == at::kLong &&
                  rects.is_contiguous(),
              "augpatch box ops: rects must be a contiguous [K, 4] int64 tensor");
  TORCH_CHECK(img.dim() == 1 && img.size(0) == rects.size(0) && img.scalar_type() == at::kLong,
              "augpatch box ops: rect_to_img must be [K] int64");
  Rects out{std::vector<std::vector<int64_t>>(batch), rects.data_ptr<int64_t>()};
  const int64_t* im = img.contiguous().data_ptr<int64_t>();
  for (int64_t k = 0; k < rects.size(0); ++k) {
    const int64_t* q = out.r + 4 * k;
    TORCH_CHECK(im[k] >= 0 && im[k] < batch, "augpatch box ops: image index out of range");
    TORCH_CHECK(q[0] >= 0 && q[1] >= 0 && q[2] <= width && q[3] <= height,
                "augpatch box ops: rects must be clipped to the canvas");
    if (q[2] > q[0] && q[3] > q[1]) out.by_image[im[k]].push_back(k);
  }
  return out;
}

// f(rect index k, rect q, channel c, offset of the rect's top-left pixel of channel c)
// for every rect of every image, in index order within an image, images in parallel
template <class F>
void for_each_rect_channel(const Canvas& cv, const Rects& rs, const F& f) {
  const int64_t batch = static_cast<int64_t>(rs.by_image.size());
  at::parallel_for(0, batch, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      for (int64_t k : rs.by_image[b]) {
        const int64_t* q = rs.r + 4 * k;
        for (int64_t c = 0; c < cv.channels; ++c) {
          const int64_t off = b * cv.s_b + c * cv.s_c + q[1] * cv.s_h + q[0] * cv.s_w;
          f(k, q, c, off);
        }
      }
    }
  });
}

// apply a 256-entry table to the rect's pixels of one channel (read src, write dst)
// (the bounds are locals: a uint8 store may alias any object, so a bound read through a
// pointer would be read again after every store and the loop not vectorised)
void apply_table(const Canvas& cv, const int64_t* q, int64_t off, const uint8_t* table) {
  const int64_t rows = q[3] - q[1], cols = q[2] - q[0], s_w = cv.s_w;
  for (int64_t i = 0; i < rows; ++i) {
    const uint8_t* s = cv.src + off + i * cv.s_h;
    uint8_t* d = cv.dst + off + i * cv.s_h;
    for (int64_t j = 0; j < cols; ++j) d[j * s_w] = table[s[j * s_w]];
  }
}

// Histogram equalisation of each rect, per channel: PIL's ImageOps.equalize, as
// torchvision.transforms.v2.functional.equalize of the rect's crop.
void box_equalize(at::Tensor dst, const at::Tensor& src, const at::Tensor& rects,
                  const at::Tensor& rect_to_img) {
  Canvas cv = canvas_of(dst, src);
  Rects rs = rects_of(rects, rect_to_img, dst.size(0), cv.height, cv.width);
  for_each_rect_channel(cv, rs, [&](int64_t, const int64_t* q, int64_t, int64_t off) {
    std::array<int64_t, 256> hist{};
    const int64_t rows = q[3] - q[1], cols = q[2] - q[0], s_w = cv.s_w;
    for (int64_t i = 0; i < rows; ++i) {
      const uint8_t* s = cv.src + off + i * cv.s_h;
      for (int64_t j = 0; j < cols; ++j) ++hist[s[j * s_w]];
    }
    int64_t total = 0, top = 0;
    for (int v = 0; v < 256; ++v) {
      total += hist[v];
      if (hist[v] > 0) top = v;  // the brightest value present
    }
    const int64_t step = (total - hist[top]) / 255;
    if (step == 0) {  // PIL leaves the channel as it is
      if (cv.src != cv.dst) {
        std::array<uint8_t, 256> same{};
        for (int v = 0; v < 256; ++v) same[v] = static_cast<uint8_t>(v);
        apply_table(cv, q, off, same.data());
      }
      return;
    }
    std::array<uint8_t, 256> table{};
    int64_t n = step / 2;  // the count below v, plus half a step
    for (int v = 0; v < 256; ++v) {
      table[v] = static_cast<uint8_t>(std::min<int64_t>(n / step, 255));
      n += hist[v];
    }
    apply_table(cv, q, off, table.data());
  });
}

// Invert the pixels at or above the rect's threshold (any real number).
void box_solarize(at::Tensor dst, const at::Tensor& src, const at::Tensor& rects,
                  const at::Tensor& rect_to_img, const at::Tensor& threshold) {
  Canvas cv = canvas_of(dst, src);
  Rects rs = rects_of(rects, rect_to_img, dst.size(0), cv.height, cv.width);
  TORCH_CHECK(threshold.dim() == 1 && threshold.size(0) == rects.size(0) &&
                  threshold.scalar_type() == at::kDouble,
              "augpatch box ops: threshold must be [K] float64");
  const double* t = threshold.contiguous().data_ptr<double>();
  for_each_rect_channel(cv, rs, [&](int64_t k, const int64_t* q, int64_t, int64_t off) {
    std::array<uint8_t, 256> table{};
    for (int v = 0; v < 256; ++v) table[v] = static_cast<uint8_t>(v >= t[k] ? 255 - v : v);
    apply_table(cv, q, off, table.data());
  });
}

// Fill each rect with one value per channel.
void fill_rects(at::Tensor dst, const at::Tensor& rects, const at::Tensor& rect_to_img,
                const at::Tensor& value) {
  Canvas cv = canvas_of(dst, dst);
  Rects rs = rects_of(rects, rect_to_img, dst.size(0), cv.height, cv.width);
  TORCH_CHECK(value.dim() == 1 && value.size(0) == cv.channels && value.scalar_type() == at::kByte,
              "augpatch box ops: value must be [C] uint8");
  const uint8_t* v = value.contiguous().data_ptr<uint8_t>();
  for_each_rect_channel(cv, rs, [&](int64_t, const int64_t* q, int64_t c, int64_t off) {
    const int64_t rows = q[3] - q[1], cols = q[2] - q[0], s_w = cv.s_w;
    const uint8_t value = v[c];
    for (int64_t i = 0; i < rows; ++i) {
      uint8_t* d = cv.dst + off + i * cv.s_h;
      for (int64_t j = 0; j < cols; ++j) d[j * s_w] = value;
    }
  });
}

// The canvas [1, C, rows, cols] (zeros) holding rect k's pixels at rows 1.., columns
// left[k].. (the layout of warp_in_boxes), or, with unpack, the way back: rect k's
// pixels of the canvas written into images. Any dtype, any strides of images.
struct Packing {
  Rects rs;
  const int64_t* left;
};

Packing packing_of(const at::Tensor& images, const at::Tensor& canvas, const at::Tensor& rects,
                   const at::Tensor& rect_to_img, const at::Tensor& left) {
  TORCH_CHECK(images.dim() == 4 && canvas.dim() == 4 && canvas.size(0) == 1 &&
                  canvas.size(1) == images.size(1) && canvas.is_contiguous() &&
                  canvas.scalar_type() == images.scalar_type() && images.device().is_cpu(),
              "augpatch pack_rects: malformed images or canvas");
  TORCH_CHECK(left.dim() == 1 && left.size(0) == rects.size(0) && left.scalar_type() == at::kLong &&
                  left.is_contiguous(),
              "augpatch pack_rects: left must be [K] int64");
  Packing pk{rects_of(rects, rect_to_img, images.size(0), images.size(2), images.size(3)),
             left.data_ptr<int64_t>()};
  for (const auto& ks : pk.rs.by_image) {
    for (int64_t k : ks) {
      const int64_t* q = pk.rs.r + 4 * k;
      TORCH_CHECK(pk.left[k] >= 0 && pk.left[k] + q[2] - q[0] <= canvas.size(3) &&
                      q[3] - q[1] + 1 <= canvas.size(2),
                  "augpatch pack_rects: a rect does not fit the canvas");
    }
  }
  return pk;
}

template <bool kPack>
void copy_rects(const at::Tensor& images, const at::Tensor& canvas, const Packing& pk) {
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, images.scalar_type(), "pack_rects", [&] {
    scalar_t* im = images.data_ptr<scalar_t>();
    scalar_t* cv = canvas.data_ptr<scalar_t>();
    const int64_t s_b = images.stride(0), s_c = images.stride(1), s_h = images.stride(2),
                  s_w = images.stride(3), channels = images.size(1);
    const int64_t c_c = canvas.stride(1), c_h = canvas.stride(2);
    const int64_t batch = static_cast<int64_t>(pk.rs.by_image.size());
    at::parallel_for(0, batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        for (int64_t k : pk.rs.by_image[b]) {
          const int64_t* q = pk.rs.r + 4 * k;
          const int64_t rows = q[3] - q[1], cols = q[2] - q[0], x0 = q[0], y0 = q[1];
          const int64_t left = pk.left[k];
          for (int64_t c = 0; c < channels; ++c) {
            for (int64_t i = 0; i < rows; ++i) {
              scalar_t* a = im + b * s_b + c * s_c + (y0 + i) * s_h + x0 * s_w;
              scalar_t* z = cv + c * c_c + (1 + i) * c_h + left;
              for (int64_t j = 0; j < cols; ++j) {
                if constexpr (kPack) {
                  z[j] = a[j * s_w];
                } else {
                  a[j * s_w] = z[j];
                }
              }
            }
          }
        }
      }
    });
  });
}

at::Tensor pack_rects(const at::Tensor& images, const at::Tensor& rects,
                      const at::Tensor& rect_to_img, const at::Tensor& left, int64_t rows,
                      int64_t cols) {
  at::Tensor canvas = at::zeros({1, images.size(1), rows, cols}, images.options());
  copy_rects<true>(images, canvas, packing_of(images, canvas, rects, rect_to_img, left));
  return canvas;
}

void unpack_rects(at::Tensor images, const at::Tensor& canvas, const at::Tensor& rects,
                  const at::Tensor& rect_to_img, const at::Tensor& left) {
  at::Tensor dense = canvas.contiguous();
  copy_rects<false>(images, dense, packing_of(images, dense, rects, rect_to_img, left));
}

// Add value[c] (modulo 256: uint8 arithmetic wraps) to channel c of every pixel of the
// rects of objects rows [k0, k1): rows (x0, y0, width, height, image, ...) of `cols`
// int64 each, the warp plan's object table (a pixel in two rects gets the value twice).
void add_rows(at::Tensor& images, const int64_t* o, int64_t cols, int64_t k0, int64_t k1,
              const uint8_t* v) {
  uint8_t* im = images.data_ptr<uint8_t>();
  const int64_t s_b = images.stride(0), s_c = images.stride(1), s_h = images.stride(2),
                s_w = images.stride(3), channels = images.size(1);
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t* q = o + k * cols;
    // locals: a uint8 store may alias anything, so values read through pointers would be
    // read again after every store (and the loop not vectorised)
    const int64_t x0 = q[0], y0 = q[1], cols = q[2], rows = q[3], b = q[4];
    for (int64_t c = 0; c < channels; ++c) {
      const uint8_t add = v[c];
      if (add == 0) continue;
      for (int64_t i = 0; i < rows; ++i) {
        uint8_t* d = im + b * s_b + c * s_c + (y0 + i) * s_h + x0 * s_w;
        if (s_w == 1) {  // a row of one channel is contiguous: vectorised
          for (int64_t j = 0; j < cols; ++j) d[j] = static_cast<uint8_t>(d[j] + add);
        } else {
          for (int64_t j = 0; j < cols; ++j) d[j * s_w] = static_cast<uint8_t>(d[j * s_w] + add);
        }
      }
    }
  }
}

void check_objects(const at::Tensor& images, const at::Tensor& objects) {
  TORCH_CHECK(objects.dim() == 2 && objects.size(1) >= 5 && objects.scalar_type() == at::kLong &&
                  objects.is_contiguous() && objects.device().is_cpu(),
              "augpatch box ops: objects must be a contiguous [K, >= 5] int64 CPU tensor");
  const int64_t* o = objects.data_ptr<int64_t>();
  for (int64_t k = 0; k < objects.size(0); ++k) {
    const int64_t* q = o + k * objects.size(1);
    TORCH_CHECK(q[4] >= 0 && q[4] < images.size(0) && q[0] >= 0 && q[1] >= 0 && q[2] >= 0 &&
                    q[3] >= 0 && q[0] + q[2] <= images.size(3) && q[1] + q[3] <= images.size(2),
                "augpatch box ops: a rect outside the images");
  }
}

// Pixels (times channels) of the objects warped per call of box_warp_: their values, the
// kernel's buffer of them and their rects stay in a core's L2 cache between the passes.
constexpr int64_t kChunkValues = 1 << 16;

// box_warp_(work, params, objects, level_objects, options, fill): the warp kernel
// (augpatch_cpu::warp_forward_, csrc/warp_cpu.cpp) in place on `work`, a batch the caller
// owns in the plan's layout, its levels in order ("sequential"). The rects of a level do
// not overlap and each reads and writes only its own pixels, so a level runs in chunks of
// consecutive objects (about kChunkValues values each, cache-sized). With `fill` ([C]
// uint8; nearest, uint8 images, patch-relative padding "zeros"), a chunk's rects get the
// fill subtracted (modulo 256), are warped with zero padding, and get the fill added back:
// a pixel is its source or exactly the fill, as warp_patches_fill; without it (an empty
// tensor) the chunks are warped with the plan's padding.
void box_warp(at::Tensor work, const at::Tensor& params, const at::Tensor& objects,
              c10::IntArrayRef level_objects, c10::IntArrayRef options, const at::Tensor& fill) {
  check_objects(work, objects);
  TORCH_CHECK(params.dim() == 2 && params.size(0) == objects.size(0) && params.is_contiguous(),
              "augpatch box_warp_: params must be [K, P] contiguous, one row per object");
  TORCH_CHECK(level_objects.size() >= 1 && level_objects.front() == 0 &&
                  level_objects.back() == objects.size(0),
              "augpatch box_warp_: level_objects must run from 0 to K");
  const bool with_fill = fill.numel() > 0;
  TORCH_CHECK(!with_fill || (work.scalar_type() == at::kByte && fill.dim() == 1 &&
                             fill.size(0) == work.size(1) && fill.scalar_type() == at::kByte),
              "augpatch box_warp_: fill must be [C] uint8 (uint8 images)");
  static auto warp = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("augpatch_cpu::warp_forward_", "")
                         .typed<void(at::Tensor, const at::Tensor&, const at::Tensor&,
                                     c10::IntArrayRef, c10::IntArrayRef)>();
  const at::Tensor value = with_fill ? fill.contiguous() : fill;
  std::vector<uint8_t> plus, minus;
  if (with_fill) {
    plus.assign(value.data_ptr<uint8_t>(), value.data_ptr<uint8_t>() + value.numel());
    for (uint8_t f : plus) minus.push_back(static_cast<uint8_t>(256 - f));
  }
  const int64_t* o = objects.data_ptr<int64_t>();
  const int64_t cols = objects.size(1), channels = work.size(1);
  auto run = [&](int64_t k0, int64_t k1) {
    if (with_fill) add_rows(work, o, cols, k0, k1, minus.data());
    const std::vector<int64_t> bounds{0, k1 - k0};
    warp.call(work, params.narrow(0, k0, k1 - k0), objects.narrow(0, k0, k1 - k0), bounds,
              options);
    if (with_fill) add_rows(work, o, cols, k0, k1, plus.data());
  };
  for (size_t l = 0; l + 1 < level_objects.size(); ++l) {
    int64_t k0 = level_objects[l], values = 0;
    for (int64_t k = level_objects[l]; k < level_objects[l + 1]; ++k) {
      const int64_t n = o[k * cols + 2] * o[k * cols + 3] * channels;
      if (k > k0 && values + n > kChunkValues) {
        run(k0, k);
        k0 = k;
        values = 0;
      }
      values += n;
    }
    if (level_objects[l + 1] > k0) run(k0, level_objects[l + 1]);
  }
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(augpatch_cpu, m) {
  m.def("box_equalize_(Tensor(a!) dst, Tensor src, Tensor rects, Tensor rect_to_img) -> ()");
  m.def(
      "box_solarize_(Tensor(a!) dst, Tensor src, Tensor rects, Tensor rect_to_img, "
      "Tensor threshold) -> ()");
  m.def("fill_rects_(Tensor(a!) dst, Tensor rects, Tensor rect_to_img, Tensor value) -> ()");
  m.def(
      "pack_rects(Tensor images, Tensor rects, Tensor rect_to_img, Tensor left, int rows, "
      "int cols) -> Tensor");
  m.def(
      "unpack_rects_(Tensor(a!) images, Tensor canvas, Tensor rects, Tensor rect_to_img, "
      "Tensor left) -> ()");
  m.def(
      "box_warp_(Tensor(a!) work, Tensor params, Tensor objects, int[] level_objects, "
      "int[] options, Tensor fill) -> ()");
}

TORCH_LIBRARY_IMPL(augpatch_cpu, CPU, m) {
  m.impl("box_equalize_", &box_equalize);
  m.impl("box_solarize_", &box_solarize);
  m.impl("fill_rects_", &fill_rects);
  m.impl("pack_rects", &pack_rects);
  m.impl("unpack_rects_", &unpack_rects);
  m.impl("box_warp_", &box_warp);
}
