#pragma once
// Dynamic shared memory for the CPU emulations (tests/emu/cuda_emu.hpp, tests/emu_backend):
// the rules a real launch enforces on its dynamic shared-memory size, and the buffer a block
// sees through DISCO_DYNAMIC_SMEM (kernels/common.cuh).
//  * Limits (sm_90): a block may use up to 48 KB without opting in; more needs
//    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) with at
//    least the launch's size, at most 227 KB (cudaDevAttrMaxSharedMemoryPerBlockOptin). The
//    kernels' static shared memory is not known here (it is not counted; none of disco's
//    kernels combines large static and dynamic shared memory).
//  * Buffer: one mapping of the launch's size (kept while launches ask for the same), 16-byte aligned, ending at most 15 bytes before an
//    inaccessible guard page (and one in front), so that reads or writes past the launch's size
//    fault instead of passing silently; poison() fills it with 0xFF bytes (NaN floats) before
//    every block, so that a read of a word the block never wrote shows up in the results.
#include <cuda_runtime.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace disco_emu {
namespace smem {

constexpr size_t kDefaultLimit = 48 * 1024;  // without the opt-in attribute
constexpr size_t kOptinLimit = 227 * 1024;   // cudaDevAttrMaxSharedMemoryPerBlockOptin (sm_90)
constexpr size_t kPerSM = 228 * 1024;        // per SM, 1 KB of it reserved per resident block

// cudaFuncAttributeMaxDynamicSharedMemorySize of each kernel (key: its host function address,
// what cudaFuncSetAttribute receives).
struct Attributes {
  std::mutex mu;
  std::map<const void*, int> max_dynamic;
  int get(const void* func) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = max_dynamic.find(func);
    return it == max_dynamic.end() ? int(kDefaultLimit) : it->second;
  }
};
inline Attributes& attributes() {
  static Attributes* a = new Attributes;  // never destroyed
  return *a;
}

// cudaFuncSetAttribute for the attributes the emulations know.
inline cudaError_t set_attribute(const void* func, cudaFuncAttribute attr, int value) {
  if (!func) return cudaErrorInvalidDeviceFunction;
  switch (attr) {
    case cudaFuncAttributeMaxDynamicSharedMemorySize: {
      if (value < 0 || size_t(value) > kOptinLimit) return cudaErrorInvalidValue;
      Attributes& a = attributes();
      std::lock_guard<std::mutex> lock(a.mu);
      a.max_dynamic[func] = value;
      return cudaSuccess;
    }
    case cudaFuncAttributePreferredSharedMemoryCarveout:
      return value >= -1 && value <= 100 ? cudaSuccess : cudaErrorInvalidValue;
    default:
      std::fprintf(stderr, "CUDA emulation: cudaFuncSetAttribute(%d) is not emulated\n", int(attr));
      return cudaErrorInvalidValue;
  }
}

// The error a launch of `func` (nullptr: unknown kernel, default limit) with `bytes` of dynamic
// shared memory gets, or cudaSuccess.
inline cudaError_t check_launch(const void* func, size_t bytes) {
  if (bytes > kOptinLimit) return cudaErrorInvalidValue;
  if (bytes > kDefaultLimit && (!func || size_t(attributes().get(func)) < bytes)) return cudaErrorInvalidValue;
  return cudaSuccess;
}

// Blocks of `bytes` dynamic shared memory that fit one SM (0: the launch would fail).
inline int blocks_per_sm(const void* func, size_t bytes) {
  if (bytes == 0) return 1 << 30;
  if (check_launch(func, bytes) != cudaSuccess) return 0;
  return int(kPerSM / (bytes + 1024));
}

class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }
  // A buffer of `bytes` (the previous one is unmapped); bytes == 0: none (data() == nullptr).
  void reset(size_t bytes) {
    if (bytes == size_ && data_) return;  // the same layout: keep the mapping
    release();
    size_ = bytes;
    if (bytes == 0) return;
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    const size_t rounded = (bytes + 15) / 16 * 16;
    const size_t body = (rounded + page - 1) / page * page;
    map_bytes_ = body + 2 * page;
    void* p = mmap(nullptr, map_bytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "CUDA emulation: mmap of %zu bytes of dynamic shared memory failed\n", bytes);
      std::abort();
    }
    map_ = static_cast<unsigned char*>(p);
    if (mprotect(map_ + page, body, PROT_READ | PROT_WRITE) != 0) {
      std::fprintf(stderr, "CUDA emulation: mprotect of dynamic shared memory failed\n");
      std::abort();
    }
    data_ = map_ + page + body - rounded;  // 16-byte aligned (page-aligned end minus a multiple of 16)
    rounded_ = rounded;
  }
  void poison() {
    if (data_) std::memset(data_, 0xFF, rounded_);
  }
  unsigned char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release() {
    if (map_) munmap(map_, map_bytes_);
    map_ = data_ = nullptr;
    map_bytes_ = size_ = rounded_ = 0;
  }
  unsigned char* map_ = nullptr;
  unsigned char* data_ = nullptr;
  size_t map_bytes_ = 0, size_ = 0, rounded_ = 0;
};

}  // namespace smem
}  // namespace disco_emu
