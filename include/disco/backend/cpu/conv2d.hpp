#pragma once
// CPU 2-D convolution: forward (fprop), data gradient (dgrad, which is also the forward
// pass of a transposed convolution) and weight gradient (wgrad), on raw NCHW pointers.
//
// Layouts (see disco/problem/conv2d_problem.hpp): x [N, C, H, W], w [K, C, R, S],
// y / dy [N, K, P, Q], bias [K]. Everything contiguous.
//
// Method: im2col + Eigen GEMM. For a chunk of nb samples the column matrix
// Col [C*R*S x nb*P*Q] (row-major; column index = (sample, p, q)) is built, then
//   fprop:  Y    [K x nb*PQ]   = W [K x CRS] * Col        (scattered to NCHW, + bias)
//   dgrad:  dCol [CRS x nb*PQ] = W^T * dY                 (then col2im into dx)
//   wgrad:  dW   [K x CRS]    += dY [K x nb*PQ] * Col^T
// Batching several samples into one GEMM keeps GEMMs fat for tiny spatial maps (2x2, 4x4).
// Small output maps use index tables for im2col / col2im, and dgrad computes the transposed
// dCol^T = dY^T * W there (faster for those skinny shapes; see Conv2dSettings).
// Strided col2im sums into a phase-split buffer so all adds are contiguous.
//
// Threading (2+ cores): two schedules, picked per call by make_plan():
//   * per-thread: each OpenMP thread owns a contiguous range of samples and its own
//     workspace slice and runs serial GEMMs (big spatial maps; one fork/join per call).
//     wgrad keeps a per-thread partial dW and reduces it at the end.
//   * shared (tiny spatial maps, big channel counts, batch < threads): the team walks the
//     chunks together. fprop splits the output pixels (each thread builds, multiplies
//     and scatters its own columns) or the output channels; dgrad / wgrad split the input
//     channels (each thread owns those rows of dCol / Col and columns of dW), so most
//     chunks need no barrier at all.
//   Calls below Conv2dSettings::min_parallel_flops run on the calling thread.
// Eigen itself always runs single-threaded here (its parallel GEMM spin-waits, which
// collapses when the cores are shared with other work). Calls from inside an OpenMP
// parallel region run serially on the calling thread. Concurrent calls from several
// threads are safe (each caller uses its own scratch).
// Memory: one thread-local scratch buffer of the calling thread, grown on demand and
// reused (disco/backend/cpu/parallel.hpp), carved into per-thread slices; chunks are sized
// so the column buffers stay below Conv2dSettings::col_budget_bytes. Nothing is allocated
// inside parallel regions, so allocation failures surface as exceptions.
// 1x1 kernels with stride 1 and no padding use x / dx directly as the column matrix.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "disco/backend/cpu/gemm.hpp"
#include "disco/backend/cpu/parallel.hpp"
#include "disco/core/error.hpp"
#include "disco/problem/conv2d_problem.hpp"

