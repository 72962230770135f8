#pragma once
// Element formulas shared by every backend: activations, binary ops and loss terms.
// DISCO_HOST_DEVICE so CUDA kernels use the very same math as the CPU reference.
#include <cmath>

#include "disco/core/host_device.hpp"

namespace disco {

enum class UnaryKind : int { None = 0, Relu, LeakyRelu, Tanh, Sigmoid };
enum class BinaryKind : int { Add = 0, Sub, Mul };
enum class LossKind : int { MSE = 0, L1, BCE, BCEWithLogits };

inline const char* unary_name(UnaryKind k) {
  switch (k) {
    case UnaryKind::Relu: return "relu";
    case UnaryKind::LeakyRelu: return "leaky_relu";
    case UnaryKind::Tanh: return "tanh";
    case UnaryKind::Sigmoid: return "sigmoid";
    default: return "identity";
  }
}
inline const char* loss_name(LossKind k) {
  switch (k) {
    case LossKind::MSE: return "mse_loss";
    case LossKind::L1: return "l1_loss";
    case LossKind::BCE: return "bce";
    default: return "bce_with_logits";
  }
}

template <class T>
DISCO_HOST_DEVICE T apply_binary(BinaryKind k, T a, T b) {
  return k == BinaryKind::Add ? a + b : (k == BinaryKind::Sub ? a - b : a * b);
}

template <class T>
DISCO_HOST_DEVICE T apply_unary(UnaryKind k, T slope, T x) {
  switch (k) {
    case UnaryKind::Relu: return x > T(0) ? x : T(0);
    case UnaryKind::LeakyRelu: return x > T(0) ? x : x * slope;
    case UnaryKind::Tanh: return std::tanh(x);
    case UnaryKind::Sigmoid: return T(1) / (T(1) + std::exp(-x));
    default: return x;
  }
}

// d f / d x at input x with output y (relu/leaky read x; tanh/sigmoid read y), matching
// PyTorch's backward formulas.
template <class T>
DISCO_HOST_DEVICE T unary_derivative(UnaryKind k, T slope, T x, T y) {
  switch (k) {
    case UnaryKind::Relu: return x > T(0) ? T(1) : T(0);
    case UnaryKind::LeakyRelu: return x > T(0) ? T(1) : slope;
    case UnaryKind::Tanh: return T(1) - y * y;
    case UnaryKind::Sigmoid: return y * (T(1) - y);
    default: return T(1);
  }
}

// Loss of one element and its derivative with respect to the prediction p.
// BCE follows PyTorch: logs clamped at -100, gradient (p - t) / max(p (1 - p), 1e-12).
DISCO_HOST_DEVICE double loss_element(LossKind k, double p, double t, double* grad) {
  switch (k) {
    case LossKind::MSE: {
      const double d = p - t;
      *grad = 2.0 * d;
      return d * d;
    }
    case LossKind::L1: {
      const double d = p - t;
      *grad = d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0);
      return d > 0 ? d : -d;
    }
    case LossKind::BCE: {
      double lp = std::log(p), l1p = std::log(1.0 - p);
      lp = lp < -100.0 ? -100.0 : lp;
      l1p = l1p < -100.0 ? -100.0 : l1p;
      double den = p * (1.0 - p);
      den = den < 1e-12 ? 1e-12 : den;
      *grad = (p - t) / den;
      return -(t * lp + (1.0 - t) * l1p);
    }
    default: {  // with logits, stable: max(x,0) - x t + log(1 + exp(-|x|))
      const double ax = p < 0 ? -p : p;
      *grad = 1.0 / (1.0 + std::exp(-p)) - t;
      return (p > 0 ? p : 0.0) - p * t + std::log1p(std::exp(-ax));
    }
  }
}

}  // namespace disco
