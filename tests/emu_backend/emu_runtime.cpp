// CPU emulation of the CUDA runtime API that disco::cuda uses, and of kernel execution
// (tests/emu_backend, see README.md). The functions below are defined with the signatures the
// real <cuda_runtime_api.h> declares, so src/cuda/runtime.cpp, blas.cpp and the transformed
// *.cu files compile against the real headers unchanged and link against these definitions.
//
// Execution model: every stream operation runs synchronously on the calling host thread when
// it is enqueued (so the streams are trivially ordered), unless its stream is being captured
// into a CUDA graph; then it is recorded as a closure and runs on cudaGraphLaunch. A kernel
// runs its blocks one after the other; the threads of a block are fibers (own stacks, switched
// by a small assembly routine) on the host thread, scheduled round robin; __syncthreads, warp
// shuffles and mma.sync are barriers at which a fiber yields until every thread (lane) arrived.
#include <cuda_runtime.h>
#include <sys/mman.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../emu/dynamic_smem.hpp"
#include "emu_runtime.hpp"

#if !defined(__x86_64__)
#error "tests/emu_backend: the fiber switch is written for x86-64 (System V ABI)"
#endif

// ==== fiber context switch (x86-64 System V) ========================================================
// disco_emu_switch(void** save_sp, void* new_sp): push the callee-saved registers, MXCSR and the
// x87 control word on the current stack, store the stack pointer in *save_sp, switch to new_sp
// and pop the same frame from there.
extern "C" void disco_emu_switch(void** save_sp, void* new_sp);
asm(R"(
  .text
  .globl disco_emu_switch
  .type disco_emu_switch, @function
disco_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size disco_emu_switch, .-disco_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

namespace disco_emu {

uint3 g_thread_idx, g_block_idx;
dim3 g_block_dim, g_grid_dim;

void fail(const char* what) {
  std::fprintf(stderr, "disco CUDA emulation: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

namespace {

std::string g_kernel_name;  // the kernel that runs now (diagnostics)

[[noreturn]] void kfail(const std::string& what) {
  fail((what + " (kernel " + g_kernel_name + ", block (" + std::to_string(g_block_idx.x) + "," +
        std::to_string(g_block_idx.y) + "," + std::to_string(g_block_idx.z) + "), thread " +
        std::to_string(g_thread_idx.x) + ")")
           .c_str());
}

// ---- fibers -----------------------------------------------------------------------------------------
constexpr size_t kStackBytes = size_t(256) << 10;  // per emulated thread, lazily committed
constexpr size_t kGuardBytes = size_t(4) << 10;
constexpr int kMaxThreads = 1024;

enum class St { Run, WaitBlock, WaitWarp, Done };

// A wgmma this thread issued and has not waited for (see wgmma() below).
struct PendingWgmma {
  float* d;
  int n, accumulate;
  bool tf32, mn_major;
  uint64_t desc_a, desc_b;
  uint64_t group;               // the commit group it belongs to
  std::vector<uint32_t> bits;   // its operands' bits in shared memory when issued
};

// A cp.async this thread issued that has not landed yet (see cp_async() below).
struct PendingCopy {
  unsigned char* dst;
  int bytes;
  uint64_t group;
  unsigned char data[16];  // what lands: the source read at issue, or zeros
};

struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;  // lowest address (guard page), kStackBytes long
  St st = St::Done;
  unsigned sync_calls = 0;  // alternates the warp exchange buffers (shuffles, mma)
  std::vector<PendingWgmma> wgmma_pending;  // issued, not yet completed by a wait_group
  uint64_t wgmma_group = 0;                 // the open (not yet committed) group's number
  std::vector<PendingCopy> copies_pending;  // cp.async issued; [copies_head, end) not yet landed
  size_t copies_head = 0;
  uint64_t copy_group = 0;                  // the open cp.async group's number
  std::vector<uint32_t> unfenced;           // 16-byte smem chunks this thread's copies wrote
                                            // since its last fence.proxy.async
};

struct WarpExchange {
  uint32_t a[32][4];
  uint32_t b[32][2];
  uint64_t v[32];
  float d[16][8];  // mma result
};

struct Scheduler {
  Fiber fibers[kMaxThreads];
  void* main_sp = nullptr;
  int cur = 0, n = 0, done = 0, block_waiting = 0;
  int warp_waiting[kMaxThreads / 32] = {};
  int warp_exited[kMaxThreads / 32] = {};
  WarpExchange exchange[kMaxThreads / 32][2];
  void (*body)(const void*) = nullptr;
  const void* ctx = nullptr;
};
Scheduler* g_s = new Scheduler;  // leaked on purpose
// Per 16-byte chunk of the block's dynamic shared memory: 0, or 1 + the thread whose cp.async
// wrote it (through the generic proxy) and that has not fenced since (fence.proxy.async); the
// async proxy (wgmma) must not read such a chunk. Cleared at every block.
std::vector<uint16_t>* g_unfenced = new std::vector<uint16_t>;
smem::Buffer* g_smem = new smem::Buffer;  // the running launch's dynamic shared memory (leaked too)

// AddressSanitizer builds (an optional check, README.md): ASan must be told about every switch
// between the host thread's stack and a fiber's, and a reused fiber stack must be unpoisoned
// (frames a finished fiber never returned from leave their red zones behind).
#if defined(__SANITIZE_ADDRESS__)
const void* g_main_stack_bottom = nullptr;
size_t g_main_stack_size = 0;
void asan_unpoison(void* p, size_t n) { __asan_unpoison_memory_region(p, n); }
void asan_to_fiber(const Fiber& f) {
  __sanitizer_start_switch_fiber(nullptr, f.stack + kGuardBytes, kStackBytes - kGuardBytes);
}
void asan_back_in_main() { __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr); }
void asan_to_main() { __sanitizer_start_switch_fiber(nullptr, g_main_stack_bottom, g_main_stack_size); }
void asan_in_fiber() { __sanitizer_finish_switch_fiber(nullptr, &g_main_stack_bottom, &g_main_stack_size); }
#else
void asan_unpoison(void*, size_t) {}
void asan_to_fiber(const Fiber&) {}
void asan_back_in_main() {}
void asan_to_main() {}
void asan_in_fiber() {}
#endif

void yield_to_main() {
  Fiber& f = g_s->fibers[g_s->cur];
  asan_to_main();
  disco_emu_switch(&f.sp, g_s->main_sp);
  asan_in_fiber();
}

void land_copies(Fiber& f, uint64_t before_group);

void fiber_main() {
  asan_in_fiber();
  g_s->body(g_s->ctx);
  Scheduler& s = *g_s;
  land_copies(s.fibers[s.cur], ~uint64_t(0));  // what a GPU would still write
  if (!s.fibers[s.cur].wgmma_pending.empty())
    kfail("the thread ended with " + std::to_string(s.fibers[s.cur].wgmma_pending.size()) +
          " wgmma not completed by a wgmma.wait_group (their accumulators were never final)");
  s.fibers[s.cur].st = St::Done;
  s.done += 1;
  if (s.block_waiting > 0)
    kfail("a thread exited while others wait at __syncthreads (divergent barrier: undefined behaviour in CUDA)");
  const int w = s.cur / 32;
  s.warp_exited[w] += 1;
  if (s.warp_waiting[w] > 0) kfail("a lane exited while others of its warp wait at a warp-collective operation");
  yield_to_main();
  fail("finished fiber resumed");
}

void init_fiber(Fiber& f) {
  if (!f.stack) {
    void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) fail("mmap of a fiber stack failed");
    mprotect(p, kGuardBytes, PROT_NONE);  // stack overflow faults instead of corrupting memory
    f.stack = static_cast<char*>(p);
  }
  asan_unpoison(f.stack + kGuardBytes, kStackBytes - kGuardBytes);
  uint64_t* top = reinterpret_cast<uint64_t*>(f.stack + kStackBytes);  // 16-byte aligned
  top[-1] = 0;                                                         // fake return address of fiber_main
  top[-2] = reinterpret_cast<uint64_t>(&fiber_main);                   // `ret` of disco_emu_switch
  for (int r = 3; r <= 8; ++r) top[-r] = 0;                            // rbp rbx r12 r13 r14 r15
  top[-9] = uint64_t(0x1F80) | (uint64_t(0x037F) << 32);               // MXCSR, x87 control word
  f.sp = top - 9;
  f.st = St::Run;
  f.sync_calls = 0;
  f.wgmma_pending.clear();
  f.wgmma_group = 0;
  f.copies_pending.clear();
  f.copies_head = 0;
  f.copy_group = 0;
  f.unfenced.clear();
}

inline uint3 tid_of(int t) {
  const unsigned bx = g_block_dim.x, by = g_block_dim.y;
  return make_uint3(unsigned(t) % bx, unsigned(t) / bx % by, unsigned(t) / (bx * by));
}

// Warp barrier: the calling lane waits until all 32 lanes of its warp arrived. Returns true in
// the lane that arrived last, which continues at once: the others resume after it yields.
bool sync_warp(const char* what) {
  Scheduler& s = *g_s;
  if (s.n % 32 != 0) kfail(std::string(what) + " in a block whose size is not a multiple of 32 (partial warp)");
  const int w = s.cur / 32;
  if (s.warp_exited[w]) kfail(std::string(what) + " after a lane of the warp exited");
  if (++s.warp_waiting[w] == 32) {
    s.warp_waiting[w] = 0;
    for (int l = 0; l < 32; ++l) {
      Fiber& f = s.fibers[w * 32 + l];
      if (f.st == St::WaitWarp) f.st = St::Run;
    }
    return true;
  }
  s.fibers[s.cur].st = St::WaitWarp;
  yield_to_main();
  return false;
}

}  // namespace

void sync_block() {
  Scheduler& s = *g_s;
  if (s.done > 0) kfail("__syncthreads after another thread of the block exited (divergent barrier)");
  if (++s.block_waiting == s.n) {
    s.block_waiting = 0;
    for (int t = 0; t < s.n; ++t)
      if (s.fibers[t].st == St::WaitBlock) s.fibers[t].st = St::Run;
    return;
  }
  s.fibers[s.cur].st = St::WaitBlock;
  yield_to_main();
}

namespace {
template <class T>
T shfl_xor_impl(T v, unsigned mask, int lane_mask, int width) {
  if (mask != 0xffffffffu || width != 32) kfail("__shfl_xor_sync: only the full mask and width 32 are emulated");
  Scheduler& s = *g_s;
  const int lane = s.cur & 31, w = s.cur >> 5;
  Fiber& f = s.fibers[s.cur];
  uint64_t* slots = s.exchange[w][f.sync_calls++ & 1].v;
  std::memcpy(&slots[lane], &v, sizeof(T));
  sync_warp("__shfl_xor_sync");
  T r;
  std::memcpy(&r, &slots[(lane ^ lane_mask) & 31], sizeof(T));
  return r;
}

// cvt.rna.tf32.f32: keep 10 mantissa bits, round to nearest, ties away from zero.
float tf32_value(uint32_t bits) {
  if ((bits & 0x7f800000u) != 0x7f800000u) bits = (bits + 0x1000u) & 0xffffe000u;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
float bf16_value(uint32_t pair, int hi) {
  const uint32_t bits = (hi ? (pair >> 16) : (pair & 0xffffu)) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// mma.sync.aligned.m16n8k{8,16}.row.col.f32.{tf32,bf16}: D = A (16 x KK) B (KK x 8) + C, from the
// fragment layouts of the PTX ISA (g = lane / 4, t = lane % 4):
//   C/D: c[e] = (row g + 8 (e / 2), col 2 t + e % 2)
//   tf32 (KK = 8):  a[r] = A(g + 8 (r % 2), t + 4 (r / 2)),  b[r] = B(t + 4 r, g)
//   bf16 (KK = 16): a[r] = A(g + 8 (r % 2), 2 t + 8 (r / 2) + {0,1}),  b[r] = B(2 t + 8 r + {0,1}, g)
// Inverted: A(row, k) is in lane (row % 8) * 4 + kp % 4, register row / 8 + 2 (kp / 4), where
// kp = k (tf32) or k / 2 (bf16, half k % 2); B(k, col) in lane col * 4 + kp % 4, register kp / 4.
// Every lane deposits its fragments; the last lane to arrive rebuilds A and B and computes the
// 16 x 8 product (double sums of exact products) into the exchange buffer; then each lane adds
// its four elements to its accumulators.
template <bool BF16>
void mma_product(WarpExchange& x) {
  constexpr int KK = BF16 ? 16 : 8;
  float A[16][KK], B[KK][8];
  for (int row = 0; row < 16; ++row)
    for (int k = 0; k < KK; ++k) {
      const int kp = BF16 ? k / 2 : k;
      const uint32_t w = x.a[(row % 8) * 4 + kp % 4][row / 8 + 2 * (kp / 4)];
      A[row][k] = BF16 ? bf16_value(w, k % 2) : tf32_value(w);
    }
  for (int k = 0; k < KK; ++k)
    for (int col = 0; col < 8; ++col) {
      const int kp = BF16 ? k / 2 : k;
      const uint32_t w = x.b[col * 4 + kp % 4][kp / 4];
      B[k][col] = BF16 ? bf16_value(w, k % 2) : tf32_value(w);
    }
  for (int row = 0; row < 16; ++row)
    for (int col = 0; col < 8; ++col) {
      double acc = 0;
      for (int k = 0; k < KK; ++k) acc += double(A[row][k]) * double(B[k][col]);
      x.d[row][col] = float(acc);
    }
}

template <bool BF16>
void mma_impl(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  Scheduler& s = *g_s;
  const int lane = s.cur & 31, w = s.cur >> 5;
  Fiber& f = s.fibers[s.cur];
  WarpExchange& x = s.exchange[w][f.sync_calls++ & 1];
  std::memcpy(x.a[lane], a, sizeof a);
  std::memcpy(x.b[lane], b, sizeof b);
  if (sync_warp("mma.sync")) mma_product<BF16>(x);  // the last lane: before the others resume
  const int g = lane >> 2, t = lane & 3;
  for (int e = 0; e < 4; ++e) c[e] += x.d[g + 8 * (e >> 1)][2 * t + (e & 1)];
}
// ldmatrix.sync.aligned.m8n8.x4.shared.b16 (PTX ISA): lane l supplies the address of row l % 8
// of matrix l / 8 (16 bytes of 16-bit elements); lane l receives in register i the 32-bit word
// l % 4 of row l / 4 of matrix i. Every lane deposits its row address; the last lane to arrive
// gathers all 32 x 4 words into the exchange buffer (so the rows are read at one instant, as
// one instruction does); then each lane takes its four. .trans (trans = true): lane l receives
// in register i column l / 4 of matrix i, rows 2 (l % 4) (low half) and 2 (l % 4) + 1.
void ldmatrix_impl(uint32_t (&r)[4], const void* row_addr, bool trans) {
  Scheduler& s = *g_s;
  const int lane = s.cur & 31, w = s.cur >> 5;
  if ((reinterpret_cast<uintptr_t>(row_addr) & 15u) != 0) kfail("ldmatrix: row address not 16-byte aligned");
  Fiber& f = s.fibers[s.cur];
  WarpExchange& x = s.exchange[w][f.sync_calls++ & 1];
  x.v[lane] = uint64_t(reinterpret_cast<uintptr_t>(row_addr));
  if (sync_warp("ldmatrix")) {
    for (int l = 0; l < 32; ++l)
      for (int i = 0; i < 4; ++i) {
        if (!trans) {
          const auto* row = reinterpret_cast<const unsigned char*>(uintptr_t(x.v[8 * i + l / 4]));
          std::memcpy(&x.a[l][i], row + 4 * (l % 4), 4);
        } else {
          uint16_t e[2];
          for (int h = 0; h < 2; ++h) {
            const auto* row = reinterpret_cast<const unsigned char*>(uintptr_t(x.v[8 * i + 2 * (l % 4) + h]));
            std::memcpy(&e[h], row + 2 * (l / 4), 2);
          }
          x.a[l][i] = uint32_t(e[0]) | (uint32_t(e[1]) << 16);
        }
      }
  }
  std::memcpy(r, x.a[lane], sizeof r);
}
}  // namespace

float shfl_xor(float v, unsigned mask, int lane_mask, int width) { return shfl_xor_impl(v, mask, lane_mask, width); }
double shfl_xor(double v, unsigned mask, int lane_mask, int width) { return shfl_xor_impl(v, mask, lane_mask, width); }
void mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) { mma_impl<false>(c, a, b); }
void mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) { mma_impl<true>(c, a, b); }
void ldmatrix_x4(uint32_t (&r)[4], const void* row_addr, bool trans) { ldmatrix_impl(r, row_addr, trans); }

unsigned char* dynamic_smem() { return g_smem->data(); }

// ---- wgmma (kernels/conv2d_wgmma.cuh) ----------------------------------------------------------
// The emulated shared window is the launch's dynamic shared memory, from address 0.
uint32_t smem_addr(const void* p) {
  const auto* c = static_cast<const unsigned char*>(p);
  if (g_smem->data() == nullptr || c < g_smem->data() || c >= g_smem->data() + g_smem->size())
    kfail("__cvta_generic_to_shared: not an address in the block's dynamic shared memory");
  return uint32_t(c - g_smem->data());
}

namespace {
// A shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format" of wgmma): start
// address bits 0-13, leading dimension byte offset 16-29, stride dimension byte offset 32-45
// (each in units of 16 bytes), base offset 49-51, swizzle mode 62-63 (0 none, 1 128-byte,
// 2 64-byte, 3 32-byte).
struct SmemMatrix {
  uint32_t start, lbo, sbo;
  int swizzle_bytes;  // 0: none
  bool at_issue;      // the wgmma is being issued: its operands must be fenced (see below)
  SmemMatrix(uint64_t d, bool issue)
      : start(uint32_t(d & 0x3FFF) << 4),
        lbo(uint32_t((d >> 16) & 0x3FFF) << 4),
        sbo(uint32_t((d >> 32) & 0x3FFF) << 4),
        swizzle_bytes(0),
        at_issue(issue) {
    if (((d >> 49) & 7) != 0) kfail("wgmma: descriptor base offset != 0 is not emulated");
    const int mode = int(d >> 62);
    swizzle_bytes = mode == 1 ? 128 : mode == 2 ? 64 : mode == 3 ? 32 : 0;
  }
  // The bits of element (mn, k) of a K-major operand of `bytes`-byte elements (2: BF16, 4:
  // TF32), by the canonical layouts of the PTX ISA (T = 16 / bytes elements of 16 bytes): no
  // swizzle ((8, m), (T, 2k)) : ((1T, SBO), (1, LBO)) -- core matrices of 8 rows x 16 bytes,
  // rows 16 bytes apart, the next 8 rows at SBO, the next 16 bytes of k at LBO; swizzled
  // ((8, m), (T, 2k)) : ((W / bytes, SBO), (1, T)) -- rows W bytes apart (W the swizzle width),
  // k contiguous within the row, the next 8 rows at SBO -- with the address then permuted by
  // Swizzle<log2(W / 16), 4, 3>: byte-address bits 4.. XOR bits 7.. .
  uint32_t at_k_major(int mn, int k, int bytes) const {
    const uint32_t kb = uint32_t(k) * uint32_t(bytes);  // k's byte offset along the row
    uint32_t a;
    if (swizzle_bytes == 0) {
      a = start + uint32_t(mn / 8) * sbo + uint32_t(mn % 8) * 16 + (kb / 16) * lbo + kb % 16;
    } else {
      if (kb >= uint32_t(swizzle_bytes)) kfail("wgmma: a K step wider than the swizzle atom is not emulated");
      a = start + uint32_t(mn / 8) * sbo + uint32_t(mn % 8) * uint32_t(swizzle_bytes) + kb;
      const uint32_t bits = swizzle_bytes == 128 ? 7u : swizzle_bytes == 64 ? 3u : 1u;
      a ^= ((a >> 7) & bits) << 4;
    }
    return load(a, bytes);
  }
  // The bits of element (mn, k) of an MN-major operand (BF16 only: TF32 has no transposed
  // layout): no swizzle ((T, 1, m), (8, k)) : ((1, T, SBO), (1T, LBO)) -- core matrices of 8 k
  // rows x 16 bytes of mn, the next 16 bytes of mn at SBO, the next 8 k rows at LBO; swizzled
  // ((T, W / 16, m), (8, k)) : ((1, T, LBO), (W / bytes, SBO)) -- rows of W bytes of mn, k rows W
  // bytes apart, the next W bytes of mn at LBO, the next 8 k rows at SBO -- with the address
  // permuted as for K-major.
  uint32_t at_mn_major(int mn, int k, int bytes) const {
    if (bytes != 2) kfail("wgmma: an MN-major operand must be 16-bit");
    const uint32_t mb = uint32_t(mn) * uint32_t(bytes);  // mn's byte offset
    uint32_t a;
    if (swizzle_bytes == 0) {
      a = start + (mb / 16) * sbo + mb % 16 + uint32_t(k % 8) * 16 + uint32_t(k / 8) * lbo;
    } else {
      const uint32_t w = uint32_t(swizzle_bytes);
      a = start + (mb / w) * lbo + mb % w + uint32_t(k % 8) * w + uint32_t(k / 8) * sbo;
      const uint32_t bits = swizzle_bytes == 128 ? 7u : swizzle_bytes == 64 ? 3u : 1u;
      a ^= ((a >> 7) & bits) << 4;
    }
    return load(a, bytes);
  }
  uint32_t load(uint32_t a, int bytes) const {
    if (size_t(a) + size_t(bytes) > g_smem->size()) kfail("wgmma: operand outside the block's dynamic shared memory");
    if (const uint16_t w = at_issue ? (*g_unfenced)[a / 16] : 0)
      kfail("wgmma: an operand in shared memory was written by a cp.async of thread " + std::to_string(w - 1) +
            " (the generic proxy) with no fence.proxy.async by that thread between its landing and this wgmma "
            "(the async proxy)");
    uint32_t v = 0;
    std::memcpy(&v, g_smem->data() + a, size_t(bytes));  // little-endian: the element's bits
    return v;
  }
};
float bf16_bits_to_float(uint16_t h) {
  const uint32_t w = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}
}  // namespace

// wgmma.mma_async.sync.aligned.m64nNk16.f32.bf16.bf16 d, desc_a, desc_b, scale-d, 1, 1, t, t
// and .m64nNk8.f32.tf32.tf32 d, desc_a, desc_b, scale-d, 1, 1 (both operands K-major, or with
// mn_major (t = 1; BF16 only) both MN-major; D = A B + D, or A B when scale-d is false; TF32
// elements are read with their low 13 bits ignored): this thread's N / 2 accumulators -- warp q
// of its warpgroup, lane l: element 4 j + e is row 16 q + l / 4 + 8 (e / 2), column 8 j +
// 2 (l % 4) + e % 2 -- each from the K products (summed in double, then added as a float, like
// the mma.sync model above).
//
// Asynchrony, as the PTX ISA defines it: the instruction only starts the MMA; its operands may
// be read from shared memory at any time until a wgmma.wait_group completes its commit group,
// and d is written by then. The model reads the operands when the wgmma is issued, keeps them
// with the wgmma, and does the arithmetic -- writing d -- only in the wait_group that completes
// it (so reading d before the wait gives stale values). There it reads the operands again: if
// shared memory changed in between (a stage refilled while a wgmma that reads it was still
// pending), that is a fault. A thread that ends with wgmmas pending is a fault too.
// Proxies: the 16-byte cp.async copies land at their wait_group (see cp_async below), as writes
// of the generic proxy; the wgmma reads through the async proxy, so each thread must issue a
// fence.proxy.async after its copies landed (and a barrier must follow for the other threads'
// wgmmas). A wgmma whose operands include a chunk a copy wrote since its writer's last fence is
// a fault. (Operands written by ordinary st.shared are not tracked: the kernels write wgmma
// operands with cp.async only.)
namespace {
// This thread's operand bits of one wgmma: A's two rows (K each), then B's 2 N / 8 columns.
std::vector<uint32_t> wgmma_operand_bits(int n, bool tf32, uint64_t desc_a, uint64_t desc_b, bool mn_major,
                                         bool at_issue) {
  const SmemMatrix A(desc_a, at_issue), B(desc_b, at_issue);
  const int K = tf32 ? 8 : 16, bytes = tf32 ? 4 : 2;
  const auto elem = [&](const SmemMatrix& m, int mn, int k) {
    return mn_major ? m.at_mn_major(mn, k, bytes) : m.at_k_major(mn, k, bytes);
  };
  const int tw = int(g_thread_idx.x) % 128, q = tw / 32, lane = tw % 32;
  std::vector<uint32_t> bits;
  bits.reserve(size_t(2 + n / 4) * size_t(K));
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < K; ++k) bits.push_back(elem(A, 16 * q + lane / 4 + 8 * h, k));
  for (int j = 0; j < n / 8; ++j)
    for (int c = 0; c < 2; ++c)
      for (int k = 0; k < K; ++k) bits.push_back(elem(B, 8 * j + 2 * (lane % 4) + c, k));
  return bits;
}

void wgmma_complete(const PendingWgmma& w) {
  if (wgmma_operand_bits(w.n, w.tf32, w.desc_a, w.desc_b, w.mn_major, false) != w.bits)
    kfail("wgmma: shared memory that a pending wgmma reads changed before the wgmma.wait_group that "
          "completes it (a stage refilled too early)");
  const int K = w.tf32 ? 8 : 16;
  const auto value = [&](uint32_t b) {
    if (!w.tf32) return bf16_bits_to_float(uint16_t(b));
    b &= 0xffffe000u;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  };
  const uint32_t* a = w.bits.data();             // a[h * K + k]
  const uint32_t* bcols = a + 2 * size_t(K);      // column (j, c): bcols[(2 j + c) * K + k]
  for (int j = 0; j < w.n / 8; ++j)
    for (int c = 0; c < 2; ++c) {
      const uint32_t* b = bcols + size_t(2 * j + c) * size_t(K);
      for (int h = 0; h < 2; ++h) {
        double acc = 0;
        for (int k = 0; k < K; ++k) acc += double(value(a[h * K + k])) * double(value(b[k]));
        float& out = w.d[4 * j + 2 * h + c];
        out = w.accumulate ? out + float(acc) : float(acc);  // scale-d false: d is not read
      }
    }
}
}  // namespace