namespace disco::cpu {

// Tuning knobs (process-wide; tests and benchmarks change them, normal code should not).
struct Conv2dSettings {
  // Upper bound on the column + GEMM-output scratch of one call, all threads together.
  int64_t col_budget_bytes = int64_t(48) << 20;
  // Use the per-thread schedule only when every thread gets at least this many GEMM
  // columns (samples per thread * P*Q).
  int64_t min_cols_per_thread = 256;
  // Batch samples into one GEMM until it has at least this many columns.
  int64_t target_cols = 512;
  // 0: automatic, 1: force the per-thread schedule (when N >= 2 and threads > 1),
  // 2: force the shared schedule.
  int force_schedule = 0;
  // Output maps with at most this many pixels (P*Q) use table-driven im2col (fprop,
  // wgrad); dgrad uses the transposed GEMM and table-driven col2im up to
  // min(table_max_pq, dgrad_table_max_pq) pixels.
  int64_t table_max_pq = 64;
  int64_t dgrad_table_max_pq = 16;
  // Calls with fewer flops than this run on one thread (threading overhead would dominate).
  // Ignored when a schedule is forced.
  double min_parallel_flops = 2e6;
};

inline Conv2dSettings& conv2d_settings() {
  static Conv2dSettings s;
  return s;
}

namespace detail {

struct ConvWsTag {};

inline std::string conv_str(const Conv2dProblem& p) {
  return str("{N=", p.N, " C=", p.C, " H=", p.H, " W=", p.W, " K=", p.K, " R=", p.R, " S=", p.S,
             " pad=", p.pad_h, ",", p.pad_w, " stride=", p.stride_h, ",", p.stride_w, " dil=", p.dil_h,
             ",", p.dil_w, " P=", p.P, " Q=", p.Q, "}");
}

inline void check_conv_problem(const Conv2dProblem& p, const char* op) {
  DISCO_CHECK(p.N >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1 && p.K >= 1 && p.R >= 1 && p.S >= 1,
              op, ": sizes must be positive (N may be 0), got ", conv_str(p));
  DISCO_CHECK(p.stride_h >= 1 && p.stride_w >= 1 && p.dil_h >= 1 && p.dil_w >= 1 && p.pad_h >= 0 &&
                  p.pad_w >= 0,
              op, ": stride and dilation must be >= 1 and padding >= 0, got ", conv_str(p));
  Conv2dProblem q = p;
  q.compute_output_size();
  DISCO_CHECK(q.P >= 1 && q.Q >= 1, op, ": kernel (with dilation) does not fit the padded input, ",
              conv_str(p));
  DISCO_CHECK(q.P == p.P && q.Q == p.Q, op, ": output size P x Q must be ", q.P, " x ", q.Q,
              " for ", conv_str(p));
}

// Index geometry of one problem, computed once per call and shared by all threads.
struct ConvGeom {
  int64_t PQ = 0, HW = 0, RS = 0, CRS = 0;
  // per kernel column s: input column of output column q is q*stride_w + off[s]; it is
  // inside [0, W) for q in [lo[s], hi[s]); phase[s] = off mod stride, base[s] = floor(off / stride)
  std::vector<int> off, lo, hi, phase, base;
  // per kernel row r: output rows pp in [plo[r], phi[r]) read an input row inside [0, H)
  std::vector<int> plo, phi;
  int Wp = 0;  // length of one phase row: ceil(W / stride_w)
  // small output maps: tbl[rs * PQ + m] = input offset in the channel plane of kernel tap rs
  // and output pixel m, or -1 (padding); tblt is the same in [m][rs] order
  bool table = false;
  std::vector<int> tbl, tblt;
};

inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

inline ConvGeom make_geom(const Conv2dProblem& p, bool table) {
  ConvGeom g;
  g.PQ = int64_t(p.P) * p.Q;
  g.HW = int64_t(p.H) * p.W;
  g.RS = int64_t(p.R) * p.S;
  g.CRS = p.C * g.RS;
  const int sw = p.stride_w, sh = p.stride_h;
  g.Wp = (p.W + sw - 1) / sw;
  for (int s = 0; s < p.S; ++s) {
    const int off = s * p.dil_w - p.pad_w;
    int lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int hi = (p.W - 1 - off) >= 0 ? (p.W - 1 - off) / sw + 1 : 0;
    lo = std::min(lo, p.Q);
    hi = std::max(std::min(hi, p.Q), lo);
    const int b = floor_div(off, sw);
    g.off.push_back(off);
    g.lo.push_back(lo);
    g.hi.push_back(hi);
    g.base.push_back(b);
    g.phase.push_back(off - b * sw);
  }
  for (int r = 0; r < p.R; ++r) {
    const int off = r * p.dil_h - p.pad_h;  // input row of pp is pp*sh + off
    int lo = off >= 0 ? 0 : (-off + sh - 1) / sh;
    int hi = (p.H - 1 - off) >= 0 ? (p.H - 1 - off) / sh + 1 : 0;
    lo = std::min(lo, p.P);
    hi = std::max(std::min(hi, p.P), lo);
    g.plo.push_back(lo);
    g.phi.push_back(hi);
  }
  g.table = table;
  if (table) {
    g.tbl.assign(size_t(g.RS * g.PQ), -1);
    g.tblt.assign(size_t(g.RS * g.PQ), -1);
    for (int r = 0; r < p.R; ++r)
      for (int s = 0; s < p.S; ++s)
        for (int pp = 0; pp < p.P; ++pp)
          for (int q = 0; q < p.Q; ++q) {
            const int ih = p.in_h(pp, r), iw = p.in_w(q, s);
            if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
            const int64_t rs = int64_t(r) * p.S + s, m = int64_t(pp) * p.Q + q;
            g.tbl[size_t(rs * g.PQ + m)] = ih * p.W + iw;
            g.tblt[size_t(m * g.RS + rs)] = ih * p.W + iw;
          }
  }
  return g;
}

// Split the rows of plane xc [H, W] by column phase: tmp[(ih * sw + f) * Wp + i] =
// xc[ih, i * sw + f] (entries past the end of a row are left unset, never read).
template <class T>
void deinterleave_plane(const Conv2dProblem& p, const ConvGeom& g, const T* xc, T* tmp, int h0, int h1) {
  const int W = p.W, sw = p.stride_w, Wp = g.Wp;
  for (int ih = h0; ih < h1; ++ih) {
    const T* src = xc + int64_t(ih) * W;
    T* dst = tmp + int64_t(ih) * sw * Wp;
    if (sw == 2) {
      T* e = dst;
      T* o = dst + Wp;
      const int W2 = W / 2;
      for (int i = 0; i < W2; ++i) {
        e[i] = src[2 * i];
        o[i] = src[2 * i + 1];
      }
      if (W & 1) e[W2] = src[W - 1];
    } else {
      for (int iw = 0; iw < W; ++iw) dst[int64_t(iw % sw) * Wp + iw / sw] = src[iw];
    }
  }
}

// im2col of one input channel plane xc [H, W] into the R*S rows starting at col_c
// (row stride ld); pixel (p, q) of a row lands at p*Q + q. Only output rows [pp0, pp1)
// are written (pp1 < 0: all). Strided rows are first split by column phase into phase_buf
// [H][stride_w][Wp] so every row segment is a contiguous copy.
template <class T>
void im2col_channel(const Conv2dProblem& p, const ConvGeom& g, const T* xc, T* col_c, int64_t ld, T* phase_buf,
                    int pp0 = 0, int pp1 = -1) {
  const int Q = p.Q, S = p.S, sw = p.stride_w;
  if (pp1 < 0) pp1 = p.P;
  if (pp0 >= pp1) return;
  if (g.table) {
    const int64_t m0 = int64_t(pp0) * Q, m1 = int64_t(pp1) * Q;
    for (int64_t rs = 0; rs < g.RS; ++rs) {
      T* d = col_c + rs * ld;
      const int* t = g.tbl.data() + rs * g.PQ;
      for (int64_t m = m0; m < m1; ++m) d[m] = t[m] >= 0 ? xc[t[m]] : T(0);
    }
    return;
  }
  // src(ih) + base[s] + q is input column q*sw + off[s] of input row ih
  const T* plane = xc;
  int64_t row_len = p.W;  // distance between input rows in `plane`
  if (sw > 1) {
    T* tmp = phase_buf;
    const int h0 = std::max(0, pp0 * p.stride_h - p.pad_h);
    const int h1 = std::min(p.H, (pp1 - 1) * p.stride_h - p.pad_h + (p.R - 1) * p.dil_h + 1);
    deinterleave_plane(p, g, xc, tmp, h0, h1);
    plane = tmp;
    row_len = int64_t(sw) * g.Wp;
  }
  for (int r = 0; r < p.R; ++r) {
    const int plo = std::min(std::max(g.plo[size_t(r)], pp0), pp1);
    const int phi = std::max(std::min(g.phi[size_t(r)], pp1), plo);
    for (int s = 0; s < S; ++s) {
      T* d = col_c + (int64_t(r) * S + s) * ld;
      const int lo = g.lo[size_t(s)], hi = g.hi[size_t(s)];
      // q + shift >= 0 for q in [lo, hi) (no pointer ever points before the buffer)
      const int64_t shift =
          sw > 1 ? int64_t(g.phase[size_t(s)]) * g.Wp + g.base[size_t(s)] : int64_t(g.off[size_t(s)]);
      std::fill(d + int64_t(pp0) * Q, d + int64_t(plo) * Q, T(0));
      for (int pp = plo; pp < phi; ++pp) {
        T* drow = d + int64_t(pp) * Q;
        const T* src = plane + int64_t(pp * p.stride_h - p.pad_h + r * p.dil_h) * row_len;
        for (int q = 0; q < lo; ++q) drow[q] = T(0);
        for (int q = lo; q < hi; ++q) drow[q] = src[q + shift];
        for (int q = hi; q < Q; ++q) drow[q] = T(0);
      }
      std::fill(d + int64_t(phi) * Q, d + int64_t(pp1) * Q, T(0));
    }
  }
}

// col2im of the R*S rows starting at col_c (row stride ld) into channel plane dxc [H, W]:
// dxc = (accumulate ? dxc : 0) + contributions. Strided outputs are summed in the
// phase-split buffer phase_buf [H][stride_w][Wp] (contiguous adds), then interleaved into dxc.
template <class T>
void col2im_channel(const Conv2dProblem& p, const ConvGeom& g, const T* col_c, int64_t ld, T* dxc,
                    bool accumulate, T* phase_buf) {
  const int H = p.H, W = p.W, Q = p.Q, S = p.S, sw = p.stride_w;
  if (sw == 1) {
    if (!accumulate) std::fill(dxc, dxc + g.HW, T(0));
    for (int r = 0; r < p.R; ++r) {
      for (int s = 0; s < S; ++s) {
        const T* d = col_c + (int64_t(r) * S + s) * ld;
        const int off = g.off[size_t(s)], lo = g.lo[size_t(s)], hi = g.hi[size_t(s)];
        for (int pp = g.plo[size_t(r)]; pp < g.phi[size_t(r)]; ++pp) {
          const T* drow = d + int64_t(pp) * Q;
          T* o = dxc + int64_t(pp * p.stride_h - p.pad_h + r * p.dil_h) * W;
          for (int q = lo; q < hi; ++q) o[q + off] += drow[q];
        }
      }
    }
    return;
  }
  const int Wp = g.Wp;
  T* tmp = phase_buf;  // [H][sw][Wp]
  std::fill(tmp, tmp + int64_t(H) * sw * Wp, T(0));
  for (int r = 0; r < p.R; ++r) {
    for (int s = 0; s < S; ++s) {
      const T* d = col_c + (int64_t(r) * S + s) * ld;
      const int lo = g.lo[size_t(s)], hi = g.hi[size_t(s)];
      const int64_t shift = int64_t(g.phase[size_t(s)]) * Wp + g.base[size_t(s)];  // q + shift >= 0
      for (int pp = g.plo[size_t(r)]; pp < g.phi[size_t(r)]; ++pp) {
        const T* drow = d + int64_t(pp) * Q;
        T* o = tmp + int64_t(pp * p.stride_h - p.pad_h + r * p.dil_h) * sw * Wp;
        for (int q = lo; q < hi; ++q) o[q + shift] += drow[q];
      }
    }
  }
  for (int ih = 0; ih < H; ++ih) {
    const T* src = tmp + int64_t(ih) * sw * Wp;
    T* dst = dxc + int64_t(ih) * W;
    if (sw == 2) {
      const T* e = src;
      const T* o = src + Wp;
      const int W2 = W / 2;
      if (accumulate) {
        for (int i = 0; i < W2; ++i) {
          dst[2 * i] += e[i];
          dst[2 * i + 1] += o[i];
        }
        if (W & 1) dst[W - 1] += e[W2];
      } else {
        for (int i = 0; i < W2; ++i) {
          dst[2 * i] = e[i];
          dst[2 * i + 1] = o[i];
        }
        if (W & 1) dst[W - 1] = e[W2];
      }
    } else {
      for (int iw = 0; iw < W; ++iw) {
        const T v = src[int64_t(iw % sw) * Wp + iw / sw];
        dst[iw] = accumulate ? dst[iw] + v : v;
      }
    }
  }
}

// col2im for small maps from the transposed column matrix dColT [nb*PQ x CRS] (row
// stride ldt): col_t points at (sample j, pixel 0, channel c's first tap).
template <class T>
void col2im_channel_t(const ConvGeom& g, const T* col_t, int64_t ldt, T* dxc, bool accumulate) {
  if (!accumulate) std::fill(dxc, dxc + g.HW, T(0));
  for (int64_t m = 0; m < g.PQ; ++m) {
    const T* row = col_t + m * ldt;
    const int* t = g.tblt.data() + m * g.RS;
    for (int64_t rs = 0; rs < g.RS; ++rs)
      if (t[rs] >= 0) dxc[t[rs]] += row[rs];
  }
}

enum class ConvOp { Fprop, Dgrad, Wgrad };

// How one call runs: schedule, chunking and the workspace it needs.
struct ConvPlan {
  int threads = 1;        // threads of the call
  bool per_thread = false;
  int64_t nb = 1;         // samples per GEMM chunk
  bool direct = false;    // 1x1 / stride 1 / pad 0: the column matrix is x itself
  bool table = false;     // small output map: table-driven im2col / col2im, transposed dgrad
  // Workspace, in elements (each rounded up to 64 bytes). col / out: column matrix and GEMM
  // output of a chunk (one copy shared by the team, or one per thread in the per-thread
  // schedule); dy / phase: private per thread; part: per-thread partial dW (wgrad in the
  // per-thread schedule, threads 1..n-1).
  int64_t col_n = 0, out_n = 0, dy_n = 0, phase_n = 0, part_n = 0;

