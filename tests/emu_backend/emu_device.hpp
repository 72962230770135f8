#pragma once
// Device side of the CPU emulation of disco::cuda (tests/emu_backend, see README.md).
// Force-included (g++ -include) into the transformed src/cuda/*.cu translation units, before
// anything else: the real CUDA headers supply the types (dim3, uint3, __nv_bfloat16, ...) and
// their host-side functions; this header then turns the CUDA keywords into plain C++, maps
// threadIdx / blockIdx / blockDim / gridDim, __syncthreads, the warp shuffle, atomics and the
// mma.sync / ldmatrix hooks of kernels/conv2d_igemm.cuh / conv2d_nhwc.cuh to the fiber scheduler of emu_runtime.cpp, and
// declares disco_emu::launch, which the launch transform (transform_launches.py) calls in
// place of every `kernel<<<grid, block, smem, stream>>>(args)`. DISCO_DYNAMIC_SMEM (the
// kernels' `extern __shared__` buffer, kernels/common.cuh) is the launch's dynamic shared
// memory: a buffer of its size per launch, NaN-poisoned before every block, guard pages around.
//
// Duplication note: tests/emu/cuda_emu.hpp does the keyword shims and the mma fragment
// layouts too (one OS thread per CUDA thread). This emulation runs the threads of a block as
// fibers on one OS thread instead (about 1000x cheaper barriers, deterministic), which the
// whole-backend tests need; the PTX fragment layouts are re-implemented in emu_runtime.cpp.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../emu/cuda_keywords.hpp"

namespace disco_emu {

// The emulated thread that runs now (set by the scheduler before resuming a fiber).
extern uint3 g_thread_idx, g_block_idx;
extern dim3 g_block_dim, g_grid_dim;

[[noreturn]] void fail(const char* what);

void sync_block();  // __syncthreads
float shfl_xor(float v, unsigned mask, int lane_mask, int width);
double shfl_xor(double v, unsigned mask, int lane_mask, int width);
void mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);
void mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);
void ldmatrix_x4(uint32_t (&r)[4], const void* row_addr, bool trans);
uint32_t smem_addr(const void* p);  // __cvta_generic_to_shared: the offset in dynamic shared memory
void wgmma(float* d, int n, bool tf32, uint64_t desc_a, uint64_t desc_b, int accumulate, bool mn_major);
void wgmma_commit();
void fence_proxy_async();
void wgmma_wait(int n);
void cp_async(void* dst, const void* src, int bytes, bool pred);
void check_copy_source(const void* src, int bytes);
void cp_async_commit();
void cp_async_wait(int n);

// Runs body(ctx) as every thread of every block of the grid, with `smem` bytes of dynamic
// shared memory (emu_runtime.cpp).
void run_grid(const char* name, dim3 grid, dim3 block, size_t smem, void (*body)(const void*), const void* ctx);

// The running block's dynamic shared memory (DISCO_DYNAMIC_SMEM); nullptr for launches without.
unsigned char* dynamic_smem();

// Checks the launch configuration (an invalid one sets the error cudaGetLastError returns, as a
// failed <<<>>> does; dynamic shared memory over 48 KB needs func's cudaFuncSetAttribute
// opt-in, see tests/emu/dynamic_smem.hpp) and runs `work` now, or records it when `stream` is
// being captured. func: the kernel's address (nullptr: launched without dynamic shared memory).
void enqueue_kernel(const char* name, const void* func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                    std::function<void()> work);

// The address cudaFuncSetAttribute gets for a kernel (a function or a pointer to one). The launch
// transform passes it for every launch with dynamic shared memory, so such a launch must name
// one kernel (a fully specified template or a function pointer), as cudaFuncSetAttribute must.
template <class R, class... P>
const void* kernel_id(R (*f)(P...)) {
  return reinterpret_cast<const void*>(f);
}

