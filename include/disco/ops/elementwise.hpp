#pragma once
// Elementwise arithmetic: add/sub/mul of equal shapes, per-channel broadcast
// (x [N, C, ...] with v [C]), scalar scale and shift.
#include "disco/ops/tensor_ops.hpp"

namespace disco {

namespace detail {
template <class B>
Tensor<B> binary_raw(BinaryKind k, const Tensor<B>& a, const Tensor<B>& b) {
  Tensor<B> ac = a.contiguous(), bc = b.contiguous();
  Tensor<B> out = Tensor<B>::empty(a.shape(), a.dtype());
  DISCO_TYPED(a.dtype(), Kernels<B>::binary(k, ac.template data<T>(), bc.template data<T>(), out.template data<T>(),
                                            out.numel()));
  return out;
}
template <class B>
Tensor<B> affine_raw(const Tensor<B>& x, double alpha, double beta) {
  Tensor<B> xc = x.contiguous();
  Tensor<B> out = Tensor<B>::empty(x.shape(), x.dtype());
  DISCO_TYPED(x.dtype(), Kernels<B>::affine(xc.template data<T>(), T(alpha), T(beta), out.template data<T>(),
                                            out.numel()));
  return out;
}
// [N, C, rest...] -> (N, C, prod(rest)); checks v is [C].
template <class B>
void channel_dims(const char* op, const Tensor<B>& x, const Tensor<B>& v, int64_t& N, int64_t& C, int64_t& HW) {
  DISCO_CHECK(x.dim() >= 2, op, ": input of shape ", shape_str(x.shape()), " must have at least 2 dims [N, C, ...]");
  DISCO_CHECK(v.dim() == 1 && v.shape()[0] == x.shape()[1], op, ": per-channel operand of shape ",
              shape_str(v.shape()), " does not match input ", shape_str(x.shape()), " (expected [", x.shape()[1], "])");
  DISCO_CHECK(v.dtype() == x.dtype(), op, ": dtypes ", dtype_name(x.dtype()), " and ", dtype_name(v.dtype()), " differ");
  N = x.shape()[0];
  C = x.shape()[1];
  HW = C ? x.numel() / std::max<int64_t>(N * C, 1) : 0;
}
template <class B>
Tensor<B> channel_raw(BinaryKind k, const Tensor<B>& x, const Tensor<B>& v, int64_t N, int64_t C, int64_t HW) {
  Tensor<B> xc = x.contiguous(), vc = v.contiguous();
  Tensor<B> out = Tensor<B>::empty(x.shape(), x.dtype());
  DISCO_TYPED(x.dtype(), Kernels<B>::channel_binary(k, xc.template data<T>(), vc.template data<T>(),
                                                    out.template data<T>(), N, C, HW));
  return out;
}
// Per-channel sum of a (times b when given): result [C].
template <class B>
Tensor<B> channel_reduce_raw(const Tensor<B>& a, const Tensor<B>* b, int64_t N, int64_t C, int64_t HW) {
  Tensor<B> ac = a.contiguous();
  Tensor<B> bc = b ? b->contiguous() : Tensor<B>();
  Tensor<B> out = Tensor<B>::empty({C}, a.dtype());
  DISCO_TYPED(a.dtype(), Kernels<B>::channel_reduce(ac.template data<T>(), b ? bc.template data<T>() : nullptr,
                                                    out.template data<T>(), N, C, HW, false));
  return out;
}
}  // namespace detail

template <class B>
Tensor<B> add(const Tensor<B>& a, const Tensor<B>& b) {
  check_same("add", a, b);
  return record<B>(detail::binary_raw(BinaryKind::Add, a, b), "add", {a, b},
                   [](const Tensor<B>& g, std::vector<Tensor<B>>& gi) { gi[0] = g; gi[1] = g; });
}

template <class B>
Tensor<B> sub(const Tensor<B>& a, const Tensor<B>& b) {
  check_same("sub", a, b);
  return record<B>(detail::binary_raw(BinaryKind::Sub, a, b), "sub", {a, b},
                   [](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     gi[0] = g;
                     gi[1] = detail::affine_raw(g, -1.0, 0.0);
                   });
}

template <class B>
Tensor<B> mul(const Tensor<B>& a, const Tensor<B>& b) {
  check_same("mul", a, b);
  Tensor<B> ad = a.detach(), bd = b.detach();
  return record<B>(detail::binary_raw(BinaryKind::Mul, a, b), "mul", {a, b},
                   [ad, bd](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     gi[0] = detail::binary_raw(BinaryKind::Mul, g, bd);
                     gi[1] = detail::binary_raw(BinaryKind::Mul, g, ad);
                   });
}

// alpha * x
template <class B>
Tensor<B> scale(const Tensor<B>& x, double alpha) {
  return record<B>(detail::affine_raw(x, alpha, 0.0), "scale", {x},
                   [alpha](const Tensor<B>& g, std::vector<Tensor<B>>& gi) { gi[0] = detail::affine_raw(g, alpha, 0.0); });
}

// x + beta
template <class B>
Tensor<B> add_scalar(const Tensor<B>& x, double beta) {
  return record<B>(detail::affine_raw(x, 1.0, beta), "add_scalar", {x},
                   [](const Tensor<B>& g, std::vector<Tensor<B>>& gi) { gi[0] = g; });
}

// x [N, C, ...] + v[c] on channel c
template <class B>
Tensor<B> add_channel(const Tensor<B>& x, const Tensor<B>& v) {
  int64_t N, C, HW;
  detail::channel_dims("add_channel", x, v, N, C, HW);
  return record<B>(detail::channel_raw(BinaryKind::Add, x, v, N, C, HW), "add_channel", {x, v},
                   [N, C, HW](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     gi[0] = g;
                     gi[1] = detail::channel_reduce_raw<B>(g, nullptr, N, C, HW);
                   });
}

// x [N, C, ...] * v[c] on channel c
template <class B>
Tensor<B> mul_channel(const Tensor<B>& x, const Tensor<B>& v) {
  int64_t N, C, HW;
  detail::channel_dims("mul_channel", x, v, N, C, HW);
  Tensor<B> xd = x.detach(), vd = v.detach();
  return record<B>(detail::channel_raw(BinaryKind::Mul, x, v, N, C, HW), "mul_channel", {x, v},
                   [xd, vd, N, C, HW](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     gi[0] = detail::channel_raw(BinaryKind::Mul, g, vd, N, C, HW);
                     gi[1] = detail::channel_reduce_raw<B>(g, &xd, N, C, HW);
                   });
}

template <class B> Tensor<B> operator+(const Tensor<B>& a, const Tensor<B>& b) { return add(a, b); }
template <class B> Tensor<B> operator-(const Tensor<B>& a, const Tensor<B>& b) { return sub(a, b); }
template <class B> Tensor<B> operator*(const Tensor<B>& a, const Tensor<B>& b) { return mul(a, b); }
template <class B> Tensor<B> operator*(const Tensor<B>& a, double s) { return scale(a, s); }
template <class B> Tensor<B> operator*(double s, const Tensor<B>& a) { return scale(a, s); }

}  // namespace disco
