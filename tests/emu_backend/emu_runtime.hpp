#pragma once
// Internal interface between the parts of the CUDA emulation (tests/emu_backend).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace disco_emu {

[[noreturn]] void fail(const char* what);

// Run `work` in stream order on `stream`: now, or recorded as a graph node when the stream is
// being captured. Returns the error the real runtime would (capture invalidated, ...).
cudaError_t enqueue(cudaStream_t stream, const char* what, std::function<void()> work);

// Whether [p, p + bytes) lies inside one live cudaMalloc allocation.
bool is_device_range(const void* p, size_t bytes);
// The live cudaMalloc allocation holding p: [*base, *base + *size). False if none.
bool device_allocation(const void* p, uintptr_t* base, size_t* size);

// Stream operations enqueued (run or recorded into a graph) since start, by name: kernel
// names, "memcpy", "memset", "cublasGemmEx", "graph" (one replay). Clear it to start over.
std::map<std::string, uint64_t>& op_counts();

// DISCO_EMU_BLOCK_ORDER=reverse: run the blocks of every grid in reverse index order.
bool order_reverse();

}  // namespace disco_emu

namespace disco_emu {
// emu_runtime.cpp / emu_cuda_api.cpp (also declared in emu_device.hpp for the kernels)
void run_grid(const char* name, dim3 grid, dim3 block, size_t smem, void (*body)(const void*), const void* ctx);
void enqueue_kernel(const char* name, const void* func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                    std::function<void()> work);
}  // namespace disco_emu
