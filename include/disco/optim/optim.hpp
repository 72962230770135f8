#pragma once
// Optimisers with PyTorch semantics (Adam, SGD with momentum) and clip_grad_norm.
// Parameters without a gradient are skipped, as torch.optim does.
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "disco/ops/ops.hpp"

namespace disco::optim {

// Global L2 norm of the gradients of `params` (parameters without one are skipped).
template <class B>
double grad_norm(const std::vector<Tensor<B>>& params) {
  double ss = 0;
  for (auto& p : params) {
    Tensor<B> g = p.grad();
    if (!g.defined()) continue;
    Tensor<B> gc = g.contiguous();
    DISCO_TYPED(g.dtype(), ss += Kernels<B>::sumsq(gc.template data<T>(), gc.numel()));
  }
  return std::sqrt(ss);
}

// Global L2 norm of the gradients of `params`; when it exceeds max_norm every gradient
// is scaled by max_norm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_). Returns the norm.
template <class B>
double clip_grad_norm(const std::vector<Tensor<B>>& params, double max_norm) {
  DISCO_CHECK(max_norm > 0, "clip_grad_norm: max_norm ", max_norm, " must be positive");
  const double norm = grad_norm(params);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for (auto& p : params) {
      Tensor<B> g = p.grad();
      if (!g.defined()) continue;
      Tensor<B> gc = g.contiguous();  // g itself unless set_grad gave a strided one
      DISCO_TYPED(g.dtype(), Kernels<B>::affine(gc.template data<T>(), T(coef), T(0), gc.template data<T>(), gc.numel()));
      if (!gc.same(g)) g.copy_(gc);
    }
  }
  return norm;
}

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};

// torch.optim.Adam. step() updates every parameter that has a gradient in one fused
// multi-tensor update (Kernels<B>::adam_multi); the step count is kept on the host and, for
// the kernels, in backend memory, so a step reads nothing back from the device.
template <class B>
class Adam {
 public:
  Adam(std::vector<Tensor<B>> params, AdamOptions opt) : params_(std::move(params)), opt_(opt) {
    DISCO_CHECK(opt.lr >= 0 && opt.eps >= 0 && opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
                "Adam: invalid options lr=", opt.lr, " betas=(", opt.beta1, ", ", opt.beta2, ") eps=", opt.eps);
    for (std::size_t i = 1; i < params_.size(); ++i)
      DISCO_CHECK(params_[i].dtype() == params_[0].dtype(), "Adam: parameter ", i, " is ",
                  dtype_name(params_[i].dtype()), " but parameter 0 is ", dtype_name(params_[0].dtype()),
                  "; one optimizer takes one dtype");
    m_.resize(params_.size());
    v_.resize(params_.size());
    counter_ = Device<B>::allocate(sizeof(int64_t));
    write_counter();
  }
  void zero_grad() {
    for (auto& p : params_) p.zero_grad();
  }
  // One update of every parameter that has a gradient.
  void step() { update(nullptr); }
  // The same with every gradient multiplied by scale, a one-element tensor in backend
  // memory (e.g. clip_coefficient's output): the gradients themselves stay unscaled.
  void step(const Tensor<B>& scale) {
    DISCO_CHECK(scale.numel() == 1 && (params_.empty() || scale.dtype() == params_[0].dtype()),
                "Adam::step: scale of shape ", shape_str(scale.shape()), " must be one ",
                params_.empty() ? "" : dtype_name(params_[0].dtype()), " element");
    update(&scale);
  }
  const std::vector<Tensor<B>>& params() const { return params_; }
  AdamOptions& options() { return opt_; }
  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s) {
    step_ = s;
    write_counter();
  }
  // The device copy of the step count has run ahead of the host's by n (a replayed CUDA
  // graph increments it on the device): catch the host count up.
  void advance_host_step_count(int64_t n) { step_ += n; }
  // First and second moment of parameter i (undefined before its first update).
  Tensor<B>& exp_avg(std::size_t i) { return m_.at(i); }
  Tensor<B>& exp_avg_sq(std::size_t i) { return v_.at(i); }

 private:
  void write_counter() { Device<B>::copy_from_host(counter_.get(), &step_, sizeof(int64_t)); }
  void update(const Tensor<B>* scale) {
    ++step_;
    std::vector<Tensor<B>> keep;  // contiguous copies of strided gradients, alive until the launch
    DType dt = params_.empty() ? DType::F32 : params_[0].dtype();
    DISCO_TYPED(dt, {
      std::vector<AdamSlot<T>> slots;
      for (std::size_t i = 0; i < params_.size(); ++i) {
        Tensor<B>& p = params_[i];
        Tensor<B> g = p.grad();
        if (!g.defined()) continue;
        DISCO_CHECK(p.is_contiguous(), "Adam: parameter ", i, " of shape ", shape_str(p.shape()),
                    " is a strided view; parameters must be contiguous");
        if (!g.is_contiguous()) {
          g = g.contiguous();
          keep.push_back(g);
        }
        if (!m_[i].defined()) {
          m_[i] = Tensor<B>::zeros(p.shape(), p.dtype());
          v_[i] = Tensor<B>::zeros(p.shape(), p.dtype());
        }
        slots.push_back(AdamSlot<T>{p.template data<T>(), g.template data<T>(), m_[i].template data<T>(),
                                    v_[i].template data<T>(), p.numel()});
      }
      const AdamHyperParams h{opt_.lr, opt_.beta1, opt_.beta2, opt_.eps, opt_.weight_decay};
      Kernels<B>::adam_multi(slots, h, static_cast<int64_t*>(counter_.get()),
                             scale ? scale->contiguous().template data<T>() : static_cast<const T*>(nullptr));
    });
  }

  std::vector<Tensor<B>> params_;
  AdamOptions opt_;
  std::vector<Tensor<B>> m_, v_;
  int64_t step_ = 0;
  std::shared_ptr<void> counter_;  // int64 step count in backend memory (the kernels' t)
};

