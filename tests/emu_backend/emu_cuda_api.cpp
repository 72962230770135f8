// The CUDA runtime API functions disco::cuda calls, emulated on the host (tests/emu_backend,
// see README.md). Definitions of the declarations in the real <cuda_runtime_api.h>.
//
//  * Device memory is host memory (256-byte aligned, filled with 0xFF bytes -- NaN floats --
//    as real cudaMalloc memory holds garbage), tracked so that copies, memsets and
//    cudaPointerGetAttributes can tell device from host pointers and reject ranges outside an
//    allocation (cudaErrorInvalidValue), like the real runtime does for device pointers.
//  * Every stream operation runs when it is enqueued; a D2H copy has finished when
//    cudaMemcpyAsync returns (a synchronization is still required by CUDA and kept by disco).
//  * Stream capture records kernels, cuBLAS GEMMs, D2D copies and memsets as closures. Host
//    copies and synchronizations of a capturing stream fail with
//    cudaErrorStreamCaptureUnsupported and invalidate the capture (later operations on it fail
//    with cudaErrorStreamCaptureInvalidated, cudaStreamEndCapture too, returning no graph).
//    Work on the legacy default stream while a *blocking* stream captures is
//    cudaErrorStreamCaptureImplicit. cudaMalloc / cudaFree are allowed in relaxed captures only.
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../emu/dynamic_smem.hpp"
#include "emu_runtime.hpp"

struct CUgraph_st {
  struct Node {
    std::string what;
    std::function<void()> work;
  };
  std::vector<Node> nodes;
};
struct CUgraphExec_st {
  std::vector<CUgraph_st::Node> nodes;
};
struct CUevent_st {
  double ms = 0;          // host clock when the record ran (milliseconds)
  bool recorded = false;
};
struct CUstream_st {
  unsigned flags = 0;
  bool capturing = false;
  bool invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  CUgraph_st* graph = nullptr;
};

namespace disco_emu {
namespace {

constexpr size_t kDeviceMemory = size_t(80) << 30;  // what the emulated device reports

std::recursive_mutex g_mu;  // one host thread at a time in the emulation
thread_local cudaError_t g_last = cudaSuccess;
std::map<uintptr_t, size_t>* g_allocs = new std::map<uintptr_t, size_t>;  // begin -> bytes
size_t g_alloc_bytes = 0;
std::set<CUstream_st*>* g_streams = new std::set<CUstream_st*>;

cudaError_t rec(cudaError_t e) {
  if (e != cudaSuccess) g_last = e;
  return e;
}

bool is_legacy(cudaStream_t s) { return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread; }

// The allocation containing p, or nullptr.
const std::pair<const uintptr_t, size_t>* find_alloc(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs->upper_bound(a);
  if (it == g_allocs->begin()) return nullptr;
  --it;
  if (a >= it->first && a < it->first + it->second) return &*it;
  return nullptr;
}

void invalidate(CUstream_st* s) {
  s->invalidated = true;
}

// Capture rules common to all stream operations. Returns cudaSuccess when `stream` may
// proceed; `recorded` tells whether the operation goes into a graph.
cudaError_t stream_check(cudaStream_t stream, bool& recorded) {
  recorded = false;
  if (is_legacy(stream)) {
    // The legacy stream synchronizes with every blocking stream: not allowed while one captures.
    bool bad = false;
    for (CUstream_st* s : *g_streams)
      if (s->capturing && !(s->flags & cudaStreamNonBlocking)) {
        invalidate(s);
        bad = true;
      }
    return bad ? cudaErrorStreamCaptureImplicit : cudaSuccess;
  }
  CUstream_st* s = stream;
  if (!g_streams->count(s)) return cudaErrorInvalidResourceHandle;
  if (s->capturing) {
    if (s->invalidated) return cudaErrorStreamCaptureInvalidated;
    recorded = true;
  }
  return cudaSuccess;
}

}  // namespace

bool device_allocation(const void* p, uintptr_t* base, size_t* size) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  const auto* a = find_alloc(p);
  if (!a) return false;
  *base = a->first;
  *size = a->second;
  return true;
}