  int64_t shared_n() const { return per_thread ? 0 : col_n + out_n; }
  int64_t slot_n() const { return (per_thread ? col_n + out_n : 0) + dy_n + phase_n; }
  int64_t total_n() const { return shared_n() + threads * slot_n() + (threads - 1) * part_n; }
};

template <class T>
ConvPlan make_plan(const Conv2dProblem& p, ConvOp op) {
  const Conv2dSettings& st = conv2d_settings();
  ConvPlan pl;
  const int64_t N = p.N, PQ = int64_t(p.P) * p.Q, CRS = p.gemm_k();
  int threads = max_threads();
  if (st.force_schedule == 0 && p.flops() < st.min_parallel_flops) threads = 1;
  if (st.force_schedule == 1) {
    pl.per_thread = threads > 1 && N >= 2;
  } else if (st.force_schedule == 2) {
    pl.per_thread = false;
  } else {
    pl.per_thread = threads > 1 && N >= threads && (N / threads) * PQ >= st.min_cols_per_thread;
  }
  if (pl.per_thread) threads = int(std::min<int64_t>(threads, N));
  pl.threads = threads;
  pl.direct = p.R == 1 && p.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
  pl.table = !pl.direct && PQ <= st.table_max_pq &&
             (op != ConvOp::Dgrad || PQ <= st.dgrad_table_max_pq);
  const int64_t bytes_per_sample = (CRS + p.K) * PQ * int64_t(sizeof(T));
  const int64_t budget = st.col_budget_bytes / (pl.per_thread ? threads : 1);
  const int64_t nb_budget = std::max<int64_t>(1, budget / std::max<int64_t>(1, bytes_per_sample));
  const int64_t nb_target = std::max<int64_t>(1, (st.target_cols + PQ - 1) / PQ);
  const int64_t avail = pl.per_thread ? (N + threads - 1) / threads : N;
  pl.nb = std::max<int64_t>(1, std::min({avail, nb_budget, nb_target}));

  auto round = [](int64_t n) {
    const int64_t u = std::max<int64_t>(1, 64 / int64_t(sizeof(T)));
    return (n + u - 1) / u * u;
  };
  const int64_t L = pl.nb * PQ;
  const bool x_is_col = pl.direct && pl.nb == 1;
  const bool phase = !pl.table && !pl.direct && p.stride_w > 1;
  if (!x_is_col) pl.col_n = round(CRS * L);
  if (phase) pl.phase_n = round(int64_t(p.H) * p.stride_w * ((p.W + p.stride_w - 1) / p.stride_w));
  if (op == ConvOp::Fprop) {
    if (pl.nb > 1) pl.out_n = round(p.K * L);
  } else {
    if (pl.nb > 1 || (op == ConvOp::Dgrad && pl.table)) pl.dy_n = round(p.K * L);
    if (op == ConvOp::Wgrad && pl.per_thread) pl.part_n = round(p.w_size());
  }
  return pl;
}

// Who runs a chunk: the whole OpenMP team of a shared-schedule region (shared == true:
// loops are work-shared, thread t of nt takes its part of each GEMM), or one thread alone.
struct TeamCtx {
  bool shared = false;
  int t = 0, nt = 1;
};

inline TeamCtx team_ctx(bool shared) {
  TeamCtx c;
  c.shared = shared;
  if (shared) {
    c.t = thread_index();
    c.nt = team_size();
  }
  return c;
}

// Loop over [0, n): work-shared over the team (with the implicit barrier at the end) when
// ctx.shared, else serial. Must be reached by every thread of the team when shared.
template <class F>
void team_for(const TeamCtx& ctx, int64_t n, F&& f) {
  if (ctx.shared) {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) f(i);
  } else {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
}

inline void team_barrier(const TeamCtx& ctx) {
  if (ctx.shared && ctx.nt > 1) {
#pragma omp barrier
  }
}

// Which block of a GEMM output a thread computed: rows [lo, hi) or columns [lo, hi).
struct GemmPart {
  bool rows = true;
  int64_t lo = 0, hi = 0;
};

// Thread ctx.t's share of C[M x N] (+)= op(A) op(B) (see gemm()): the larger of M and N
// is split over the team, so each thread writes a disjoint block of C. Serial Eigen GEMM.
template <class T>
GemmPart gemm_part(const TeamCtx& ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A,
                   int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, bool accumulate) {
  if (ctx.nt == 1) {
    gemm<T>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return {true, 0, M};
  }
  if (M >= N) {
    const auto rg = split_range(M, ctx.nt, ctx.t);
    const T* a = ta ? A + rg.first : A + rg.first * lda;
    gemm<T>(ta, tb, rg.second - rg.first, N, K, a, lda, B, ldb, C + rg.first * ldc, ldc, accumulate);
    return {true, rg.first, rg.second};
  }
  constexpr int64_t kUnit = 16;  // keep column blocks vector aligned
  const auto rg = split_range((N + kUnit - 1) / kUnit, ctx.nt, ctx.t);
  const int64_t n0 = std::min(N, rg.first * kUnit), n1 = std::min(N, rg.second * kUnit);
  const T* b = tb ? B + n0 * ldb : B + n0;
  gemm<T>(ta, tb, M, n1 - n0, K, A, lda, b, ldb, C + n0, ldc, accumulate);
  return {false, n0, n1};
}

// One thread's view of the call's workspace (see ConvPlan).
template <class T>
struct Workspace {
  T* col = nullptr;
  T* out = nullptr;
  T* dy = nullptr;
  T* phase = nullptr;
  T* part = nullptr;  // slot >= 1 only
};

template <class T>
Workspace<T> carve(const ConvPlan& pl, T* base, int slot) {
  Workspace<T> w;
  T* s = base + pl.shared_n() + int64_t(slot) * pl.slot_n();
  if (pl.per_thread) {
    w.col = s;
    w.out = s + pl.col_n;
    s += pl.col_n + pl.out_n;
  } else {
    w.col = base;
    w.out = base + pl.col_n;
  }
  w.dy = s;
  w.phase = s + pl.dy_n;
  if (slot >= 1 && pl.part_n > 0) w.part = base + pl.shared_n() + pl.threads * pl.slot_n() + (slot - 1) * pl.part_n;
  return w;
}

// Everything a chunk needs besides the tensors (one per thread).
template <class T>
struct ChunkArgs {
  const Conv2dProblem& p;
  const ConvPlan& pl;
  const ConvGeom& g;
  Workspace<T> ws;
};

// Channels [c0, c1) this thread owns when a chunk is split by input channel (dgrad,
// wgrad): used when every thread gets a few channels, so no barrier is needed between the
// GEMM and col2im / between im2col and the GEMM.
inline bool channel_split(const TeamCtx& ctx, int C) { return ctx.nt == 1 || C >= 4 * ctx.nt; }

// dY of samples [n0, n0+nb) as one [K x nb*PQ] matrix: dy itself for one sample, else a
// copy in this thread's private workspace (every thread of a team gathers all of it: the
// copy is small next to the GEMM and needs no barrier).
template <class T>
const T* gather_dy(const ChunkArgs<T>& a, const T* dy, int64_t n0, int64_t nb) {
  const int64_t PQ = a.g.PQ, M = nb * PQ, K = a.p.K, KPQ = K * PQ;
  if (nb == 1) return dy + n0 * KPQ;
  T* out = a.ws.dy;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < nb; ++j)
      std::memcpy(out + k * M + j * PQ, dy + (n0 + j) * KPQ + k * PQ, sizeof(T) * size_t(PQ));
  return out;
}

// dY^T [nb*PQ x K] of samples [n0, n0+nb), in this thread's private workspace.
template <class T>
const T* gather_dy_t(const ChunkArgs<T>& a, const T* dy, int64_t n0, int64_t nb) {
  const int64_t PQ = a.g.PQ, M = nb * PQ, K = a.p.K;
  T* dyt = a.ws.dy;
  for (int64_t m = 0; m < M; ++m) {
    const T* src = dy + (n0 + m / PQ) * K * PQ + m % PQ;
    T* dst = dyt + m * K;
    for (int64_t k = 0; k < K; ++k) dst[k] = src[k * PQ];
  }
  return dyt;
}

// more: another chunk follows in this region (the scratch must not be overwritten while
// a team mate still reads it).
template <class T>
void fprop_chunk(const TeamCtx& ctx, const ChunkArgs<T>& a, const T* x, const T* w, const T* bias, T* y,
                 int64_t n0, int64_t nb, bool more) {
  const Conv2dProblem& p = a.p;
  const int64_t PQ = a.g.PQ, HW = a.g.HW, M = nb * PQ, CRS = a.g.CRS, K = p.K, RS = a.g.RS, Q = p.Q;
  const int64_t L = a.pl.nb * PQ;  // leading dimension of the scratch, the same for every chunk
  const bool x_is_col = a.pl.direct && nb == 1;
  const T* col = x_is_col ? x + n0 * p.C * HW : a.ws.col;
  const int64_t ldcol = x_is_col ? PQ : L;
  T* out = nb == 1 ? y + n0 * K * PQ : a.ws.out;
  const int64_t ldout = nb == 1 ? PQ : L;
  auto im2col = [&](int64_t j, int64_t c, int pp0, int pp1) {
    im2col_channel(p, a.g, x + (n0 + j) * p.C * HW + c * HW, a.ws.col + c * RS * L + j * PQ, L, a.ws.phase, pp0,
                   pp1);
  };
  // output rows u = j*P + pp of the chunk are columns [u*Q, (u+1)*Q) of Col / out
  const int64_t units = nb * p.P;
  auto post_rows = [&](int64_t k, int64_t u0, int64_t u1) {  // bias / scatter of channel k
    const T b = bias ? bias[k] : T(0);
    if (nb == 1) {
      if (!bias) return;
      T* row = out + k * PQ;
      for (int64_t i = u0 * Q; i < u1 * Q; ++i) row[i] += b;
      return;
    }
    for (int64_t u = u0; u < u1; ++u) {
      const T* src = out + k * ldout + u * Q;
      T* dst = y + ((n0 + u / p.P) * K + k) * PQ + (u % p.P) * Q;
      for (int64_t i = 0; i < Q; ++i) dst[i] = src[i] + b;
    }
  };
  if (ctx.nt > 1 && M >= K && units >= ctx.nt) {
    // Wide output: each thread owns a range of output rows: it builds those columns of
    // Col, multiplies them and scatters them. No barrier inside the chunk.
    const auto rg = split_range(units, ctx.nt, ctx.t);
    const int64_t u0 = rg.first, u1 = rg.second;
    if (!x_is_col) {
      for (int64_t u = u0; u < u1;) {
        const int64_t j = u / p.P, pa = u % p.P, pb = std::min<int64_t>(p.P, pa + (u1 - u));
        for (int64_t c = 0; c < p.C; ++c) im2col(j, c, int(pa), int(pb));
        u += pb - pa;
      }
    }
    gemm<T>(false, false, K, (u1 - u0) * Q, CRS, w, CRS, col + u0 * Q, ldcol, out + u0 * Q, ldout, false);
    for (int64_t k = 0; k < K; ++k) post_rows(k, u0, u1);
    if (more) team_barrier(ctx);  // the next chunk may split its columns differently
    return;
  }
  if (!x_is_col) {  // ends with a barrier when shared
    team_for(ctx, nb * p.C, [&](int64_t i) { im2col(i / p.C, i % p.C, 0, -1); });
  }
  const GemmPart part = gemm_part<T>(ctx, false, false, K, M, CRS, w, CRS, col, ldcol, out, ldout, false);
  if (part.rows) {
    for (int64_t k = part.lo; k < part.hi; ++k) post_rows(k, 0, units);
    if (more) team_barrier(ctx);
  } else {
    team_barrier(ctx);
    team_for(ctx, K, [&](int64_t k) { post_rows(k, 0, units); });
  }
}

template <class T>
void dgrad_chunk(const TeamCtx& ctx, const ChunkArgs<T>& a, const T* dy, const T* w, T* dx, int64_t n0,
                 int64_t nb, bool accumulate) {
  const Conv2dProblem& p = a.p;
  const int64_t PQ = a.g.PQ, M = nb * PQ, CRS = a.g.CRS, K = p.K, HW = a.g.HW, RS = a.g.RS;
  const bool by_channel = channel_split(ctx, p.C);
  const auto crg = by_channel ? split_range(p.C, ctx.nt, ctx.t) : std::pair<int64_t, int64_t>(0, 0);
  // With by_channel every thread only rewrites the scratch rows / columns of its own
  // channels (at addresses that do not depend on nb), otherwise a barrier ends the chunk,
  // so consecutive chunks need no extra barrier.
  if (a.pl.table) {
    // Small maps: dColT [M x CRS] = dY^T [M x K] * W (faster than W^T * dY for these
    // skinny shapes, and free of the power-of-two leading-dimension slowdown).
    const T* dyt = gather_dy_t(a, dy, n0, nb);
    T* dcolt = a.ws.col;
    auto c2i = [&](int64_t j, int64_t c) {
      col2im_channel_t(a.g, dcolt + j * PQ * CRS + c * RS, CRS, dx + ((n0 + j) * p.C + c) * HW, accumulate);
    };
    if (by_channel) {
      const int64_t c0 = crg.first, c1 = crg.second;
      gemm<T>(false, false, M, (c1 - c0) * RS, K, dyt, K, w + c0 * RS, CRS, dcolt + c0 * RS, CRS, false);
      for (int64_t j = 0; j < nb; ++j)
        for (int64_t c = c0; c < c1; ++c) c2i(j, c);
    } else {
      gemm_part<T>(ctx, false, false, M, CRS, K, dyt, K, w, CRS, dcolt, CRS, false);
      team_barrier(ctx);
      team_for(ctx, nb * p.C, [&](int64_t i) { c2i(i / p.C, i % p.C); });
    }
    return;
  }
  const T* dyb = gather_dy(a, dy, n0, nb);
  if (a.pl.direct && nb == 1) {  // dx_n [C x HW] (+)= W^T dy_n, rows split over the team
    gemm_part<T>(ctx, true, false, p.C, PQ, K, w, CRS, dyb, PQ, dx + n0 * p.C * HW, PQ, accumulate);
    return;
  }
  T* dcol = a.ws.col;
  const int64_t L = a.pl.nb * PQ;  // leading dimension of dCol, the same for every chunk
  auto c2i = [&](int64_t j, int64_t c) {
    col2im_channel(p, a.g, dcol + c * RS * L + j * PQ, L, dx + ((n0 + j) * p.C + c) * HW, accumulate, a.ws.phase);
  };
  if (by_channel) {
    const int64_t c0 = crg.first, c1 = crg.second;
    gemm<T>(true, false, (c1 - c0) * RS, M, K, w + c0 * RS, CRS, dyb, M, dcol + c0 * RS * L, L, false);
    for (int64_t j = 0; j < nb; ++j)
      for (int64_t c = c0; c < c1; ++c) c2i(j, c);
  } else {
    gemm_part<T>(ctx, true, false, CRS, M, K, w, CRS, dyb, M, dcol, L, false);
    team_barrier(ctx);
    team_for(ctx, nb * p.C, [&](int64_t i) { c2i(i / p.C, i % p.C); });
  }
}

template <class T>
void wgrad_chunk(const TeamCtx& ctx, const ChunkArgs<T>& a, const T* x, const T* dy, T* dw, int64_t n0,
                 int64_t nb, bool accumulate, bool more) {
  const Conv2dProblem& p = a.p;
  const int64_t M = nb * a.g.PQ, CRS = a.g.CRS, K = p.K, HW = a.g.HW, RS = a.g.RS;
  const T* dyb = gather_dy(a, dy, n0, nb);
  const bool x_is_col = a.pl.direct && nb == 1;
  // leading dimension of the column matrix: the same for every chunk, so a thread's rows
  // never move between chunks
  const int64_t L = x_is_col ? a.g.PQ : a.pl.nb * a.g.PQ;
  const T* col = x_is_col ? x + n0 * p.C * HW : a.ws.col;
  auto im2col = [&](int64_t j, int64_t c) {
    im2col_channel(p, a.g, x + (n0 + j) * p.C * HW + c * HW, a.ws.col + c * RS * L + j * a.g.PQ, L, a.ws.phase);
  };
  if (channel_split(ctx, p.C)) {
    // each thread builds the column rows of its channels and computes those dW columns
    const auto crg = split_range(p.C, ctx.nt, ctx.t);
    const int64_t c0 = crg.first, c1 = crg.second;
    if (!x_is_col)
      for (int64_t j = 0; j < nb; ++j)
        for (int64_t c = c0; c < c1; ++c) im2col(j, c);
    gemm<T>(false, true, K, (c1 - c0) * RS, M, dyb, M, col + c0 * RS * L, L, dw + c0 * RS, CRS, accumulate);
    return;
  }
  if (!x_is_col) team_for(ctx, nb * p.C, [&](int64_t i) { im2col(i / p.C, i % p.C); });
  gemm_part<T>(ctx, false, true, K, CRS, M, dyb, M, col, L, dw, CRS, accumulate);
  if (more) team_barrier(ctx);
}

// Runs body(ctx, args, n0, nb, more) over all chunks of the batch with the plan's
// schedule; more: another chunk follows on this team / thread. All scratch memory is taken
// here, on the calling thread, before any parallel region (allocation failures throw
// normally; nothing inside the parallel regions allocates or throws).
template <class T, class Body>
void run_chunks(const Conv2dProblem& p, const ConvPlan& pl, T* base, Body&& body) {
  const ConvGeom g = make_geom(p, pl.table);
  if (pl.per_thread) {
#pragma omp parallel num_threads(pl.threads)
    {
      const TeamCtx ctx;  // every thread works alone
      const ChunkArgs<T> args{p, pl, g, carve(pl, base, thread_index())};
      const auto rg = split_range(p.N, team_size(), thread_index());
      for (int64_t n = rg.first; n < rg.second; n += pl.nb)
        body(ctx, args, n, std::min(pl.nb, rg.second - n), n + pl.nb < rg.second);
    }
  } else if (pl.threads == 1) {
    const SerialScope serial;  // keep Eigen from starting its own (spin-waiting) threads
    const ChunkArgs<T> args{p, pl, g, carve(pl, base, 0)};
    const TeamCtx ctx;
    for (int64_t n = 0; n < p.N; n += pl.nb) body(ctx, args, n, std::min<int64_t>(pl.nb, p.N - n), n + pl.nb < p.N);
  } else {
#pragma omp parallel num_threads(pl.threads)
    {
      const TeamCtx ctx = team_ctx(true);
      const ChunkArgs<T> args{p, pl, g, carve(pl, base, ctx.t)};
      for (int64_t n = 0; n < p.N; n += pl.nb)
        body(ctx, args, n, std::min<int64_t>(pl.nb, p.N - n), n + pl.nb < p.N);
    }
  }
}

}  // namespace detail

