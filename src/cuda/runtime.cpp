// disco::cuda runtime: devices, the current stream, the caching allocator, copies.
#include <cuda_profiler_api.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
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
// DISCO_CUDA_EXACT_ALLOC=1 in the environment (read once): every block is exactly the size
// asked for (no rounding to a bin), so a memory checker that tracks cudaMalloc's extents --
// compute-sanitizer memcheck, or the CPU emulation's cp.async source check -- sees an access
// past a tensor's end. Blocks are still cached and reused (for requests of the same size).
bool exact_allocations() {
  static const bool on = [] {
    const char* v = std::getenv("DISCO_CUDA_EXACT_ALLOC");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

namespace {

size_t bin_size(size_t bytes) {
  if (exact_allocations()) return bytes;
  constexpr size_t kSmall = size_t(1) << 20;
  if (bytes <= kSmall) return (bytes + 511) & ~size_t(511);
  size_t p = kSmall;
  while (p < bytes) p <<= 1;
  const size_t step = p / 16;  // bins of 1/16 of the enclosing power of two (<= 12.5% waste)
  return (bytes + step - 1) / step * step;
}

// A private pool of one CUDA graph: every block the graph's captured work uses (allocated
// during capture, or freed during capture) belongs to it until the graph is destroyed, so
// no allocation outside the graph can be handed an address the graph writes on replay.
struct Pool {
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // free blocks of this pool
  std::unordered_set<void*> owned;                            // every block of this pool
};

struct Block {
  size_t bin = 0;
  int pool = 0;  // 0: the general cache; else a graph pool id
};

struct Allocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // bin size -> free blocks
  std::unordered_map<void*, Block> live;                      // block -> bin size, pool
  std::unordered_map<int, Pool> pools;
  int capturing = 0;  // pool id allocations go to while a capture runs (0: none)
  int next_pool = 1;
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
  // mu held: take a block of `bin` bytes from a free list, or nullptr.
  static void* take(std::unordered_map<size_t, std::vector<void*>>& lists, size_t bin) {
    auto it = lists.find(bin);
    if (it == lists.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    return p;
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
  if (a.capturing) p = Allocator::take(a.pools[a.capturing].free_lists, bin);
  if (!p) p = Allocator::take(a.free_lists, bin);
  if (p) {
    a.stats.bytes_cached -= bin;
  } else {
    cudaError_t e = cudaMalloc(&p, bin);
    if (e == cudaErrorMemoryAllocation && !a.capturing) {  // no device-wide sync inside a capture
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
  if (a.capturing) a.pools[a.capturing].owned.insert(p);
  a.live[p] = Block{bin, a.capturing};
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
  Block blk = it->second;
  a.live.erase(it);
  // A block freed while a graph is being captured may have been used by the captured work:
  // it joins that graph's pool.
  if (blk.pool == 0 && a.capturing) {
    blk.pool = a.capturing;
    a.pools[blk.pool].owned.insert(p);
  }
  if (blk.pool != 0) a.pools[blk.pool].free_lists[blk.bin].push_back(p);
  else a.free_lists[blk.bin].push_back(p);
  a.stats.bytes_in_use -= blk.bin;
  a.stats.bytes_cached += blk.bin;
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

void profiler_start() { DISCO_CUDA_CHECK(cudaProfilerStart()); }
void profiler_stop() { DISCO_CUDA_CHECK(cudaProfilerStop()); }

namespace {
// Allocator side of a capture: open a pool / stop routing to it / hand it back.
int pool_open() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  DISCO_CHECK(a.capturing == 0, "CUDA graph: a capture is already running (one at a time)");
  const int id = a.next_pool++;
  a.pools[id];
  a.capturing = id;
  return id;
}
void pool_stop_capture() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.capturing = 0;
}
// The graph is gone (and its work finished): free blocks return to the general cache,
// blocks still held by tensors return there when freed.
void pool_release(int id) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.pools.find(id);
  if (it == a.pools.end()) return;
  for (auto& kv : it->second.free_lists)
    for (void* p : kv.second) a.free_lists[kv.first].push_back(p);
  for (void* p : it->second.owned) {
    auto l = a.live.find(p);
    if (l != a.live.end()) l->second.pool = 0;
  }
  a.pools.erase(it);
  if (a.capturing == id) a.capturing = 0;
}
}  // namespace

// ---- streams and graphs ------------------------------------------------------------------------
void* create_stream() {
  cudaStream_t s = nullptr;
  DISCO_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void destroy_stream(void* s) {
  if (!s) return;
  (void)cudaStreamSynchronize(static_cast<cudaStream_t>(s));
  (void)cudaStreamDestroy(static_cast<cudaStream_t>(s));
  (void)cudaGetLastError();
}

struct Graph::Impl {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  cudaStream_t stream = nullptr;  // the stream it was captured on (and replays on)
  int pool = 0;
  bool capturing = false;
  size_t nodes = 0;
};

Graph::Graph() : impl_(new Impl) {}

Graph::~Graph() {
  if (!impl_) return;
  try {
    reset();
  } catch (...) {  // a destructor must not throw
  }
}

Graph::Graph(Graph&& o) noexcept : impl_(std::move(o.impl_)) {}
Graph& Graph::operator=(Graph&& o) noexcept {
  if (this != &o) {
    try {
      reset();
    } catch (...) {
    }
    impl_ = std::move(o.impl_);
  }
  return *this;
}

void Graph::begin_capture() {
  DISCO_CHECK(impl_, "CUDA graph: moved-from object");
  DISCO_CHECK(!impl_->capturing, "CUDA graph: begin_capture while already capturing");
  reset();
  cudaStream_t s = detail::stream();
  DISCO_CHECK(s != nullptr, "CUDA graph: the legacy default stream cannot be captured; make a stream current "
                            "(disco::cuda::set_stream(disco::cuda::create_stream())) first");
  impl_->pool = pool_open();
  // Relaxed: cudaMalloc stays legal during the capture (a block the warm-up did not leave in
  // the cache is allocated for real; it then belongs to this graph's pool).
  const cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    pool_release(impl_->pool);
    impl_->pool = 0;
    DISCO_CUDA_CHECK(e);
  }
  impl_->stream = s;
  impl_->capturing = true;
}

void Graph::end_capture() {
  DISCO_CHECK(impl_ && impl_->capturing, "CUDA graph: end_capture without begin_capture");
  impl_->capturing = false;
  pool_stop_capture();
  cudaGraph_t g = nullptr;
  const cudaError_t e = cudaStreamEndCapture(impl_->stream, &g);
  if (e != cudaSuccess) {
    if (g) (void)cudaGraphDestroy(g);
    (void)cudaGetLastError();
    const int pool = impl_->pool;
    impl_->pool = 0;
    pool_release(pool);
    fail("CUDA graph: capture failed: ", cudaGetErrorName(e), " (", cudaGetErrorString(e),
         "); some operation in the captured region is not capturable");
  }
  impl_->graph = g;
  DISCO_CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &impl_->nodes));
  const cudaError_t ie = cudaGraphInstantiate(&impl_->exec, g, 0);
  if (ie != cudaSuccess) {
    (void)cudaGetLastError();
    impl_->exec = nullptr;
    reset();
    fail("CUDA graph: instantiation failed: ", cudaGetErrorName(ie), " (", cudaGetErrorString(ie), ")");
  }
}

void Graph::abort_capture() noexcept {
  if (!impl_ || !impl_->capturing) return;
  impl_->capturing = false;
  pool_stop_capture();
  cudaGraph_t g = nullptr;
  (void)cudaStreamEndCapture(impl_->stream, &g);
  if (g) (void)cudaGraphDestroy(g);
  (void)cudaGetLastError();
  try {
    const int pool = impl_->pool;
    impl_->pool = 0;
    pool_release(pool);
  } catch (...) {
  }
}

void Graph::replay() {
  DISCO_CHECK(impl_ && impl_->exec, "CUDA graph: replay before a successful capture");
  DISCO_CHECK(detail::stream() == impl_->stream, "CUDA graph: replay on another stream than the captured one");
  DISCO_CUDA_CHECK(cudaGraphLaunch(impl_->exec, impl_->stream));
}

bool Graph::ready() const { return impl_ && impl_->exec != nullptr; }
size_t Graph::num_nodes() const { return impl_ ? impl_->nodes : 0; }

void Graph::reset() {
  if (!impl_) return;
  if (impl_->capturing) abort_capture();
  if (impl_->stream && (impl_->exec || impl_->pool)) DISCO_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  if (impl_->exec) (void)cudaGraphExecDestroy(impl_->exec);
  if (impl_->graph) (void)cudaGraphDestroy(impl_->graph);
  impl_->exec = nullptr;
  impl_->graph = nullptr;
  impl_->nodes = 0;
  if (impl_->pool) {
    const int pool = impl_->pool;
    impl_->pool = 0;
    pool_release(pool);
  }
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
