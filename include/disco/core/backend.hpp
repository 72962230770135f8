#pragma once
// Backend tags. A backend is a type, not a macro, so CPU and CUDA code live in one
// program: Tensor<CPU>, Tensor<CUDA>, ContentDisentangler<CUDA>.
//
// Each backend provides two class specialisations:
//   Device<B>   memory: allocate, copy to/from host, copy within the device
//   Kernels<B>  the compute primitives the ops call (elementwise, reductions,
//               convolution, GEMM, norms, losses, optimiser updates)
// The CPU ones live in backend/cpu/, the CUDA ones in backend/cuda/.
#include <cstddef>
#include <cstdint>
#include <memory>

namespace disco {

struct CPU {
  static constexpr const char* name = "cpu";
};
struct CUDA {
  static constexpr const char* name = "cuda";
};

template <class B> struct Device;   // memory of backend B
template <class B> struct Kernels;  // compute primitives of backend B

// One tensor of a multi-tensor Adam update (Kernels<B>::adam_multi): parameter, gradient,
// first and second moments, all contiguous with n elements, in backend memory.
template <class T>
struct AdamSlot {
  T* p;
  const T* g;
  T* m;
  T* v;
  int64_t n;
};
// Adam's hyper-parameters (torch.optim.Adam, amsgrad off).
struct AdamHyperParams {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};

}  // namespace disco
