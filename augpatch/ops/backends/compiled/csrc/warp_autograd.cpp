// The warp's autograd in C++ for eager CPU calls (augpatch_cpu::warp_autograd), so that
// the backward can write the images' gradient into the output gradient when nobody else
// can see it (glue in augpatch/ops/warp.py: warp_autograd).
//
// A thin shell: the forward and the backward run augpatch's registered operators
// (augpatch::warp_<hash>, augpatch::warp_backward_<hash>, augpatch::warp_backward_into_<hash>,
// named by the caller), so planning, checks and kernels are those of the operator. What
// only C++ can do is the ownership test of the output gradient: the backward of a
// torch::autograd::Function receives the engine's list of output gradients by reference,
// so a gradient that a hook, the caller (out.backward(g), grad_outputs=) or a second node
// holds has more than one reference. A Python backward cannot tell (the engine and the
// wrappers hold references of their own). torch.compile / torch.export never see this
// operator: warp_patches calls it only outside tracing, the registered operator (with its
// Python autograd) everywhere else.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// augpatch::<name>, looked up once per name
c10::OperatorHandle augpatch_op(const std::string& name) {
  static std::mutex lock;
  static std::unordered_map<std::string, c10::OperatorHandle> found;
  std::lock_guard<std::mutex> guard(lock);
  auto it = found.find(name);
  if (it == found.end()) {
    it = found.emplace(name, c10::Dispatcher::singleton().findSchemaOrThrow(("augpatch::" + name).c_str(), "")).first;
  }
  return it->second;
}

// Runs `op` boxed on `args`; its outputs.
std::vector<c10::IValue> call(const c10::OperatorHandle& op, std::vector<c10::IValue> args) {
  op.callBoxed(&args);
  return args;
}

// Whether `t` is the only reference to its tensor and its memory: no other tensor shares
// its storage, except its own view base (a reshape's) if nothing else holds that. The test
// AccumulateGrad makes before it steals a gradient.
bool sole_owner(const at::Tensor& t) {
  if (t.use_count() != 1) return false;
  int64_t holders = 1;
  if (t.is_view()) {
    if (t._base().use_count() != 1) return false;
    holders = 2;
  }
  return t.storage().use_count() == holders;
}

// A tensor on the memory of `t` that is not a view (`t` and its view base are released):
// AccumulateGrad keeps a gradient without copying it only if nothing else shares its
// memory, and a view shares it with its base (a loss's reshape hands its backward a view).
at::Tensor plain_alias(at::Tensor t) {
  if (!t.is_view()) return t;
  at::Tensor plain = at::empty({0}, t.options());
  plain.set_(t.storage(), t.storage_offset(), t.sizes(), t.strides());
  return plain;
}

// The strides of torch.empty_like(images) (preserve format): the layout of the warp's
// output and of the image gradient the backward writes.
std::vector<int64_t> work_strides(const at::Tensor& images) {
  return at::empty_like(images, images.options().device(at::kMeta)).strides().vec();
}

struct WarpFunction : public torch::autograd::Function<WarpFunction> {
  // names: [warp, warp_backward, warp_backward_into, kernel]
  static variable_list forward(AutogradContext* ctx, const at::Tensor& images, const at::Tensor& boxes,
                               const at::Tensor& theta, const at::Tensor& obj_to_img, const std::string& mode,
                               const std::string& padding_mode, bool align_corners, const std::string& overlap,
                               bool need_loc, const std::vector<std::string>& names) {
    TORCH_CHECK(names.size() == 4, "augpatch: warp_autograd needs 4 names");
    at::AutoDispatchBelowADInplaceOrView below;
    auto out = call(augpatch_op(names[0]), {images, boxes, theta, obj_to_img, mode, padding_mode, align_corners,
                                            overlap, need_loc});
    // out, objects, levels, params, saved0, saved1
    ctx->save_for_backward({images, boxes, theta, out[1].toTensor(), out[2].toTensor(), out[3].toTensor(),
                            out[4].toTensor(), out[5].toTensor()});
    ctx->saved_data["mode"] = mode;
    ctx->saved_data["padding_mode"] = padding_mode;
    ctx->saved_data["align_corners"] = align_corners;
    ctx->saved_data["overlap"] = overlap;
    for (size_t i = 0; i < names.size(); ++i) ctx->saved_data["name" + std::to_string(i)] = names[i];
    return {out[0].toTensor()};
  }

