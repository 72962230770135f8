#pragma once
// Layers with PyTorch's parameter layouts and default initialisation:
// weights kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); fan_in as torch.nn.init computes it
// (weight.size(1) * kernel area: in*kh*kw for Conv2d, out*kh*kw for ConvTranspose2d).
#include <cmath>

#include "disco/nn/module.hpp"
#include "disco/ops/ops.hpp"

namespace disco::nn {

// U(-bound, bound) with bound = 1/sqrt(fan_in): what kaiming_uniform_(a=sqrt(5)) gives.
template <class B>
Tensor<B> init_uniform_fan_in(const Shape& shape, int64_t fan_in, Generator& gen, DType dt) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
  return Tensor<B>::rand(shape, gen, dt, -bound, bound);
}

template <class B>
class Conv2d : public Module<B> {
 public:
  Conv2d(int64_t in, int64_t out, int kernel, Conv2dOptions opt, bool bias, Generator& gen, DType dt = DType::F32)
      : opt_(opt) {
    DISCO_CHECK(in > 0 && out > 0 && kernel > 0, "Conv2d: channels ", in, "->", out, " and kernel ", kernel,
                " must be positive");
    const int64_t fan_in = in * kernel * kernel;
    weight = this->register_parameter("weight", init_uniform_fan_in<B>({out, in, kernel, kernel}, fan_in, gen, dt));
    if (bias) this->bias = this->register_parameter("bias", init_uniform_fan_in<B>({out}, fan_in, gen, dt));
  }
  Tensor<B> forward(const Tensor<B>& x) override { return conv2d(x, weight, bias, opt_); }
  std::string type_name() const override { return "Conv2d"; }
  Tensor<B> weight, bias;

 private:
  Conv2dOptions opt_;
};

template <class B>
class ConvTranspose2d : public Module<B> {
 public:
  ConvTranspose2d(int64_t in, int64_t out, int kernel, Conv2dOptions opt, bool bias, Generator& gen,
                  DType dt = DType::F32)
      : opt_(opt) {
    DISCO_CHECK(in > 0 && out > 0 && kernel > 0, "ConvTranspose2d: channels ", in, "->", out, " and kernel ", kernel,
                " must be positive");
    const int64_t fan_in = out * kernel * kernel;  // PyTorch: weight.size(1) * receptive field
    weight = this->register_parameter("weight", init_uniform_fan_in<B>({in, out, kernel, kernel}, fan_in, gen, dt));
    if (bias) this->bias = this->register_parameter("bias", init_uniform_fan_in<B>({out}, fan_in, gen, dt));
  }
  Tensor<B> forward(const Tensor<B>& x) override { return conv_transpose2d(x, weight, bias, opt_); }
  std::string type_name() const override { return "ConvTranspose2d"; }
  Tensor<B> weight, bias;

 private:
  Conv2dOptions opt_;
};

template <class B>
class Linear : public Module<B> {
 public:
  Linear(int64_t in, int64_t out, bool bias, Generator& gen, DType dt = DType::F32) {
    DISCO_CHECK(in > 0 && out > 0, "Linear: features ", in, "->", out, " must be positive");
    weight = this->register_parameter("weight", init_uniform_fan_in<B>({out, in}, in, gen, dt));
    if (bias) this->bias = this->register_parameter("bias", init_uniform_fan_in<B>({out}, in, gen, dt));
  }
  // Inputs of more than 2 dims are flattened to [N, in] first.
  Tensor<B> forward(const Tensor<B>& x) override { return linear(x.dim() > 2 ? x.flatten(1) : x, weight, bias); }
  std::string type_name() const override { return "Linear"; }
  Tensor<B> weight, bias;
};

template <class B>
class InstanceNorm2d : public Module<B> {
 public:
  explicit InstanceNorm2d(int64_t channels, double eps = 1e-5, bool affine = false, DType dt = DType::F32)
      : channels_(channels), eps_(eps) {
    if (affine) {
      weight = this->register_parameter("weight", Tensor<B>::ones({channels}, dt));
      bias = this->register_parameter("bias", Tensor<B>::zeros({channels}, dt));
    }
  }
  Tensor<B> forward(const Tensor<B>& x) override { return forward_fused(x, UnaryKind::None, 0.0); }
  // Normalisation followed by the activation `act` in one op (used by Sequential).
  Tensor<B> forward_fused(const Tensor<B>& x, UnaryKind act, double slope) {
    DISCO_CHECK(x.dim() == 4 && x.shape()[1] == channels_, "InstanceNorm2d(", channels_, "): input of shape ",
                shape_str(x.shape()), ", expected [N, ", channels_, ", H, W]");
    return instance_norm2d(x, weight, bias, eps_, act, slope);
  }
  std::string type_name() const override { return "InstanceNorm2d"; }
  Tensor<B> weight, bias;

 private:
  int64_t channels_;
  double eps_;
};

// Parameter-free activation layer.
template <class B>
class Activation : public Module<B> {
 public:
  explicit Activation(UnaryKind kind, double slope = 0.0) : kind(kind), slope(slope) {}
  Tensor<B> forward(const Tensor<B>& x) override { return activation(x, kind, slope); }
  std::string type_name() const override { return unary_name(kind); }
  UnaryKind kind;
  double slope;
};
template <class B> std::shared_ptr<Activation<B>> ReLU() { return std::make_shared<Activation<B>>(UnaryKind::Relu); }
template <class B> std::shared_ptr<Activation<B>> LeakyReLU(double slope = 0.01) {
  return std::make_shared<Activation<B>>(UnaryKind::LeakyRelu, slope);
}
template <class B> std::shared_ptr<Activation<B>> Tanh() { return std::make_shared<Activation<B>>(UnaryKind::Tanh); }
template <class B> std::shared_ptr<Activation<B>> Sigmoid() {
  return std::make_shared<Activation<B>>(UnaryKind::Sigmoid);
}

// Children named "0", "1", ... like torch.nn.Sequential. An InstanceNorm2d followed by
// a ReLU / LeakyReLU runs as one fused op (same values, one pass less over memory).
template <class B>
class Sequential : public Module<B> {
 public:
  template <class M>
  std::shared_ptr<M> add(std::shared_ptr<M> m) {
    layers_.push_back(m);
    return this->register_module(std::to_string(layers_.size() - 1), m);
  }
  Tensor<B> forward(const Tensor<B>& x) override {
    Tensor<B> h = x;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      auto* norm = dynamic_cast<InstanceNorm2d<B>*>(layers_[i].get());
      auto* act = i + 1 < layers_.size() ? dynamic_cast<Activation<B>*>(layers_[i + 1].get()) : nullptr;
      if (norm && act && (act->kind == UnaryKind::Relu || act->kind == UnaryKind::LeakyRelu)) {
        h = norm->forward_fused(h, act->kind, act->slope);
        ++i;
      } else {
        h = layers_[i]->forward(h);
      }
    }
    return h;
  }
  std::string type_name() const override { return "Sequential"; }
  std::size_t size() const { return layers_.size(); }
  const std::shared_ptr<Module<B>>& operator[](std::size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module<B>>> layers_;
};

}  // namespace disco::nn