bool is_device_range(const void* p, size_t bytes) {
  uintptr_t base = 0;
  size_t size = 0;
  return device_allocation(p, &base, &size) && reinterpret_cast<uintptr_t>(p) + bytes <= base + size;
}

bool order_reverse() {
  static const bool r = [] {
    const char* e = std::getenv("DISCO_EMU_BLOCK_ORDER");
    return e && std::string(e) == "reverse";
  }();
  return r;
}

std::map<std::string, uint64_t>& op_counts() {
  static std::map<std::string, uint64_t> counts;
  return counts;
}

cudaError_t enqueue(cudaStream_t stream, const char* what, std::function<void()> work) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  bool recorded = false;
  const cudaError_t e = stream_check(stream, recorded);
  if (e != cudaSuccess) return rec(e);
  ++op_counts()[what];
  if (recorded) stream->graph->nodes.push_back({what, std::move(work)});
  else work();
  return cudaSuccess;
}

void enqueue_kernel(const char* name, const void* func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                    std::function<void()> work) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  cudaError_t e = cudaSuccess;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
      grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    e = cudaErrorInvalidConfiguration;
  else  // over 227 KB, or over 48 KB without the kernel's MaxDynamicSharedMemorySize opt-in
    e = ::disco_emu::smem::check_launch(func, smem);
  if (e != cudaSuccess) {
    if (std::getenv("DISCO_EMU_VERBOSE") || e == cudaErrorInvalidValue)
      std::fprintf(stderr,
                   "disco CUDA emulation: invalid launch of %s (%s): grid (%u,%u,%u) block (%u,%u,%u) dynamic smem %zu "
                   "(the kernel's MaxDynamicSharedMemorySize: %d)\n",
                   name, cudaGetErrorName(e), grid.x, grid.y, grid.z, block.x, block.y, block.z, smem,
                   func ? ::disco_emu::smem::attributes().get(func) : int(::disco_emu::smem::kDefaultLimit));
    rec(e);
    return;
  }
  (void)enqueue(stream, name, std::move(work));
}

}  // namespace disco_emu

using disco_emu::g_allocs;
using disco_emu::g_mu;
using disco_emu::rec;
using Lock = std::lock_guard<std::recursive_mutex>;

// ==== errors ===========================================================================================
cudaError_t cudaGetLastError(void) {
  const cudaError_t e = disco_emu::g_last;
  disco_emu::g_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return disco_emu::g_last; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define DISCO_EMU_ERR(x) \
  case x: return #x;
    DISCO_EMU_ERR(cudaSuccess)
    DISCO_EMU_ERR(cudaErrorInvalidValue)
    DISCO_EMU_ERR(cudaErrorInvalidDeviceFunction)
    DISCO_EMU_ERR(cudaErrorMemoryAllocation)
    DISCO_EMU_ERR(cudaErrorInvalidConfiguration)
    DISCO_EMU_ERR(cudaErrorInvalidDevice)
    DISCO_EMU_ERR(cudaErrorInvalidDevicePointer)
    DISCO_EMU_ERR(cudaErrorInvalidResourceHandle)
    DISCO_EMU_ERR(cudaErrorNotSupported)
    DISCO_EMU_ERR(cudaErrorIllegalState)
    DISCO_EMU_ERR(cudaErrorStreamCaptureUnsupported)
    DISCO_EMU_ERR(cudaErrorStreamCaptureInvalidated)
    DISCO_EMU_ERR(cudaErrorStreamCaptureImplicit)
    DISCO_EMU_ERR(cudaErrorStreamCaptureUnmatched)
    DISCO_EMU_ERR(cudaErrorNoDevice)
#undef DISCO_EMU_ERR
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureUnmatched: return "capture was not initiated in this stream";
    default: return cudaGetErrorName(e);
  }
}