void wgmma(float* d, int n, bool tf32, uint64_t desc_a, uint64_t desc_b, int accumulate, bool mn_major) {
  if (mn_major && tf32) kfail("wgmma: TF32 operands cannot be MN-major");
  if (n % 8 != 0 || n < 8 || n > 256) kfail("wgmma: N must be a multiple of 8 in 8..256");
  Fiber& f = g_s->fibers[g_s->cur];
  f.wgmma_pending.push_back({d, n, accumulate, tf32, mn_major, desc_a, desc_b, f.wgmma_group,
                             wgmma_operand_bits(n, tf32, desc_a, desc_b, mn_major, true)});
}

// fence.proxy.async.shared::cta: this thread's landed copies become visible to the async proxy.
void fence_proxy_async() {
  Fiber& f = g_s->fibers[g_s->cur];
  const uint16_t me = uint16_t(g_s->cur + 1);
  for (uint32_t c : f.unfenced)
    if ((*g_unfenced)[c] == me) (*g_unfenced)[c] = 0;
  f.unfenced.clear();
}

// wgmma.commit_group: the wgmmas issued since the last commit form one group.
void wgmma_commit() { ++g_s->fibers[g_s->cur].wgmma_group; }

// wgmma.wait_group N: completes, in issue order, the wgmmas of every committed group but the
// newest N.
void wgmma_wait(int n) {
  if (n < 0) kfail("wgmma.wait_group: N must be >= 0");
  Fiber& f = g_s->fibers[g_s->cur];
  std::vector<PendingWgmma> keep;
  for (const PendingWgmma& w : f.wgmma_pending) {
    if (w.group + uint64_t(n) < f.wgmma_group)
      wgmma_complete(w);
    else
      keep.push_back(w);
  }
  f.wgmma_pending.swap(keep);
}

