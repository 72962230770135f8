#pragma once
// DISCO_HOST_DEVICE marks index-math helpers that CUDA kernels and CPU code share.
// Under nvcc they compile for both sides; under a plain C++ compiler they are inline.
#if defined(__CUDACC__)
#define DISCO_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DISCO_HOST_DEVICE inline
#endif
