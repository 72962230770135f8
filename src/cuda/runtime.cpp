// disco::cuda runtime: devices, the current stream, the caching allocator, copies.
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "internal.hpp"

namespace disco {
namespace cuda {
namespace detail {

void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line) {
  // Clear a non-sticky error so later calls are not affected; sticky errors (a kernel fault)
  // stay and make every later CUDA call fail, which is all one can do.
  (void)cudaGetLastError();
  fail("CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") at ", file, ":", line, " in `", expr,
       "`");
}

int grid_for(int64_t n, int block, int per_thread) {
  static const int cap = 8 * device_sm_count();
  int64_t blocks = (n + int64_t(block) * per_thread - 1) / (int64_t(block) * per_thread);
  if (blocks < 1) blocks = 1;
  if (blocks > cap) blocks = cap;
  return int(blocks);
}

}  // namespace detail

// ---- devices ---------------------------------------------------------------------------------
int device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

bool device_available() { return device_count() > 0; }

std::string device_name() {
  int dev = 0;
  DISCO_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  DISCO_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return prop.name;
}

int device_sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    DISCO_CUDA_CHECK(cudaGetDevice(&dev));
    DISCO_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}

int device_compute_capability() {
  int dev = 0, major = 0, minor = 0;
  DISCO_CUDA_CHECK(cudaGetDevice(&dev));
  DISCO_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  DISCO_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return major * 10 + minor;
}

// ---- streams -----------------------------------------------------------------------------------
namespace {
std::atomic<void*> g_stream{nullptr};
}

void* get_stream() { return g_stream.load(); }

void set_stream(void* s) {
  void* old = g_stream.load();
  if (old == s) return;
  DISCO_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(old)));
  g_stream.store(s);
}

void synchronize() { DISCO_CUDA_CHECK(cudaStreamSynchronize(detail::stream())); }
void device_synchronize() { DISCO_CUDA_CHECK(cudaDeviceSynchronize()); }

// ---- caching allocator ---------------------------------------------------------------------------
namespace {

size_t bin_size(size_t bytes) {
  constexpr size_t kSmall = size_t(1) << 20;
  if (bytes <= kSmall) return (bytes + 511) & ~size_t(511);
  size_t p = kSmall;
  while (p < bytes) p <<= 1;
  const size_t step = p / 16;  // bins of 1/16 of the enclosing power of two (<= 12.5% waste)
  return (bytes + step - 1) / step * step;
}

struct Allocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // bin size -> free blocks
  std::unordered_map<void*, size_t> live;                     // block -> bin size
  MemoryStats stats;

  // mu held
  void release_cached() {
    for (auto& kv : free_lists) {
      for (void* p : kv.second) {
        (void)cudaFree(p);
        stats.bytes_cached -= kv.first;
        stats.bytes_reserved -= kv.first;
      }
      kv.second.clear();
    }
    free_lists.clear();
  }
};

Allocator& allocator() {
  // Intentionally leaked: freeing at static destruction would race the CUDA runtime's teardown.
  static Allocator* a = new Allocator;
  return *a;
}

}  // namespace

void* device_malloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t bin = bin_size(bytes);
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.stats.num_mallocs += 1;
  void* p = nullptr;
  auto it = a.free_lists.find(bin);
  if (it != a.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    a.stats.bytes_cached -= bin;
  } else {
    cudaError_t e = cudaMalloc(&p, bin);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      DISCO_CUDA_CHECK(cudaDeviceSynchronize());
      a.release_cached();
      e = cudaMalloc(&p, bin);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      fail("device_malloc: cudaMalloc of ", bin, " bytes (requested ", bytes, ") failed: ", cudaGetErrorName(e), " (",
           cudaGetErrorString(e), "); disco holds ", a.stats.bytes_in_use, " bytes in use, ", a.stats.bytes_cached,
           " cached");
    }
    a.stats.num_cuda_mallocs += 1;
    a.stats.bytes_reserved += bin;
  }
  a.live[p] = bin;
  a.stats.bytes_in_use += bin;
  if (a.stats.bytes_in_use > a.stats.peak_bytes) a.stats.peak_bytes = a.stats.bytes_in_use;
  return p;
}

void device_free(void* p) {
  if (p == nullptr) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(p);
  DISCO_CHECK(it != a.live.end(), "device_free: ", p, " was not returned by disco::cuda::device_malloc (or was freed twice)");
  const size_t bin = it->second;
  a.live.erase(it);
  a.free_lists[bin].push_back(p);
  a.stats.bytes_in_use -= bin;
  a.stats.bytes_cached += bin;
}

void empty_cache() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  DISCO_CUDA_CHECK(cudaDeviceSynchronize());
  a.release_cached();
}

MemoryStats memory_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.stats;
}

void reset_peak_memory() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.stats.peak_bytes = a.stats.bytes_in_use;
}

// ---- copies --------------------------------------------------------------------------------------
void memcpy_h2d(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  DISCO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, detail::stream()));
  // Pageable sources are staged before cudaMemcpyAsync returns; pinned ones are not, so wait
  // for those to keep the "src may be reused" promise.
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, src) == cudaSuccess && attr.type == cudaMemoryTypeHost)
    DISCO_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
  (void)cudaGetLastError();
}

void memcpy_d2h(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  DISCO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, detail::stream()));
  DISCO_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
}

void memcpy_d2d(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  DISCO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, detail::stream()));
}

void memset(void* dst, int value, size_t bytes) {
  if (bytes == 0) return;
  DISCO_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, detail::stream()));
}

}  // namespace cuda
}  // namespace disco