// ---- cp.async (kernels/conv2d_igemm.cuh) ---------------------------------------------------------
// As the PTX ISA allows: the copy reads its source when issued (global memory the kernel only
// reads), and its destination is undefined from then until a cp.async.wait_group completes its
// commit group. The model fills the destination with 0xff bytes (NaN) at once and writes the
// data at that wait, so both a read before the wait (or before the barrier after it, by
// another thread) and a stage refilled while still being read -- by ldmatrix or by a pending
// wgmma -- show.
namespace {
// The copies are queued in group order: those of groups before `before_group` are a prefix.
void land_copies(Fiber& f, uint64_t before_group) {
  std::vector<PendingCopy>& q = f.copies_pending;
  size_t i = f.copies_head;
  for (; i < q.size() && q[i].group < before_group; ++i) {
    std::memcpy(q[i].dst, q[i].data, size_t(q[i].bytes));
    const uint32_t chunk = uint32_t((q[i].dst - g_smem->data()) / 16);
    (*g_unfenced)[chunk] = uint16_t(g_s->cur + 1);
    f.unfenced.push_back(chunk);
  }
  if (i == q.size()) {
    q.clear();  // keeps the capacity
    f.copies_head = 0;
  } else {
    f.copies_head = i;
  }
}
}  // namespace