// The global gradient norm of `params` and the clip coefficient min(1, max_norm / (norm +
// 1e-6)) of torch.nn.utils.clip_grad_norm_, as one-element tensors in backend memory (no
// host synchronization). max_norm 0 gives no coefficient (coef stays undefined).
template <class B>
struct ClipResult {
  Tensor<B> norm, coef;
};
template <class B>
ClipResult<B> clip_coefficient(const std::vector<Tensor<B>>& params, double max_norm) {
  DISCO_CHECK(max_norm >= 0, "clip_coefficient: max_norm ", max_norm, " must be >= 0");
  ClipResult<B> r;
  DType dt = params.empty() ? DType::F32 : params[0].dtype();
  r.norm = Tensor<B>::empty({}, dt);
  if (max_norm > 0) r.coef = Tensor<B>::empty({}, dt);
  std::vector<Tensor<B>> keep;
  DISCO_TYPED(dt, {
    std::vector<std::pair<const T*, int64_t>> xs;
    for (auto& p : params) {
      Tensor<B> g = p.grad();
      if (!g.defined()) continue;
      DISCO_CHECK(g.dtype() == dt, "clip_coefficient: gradients of mixed dtypes");
      g = g.contiguous();
      keep.push_back(g);
      xs.emplace_back(g.template data<T>(), g.numel());
    }
    Kernels<B>::grad_norm_coef(xs, max_norm, r.norm.template data<T>(),
                               max_norm > 0 ? r.coef.template data<T>() : static_cast<T*>(nullptr));
  });
  return r;
}

struct SGDOptions {
  double lr = 1e-2, momentum = 0, weight_decay = 0;
};

template <class B>
class SGD {
 public:
  SGD(std::vector<Tensor<B>> params, SGDOptions opt) : params_(std::move(params)), opt_(opt) {
    DISCO_CHECK(opt.lr >= 0 && opt.momentum >= 0, "SGD: invalid options lr=", opt.lr, " momentum=", opt.momentum);
    buf_.resize(params_.size());
  }
  void zero_grad() {
    for (auto& p : params_) p.zero_grad();
  }
  void step() {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      Tensor<B>& p = params_[i];
      Tensor<B> g = p.grad();
      if (!g.defined()) continue;
      DISCO_CHECK(p.is_contiguous(), "SGD: parameter ", i, " of shape ", shape_str(p.shape()),
                  " is a strided view; parameters must be contiguous");
      g = g.contiguous();
      const bool first = !buf_[i].defined();
      if (first) buf_[i] = Tensor<B>::zeros(p.shape(), p.dtype());
      DISCO_TYPED(p.dtype(), Kernels<B>::sgd_update(p.template data<T>(), g.template data<T>(), buf_[i].template data<T>(),
                                                    p.numel(), opt_.lr, opt_.momentum, opt_.weight_decay, first, 1.0));
    }
  }

 private:
  std::vector<Tensor<B>> params_;
  SGDOptions opt_;
  std::vector<Tensor<B>> buf_;
};

}  // namespace disco::optim
