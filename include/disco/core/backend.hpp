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

}  // namespace disco