// The allocation the last checked copy source lay in (reset at every launch: allocations
// change only between launches).
struct SourceRange {
  uintptr_t lo = 0, hi = 0;
};
SourceRange g_last_source;

// A cp.async source must lie inside one live device allocation, as compute-sanitizer memcheck
// requires: a read past a tensor's end is a fault (with DISCO_CUDA_EXACT_ALLOC=1 the caching
// allocator's blocks are exactly the tensors' sizes, so this sees every such read).
void check_copy_source(const void* src, int bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(src);
  if (a >= g_last_source.lo && a + uintptr_t(bytes) <= g_last_source.hi) return;
  uintptr_t base = 0;
  size_t size = 0;
  if (!device_allocation(src, &base, &size) || a + uintptr_t(bytes) > base + size) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "cp.async: the %d-byte source %p is not inside one device allocation%s", bytes, src,
                  size ? " (it runs past the end of one)" : "");
    kfail(buf);
  }
  g_last_source = {base, base + size};
}

void cp_async(void* dst, const void* src, int bytes, bool pred) {
  if (bytes != 4 && bytes != 16) kfail("cp.async: only 4- and 16-byte copies are emulated");
  const auto* d = static_cast<unsigned char*>(dst);
  if (g_smem->data() == nullptr || d < g_smem->data() || d + bytes > g_smem->data() + g_smem->size())
    kfail("cp.async: the destination is not in the block's dynamic shared memory");
  if (pred) check_copy_source(src, bytes);
  Fiber& f = g_s->fibers[g_s->cur];
  PendingCopy c{static_cast<unsigned char*>(dst), bytes, f.copy_group, {}};
  if (pred) std::memcpy(c.data, src, size_t(bytes));
  std::memset(dst, 0xff, size_t(bytes));  // undefined until it lands
  f.copies_pending.push_back(c);
}

