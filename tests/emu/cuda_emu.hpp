#pragma once
// A minimal CPU stand-in for the CUDA execution model: enough to compile disco's kernel
// headers (kernels/*.cuh) with the host C++ compiler and run them, one thread block at a
// time. Used by tests/emu/conv_igemm_emu.cpp; needs the CUDA toolkit *headers* (types such
// as dim3 / float2 / __nv_bfloat162 and their host-side functions), no GPU, no nvcc, no
// CUDA library.
//
// What is emulated
//  * Keywords: __global__ / __device__ / __forceinline__ / __launch_bounds__ /
//    __grid_constant__ are defined away; __shared__ becomes `static`, so each kernel
//    instantiation has ONE static copy of its shared arrays, used by every emulated thread.
//    That is why blocks run one after the other (never two blocks at once).
//  * Dynamic shared memory (DISCO_DYNAMIC_SMEM of kernels/common.cuh): the launch overload
//    with `smem_bytes` maps a buffer of that size (dynamic_smem.hpp: 16-byte aligned, guard
//    pages around it, so an access past the launch's size faults) and fills it with NaN before
//    every block, so a read of a word the block never wrote shows up. Like a real launch it
//    FAILS (returns cudaErrorInvalidValue, runs nothing) above 227 KB, and above 48 KB unless
//    cudaFuncSetAttribute(func, cudaFuncAttributeMaxDynamicSharedMemorySize, >= smem_bytes)
//    was called for `func` (emulated below).
//  * Threads: one std::thread per CUDA thread of the block (1-D blocks only); threadIdx /
//    blockIdx are thread_local, blockDim / gridDim global. The same threads run all blocks
//    of a launch, with a barrier between blocks; they are kept in a pool for later launches.
//  * __syncthreads(): a pthread barrier over all threads of the block. The OS preempts the
//    threads at arbitrary points, so a missing __syncthreads (shared buffer refilled while
//    others still read it) shows up as wrong results -- very likely, not certainly. A thread
//    that returns early while others still reach a __syncthreads hangs the emulation
//    (ctest's TIMEOUT catches it); on hardware that is undefined behaviour too.
//  * Warp-collective mma.sync (disco_emu_mma_tf32 / _bf16, called by the kernel's mma
//    helpers when DISCO_KERNEL_EMULATION is defined): every lane deposits its A / B fragment
//    registers in a per-warp exchange buffer and waits at a barrier over the warp's 32 lanes;
//    then each lane rebuilds the 16x8xK tiles from the fragment layouts of the PTX ISA
//    ("Matrix Fragments for mma.m16n8k8" .tf32 and "mma.m16n8k16" .bf16) and computes its 4
//    accumulators. All 32 lanes must call it together, as mma.sync.aligned requires. The
//    layouts here are written from the PTX documentation, independently of the kernel's
//    fragment builders, so a wrong index in the kernel shows up as a wrong result.
//  * Warp shuffles (__shfl_xor_sync, the only one kernels/*.cuh use): like the mma, each lane
//    deposits its value in a per-warp exchange buffer (two, used alternately), waits at the
//    warp barrier and reads its source lane's slot. Full mask and width 32 only (what the
//    kernels pass); a shuffle in a partial warp aborts.
//  * Atomics and fences (the "last block finishes" reduction of kernels/common.cuh):
//    atomicAdd(unsigned*) is a sequentially consistent fetch-add, __threadfence a full fence,
//    __ldcg a plain load. No kernel spin-waits on another block, so running blocks one after
//    the other is a legal CUDA schedule; launch() can run them in a shuffled order
//    (order_seed) so that "the last block" is not always the highest index.
//  * Block sizes that are not a multiple of 32 (increment_counter_kernel<<<1, 1>>>) run;
//    warp collectives in them abort.
//  * Code under `#if __CUDA_ARCH__ >= 800` is not compiled (the macro is undefined), so the
//    kernels' host fallbacks run: cp.async is a synchronous 4-byte copy (zero-fill when the
//    predicate is false), cp.async.commit / wait are no-ops, cvt.rna.tf32 is the identity
//    (the emulated mma rounds its TF32 inputs to nearest, ties away, as cvt.rna does).
//
// What is NOT covered
//  * Asynchrony: copies land immediately, so a missing cp.async.wait_group (or a wrong
//    group count) cannot be seen. Only the __syncthreads structure (buffer reuse) is tested.
//  * Real tensor cores: products of TF32 / BF16 inputs are exact in both, but hardware
//    accumulation order / rounding inside one mma differs from the double sum used here;
//    results are compared with a tolerance, not bitwise.
//  * The GPU memory model and warp scheduling: threads run on x86 (TSO), blocks in sequence;
//    no bank conflicts, no occupancy, no timing, no register limits, no static shared-memory
//    limit (only the dynamic one, see above), no alignment faults of the float2 shared-memory
//    reads.
//  * The host launchers (src/cuda/conv_custom.cu: grid sizes, tile choice, split counts,
//    workspace sizing; src/cuda/disco_cuda.cu): the tests launch the kernels themselves
//    (kernels_emu.cpp re-implements disco_cuda.cu's launch configuration).
//  * Concurrency between blocks: a kernel that waits for another block would hang here
//    (none does); races between blocks through global memory cannot show.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cmath>  // fmaf etc. at global scope, as device code expects
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

