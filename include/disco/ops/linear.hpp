#pragma once
// matmul (2-D) and linear (y = x W^T + b, PyTorch's layout W [out, in]).
#include "disco/ops/elementwise.hpp"

namespace disco {

namespace detail {
// Row-major C = op(A) op(B) through the backend GEMM.
template <class B>
Tensor<B> gemm_raw(const Tensor<B>& a, bool ta, const Tensor<B>& b, bool tb) {
  Tensor<B> ac = a.contiguous(), bc = b.contiguous();
  const int64_t M = ta ? a.shape()[1] : a.shape()[0];
  const int64_t K = ta ? a.shape()[0] : a.shape()[1];
  const int64_t N = tb ? b.shape()[0] : b.shape()[1];
  Tensor<B> out = Tensor<B>::empty({M, N}, a.dtype());
  DISCO_TYPED(a.dtype(), Kernels<B>::gemm(ta, tb, M, N, K, T(1), ac.template data<T>(), bc.template data<T>(), T(0),
                                          out.template data<T>()));
  return out;
}
}  // namespace detail

// a [M, K] @ b [K, N] -> [M, N]
template <class B>
Tensor<B> matmul(const Tensor<B>& a, const Tensor<B>& b) {
  DISCO_CHECK(a.dim() == 2 && b.dim() == 2 && a.shape()[1] == b.shape()[0], "matmul: cannot multiply ",
              shape_str(a.shape()), " by ", shape_str(b.shape()), " (expected [M, K] and [K, N])");
  DISCO_CHECK(a.dtype() == b.dtype(), "matmul: dtypes ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()), " differ");
  Tensor<B> ad = a.detach(), bd = b.detach();
  return record<B>(detail::gemm_raw(a, false, b, false), "matmul", {a, b},
                   [ad, bd](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     gi[0] = detail::gemm_raw(g, false, bd, true);  // g b^T
                     gi[1] = detail::gemm_raw(ad, true, g, false);  // a^T g
                   });
}

// x [M, in] , weight [out, in], bias [out] or undefined -> [M, out]
template <class B>
Tensor<B> linear(const Tensor<B>& x, const Tensor<B>& weight, const Tensor<B>& bias = Tensor<B>()) {
  DISCO_CHECK(x.dim() == 2 && weight.dim() == 2 && x.shape()[1] == weight.shape()[1], "linear: input ",
              shape_str(x.shape()), " does not match weight ", shape_str(weight.shape()),
              " (expected input [N, ", weight.dim() == 2 ? weight.shape()[1] : -1, "] for weight [out, in])");
  DISCO_CHECK(x.dtype() == weight.dtype(), "linear: input is ", dtype_name(x.dtype()), " but weight is ",
              dtype_name(weight.dtype()));
  if (bias.defined())
    DISCO_CHECK(bias.dim() == 1 && bias.shape()[0] == weight.shape()[0] && bias.dtype() == x.dtype(),
                "linear: bias of shape ", shape_str(bias.shape()), " does not match weight ",
                shape_str(weight.shape()), " (expected [", weight.shape()[0], "])");
  Tensor<B> y = detail::gemm_raw(x, false, weight, true);
  const int64_t M = y.shape()[0], N = y.shape()[1];
  if (bias.defined()) {
    Tensor<B> bc = bias.contiguous();
    // channel_binary works on [N, C, HW]: view y [M, N] as [M, N, 1].
    DISCO_TYPED(y.dtype(), Kernels<B>::channel_binary(BinaryKind::Add, y.template data<T>(), bc.template data<T>(),
                                                      y.template data<T>(), M, N, 1));
  }
  Tensor<B> xd = x.detach(), wd = weight.detach();
  const bool has_bias = bias.defined() && bias.requires_grad();
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  return record<B>(y, "linear", {x, weight, bias},
                   [xd, wd, has_bias, need_x, need_w, M, N](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     if (need_x) gi[0] = detail::gemm_raw(g, false, wd, false);  // g W
                     if (need_w) gi[1] = detail::gemm_raw(g, true, xd, false);   // g^T x
                     if (has_bias) gi[2] = detail::channel_reduce_raw<B>(g, nullptr, M, N, 1);
                   });
}

}  // namespace disco