  // `grads` by reference: a copy of the list would hold a second reference to the output
  // gradient and hide that it is ours alone.
  static variable_list backward(AutogradContext* ctx, variable_list& grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& images = saved[0];
    const bool need_img = ctx->needs_input_grad(0), need_boxes = ctx->needs_input_grad(1),
               need_theta = ctx->needs_input_grad(2);
    std::vector<std::string> names;
    for (int i = 0; i < 4; ++i) names.push_back(ctx->saved_data["name" + std::to_string(i)].toStringRef());
    const auto mode = ctx->saved_data["mode"].toStringRef();
    const auto padding_mode = ctx->saved_data["padding_mode"].toStringRef();
    const bool align = ctx->saved_data["align_corners"].toBool();
    const auto overlap = ctx->saved_data["overlap"].toStringRef();
    at::Tensor& grad = grads[0];
    variable_list result(10);
    if (!grad.defined()) return result;
    auto defined = [](const at::Tensor& t) { return t.numel() > 0 ? t : at::Tensor(); };
    const bool own = need_img && saved[3].size(0) > 0 && sole_owner(grad) && !at::GradMode::is_enabled() &&
                     grad.layout() == at::kStrided && grad.device().is_cpu() &&
                     grad.scalar_type() == images.scalar_type() && at::isFloatingType(grad.scalar_type()) &&
                     (grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble) &&
                     grad.sizes() == images.sizes() && grad.strides() == c10::IntArrayRef(work_strides(images)) &&
                     !grad.is_conj() && !grad.is_neg() && !grad.requires_grad() && !grad.is_inference();
    if (own) {  // the images' gradient is written into the output gradient
      at::AutoDispatchBelowADInplaceOrView below;
      auto g = call(augpatch_op(names[2]),
                    {grad, images, saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], saved[7], mode,
                     padding_mode, align, overlap, need_boxes, need_theta, names[3]});
      result[1] = need_boxes ? defined(g[0].toTensor()) : at::Tensor();
      result[2] = need_theta ? defined(g[1].toTensor()) : at::Tensor();
      result[0] = plain_alias(std::move(grad));
      return result;
    }
    // the operator itself (under create_graph it records its once-differentiable backward)
    auto g = call(augpatch_op(names[1]),
                  {grad, images, saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], saved[7], mode,
                   padding_mode, align, overlap, need_img, need_boxes, need_theta, names[3]});
    result[0] = need_img ? defined(g[0].toTensor()) : at::Tensor();
    result[1] = need_boxes ? defined(g[1].toTensor()) : at::Tensor();
    result[2] = need_theta ? defined(g[2].toTensor()) : at::Tensor();
    return result;
  }
};

// warp_autograd(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap,
// need_loc, names) -> out: augpatch::warp's output, differentiable (see the top).
at::Tensor warp_autograd(const at::Tensor& images, const at::Tensor& boxes, const at::Tensor& theta,
                         const at::Tensor& obj_to_img, c10::string_view mode, c10::string_view padding_mode,
                         bool align_corners, c10::string_view overlap, bool need_loc,
                         const c10::List<std::string>& names) {
  std::vector<std::string> owned;
  for (size_t i = 0; i < names.size(); ++i) owned.push_back(names.get(i));
  return WarpFunction::apply(images, boxes, theta, obj_to_img, std::string(mode), std::string(padding_mode),
                             align_corners, std::string(overlap), need_loc, owned)[0];
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(augpatch_cpu, m) {
  m.def(
      "warp_autograd(Tensor images, Tensor boxes, Tensor theta, Tensor obj_to_img, str mode, str padding_mode, "
      "bool align_corners, str overlap, bool need_loc, str[] names) -> Tensor");
}

TORCH_LIBRARY_IMPL(augpatch_cpu, Autograd, m) { m.impl("warp_autograd", &warp_autograd); }