// y = conv(x, w) (+ bias when bias_or_null is not null).
template <class T>
void conv2d_fprop(const Conv2dProblem& p, const T* x, const T* w, const T* bias_or_null, T* y) {
  detail::check_conv_problem(p, "conv2d_fprop");
  if (p.N == 0) return;
  DISCO_CHECK(x && w && y, "conv2d_fprop: null x, w or y pointer");
  const detail::ConvPlan pl = detail::make_plan<T>(p, detail::ConvOp::Fprop);
  T* base = scratch<detail::ConvWsTag, T>(size_t(pl.total_n()));
  detail::run_chunks<T>(
      p, pl, base,
      [&](const detail::TeamCtx& ctx, const detail::ChunkArgs<T>& a, int64_t n0, int64_t nb, bool more) {
        detail::fprop_chunk(ctx, a, x, w, bias_or_null, y, n0, nb, more);
      });
}

// dx (+)= data gradient of conv2d: the transposed convolution of dy with w.
template <class T>
void conv2d_dgrad(const Conv2dProblem& p, const T* dy, const T* w, T* dx, bool accumulate = false) {
  detail::check_conv_problem(p, "conv2d_dgrad");
  if (p.N == 0) return;
  DISCO_CHECK(dy && w && dx, "conv2d_dgrad: null dy, w or dx pointer");
  const detail::ConvPlan pl = detail::make_plan<T>(p, detail::ConvOp::Dgrad);
  T* base = scratch<detail::ConvWsTag, T>(size_t(pl.total_n()));
  detail::run_chunks<T>(
      p, pl, base,
      [&](const detail::TeamCtx& ctx, const detail::ChunkArgs<T>& a, int64_t n0, int64_t nb, bool) {
        detail::dgrad_chunk(ctx, a, dy, w, dx, n0, nb, accumulate);
      });
}