// cp.async.commit_group: the copies issued since the last commit form one group.
void cp_async_commit() { ++g_s->fibers[g_s->cur].copy_group; }

// cp.async.wait_group N: every committed group but the newest N has landed.
void cp_async_wait(int n) {
  if (n < 0) kfail("cp.async.wait_group: N must be >= 0");
  Fiber& f = g_s->fibers[g_s->cur];
  land_copies(f, f.copy_group >= uint64_t(n) ? f.copy_group - uint64_t(n) : 0);
}

void run_grid(const char* name, dim3 grid, dim3 block, size_t smem, void (*body)(const void*), const void* ctx) {
  Scheduler& s = *g_s;
  g_smem->reset(smem);  // a buffer of the launch's size (enqueue_kernel checked the size)
  g_last_source = {};
  g_kernel_name = name;
  g_grid_dim = grid;
  g_block_dim = block;
  s.body = body;
  s.ctx = ctx;
  s.n = int(block.x * block.y * block.z);
  const bool reverse_blocks = order_reverse();
  const size_t nblocks = size_t(grid.x) * grid.y * grid.z;
  for (size_t bi = 0; bi < nblocks; ++bi) {
    const size_t b = reverse_blocks ? nblocks - 1 - bi : bi;
    g_block_idx = make_uint3(unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / grid.x / grid.y));
    for (int t = 0; t < s.n; ++t) init_fiber(s.fibers[t]);
    g_smem->poison();  // a block starts with garbage (NaN) in its dynamic shared memory
    g_unfenced->assign((smem + 15) / 16, 0);
    s.done = 0;
    s.block_waiting = 0;
    std::fill(std::begin(s.warp_waiting), std::end(s.warp_waiting), 0);
    std::fill(std::begin(s.warp_exited), std::end(s.warp_exited), 0);
    // Round robin; every other pass runs the threads in reverse order, so that a read of shared
    // memory that a missing __syncthreads leaves unordered sees stale data in one of the orders.
    for (int pass = 0; s.done < s.n; ++pass) {
      bool ran = false;
      for (int i = 0; i < s.n; ++i) {
        const int t = (pass & 1) ? s.n - 1 - i : i;
        Fiber& f = s.fibers[t];
        if (f.st != St::Run) continue;
        s.cur = t;
        g_thread_idx = tid_of(t);
        asan_to_fiber(f);
        disco_emu_switch(&s.main_sp, f.sp);
        asan_back_in_main();
        ran = true;
      }
      if (!ran) {
        g_thread_idx = tid_of(0);
        kfail("deadlock: threads wait at barriers that cannot complete (__syncthreads vs warp collective)");
      }
    }
  }
}

}  // namespace disco_emu