// ---- keywords ------------------------------------------------------------------------------------
// The CUDA headers define these as attributes for the host compiler; replace them.
#include "cuda_keywords.hpp"
#include "dynamic_smem.hpp"

// The runtime API call of the launchers: cudaFuncSetAttribute (the generic form; <cuda_runtime.h>
// forwards the typed one, cudaFuncSetAttribute(kernel, attr, value), here).
extern "C" inline cudaError_t cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
  return disco_emu::smem::set_attribute(func, attr, value);
}
// The typed form, which <cuda_runtime.h> declares for nvcc only (__CUDACC__): kernel -> address.
template <class T>
inline cudaError_t cudaFuncSetAttribute(T* entry, enum cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}
// cudaGetErrorName without the CUDA runtime library (the emulated launch's error messages).
extern "C" inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    default: return "cudaError (other)";
  }
}

namespace disco_emu {

constexpr int kMaxWarps = 32;  // 1024 threads per block

inline thread_local uint3 thread_idx, block_idx;
inline thread_local unsigned mma_calls;   // per emulated thread, see mma_m16n8
inline thread_local unsigned shfl_calls;  // per emulated thread, see shfl_xor
inline dim3 block_dim, grid_dim;
inline pthread_barrier_t block_barrier;
inline pthread_barrier_t warp_barrier[kMaxWarps];

inline void fail(const char* what) {
  std::fprintf(stderr, "cuda_emu: %s\n", what);
  std::abort();
}

// Worker threads, created on first use and kept for later launches (creating 256 threads
// costs about as much as 20 barrier rounds). Worker t plays CUDA thread t of every launch.
class WorkerPool {
 public:
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    start_cv_.notify_all();
    for (auto& th : workers_) th.join();
  }
  // Runs job(t) for t in [0, threads) on workers 0 .. threads-1; returns when all are done.
  void run(int threads, const std::function<void(int)>& job) {
    std::unique_lock<std::mutex> lk(mu_);
    while (int(workers_.size()) < threads) {
      const int t = int(workers_.size());
      const unsigned g = gen_;  // the new worker takes part from the next generation on
      workers_.emplace_back([this, t, g] { loop(t, g); });
    }
    job_ = &job;
    threads_ = threads;
    remaining_ = threads;
    ++gen_;
    start_cv_.notify_all();
    done_cv_.wait(lk, [&] { return remaining_ == 0; });
  }