// ==== device ===========================================================================================
cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return rec(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  if (!device) return rec(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : rec(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device) {
  if (!prop) return rec(cudaErrorInvalidValue);
  if (device != 0) return rec(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "disco CPU emulation");
  prop->totalGlobalMem = disco_emu::kDeviceMemory;
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = 227 * 1024;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, enum cudaDeviceAttr attr, int device) {
  if (!value) return rec(cudaErrorInvalidValue);
  if (device != 0) return rec(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = 132; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
    case cudaDevAttrWarpSize: *value = 32; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 227 * 1024; return cudaSuccess;
    case cudaDevAttrL2CacheSize: *value = 50 * 1024 * 1024; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = 2048; return cudaSuccess;
    default:
      std::fprintf(stderr, "disco CUDA emulation: cudaDeviceGetAttribute(%d) is not emulated\n", int(attr));
      return rec(cudaErrorInvalidValue);
  }
}

cudaError_t cudaDeviceSynchronize(void) {
  Lock lock(g_mu);
  bool bad = false;
  for (CUstream_st* s : *disco_emu::g_streams)
    if (s->capturing) {
      disco_emu::invalidate(s);
      bad = true;
    }
  return bad ? rec(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}

// ==== memory ===========================================================================================
namespace {
// cudaMalloc / cudaFree during a capture: allowed in relaxed mode only.
bool alloc_forbidden_by_capture() {
  bool bad = false;
  for (CUstream_st* s : *disco_emu::g_streams)
    if (s->capturing && s->mode != cudaStreamCaptureModeRelaxed) {
      disco_emu::invalidate(s);
      bad = true;
    }
  return bad;
}
}  // namespace

cudaError_t cudaMalloc(void** devPtr, size_t size) {
  Lock lock(g_mu);
  if (!devPtr) return rec(cudaErrorInvalidValue);
  *devPtr = nullptr;
  if (alloc_forbidden_by_capture()) return rec(cudaErrorStreamCaptureUnsupported);
  if (size == 0) return cudaSuccess;
  if (size > disco_emu::kDeviceMemory - disco_emu::g_alloc_bytes) return rec(cudaErrorMemoryAllocation);
  void* p = nullptr;
  if (posix_memalign(&p, 256, size) != 0 || !p) return rec(cudaErrorMemoryAllocation);
  std::memset(p, 0xFF, size);  // uninitialized device memory: NaN floats
  (*g_allocs)[reinterpret_cast<uintptr_t>(p)] = size;
  disco_emu::g_alloc_bytes += size;
  *devPtr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* devPtr) {
  Lock lock(g_mu);
  if (!devPtr) return cudaSuccess;
  if (alloc_forbidden_by_capture()) return rec(cudaErrorStreamCaptureUnsupported);
  auto it = g_allocs->find(reinterpret_cast<uintptr_t>(devPtr));
  if (it == g_allocs->end()) return rec(cudaErrorInvalidValue);
  disco_emu::g_alloc_bytes -= it->second;
  g_allocs->erase(it);
  std::free(devPtr);
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes* attributes, const void* ptr) {
  Lock lock(g_mu);
  if (!attributes) return rec(cudaErrorInvalidValue);
  std::memset(attributes, 0, sizeof *attributes);
  if (disco_emu::find_alloc(ptr)) {
    attributes->type = cudaMemoryTypeDevice;
    attributes->device = 0;
    attributes->devicePointer = const_cast<void*>(ptr);
  } else {
    attributes->type = cudaMemoryTypeUnregistered;  // pageable host memory (CUDA >= 11: not an error)
    attributes->device = -2;
    attributes->hostPointer = const_cast<void*>(ptr);
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream) {
  Lock lock(g_mu);
  if (count == 0) return cudaSuccess;
  if (!dst || !src) return rec(cudaErrorInvalidValue);
  const bool dd = disco_emu::is_device_range(dst, count), sd = disco_emu::is_device_range(src, count);
  if (kind == cudaMemcpyDefault) {
    // unified addressing: the runtime infers the direction (a partial overlap with an allocation is an error)
    if ((!dd && disco_emu::find_alloc(dst)) || (!sd && disco_emu::find_alloc(src))) return rec(cudaErrorInvalidValue);
    kind = sd ? (dd ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
              : (dd ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
  }
  const bool want_dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if ((want_dd && !dd) || (want_sd && !sd)) return rec(cudaErrorInvalidValue);
  if (kind != cudaMemcpyDeviceToDevice) {
    // pageable host memory in a capture: not capturable
    bool recorded = false;
    const cudaError_t e = disco_emu::stream_check(stream, recorded);
    if (e != cudaSuccess) return rec(e);
    if (recorded) {
      disco_emu::invalidate(stream);
      return rec(cudaErrorStreamCaptureUnsupported);
    }
  }
  return disco_emu::enqueue(stream, "memcpy", [dst, src, count] { std::memmove(dst, src, count); });
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind) {
  const cudaError_t e = cudaMemcpyAsync(dst, src, count, kind, nullptr);
  return e != cudaSuccess ? e : cudaStreamSynchronize(nullptr);
}

cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t stream) {
  Lock lock(g_mu);
  if (count == 0) return cudaSuccess;
  if (!disco_emu::is_device_range(devPtr, count)) return rec(cudaErrorInvalidValue);
  return disco_emu::enqueue(stream, "memset", [devPtr, value, count] { std::memset(devPtr, value, count); });
}

cudaError_t cudaMemset(void* devPtr, int value, size_t count) {
  const cudaError_t e = cudaMemsetAsync(devPtr, value, count, nullptr);
  return e != cudaSuccess ? e : cudaStreamSynchronize(nullptr);
}

// ==== streams ==========================================================================================
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int flags) {
  Lock lock(g_mu);
  if (!pStream) return rec(cudaErrorInvalidValue);
  auto* s = new CUstream_st;
  s->flags = flags;
  disco_emu::g_streams->insert(s);
  *pStream = s;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* pStream) { return cudaStreamCreateWithFlags(pStream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  Lock lock(g_mu);
  if (disco_emu::is_legacy(stream) || !disco_emu::g_streams->count(stream)) return rec(cudaErrorInvalidResourceHandle);
  if (stream->capturing) return rec(cudaErrorIllegalState);  // (real CUDA: undefined; disco never does it)
  disco_emu::g_streams->erase(stream);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  Lock lock(g_mu);
  bool recorded = false;
  const cudaError_t e = disco_emu::stream_check(stream, recorded);
  if (e != cudaSuccess) return rec(e);
  if (recorded) {  // synchronizing a capturing stream
    disco_emu::invalidate(stream);
    return rec(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
  Lock lock(g_mu);
  if (disco_emu::is_legacy(stream)) return rec(cudaErrorStreamCaptureUnsupported);
  if (!disco_emu::g_streams->count(stream)) return rec(cudaErrorInvalidResourceHandle);
  if (stream->capturing) return rec(cudaErrorIllegalState);
  stream->capturing = true;
  stream->invalidated = false;
  stream->mode = mode;
  stream->graph = new CUgraph_st;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* pGraph) {
  Lock lock(g_mu);
  if (!pGraph) return rec(cudaErrorInvalidValue);
  *pGraph = nullptr;
  if (disco_emu::is_legacy(stream) || !disco_emu::g_streams->count(stream)) return rec(cudaErrorIllegalState);
  if (!stream->capturing) return rec(cudaErrorIllegalState);
  stream->capturing = false;
  CUgraph_st* g = stream->graph;
  stream->graph = nullptr;
  if (stream->invalidated) {
    stream->invalidated = false;
    delete g;
    return rec(cudaErrorStreamCaptureInvalidated);
  }
  *pGraph = g;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus* pCaptureStatus) {
  Lock lock(g_mu);
  if (!pCaptureStatus) return rec(cudaErrorInvalidValue);
  *pCaptureStatus = cudaStreamCaptureStatusNone;
  if (disco_emu::is_legacy(stream)) return cudaSuccess;
  if (!disco_emu::g_streams->count(stream)) return rec(cudaErrorInvalidResourceHandle);
  if (stream->capturing)
    *pCaptureStatus = stream->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

// ==== graphs ===========================================================================================
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* numNodes) {
  Lock lock(g_mu);
  if (!graph || !numNodes) return rec(cudaErrorInvalidValue);
  if (nodes) {  // opaque handles: addresses of the recorded nodes
    for (size_t i = 0; i < *numNodes && i < graph->nodes.size(); ++i)
      nodes[i] = reinterpret_cast<cudaGraphNode_t>(&graph->nodes[i]);
  }
  *numNodes = graph->nodes.size();
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* pGraphExec, cudaGraph_t graph, unsigned long long flags) {
  Lock lock(g_mu);
  if (!pGraphExec || !graph || flags != 0) return rec(cudaErrorInvalidValue);
  auto* x = new CUgraphExec_st;
  x->nodes = graph->nodes;
  *pGraphExec = x;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream) {
  if (!graphExec) return rec(cudaErrorInvalidValue);
  return disco_emu::enqueue(stream, "graph", [graphExec] {
    for (const auto& n : graphExec->nodes) n.work();
  });
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec) {
  delete graphExec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

// ==== events ===========================================================================================
// An event records the host clock when its record operation runs (work runs when enqueued, or
// when a graph replays), so cudaEventElapsedTime gives the emulated work's wall time.
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  if (!event) return rec(cudaErrorInvalidValue);
  *event = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event) return rec(cudaErrorInvalidResourceHandle);
  return disco_emu::enqueue(stream, "cudaEventRecord", [event] {
    event->ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
    event->recorded = true;
  });
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (!event) return rec(cudaErrorInvalidResourceHandle);
  return cudaSuccess;  // its work has run
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (!event) return rec(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end) return rec(cudaErrorInvalidValue);
  if (!start->recorded || !end->recorded) return rec(cudaErrorInvalidResourceHandle);
  *ms = float(end->ms - start->ms);
  return cudaSuccess;
}

// ==== profiler range (no profiler here: nothing to do) ====================================================
cudaError_t cudaProfilerStart(void) { return cudaSuccess; }
cudaError_t cudaProfilerStop(void) { return cudaSuccess; }

// ==== kernel attributes ==================================================================================
// cudaFuncAttributeMaxDynamicSharedMemorySize (<= 227 KB; what a launch may pass above 48 KB)
// and the carveout preference; see tests/emu/dynamic_smem.hpp.
cudaError_t cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
  return rec(disco_emu::smem::set_attribute(func, attr, value));
}
// What the emulation knows: the dynamic shared-memory limit and the block size; registers,
// static shared memory and local memory are not modelled (0).
cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes* attr, const void* func) {
  if (!attr) return rec(cudaErrorInvalidValue);
  if (!func) return rec(cudaErrorInvalidDeviceFunction);
  std::memset(attr, 0, sizeof *attr);
  attr->maxThreadsPerBlock = 1024;
  attr->maxDynamicSharedSizeBytes = disco_emu::smem::attributes().get(func);
  attr->preferredShmemCarveout = -1;
  attr->ptxVersion = 90;
  attr->binaryVersion = 90;
  return cudaSuccess;
}

// ==== occupancy =========================================================================================
// The emulated SM holds 2048 threads and 32 blocks, and 228 KB of shared memory (1 KB reserved
// per block); registers and static shared memory are not modelled. Dynamic shared memory the
// kernel may not use (over 48 KB without the opt-in) gives 0 blocks.
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int* numBlocks, const void* func, int blockSize,
                                                                   size_t dynamicSMemSize, unsigned int) {
  if (!numBlocks || !func || blockSize <= 0 || blockSize > 1024) return rec(cudaErrorInvalidValue);
  *numBlocks = std::min({32, 2048 / blockSize, disco_emu::smem::blocks_per_sm(func, dynamicSMemSize)});
  return cudaSuccess;
}
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* numBlocks, const void* func, int blockSize,
                                                          size_t dynamicSMemSize) {
  return cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(numBlocks, func, blockSize, dynamicSMemSize, 0);
}
