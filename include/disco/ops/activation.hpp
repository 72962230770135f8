#pragma once
// Activations: relu, leaky_relu, tanh, sigmoid (formulas in kinds.hpp).
#include "disco/ops/tensor_ops.hpp"

namespace disco {

// y = f(x) for the activation `k`; slope is leaky_relu's negative slope.
template <class B>
Tensor<B> activation(const Tensor<B>& x, UnaryKind k, double slope = 0.0) {
  Tensor<B> xc = x.contiguous();
  Tensor<B> y = Tensor<B>::empty(x.shape(), x.dtype());
  DISCO_TYPED(x.dtype(), Kernels<B>::unary_fwd(k, T(slope), xc.template data<T>(), y.template data<T>(), y.numel()));
  // relu/leaky need the input, tanh/sigmoid the output (saved detached: no cycle).
  const bool from_out = (k == UnaryKind::Tanh || k == UnaryKind::Sigmoid);
  Tensor<B> saved = from_out ? y.detach() : xc.detach();
  return record<B>(y, unary_name(k), {x}, [saved, from_out, k, slope](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
    Tensor<B> gx = detail::grad_buffer_like(g);  // may be g itself: element-wise, gy == gx is fine
    Tensor<B> gc = g.contiguous();
    DISCO_TYPED(g.dtype(), {
      const T* s = saved.template data<T>();
      Kernels<B>::unary_bwd(k, T(slope), from_out ? nullptr : s, from_out ? s : nullptr, gc.template data<T>(),
                            gx.template data<T>(), gx.numel());
    });
    gi[0] = gx;
  });
}

template <class B> Tensor<B> relu(const Tensor<B>& x) { return activation(x, UnaryKind::Relu); }
template <class B> Tensor<B> leaky_relu(const Tensor<B>& x, double slope = 0.01) {
  return activation(x, UnaryKind::LeakyRelu, slope);
}
template <class B> Tensor<B> tanh(const Tensor<B>& x) { return activation(x, UnaryKind::Tanh); }
template <class B> Tensor<B> sigmoid(const Tensor<B>& x) { return activation(x, UnaryKind::Sigmoid); }

}  // namespace disco