 private:
  void loop(int t, unsigned seen) {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      start_cv_.wait(lk, [&] { return gen_ != seen || quit_; });
      if (quit_) return;
      seen = gen_;
      if (t >= threads_) continue;  // not part of this launch
      lk.unlock();
      (*job_)(t);
      lk.lock();
      if (--remaining_ == 0) done_cv_.notify_one();
    }
  }
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  unsigned gen_ = 0;
  int threads_ = 0, remaining_ = 0;
  bool quit_ = false;
};
inline WorkerPool pool;

// The dynamic shared memory of the running launch (DISCO_DYNAMIC_SMEM).
inline smem::Buffer dyn_smem;
inline unsigned char* dynamic_smem() { return dyn_smem.data(); }

// Run `kernel()` for every block of `grid` with `threads` emulated threads (1-D block) and
// `smem_bytes` of dynamic shared memory. func: the kernel's address, as passed to
// cudaFuncSetAttribute (nullptr: a kernel without the opt-in). Returns the launch error
// (cudaErrorInvalidValue: too much dynamic shared memory, nothing ran) or cudaSuccess.
// order_seed = 0: blocks in index order (x fastest); otherwise a random permutation of the
// blocks (any order is a legal schedule of independent blocks).
template <class Kernel>
cudaError_t launch(dim3 grid, int threads, size_t smem_bytes, const void* func, const Kernel& kernel,
                   unsigned order_seed = 0) {
  if (threads <= 0 || threads > 32 * kMaxWarps) fail("block size must be in [1, 1024]");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) fail("empty grid (a CUDA launch error)");
  if (const cudaError_t e = smem::check_launch(func, smem_bytes); e != cudaSuccess) {
    std::fprintf(stderr, "cuda_emu: launch with %zu bytes of dynamic shared memory fails (%s; the kernel's "
                 "MaxDynamicSharedMemorySize is %d)\n", smem_bytes, cudaGetErrorName(e),
                 func ? smem::attributes().get(func) : int(smem::kDefaultLimit));
    return e;
  }
  dyn_smem.reset(smem_bytes);
  block_dim = dim3(unsigned(threads));
  grid_dim = grid;
  const size_t nblocks = size_t(grid.x) * grid.y * grid.z;
  std::vector<size_t> order(nblocks);
  std::iota(order.begin(), order.end(), size_t(0));
  if (order_seed) std::shuffle(order.begin(), order.end(), std::mt19937(order_seed));
  pthread_barrier_init(&block_barrier, nullptr, unsigned(threads));
  for (int w = 0; w < threads / 32; ++w) pthread_barrier_init(&warp_barrier[w], nullptr, 32);
  pool.run(threads, [&](int t) {
    thread_idx = make_uint3(unsigned(t), 0, 0);
    mma_calls = 0;
    shfl_calls = 0;
    for (const size_t b : order) {
      if (smem_bytes) {  // a block starts with garbage (NaN) in its dynamic shared memory
        if (t == 0) dyn_smem.poison();
        pthread_barrier_wait(&block_barrier);
      }
      block_idx = make_uint3(unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / grid.x / grid.y));
      kernel();
      // the block's shared memory (static arrays, the dynamic buffer) is reused by the next block
      pthread_barrier_wait(&block_barrier);
    }
  });
  pthread_barrier_destroy(&block_barrier);
  for (int w = 0; w < threads / 32; ++w) pthread_barrier_destroy(&warp_barrier[w]);
  return cudaSuccess;
}
// Without dynamic shared memory (cannot fail).
template <class Kernel>
void launch(dim3 grid, int threads, const Kernel& kernel, unsigned order_seed = 0) {
  (void)launch(grid, threads, 0, nullptr, kernel, order_seed);
}

// ---- warp shuffles -----------------------------------------------------------------------------
// Two 8-byte slots per lane and warp, used alternately by consecutive shuffles (same argument
// as for the mma buffers below: one barrier per shuffle).
inline uint64_t shfl_exchange[kMaxWarps][2][32];

