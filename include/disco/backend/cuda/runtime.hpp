#pragma once
// CUDA runtime services of disco: devices, the current stream, the caching device
// allocator and memory copies. Plain C++ (no cuda_runtime.h); link disco::cuda.
//
// Errors: every failing CUDA / cuBLAS / cuDNN call throws disco::Error carrying the file,
// line, failed expression and the library's error string. Nothing here aborts.
//
// Streams: all work is enqueued on disco's *current stream* (a cudaStream_t passed as
// void*; nullptr = the legacy default stream). The caching allocator hands freed blocks
// straight back out, which is safe because all of disco's work is ordered on that one
// stream; set_stream() therefore synchronizes the previous stream before switching.
// The library uses the device that is current when it is first called (one device per
// process).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace disco {
namespace cuda {

// ---- devices ----------------------------------------------------------------------------
// True when the CUDA runtime finds at least one usable device (never throws).
bool device_available();
// Number of CUDA devices (0 when there is no driver or device; never throws).
int device_count();
// Name of the current device, e.g. "NVIDIA H100 80GB HBM3". Throws without a device.
std::string device_name();
// Number of streaming multiprocessors of the current device.
int device_sm_count();
// Compute capability as major*10 + minor (90 for H100 / H200).
int device_compute_capability();

// Block the host until all work on the current stream has finished.
void synchronize();
// Block until all work on the device has finished.
void device_synchronize();

// ---- streams ----------------------------------------------------------------------------
// The current stream (a cudaStream_t), nullptr for the legacy default stream.
void* get_stream();
// Make `stream` (a cudaStream_t or nullptr) current. Synchronizes the previous stream first.
void set_stream(void* stream);

// A new non-blocking stream (a cudaStream_t as void*), e.g. for graph capture; destroy it
// with destroy_stream (which waits for its work) after it stopped being current.
void* create_stream();
void destroy_stream(void* stream);

// ---- CUDA graphs ------------------------------------------------------------------------
// Captures the work disco enqueues on the current stream between begin_capture() and
// end_capture() into a CUDA graph, and replays it with one launch. The current stream must
// not be the legacy default stream. While capturing, the caching allocator serves the
// capture from a pool private to this graph (blocks allocated or freed during the capture
// belong to it until the graph is reset or destroyed), so addresses the graph writes on
// replay are never handed to other tensors. Work that reads back to the host cannot be
// captured: end_capture() then throws disco::Error and nothing is kept. Replays read and
// write exactly the addresses used during the capture.
class Graph {
 public:
  Graph();
  ~Graph();  // waits for its replays, then frees the graph and its pool
  Graph(Graph&&) noexcept;
  Graph& operator=(Graph&&) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  void begin_capture();
  void end_capture();              // instantiates; throws disco::Error if the capture failed
  void abort_capture() noexcept;   // ends a capture after an error, keeps nothing
  void replay();                   // on the stream it was captured on (must be current)
  bool ready() const;              // captured and instantiated
  std::size_t num_nodes() const;   // kernels, copies and memsets in the graph
  void reset();                    // waits, frees the graph and its pool (ready() becomes false)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- memory -----------------------------------------------------------------------------
// Caching allocator over cudaMalloc: sizes are rounded up to a bin (multiples of 512 B up to
// 1 MiB, then 1/16 steps of the enclosing power of two); freed blocks go to a per-bin free
// list and are reused. Out of memory: the cache is emptied and cudaMalloc retried once, then
// disco::Error. device_malloc(0) returns nullptr; device_free(nullptr) does nothing.
// DISCO_CUDA_EXACT_ALLOC=1 in the environment: no rounding (every block exactly the size asked
// for), so compute-sanitizer memcheck sees an access past a tensor's end; for checking runs.
void* device_malloc(size_t bytes);
bool exact_allocations();  // DISCO_CUDA_EXACT_ALLOC is set (read once per process)
void device_free(void* ptr);
// Return all cached (free) blocks to the driver (cudaFree). Synchronizes the device.
void empty_cache();

struct MemoryStats {
  size_t bytes_in_use = 0;   // handed out by device_malloc and not yet freed (bin sizes)
  size_t peak_bytes = 0;     // maximum of bytes_in_use since start / reset_peak_memory()
  size_t bytes_cached = 0;   // in free lists, reusable without cudaMalloc
  size_t bytes_reserved = 0; // in use + cached (everything obtained from cudaMalloc)
  size_t num_mallocs = 0;    // device_malloc calls
  size_t num_cuda_mallocs = 0;  // of which went to cudaMalloc
};
MemoryStats memory_stats();
void reset_peak_memory();

// The range of work that Nsight Compute / Nsight Systems profile when started with
// --profile-from-start off (cudaProfilerStart / cudaProfilerStop: benchmarks/train_step
// --profile-step). Without a profiler attached they do nothing.
void profiler_start();
void profiler_stop();

// Copies. memcpy_h2d returns once `src` may be reused (pageable host memory is staged);
// memcpy_d2h waits until the data has arrived in `dst`; memcpy_d2d and memset are async on
// the current stream. memset sets bytes (like cudaMemset).
void memcpy_h2d(void* dst_device, const void* src_host, size_t bytes);
void memcpy_d2h(void* dst_host, const void* src_device, size_t bytes);
void memcpy_d2d(void* dst_device, const void* src_device, size_t bytes);
void memset(void* dst_device, int byte_value, size_t bytes);

// RAII owner of a device array from the caching allocator (move-only).
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : n_(n), p_(static_cast<T*>(device_malloc(n * sizeof(T)))) {}
  ~DeviceArray() { device_free(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : n_(o.n_), p_(o.p_) { o.n_ = 0; o.p_ = nullptr; }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      device_free(p_);
      n_ = o.n_; p_ = o.p_;
      o.n_ = 0; o.p_ = nullptr;
    }
    return *this;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

 private:
  size_t n_ = 0;
  T* p_ = nullptr;
};

}  // namespace cuda
}  // namespace disco