// dw (+)= weight gradient of conv2d: sum over samples of dy_n * im2col(x_n)^T.
template <class T>
void conv2d_wgrad(const Conv2dProblem& p, const T* x, const T* dy, T* dw, bool accumulate = false) {
  detail::check_conv_problem(p, "conv2d_wgrad");
  DISCO_CHECK(dw, "conv2d_wgrad: null dw pointer");
  const int64_t WS = p.w_size();
  if (p.N == 0) {
    if (!accumulate) std::fill(dw, dw + WS, T(0));
    return;
  }
  DISCO_CHECK(x && dy, "conv2d_wgrad: null x or dy pointer");
  const detail::ConvPlan pl = detail::make_plan<T>(p, detail::ConvOp::Wgrad);
  T* base = scratch<detail::ConvWsTag, T>(size_t(pl.total_n()));
  if (!pl.per_thread) {
    // one team walks the chunks in order; the first chunk writes (or accumulates)
    detail::run_chunks<T>(
        p, pl, base,
        [&](const detail::TeamCtx& ctx, const detail::ChunkArgs<T>& a, int64_t n0, int64_t nb, bool more) {
          detail::wgrad_chunk(ctx, a, x, dy, dw, n0, nb, accumulate || n0 > 0, more);
        });
    return;
  }
  // Per-thread schedule: each thread sums its samples into its own partial dW (thread 0:
  // dw itself), then the partials are added into dw, work-shared over the elements.
  const detail::ConvGeom g = detail::make_geom(p, pl.table);
#pragma omp parallel num_threads(pl.threads)
  {
    const int t = thread_index(), nt = team_size();
    const detail::ChunkArgs<T> args{p, pl, g, detail::carve(pl, base, t)};
    const auto rg = split_range(p.N, nt, t);
    T* target = t == 0 ? dw : args.ws.part;
    for (int64_t n = rg.first; n < rg.second; n += pl.nb) {
      const bool acc = n > rg.first || (t == 0 && accumulate);
      detail::wgrad_chunk(detail::TeamCtx{}, args, x, dy, target, n, std::min(pl.nb, rg.second - n), acc, false);
    }
    if (rg.first == rg.second && (t != 0 || !accumulate)) std::fill(target, target + WS, T(0));
#pragma omp barrier
    constexpr int64_t kBlock = 4096;
    const int64_t nblocks = (WS + kBlock - 1) / kBlock;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t e0 = b * kBlock, e1 = std::min(WS, e0 + kBlock);
      for (int tt = 1; tt < nt; ++tt) {
        const T* src = detail::carve(pl, base, tt).part;
        for (int64_t e = e0; e < e1; ++e) dw[e] += src[e];
      }
    }
  }
}

// db[k] (+)= sum over n and the PQ pixels of dy[n, k, :] (bias gradient of an NCHW output).
template <class T>
void bias_grad_nchw(int64_t N, int64_t K, int64_t PQ, const T* dy, T* db, bool accumulate = false) {
  DISCO_CHECK(N >= 0 && K >= 0 && PQ >= 0, "bias_grad_nchw: negative size N=", N, " K=", K, " PQ=", PQ);
  if (K == 0) return;
  DISCO_CHECK(db && (dy || N * PQ == 0), "bias_grad_nchw: null pointer");
  const bool par = max_threads() > 1 && K > 1 && N * K * PQ >= 65536;
  (void)par;  // unused without OpenMP
  auto one = [&](int64_t k) {
    T s = T(0);
    for (int64_t n = 0; n < N; ++n)
      s += Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(dy + (n * K + k) * PQ, PQ).sum();
    db[k] = accumulate ? db[k] + s : s;
  };
#pragma omp parallel for schedule(static) if (par)
  for (int64_t k = 0; k < K; ++k) one(k);
}

}  // namespace disco::cpu