template <class T>
T shfl_xor(unsigned mask, T v, int lane_mask, int width) {
  static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
  if (mask != 0xffffffffu || width != 32) fail("__shfl_xor_sync: only full mask and width 32 are emulated");
  if ((block_dim.x & 31u) != 0) fail("__shfl_xor_sync in a partial warp");
  const int lane = int(thread_idx.x) & 31, warp = int(thread_idx.x) >> 5;
  uint64_t* slots = shfl_exchange[warp][shfl_calls++ & 1];
  std::memcpy(&slots[lane], &v, sizeof(T));
  pthread_barrier_wait(&warp_barrier[warp]);  // every lane of the warp has deposited its value
  T r;
  std::memcpy(&r, &slots[(lane ^ lane_mask) & 31], sizeof(T));
  return r;
}

// ---- warp-collective mma.sync (m16n8k8 .tf32, m16n8k16 .bf16; row.col; f32 accumulators) ------
struct WarpExchange {
  uint32_t a[32][4];
  uint32_t b[32][2];
};
// Two exchange buffers per warp, used alternately by consecutive mma calls (each lane counts
// its calls): one barrier per mma is enough. A lane can only reach call n + 2 (same buffer as
// call n) after every lane has reached call n + 1, i.e. finished reading call n.
inline WarpExchange warp_exchange[kMaxWarps][2];

// cvt.rna.tf32.f32: keep 10 mantissa bits, round to nearest, ties away from zero (finite inputs).
inline float tf32_value(uint32_t bits) {
  bits = (bits + 0x1000u) & 0xffffe000u;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
// One bf16 of a .bf16x2 register: element 0 in the low 16 bits.
inline float bf16_value(uint32_t pair, int hi) {
  const uint32_t bits = (hi ? (pair >> 16) : (pair & 0xffffu)) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// D = A (16 x KK) * B (KK x 8) + C. Fragment layouts (g = lane / 4, t = lane % 4):
//   C/D: c[e] = (row g + 8 (e / 2), col 2 t + e % 2)
//   tf32 (KK = 8):  a[r] = A(g + 8 (r % 2), t + 4 (r / 2)),  b[r] = B(t + 4 r, g)
//   bf16 (KK = 16): a[r] = A(g + 8 (r % 2), 2 t + 8 (r / 2) + {0,1}),  b[r] = B(2 t + 8 r + {0,1}, g)
// Inverted below: element (row, k) of A lives in lane (row % 8) * 4 + kp % 4, register
// row / 8 + 2 (kp / 4), where kp = k (tf32) or k / 2 (bf16, half k % 2); B(k, col) in lane
// col * 4 + kp % 4, register kp / 4.
template <bool BF16>
inline void mma_m16n8(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if ((block_dim.x & 31u) != 0) fail("mma in a partial warp");
  const int lane = int(thread_idx.x) & 31, warp = int(thread_idx.x) >> 5;
  WarpExchange& x = warp_exchange[warp][mma_calls++ & 1];
  std::memcpy(x.a[lane], a, sizeof a);
  std::memcpy(x.b[lane], b, sizeof b);
  pthread_barrier_wait(&warp_barrier[warp]);  // all 32 lanes have deposited their fragments
  const int g = lane >> 2, t = lane & 3;
  constexpr int KK = BF16 ? 16 : 8;
  for (int e = 0; e < 4; ++e) {
    const int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
    double s = 0;  // products of tf32 / bf16 values are exact; the sum is (nearly) exact in double
    for (int k = 0; k < KK; ++k) {
      const int kp = BF16 ? k / 2 : k;
      const uint32_t aw = x.a[(row % 8) * 4 + kp % 4][row / 8 + 2 * (kp / 4)];
      const uint32_t bw = x.b[col * 4 + kp % 4][kp / 4];
      const float av = BF16 ? bf16_value(aw, k % 2) : tf32_value(aw);
      const float bv = BF16 ? bf16_value(bw, k % 2) : tf32_value(bw);
      s += double(av) * double(bv);
    }
    c[e] += float(s);
  }
}

// ---- warp-collective ldmatrix.sync.aligned.m8n8.x4.shared.b16 ------------------------------------
// From the PTX ISA ("Warp-level matrix load instruction: ldmatrix"): four 8 x 8 matrices of
// 16-bit elements; thread l supplies the address of row l % 8 of matrix l / 8 (16 bytes each),
// and thread l receives in register i the two elements (columns 2 (l % 4), 2 (l % 4) + 1) of
// row l / 4 of matrix i. Each lane deposits its row address in the shuffle slots and waits at
// the warp barrier; then each lane reads its words. Between two warp collectives a lane of the
// kernels only multiplies, so no lane writes the rows before all have read them.
// .trans: lane l receives in register i the elements of column l / 4 of matrix i, rows 2 (l % 4)
// (low 16 bits) and 2 (l % 4) + 1 (high 16 bits).
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row_addr, bool trans) {
  if ((block_dim.x & 31u) != 0) fail("ldmatrix in a partial warp");
  const int lane = int(thread_idx.x) & 31, warp = int(thread_idx.x) >> 5;
  if ((reinterpret_cast<uintptr_t>(row_addr) & 15u) != 0) fail("ldmatrix: row address not 16-byte aligned");
  uint64_t* slots = shfl_exchange[warp][shfl_calls++ & 1];
  slots[lane] = uint64_t(reinterpret_cast<uintptr_t>(row_addr));
  pthread_barrier_wait(&warp_barrier[warp]);
  for (int i = 0; i < 4; ++i) {
    if (!trans) {
      const auto* row = reinterpret_cast<const unsigned char*>(uintptr_t(slots[8 * i + lane / 4]));
      std::memcpy(&r[i], row + 4 * (lane % 4), 4);
    } else {
      uint16_t e[2];
      for (int h = 0; h < 2; ++h) {
        const auto* row = reinterpret_cast<const unsigned char*>(uintptr_t(slots[8 * i + 2 * (lane % 4) + h]));
        std::memcpy(&e[h], row + 2 * (lane / 4), 2);
      }
      r[i] = uint32_t(e[0]) | (uint32_t(e[1]) << 16);
    }
  }
}

}  // namespace disco_emu