// callee: a generic lambda that calls the kernel with the stored arguments. The arguments are
// evaluated and copied here, at launch time, as CUDA copies kernel parameters.
template <class F, class... A>
void launch(const char* name, const void* func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream, F callee,
            A&&... a) {
  using Args = std::tuple<std::decay_t<A>...>;
  auto args = std::make_shared<const Args>(std::forward<A>(a)...);
  enqueue_kernel(name, func, grid, block, smem, stream, [name, grid, block, smem, callee, args] {
    struct Ctx {
      const F* f;
      const Args* args;
    } ctx{&callee, args.get()};
    run_grid(
        name, grid, block, smem,
        [](const void* p) {
          const Ctx* c = static_cast<const Ctx*>(p);
          std::apply(*c->f, *c->args);
        },
        &ctx);
  });
}

}  // namespace disco_emu

#define threadIdx ::disco_emu::g_thread_idx
#define blockIdx ::disco_emu::g_block_idx
#define blockDim ::disco_emu::g_block_dim
#define gridDim ::disco_emu::g_grid_dim

inline void __syncthreads() { ::disco_emu::sync_block(); }
// Blocks run one after the other on one OS thread: fences and cache hints have nothing to order.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline double __ldcg(const double* p) { return *p; }
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask, int width = 32) {
  return ::disco_emu::shfl_xor(v, mask, lane_mask, width);
}
inline double __shfl_xor_sync(unsigned mask, double v, int lane_mask, int width = 32) {
  return ::disco_emu::shfl_xor(v, mask, lane_mask, width);
}

// Hooks of kernels/conv2d_igemm.cuh (DISCO_KERNEL_EMULATION).
inline void disco_emu_mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  ::disco_emu::mma_tf32(c, a, b);
}
inline void disco_emu_mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  ::disco_emu::mma_bf16(c, a, b);
}
inline void disco_emu_ldmatrix_x4(uint32_t (&r)[4], const void* row_addr, bool trans) {
  ::disco_emu::ldmatrix_x4(r, row_addr, trans);
}
// Hooks of kernels/conv2d_wgmma.cuh.
inline uint32_t disco_emu_smem_addr(const void* p) { return ::disco_emu::smem_addr(p); }
inline void disco_emu_wgmma(float* d, int n, int tf32, uint64_t desc_a, uint64_t desc_b, int accumulate,
                            int mn_major) {
  ::disco_emu::wgmma(d, n, tf32 != 0, desc_a, desc_b, accumulate, mn_major != 0);
}
inline void disco_emu_wgmma_commit() { ::disco_emu::wgmma_commit(); }
inline void disco_emu_fence_proxy_async() { ::disco_emu::fence_proxy_async(); }
inline void disco_emu_wgmma_wait(int n) { ::disco_emu::wgmma_wait(n); }
// Hooks of kernels/conv2d_igemm.cuh's cp.async wrappers (DISCO_EMU_ASYNC_COPIES).
inline void disco_emu_cp_async(void* dst, const void* src, int bytes, bool pred) {
  ::disco_emu::cp_async(dst, src, bytes, pred);
}
inline void disco_emu_check_copy_source(const void* src, int bytes) { ::disco_emu::check_copy_source(src, bytes); }
inline void disco_emu_cp_async_commit() { ::disco_emu::cp_async_commit(); }
inline void disco_emu_cp_async_wait(int n) { ::disco_emu::cp_async_wait(n); }
// The typed form, which <cuda_runtime.h> declares for nvcc only (__CUDACC__): kernel -> address.
template <class T>
inline cudaError_t cudaFuncSetAttribute(T* entry, enum cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}

#define DISCO_KERNEL_EMULATION 1
#define DISCO_EMU_ASYNC_COPIES 1  // cp.async lands at its cp.async.wait_group (emu_runtime.cpp)
#define DISCO_DYNAMIC_SMEM(name) unsigned char* const name = ::disco_emu::dynamic_smem()
