#pragma once
// Tensor members that need kernels: fill_, copy_, contiguous, clone.
#include "disco/autograd/engine.hpp"

namespace disco {

template <class B>
Tensor<B>& Tensor<B>::fill_(double v) {
  DISCO_TYPED(dtype(), {
    if (is_contiguous()) {
      Kernels<B>::fill(data<T>(), numel(), T(v));
    } else {
      Tensor<B> tmp = Tensor<B>::full(shape(), v, dtype());
      copy_(tmp);
    }
  });
  return *this;
}

template <class B>
Tensor<B>& Tensor<B>::copy_(const Tensor<B>& src) {
  check_same("copy_", *this, src);
  DISCO_TYPED(dtype(), {
    Kernels<B>::copy_strided(shape(), src.template data<T>(), src.strides(), data<T>(), strides());
  });
  return *this;
}

template <class B>
Tensor<B> Tensor<B>::clone() const {
  Tensor<B> out = Tensor<B>::empty(shape(), dtype());
  out.copy_(*this);
  return record<B>(out, "clone", {*this}, [](const Tensor<B>& g, std::vector<Tensor<B>>& gi) { gi[0] = g; });
}

template <class B>
Tensor<B> Tensor<B>::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

}  // namespace disco