#define threadIdx ::disco_emu::thread_idx
#define blockIdx ::disco_emu::block_idx
#define blockDim ::disco_emu::block_dim
#define gridDim ::disco_emu::grid_dim

inline void __syncthreads() { pthread_barrier_wait(&::disco_emu::block_barrier); }

// Used by kernels/common.cuh (block_sum / warp_sum, reduce_finalize_kernel). Blocks run one
// after the other, so the fence and the cache-global load have nothing to order; they are a
// full fence and a plain load.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline double __ldcg(const double* p) { return *p; }
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask, int width = 32) {
  return disco_emu::shfl_xor(mask, v, lane_mask, width);
}
inline double __shfl_xor_sync(unsigned mask, double v, int lane_mask, int width = 32) {
  return disco_emu::shfl_xor(mask, v, lane_mask, width);
}

#define DISCO_DYNAMIC_SMEM(name) unsigned char* const name = ::disco_emu::dynamic_smem()

// Hook of kernels/conv2d_igemm.cuh (DISCO_KERNEL_EMULATION).
inline void disco_emu_mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  disco_emu::mma_m16n8<false>(c, a, b);
}
inline void disco_emu_mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  disco_emu::mma_m16n8<true>(c, a, b);
}
inline void disco_emu_ldmatrix_x4(uint32_t (&r)[4], const void* row_addr, bool trans) {
  disco_emu::ldmatrix_x4(r, row_addr, trans);
}
#define DISCO_KERNEL_EMULATION 1
