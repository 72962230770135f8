#pragma once
// Threading helpers of the CPU backend: thread counts that respect OpenMP nesting, static
// splitting of a range over threads, and reusable per-thread scratch buffers.
//
// Scratch buffers are thread_local, keyed by a tag type, grow on demand and are never
// shrunk implicitly, so hot loops never allocate after the first call with a given size.
// release_scratch() frees the buffers of the calling thread and of the OpenMP pool.
// OpenMP waits: libgomp spin-waits at barriers by default; on a machine whose cores are
// shared with other busy processes, OMP_WAIT_POLICY=passive avoids burning time slices.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace disco::cpu {

// Threads a backend call may use: 1 when already inside an OpenMP parallel region
// (nested calls run serially), otherwise omp_get_max_threads().
inline int max_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// [begin, end) of part t when n items are split as evenly as possible into parts parts.
inline std::pair<int64_t, int64_t> split_range(int64_t n, int parts, int t) {
  const int64_t base = n / parts, rem = n % parts;
  const int64_t b = t * base + (t < rem ? t : rem);
  return {b, b + base + (t < rem ? 1 : 0)};
}

// While alive, OpenMP regions started by this thread (including Eigen's parallel GEMM,
// which follows omp_get_max_threads() unless Eigen::setNbThreads() was called) use one
// thread. Only the calling thread's setting changes.
class SerialScope {
 public:
  SerialScope() {
#ifdef _OPENMP
    saved_ = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
  }
  ~SerialScope() {
#ifdef _OPENMP
    omp_set_num_threads(saved_);
#endif
  }
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  int saved_ = 1;
};

namespace detail {

// One growable, 64-byte aligned, uninitialised byte buffer.
struct ScratchBuffer {
  std::unique_ptr<unsigned char[]> mem;
  size_t capacity = 0;  // usable bytes after alignment
  void* get(size_t bytes) {
    if (bytes > capacity) {
      mem.reset();  // free first so peak memory is not old + new
      capacity = 0;
      mem.reset(new unsigned char[bytes + 64]);
      capacity = bytes;
    }
    auto addr = reinterpret_cast<std::uintptr_t>(mem.get());
    return reinterpret_cast<void*>((addr + 63) & ~std::uintptr_t(63));
  }
  void release() {
    mem.reset();
    capacity = 0;
  }
};

inline std::vector<ScratchBuffer*>& scratch_registry() {
  static thread_local std::vector<ScratchBuffer*> reg;
  return reg;
}

template <class Tag>
ScratchBuffer& scratch_buffer() {
  static thread_local ScratchBuffer buf;
  static thread_local bool registered = false;
  if (!registered) {
    scratch_registry().push_back(&buf);
    registered = true;
  }
  return buf;
}

}  // namespace detail

// Thread-local scratch array of at least n elements of T, 64-byte aligned, contents
// unspecified. Valid until the next scratch<Tag, ...>() call with the same Tag on the
// same thread (or release_scratch()).
template <class Tag, class T>
T* scratch(size_t n) {
  return static_cast<T*>(detail::scratch_buffer<Tag>().get(n * sizeof(T)));
}

// Free the scratch buffers of the calling thread and of every OpenMP pool thread.
inline void release_scratch() {
  for (auto* b : detail::scratch_registry()) b->release();
#ifdef _OPENMP
  if (!omp_in_parallel()) {
#pragma omp parallel
    {
      for (auto* b : detail::scratch_registry()) b->release();
    }
  }
#endif
}

}  // namespace disco::cpu
