#pragma once
// The CUDA keywords as plain C++, for compiling device code with the host compiler in the
// CPU emulations (tests/emu/cuda_emu.hpp, tests/emu_backend/emu_device.hpp). Include after
// <cuda_runtime.h> / <cuda_bf16.h>, which define them as attributes for the host compiler.
// __shared__ becomes `static`: ONE copy per kernel instantiation, shared by every emulated
// thread, which is why both emulations run the blocks of a launch one after the other.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#undef __grid_constant__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
