#pragma once
// Index math of the implicit-GEMM convolutions: the one place that maps GEMM coordinates
// (m, n, k) to NCHW memory offsets for the three convolution directions, including the
// stride phase (sub-pixel) decomposition of the data gradient.
//
// Everything here is DISCO_HOST_DEVICE: the CUDA kernels (kernels/conv2d_igemm.cuh) call
// exactly these functions, and tests/cpu/test_cuda_index_math.cpp runs a naive GEMM through
// them on the CPU and compares against a direct convolution, so the mapping is checked
// without a GPU. Plain C++17, no CUDA headers.
//
// GEMM views (row-major C[M x N] = A[M x Kred] * B[Kred x N]):
//   fprop  M = N*P*Q (output pixels)  N = K          Kred = C*R*S
//          A[m, kr] = x[n, c, p*sh-ph+r*dh, q*sw-pw+s*dw]   B[kr, k] = w[k, kr]
//          C[m, k] -> y[n, k, p, q]
//   dgrad  one GEMM per phase (a, b) in [0,sh) x [0,sw): the input pixels (h, w) with
//          h % sh == a and w % sw == b. Only the taps r with (a + ph - r*dh) % sh == 0 reach
//          such a pixel, so zero rows of the zero-inserted dy are never visited:
//          M = N*Hph*Wph   N = C   Kred = K*Rph*Sph   (stride-2 k4: Rph = Sph = 2, a quarter
//          of the work of the naive zero-inserted GEMM)
//          A[m, (k,tr,ts)] = dy[n, k, p, q]  with  p = i + in0 - tr*in_step  (exact, no division)
//          B[(k,tr,ts), c] = w[k, c, r0 + tr*rstep, s0 + ts*sstep]
//          C[m, c] -> dx[n, c, a + i*sh, b + j*sw]
//   wgrad  M = K   N = C*R*S   Kred = N*P*Q
//          A[k, (n,p,q)] = dy[n, k, p, q]    B[(n,p,q), crs] = x[n, c, h(p,r), w(q,s)]
//          C[k, crs] -> dw[k, crs]
//
// Groups of four (the grouped loaders, kernels/conv2d_igemm.cuh), where groups_ok(g):
//  * fprop / dgrad: four consecutive GEMM rows m .. m+3 (m % 4 == 0) of A. The output rows
//    (fprop: Q, dgrad: every phase's w count) are multiples of 4, so a group never straddles
//    an image row; the four rows share the reduction cursor's (c, r, s) / (k, th, tw), the
//    row test and the address up to a_group_step elements each (fprop: stride_w, dgrad: 1).
//    a_group_at gives row m's part, a_group_limit the column extent that bounds each row.
//  * wgrad: four consecutive reduction indices kr .. kr+3 (kr % 4 == 0) of B, i.e. four
//    consecutive q of one output row (Q % 4 == 0); per column they share the table entry, the
//    h test and the address up to stride_w elements each (b_group_at, b_group_step,
//    b_group_limit).
//
// Offsets are int64; GEMM coordinates (m, n, kr) are int and must stay below 2^31
// (conv_gemm_fits_int32 checks that on the host).
#include <cstdint>

#include "disco/core/host_device.hpp"
#include "disco/problem/conv2d_problem.hpp"

namespace disco {
namespace convidx {

DISCO_HOST_DEVICE unsigned umulhi32(unsigned a, unsigned b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return unsigned((uint64_t(a) * uint64_t(b)) >> 32);
#endif
}

DISCO_HOST_DEVICE int positive_mod(int a, int m) {
  const int r = a % m;
  return r < 0 ? r + m : r;
}

DISCO_HOST_DEVICE int gcd_int(int a, int b) {
  while (b != 0) {
    const int t = a % b;
    a = b;
    b = t;
  }
  return a < 0 ? -a : a;
}

// Division by a run-time constant with a multiply-high and a shift (round-up method):
// with l = ceil(log2 d), p = 31 + l and m = ceil(2^p / d), floor(n / d) = (n * m) >> p
// for every 0 <= n < 2^31 (m*d - 2^p < d <= 2^(p-31)). d == 1 is special-cased.
struct FastDivmod {
  int divisor = 1;
  unsigned multiplier = 0;
  unsigned shift = 0;

  FastDivmod() = default;
  DISCO_HOST_DEVICE explicit FastDivmod(int d) : divisor(d), multiplier(0), shift(0) {
    if (d <= 1) return;  // d == 1: identity; d <= 0 is never divided by (callers guard)
    unsigned l = 0;
    while ((uint64_t(1) << l) < uint64_t(d)) ++l;
    const unsigned p = 31 + l;
    multiplier = unsigned(((uint64_t(1) << p) + uint64_t(d) - 1) / uint64_t(d));
    shift = p - 32;
  }
  // n must be in [0, 2^31).
  DISCO_HOST_DEVICE int div(int n) const {
    return divisor <= 1 ? n : int(umulhi32(unsigned(n), multiplier) >> shift);
  }
  DISCO_HOST_DEVICE void divmod(int n, int& q, int& r) const {
    q = div(n);
    r = n - q * divisor;
  }
};

enum class ConvKind : int { Fprop = 0, Dgrad = 1, Wgrad = 2 };

// One dimension of a dgrad phase: input rows h = first + i*stride (i < count) and the taps
// r = tap0 + t*tap_step (t < ntaps) that reach them; the dy row of (i, t) is
// p = i + in0 - t*in_step (may fall outside [0, P): then the term is zero).
struct DgradDimPhase {
  int first = 0;
  int count = 0;
  int tap0 = 0;
  int tap_step = 1;
  int ntaps = 0;
  int in0 = 0;
  int in_step = 0;
};

// phase in [0, stride); X = input extent (H), R = kernel extent.
DISCO_HOST_DEVICE DgradDimPhase make_dgrad_dim_phase(int phase, int X, int R, int stride, int pad,
                                                     int dil) {
  DgradDimPhase d;
  d.first = phase;
  d.count = phase < X ? (X - phase + stride - 1) / stride : 0;
  d.tap_step = stride / gcd_int(stride, dil);
  int tap0 = -1;
  for (int r = 0; r < d.tap_step && r < R; ++r) {
    if (positive_mod(phase + pad - r * dil, stride) == 0) {
      tap0 = r;
      break;
    }
  }
  if (tap0 < 0) {
    d.tap0 = 0;
    d.ntaps = 0;
    d.in0 = 0;
    d.in_step = 0;
  } else {
    d.tap0 = tap0;
    d.ntaps = (R - 1 - tap0) / d.tap_step + 1;
    d.in0 = (phase + pad - tap0 * dil) / stride;  // exact: numerator is a multiple of stride
    d.in_step = d.tap_step * dil / stride;        // lcm(stride, dil) / stride
  }
  return d;
}

struct DgradPhase {
  DgradDimPhase h, w;
  int M = 0;     // N * h.count * w.count
  int Kred = 0;  // K * h.ntaps * w.ntaps
  FastDivmod div_ij, div_j, div_tt, div_t;
};

constexpr int kMaxPhasesPerLaunch = 16;

// Everything a kernel needs for one launch (a group of up to 16 dgrad phases, or the single
// fprop / wgrad GEMM). Trivially copyable: passed by value as a kernel argument.
struct ConvGemmParams {
  Conv2dProblem p;
  int kind = 0;        // ConvKind
  int num_slots = 1;   // phases in this launch (1 for fprop / wgrad)
  int gemm_n = 0;      // N of the GEMM (same for all slots)
  int max_m = 0;       // largest M over the slots
  int max_kred = 0;    // largest Kred over the slots
  FastDivmod div_pq, div_q, div_rs, div_s;
  DgradPhase ph[kMaxPhasesPerLaunch];
};

// Number of dgrad phases of a problem.
DISCO_HOST_DEVICE int dgrad_num_phases(const Conv2dProblem& p) { return p.stride_h * p.stride_w; }

DISCO_HOST_DEVICE DgradPhase make_dgrad_phase(const Conv2dProblem& p, int phase) {
  DgradPhase d;
  const int a = phase / p.stride_w, b = phase % p.stride_w;
  d.h = make_dgrad_dim_phase(a, p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
  d.w = make_dgrad_dim_phase(b, p.W, p.S, p.stride_w, p.pad_w, p.dil_w);
  d.M = p.N * d.h.count * d.w.count;
  d.Kred = p.K * d.h.ntaps * d.w.ntaps;
  d.div_ij = FastDivmod(d.h.count * d.w.count);
  d.div_j = FastDivmod(d.w.count);
  d.div_tt = FastDivmod(d.h.ntaps * d.w.ntaps);
  d.div_t = FastDivmod(d.w.ntaps);
  return d;
}

// Host: does every GEMM coordinate of this problem fit in int32?
inline bool conv_gemm_fits_int32(const Conv2dProblem& p) {
  const int64_t lim = (int64_t(1) << 31) - 1;
  return p.gemm_m() < lim && p.gemm_k() < lim && int64_t(p.N) * p.H * p.W < lim &&
         int64_t(p.C) * p.R * p.S < lim && int64_t(p.K) < lim && int64_t(p.N) * p.P * p.Q < lim;
}

// Build the launch parameters. For dgrad, `phase_base` selects phases
// [phase_base, phase_base + 16) (clipped to the problem's phase count).
inline ConvGemmParams make_conv_gemm_params(const Conv2dProblem& p, ConvKind kind, int phase_base = 0) {
  ConvGemmParams g;
  g.p = p;
  g.kind = int(kind);
  g.div_pq = FastDivmod(p.P * p.Q);
  g.div_q = FastDivmod(p.Q);
  g.div_rs = FastDivmod(p.R * p.S);
  g.div_s = FastDivmod(p.S);
  switch (kind) {
    case ConvKind::Fprop:
      g.num_slots = 1;
      g.gemm_n = p.K;
      g.max_m = p.N * p.P * p.Q;
      g.max_kred = p.C * p.R * p.S;
      break;
    case ConvKind::Wgrad:
      g.num_slots = 1;
      g.gemm_n = p.C * p.R * p.S;
      g.max_m = p.K;
      g.max_kred = p.N * p.P * p.Q;
      break;
    case ConvKind::Dgrad: {
      const int total = dgrad_num_phases(p);
      int n = total - phase_base;
      if (n > kMaxPhasesPerLaunch) n = kMaxPhasesPerLaunch;
      if (n < 0) n = 0;
      g.num_slots = n;
      g.gemm_n = p.C;
      g.max_m = 0;
      g.max_kred = 0;
      for (int i = 0; i < n; ++i) {
        g.ph[i] = make_dgrad_phase(p, phase_base + i);
        if (g.ph[i].M > g.max_m) g.max_m = g.ph[i].M;
        if (g.ph[i].Kred > g.max_kred) g.max_kred = g.ph[i].Kred;
      }
      break;
    }
  }
  return g;
}

// The first element of a group of four (a_group_at / b_group_at): the image column w and the
// offset, meaningful when valid and 0 <= w < the view's group limit; element j of the group
// is at w + j step, off + j step.
struct GroupElem {
  int64_t off;
  int w;
  bool valid;
};

// ---- fprop ------------------------------------------------------------------------------
struct FpropView {
  static constexpr bool kAKFast = false;  // A tiles are loaded along m (coalesced over q)
  static constexpr bool kBTable = false;  // B columns need no per-block table
  static constexpr bool kBVec4 = true;    // B = w is contiguous along the reduction
  static constexpr bool kSkipCols = false;  // c_off is never -1 (see NhwcWgrad)
  struct ARow {
    int64_t base;
    int hb, wb;
    bool valid;
  };
  struct BCol {
    int kr;
    bool valid;
  };
  DISCO_HOST_DEVICE static int gemm_m(const ConvGemmParams& g, int) { return g.max_m; }
  DISCO_HOST_DEVICE static int gemm_k(const ConvGemmParams& g, int) { return g.max_kred; }
  DISCO_HOST_DEVICE static ARow a_row(const ConvGemmParams& g, int, int m) {
    ARow r{0, 0, 0, false};
    if (m < 0 || m >= g.max_m) return r;
    int n, pq, pp, qq;
    g.div_pq.divmod(m, n, pq);
    g.div_q.divmod(pq, pp, qq);
    r.base = int64_t(n) * g.p.C * g.p.H * g.p.W;
    r.hb = pp * g.p.stride_h - g.p.pad_h;
    r.wb = qq * g.p.stride_w - g.p.pad_w;
    r.valid = true;
    return r;
  }
  DISCO_HOST_DEVICE static int64_t a_elem(const ConvGemmParams& g, int, const ARow& row, int kr) {
    if (!row.valid || kr < 0 || kr >= g.max_kred) return -1;
    int c, rs, r, s;
    g.div_rs.divmod(kr, c, rs);
    g.div_s.divmod(rs, r, s);
    const int h = row.hb + r * g.p.dil_h;
    const int w = row.wb + s * g.p.dil_w;
    if (h < 0 || h >= g.p.H || w < 0 || w >= g.p.W) return -1;
    return row.base + (int64_t(c) * g.p.H + h) * g.p.W + w;
  }
  // Incremental walk over the reduction index for the m-fast A loader: a thread visits
  // kr0, kr0 + step, ... of its own row; the cursor keeps (c, r, s) of kr so that each
  // element costs no division (a_elem_at equals a_elem at cursor.kr).
  struct ACursor {
    int kr, c, r, s;
  };
  DISCO_HOST_DEVICE static ACursor a_cursor(const ConvGemmParams& g, int, int kr0) {
    ACursor cur{kr0, 0, 0, 0};
    int rs;
    g.div_rs.divmod(kr0, cur.c, rs);
    g.div_s.divmod(rs, cur.r, cur.s);
    return cur;
  }
  DISCO_HOST_DEVICE static void a_advance(const ConvGemmParams& g, int, ACursor& cur, int step) {
    cur.kr += step;
    cur.s += step;
    while (cur.s >= g.p.S) {
      cur.s -= g.p.S;
      if (++cur.r == g.p.R) {
        cur.r = 0;
        ++cur.c;
      }
    }
  }
  DISCO_HOST_DEVICE static int64_t a_elem_at(const ConvGemmParams& g, int slot, const ARow& row, const ACursor& cur) {
    const GroupElem e = a_group_at(g, slot, row, cur);
    return e.valid && e.w >= 0 && e.w < g.p.W ? e.off : -1;
  }
  // Row groups (see the top of this file): four rows of one output row, q .. q+3.
  DISCO_HOST_DEVICE static bool groups_ok(const ConvGemmParams& g) { return g.p.Q % 4 == 0; }
  DISCO_HOST_DEVICE static int a_group_step(const ConvGemmParams& g) { return g.p.stride_w; }
  DISCO_HOST_DEVICE static int a_group_limit(const ConvGemmParams& g) { return g.p.W; }
  // Row m's element at the cursor, without the column test: valid is false when the row, the
  // reduction index or the input row h is out of range; otherwise off is the element's offset
  // when its column w is in [0, W). Row m + j of the group: w + j step, off + j step.
  DISCO_HOST_DEVICE static GroupElem a_group_at(const ConvGemmParams& g, int, const ARow& row, const ACursor& cur) {
    GroupElem e{0, 0, false};
    if (!row.valid || cur.kr >= g.max_kred) return e;
    const int h = row.hb + cur.r * g.p.dil_h;
    if (h < 0 || h >= g.p.H) return e;
    e.w = row.wb + cur.s * g.p.dil_w;
    e.off = row.base + (int64_t(cur.c) * g.p.H + h) * g.p.W + e.w;
    e.valid = true;
    return e;
  }
  DISCO_HOST_DEVICE static BCol b_col(const ConvGemmParams& g, int, int kr) {
    return BCol{kr, kr >= 0 && kr < g.max_kred};
  }
  DISCO_HOST_DEVICE static int64_t b_elem(const ConvGemmParams& g, int, const BCol& col, int n) {
    if (!col.valid || n < 0 || n >= g.gemm_n) return -1;
    return int64_t(n) * g.max_kred + col.kr;
  }
  DISCO_HOST_DEVICE static int64_t c_off(const ConvGemmParams& g, int, int m, int n) {
    int img, pq;
    g.div_pq.divmod(m, img, pq);
    const int64_t PQ = int64_t(g.p.P) * g.p.Q;
    return (int64_t(img) * g.p.K + n) * PQ + pq;
  }
};

// ---- dgrad (phase decomposition) ---------------------------------------------------------
struct DgradView {
  static constexpr bool kAKFast = false;  // A tiles along m: j consecutive -> q consecutive
  static constexpr bool kBTable = false;
  static constexpr bool kBVec4 = false;
  static constexpr bool kSkipCols = false;  // c_off is never -1 (see NhwcWgrad)
  struct ARow {
    int64_t base;
    int i, j;
    bool valid;
  };
  struct BCol {
    int64_t base;
    bool valid;
  };
  DISCO_HOST_DEVICE static int gemm_m(const ConvGemmParams& g, int slot) { return g.ph[slot].M; }
  DISCO_HOST_DEVICE static int gemm_k(const ConvGemmParams& g, int slot) { return g.ph[slot].Kred; }
  DISCO_HOST_DEVICE static ARow a_row(const ConvGemmParams& g, int slot, int m) {
    ARow r{0, 0, 0, false};
    const DgradPhase& ph = g.ph[slot];
    if (m < 0 || m >= ph.M) return r;
    int n, ij;
    ph.div_ij.divmod(m, n, ij);
    ph.div_j.divmod(ij, r.i, r.j);
    r.base = int64_t(n) * g.p.K * g.p.P * g.p.Q;
    r.valid = true;
    return r;
  }
  DISCO_HOST_DEVICE static int64_t a_elem(const ConvGemmParams& g, int slot, const ARow& row, int kr) {
    const DgradPhase& ph = g.ph[slot];
    if (!row.valid || kr < 0 || kr >= ph.Kred) return -1;
    int k, tt, th, tw;
    ph.div_tt.divmod(kr, k, tt);
    ph.div_t.divmod(tt, th, tw);
    const int pp = row.i + ph.h.in0 - th * ph.h.in_step;
    const int qq = row.j + ph.w.in0 - tw * ph.w.in_step;
    if (pp < 0 || pp >= g.p.P || qq < 0 || qq >= g.p.Q) return -1;
    return row.base + (int64_t(k) * g.p.P + pp) * g.p.Q + qq;
  }
  // Incremental walk over kr = (k, th, tw) for the m-fast A loader (see FpropView).
  struct ACursor {
    int kr, k, th, tw;
  };
  DISCO_HOST_DEVICE static ACursor a_cursor(const ConvGemmParams& g, int slot, int kr0) {
    const DgradPhase& ph = g.ph[slot];
    ACursor cur{kr0, 0, 0, 0};
    int tt;
    ph.div_tt.divmod(kr0, cur.k, tt);
    ph.div_t.divmod(tt, cur.th, cur.tw);
    return cur;
  }
  DISCO_HOST_DEVICE static void a_advance(const ConvGemmParams& g, int slot, ACursor& cur, int step) {
    const DgradPhase& ph = g.ph[slot];
    cur.kr += step;
    if (ph.w.ntaps <= 0 || ph.h.ntaps <= 0) return;  // Kred = 0: nothing is ever read
    cur.tw += step;
    while (cur.tw >= ph.w.ntaps) {
      cur.tw -= ph.w.ntaps;
      if (++cur.th == ph.h.ntaps) {
        cur.th = 0;
        ++cur.k;
      }
    }
  }
  DISCO_HOST_DEVICE static int64_t a_elem_at(const ConvGemmParams& g, int slot, const ARow& row, const ACursor& cur) {
    const GroupElem e = a_group_at(g, slot, row, cur);
    return e.valid && e.w >= 0 && e.w < g.p.Q ? e.off : -1;
  }
  // Row groups (see the top of this file): four consecutive j of one phase row i, so four
  // consecutive dy columns qq.
  DISCO_HOST_DEVICE static bool groups_ok(const ConvGemmParams& g) {
    for (int slot = 0; slot < g.num_slots; ++slot)
      if (g.ph[slot].w.count % 4 != 0) return false;
    return true;
  }
  DISCO_HOST_DEVICE static int a_group_step(const ConvGemmParams&) { return 1; }
  DISCO_HOST_DEVICE static int a_group_limit(const ConvGemmParams& g) { return g.p.Q; }
  DISCO_HOST_DEVICE static GroupElem a_group_at(const ConvGemmParams& g, int slot, const ARow& row,
                                                 const ACursor& cur) {
    const DgradPhase& ph = g.ph[slot];
    GroupElem e{0, 0, false};
    if (!row.valid || cur.kr >= ph.Kred) return e;
    const int pp = row.i + ph.h.in0 - cur.th * ph.h.in_step;
    if (pp < 0 || pp >= g.p.P) return e;
    e.w = row.j + ph.w.in0 - cur.tw * ph.w.in_step;
    e.off = row.base + (int64_t(cur.k) * g.p.P + pp) * g.p.Q + e.w;
    e.valid = true;
    return e;
  }
  DISCO_HOST_DEVICE static BCol b_col(const ConvGemmParams& g, int slot, int kr) {
    const DgradPhase& ph = g.ph[slot];
    BCol c{0, false};
    if (kr < 0 || kr >= ph.Kred) return c;
    int k, tt, th, tw;
    ph.div_tt.divmod(kr, k, tt);
    ph.div_t.divmod(tt, th, tw);
    const int r = ph.h.tap0 + th * ph.h.tap_step;
    const int s = ph.w.tap0 + tw * ph.w.tap_step;
    c.base = int64_t(k) * g.p.C * g.p.R * g.p.S + int64_t(r) * g.p.S + s;
    c.valid = true;
    return c;
  }
  DISCO_HOST_DEVICE static int64_t b_elem(const ConvGemmParams& g, int, const BCol& col, int n) {
    if (!col.valid || n < 0 || n >= g.gemm_n) return -1;
    return col.base + int64_t(n) * g.p.R * g.p.S;
  }
  DISCO_HOST_DEVICE static int64_t c_off(const ConvGemmParams& g, int slot, int m, int n) {
    const DgradPhase& ph = g.ph[slot];
    int img, ij, i, j;
    ph.div_ij.divmod(m, img, ij);
    ph.div_j.divmod(ij, i, j);
    const int h = ph.h.first + i * g.p.stride_h;
    const int w = ph.w.first + j * g.p.stride_w;
    return ((int64_t(img) * g.p.C + n) * g.p.H + h) * g.p.W + w;
  }
};

// ---- wgrad ------------------------------------------------------------------------------
struct WgradView {
  static constexpr bool kAKFast = true;  // A = dy is contiguous along the reduction (n,p,q)
  static constexpr bool kBTable = true;  // B = x gathered: column part of the address from a table
  static constexpr bool kBVec4 = false;
  static constexpr bool kSkipCols = false;  // c_off is never -1 (see NhwcWgrad)
  struct ACol {
    int64_t base;
    bool valid;
  };
  struct BCol {
    int64_t base;
    int hb, wb;
    bool valid;
  };
  DISCO_HOST_DEVICE static int gemm_m(const ConvGemmParams& g, int) { return g.max_m; }
  DISCO_HOST_DEVICE static int gemm_k(const ConvGemmParams& g, int) { return g.max_kred; }
  DISCO_HOST_DEVICE static ACol a_col(const ConvGemmParams& g, int, int kr) {
    ACol c{0, false};
    if (kr < 0 || kr >= g.max_kred) return c;
    int n, pq;
    g.div_pq.divmod(kr, n, pq);
    c.base = int64_t(n) * g.p.K * g.p.P * g.p.Q + pq;
    c.valid = true;
    return c;
  }
  DISCO_HOST_DEVICE static int64_t a_elem(const ConvGemmParams& g, int, const ACol& col, int m) {
    if (!col.valid || m < 0 || m >= g.max_m) return -1;
    return col.base + int64_t(m) * g.p.P * g.p.Q;
  }
  DISCO_HOST_DEVICE static BCol b_col(const ConvGemmParams& g, int, int kr) {
    BCol c{0, 0, 0, false};
    if (kr < 0 || kr >= g.max_kred) return c;
    int n, pq, pp, qq;
    g.div_pq.divmod(kr, n, pq);
    g.div_q.divmod(pq, pp, qq);
    c.base = int64_t(n) * g.p.C * g.p.H * g.p.W;
    c.hb = pp * g.p.stride_h - g.p.pad_h;
    c.wb = qq * g.p.stride_w - g.p.pad_w;
    c.valid = true;
    return c;
  }
  // The (c, r, s) of GEMM column n, decoded once per block into a table (the columns of a
  // block's tile do not change along the reduction); b_elem_at(col, entry) equals
  // b_elem(col, n). valid = 0 past the last column.
  struct BEntry {
    int c, rd, sd, valid;  // rd = r * dil_h, sd = s * dil_w
  };
  DISCO_HOST_DEVICE static BEntry b_entry(const ConvGemmParams& g, int n) {
    BEntry e{0, 0, 0, 0};
    if (n < 0 || n >= g.gemm_n) return e;
    int rs, r, s;
    g.div_rs.divmod(n, e.c, rs);
    g.div_s.divmod(rs, r, s);
    e.rd = r * g.p.dil_h;
    e.sd = s * g.p.dil_w;
    e.valid = 1;
    return e;
  }
  DISCO_HOST_DEVICE static int64_t b_elem_at(const ConvGemmParams& g, const BCol& col, const BEntry& e) {
    if (!col.valid || !e.valid) return -1;
    const int h = col.hb + e.rd;
    const int w = col.wb + e.sd;
    if (h < 0 || h >= g.p.H || w < 0 || w >= g.p.W) return -1;
    return col.base + (int64_t(e.c) * g.p.H + h) * g.p.W + w;
  }
  // Groups of four reduction indices (see the top of this file): col = b_col(kr), kr % 4 == 0.
  DISCO_HOST_DEVICE static bool groups_ok(const ConvGemmParams& g) { return g.p.Q % 4 == 0; }
  DISCO_HOST_DEVICE static int b_group_step(const ConvGemmParams& g) { return g.p.stride_w; }
  DISCO_HOST_DEVICE static int b_group_limit(const ConvGemmParams& g) { return g.p.W; }
  DISCO_HOST_DEVICE static GroupElem b_group_at(const ConvGemmParams& g, const BCol& col, const BEntry& e) {
    GroupElem r{0, 0, false};
    if (!col.valid || !e.valid) return r;
    const int h = col.hb + e.rd;
    if (h < 0 || h >= g.p.H) return r;
    r.w = col.wb + e.sd;
    r.off = col.base + (int64_t(e.c) * g.p.H + h) * g.p.W + r.w;
    r.valid = true;
    return r;
  }
  DISCO_HOST_DEVICE static int64_t b_elem(const ConvGemmParams& g, int, const BCol& col, int n) {
    if (!col.valid || n < 0 || n >= g.gemm_n) return -1;
    int c, rs, r, s;
    g.div_rs.divmod(n, c, rs);
    g.div_s.divmod(rs, r, s);
    const int h = col.hb + r * g.p.dil_h;
    const int w = col.wb + s * g.p.dil_w;
    if (h < 0 || h >= g.p.H || w < 0 || w >= g.p.W) return -1;
    return col.base + (int64_t(c) * g.p.H + h) * g.p.W + w;
  }
  DISCO_HOST_DEVICE static int64_t c_off(const ConvGemmParams& g, int, int m, int n) {
    return int64_t(m) * g.gemm_n + n;
  }
};

// ---- channels-last BF16 views (kernels/conv2d_nhwc.cuh) -----------------------------------
// The channels-last kernel reads copies of its operands packed to BF16 (TF32 math: FP32) with
// the reduction's channel count (fprop: C, dgrad: K) padded to a multiple of 8 (FP32: 4;
// zero channels past it), so its reduction runs tap-major over chunks of 8 (FP32: 4) channels
// of one tap -- 16 contiguous bytes of both packed operands, one cp.async each (below for
// BF16; the FP32 views NhwcFprop32 / NhwcDgrad32 read 8 as 4):
//   fprop  xp[n][h][w][Cp] (N x H x W x Cp)    wp[k][r][s][c]  (K x R x S x Cp)
//          chunk kc = (r S + s) Cp8 + c8,  Kred = R S Cp
//   dgrad  dyp[n][p][q][Kp] (N x P x Q x Kp)   wd[r][s][c][k]  (R x S x C x Kp)
//          per phase: chunk kc = (th ntaps_w + tw) Kp8 + k8,  Kred = ntaps_h ntaps_w Kp
// A thread's loader walks chunks kc0, kc0 + step, ... with a Cursor (no division per chunk);
// A (a_chunk, per GEMM row) and B (b_chunk, per GEMM column) of one chunk share it. Offsets
// are in elements of the pack, -1 where the implicit matrix holds a zero. M, N and the output are
// those of the NCHW view (Out: FpropView / DgradView, whose c_off writes y / dx).
// CH: channels per 16-byte chunk, 8 (BF16 packs) or 4 (FP32 packs, the TF32 kernels); the
// channel counts are padded to a multiple of CH.
DISCO_HOST_DEVICE int nhwc_padded_channels(int c, int ch = 8) { return (c + ch - 1) / ch * ch; }

// Output pixel idx = (n, p, q) of the convolution (idx < count = N P Q; fprop's GEMM row,
// wgrad's reduction index) and its input window: base = (n H W) cp into a channels-last input
// with cp channels, hb / wb the input row / column of tap (0, 0).
struct NhwcPixel {
  int64_t base;
  int hb, wb;
  bool valid;
};
DISCO_HOST_DEVICE NhwcPixel nhwc_output_pixel(const ConvGemmParams& g, int idx, int count, int cp) {
  NhwcPixel x{0, 0, 0, false};
  if (idx < 0 || idx >= count) return x;
  int n, pq, pp, qq;
  g.div_pq.divmod(idx, n, pq);
  g.div_q.divmod(pq, pp, qq);
  x.base = int64_t(n) * g.p.H * g.p.W * cp;
  x.hb = pp * g.p.stride_h - g.p.pad_h;
  x.wb = qq * g.p.stride_w - g.p.pad_w;
  x.valid = true;
  return x;
}

template <int CH>
struct NhwcFpropT {
  using Out = FpropView;
  static constexpr int kChunk = CH;  // channels per 16-byte chunk
  DISCO_HOST_DEVICE static int padded_channels(int C) { return nhwc_padded_channels(C, CH); }
  DISCO_HOST_DEVICE static int chunks_per_tap(const Conv2dProblem& p) { return padded_channels(p.C) / kChunk; }
  DISCO_HOST_DEVICE static int gemm_k(const Conv2dProblem& p) { return p.R * p.S * padded_channels(p.C); }
  DISCO_HOST_DEVICE static int gemm_m(const ConvGemmParams& g, int) { return g.max_m; }
  DISCO_HOST_DEVICE static int chunks(const ConvGemmParams& g, int) { return g.p.R * g.p.S * chunks_per_tap(g.p); }
  // The largest reduction of the launch's GEMMs (padded): what the planner's k-tiles count.
  DISCO_HOST_DEVICE static int max_gemm_k(const ConvGemmParams& g) { return gemm_k(g.p); }
  using Row = NhwcPixel;  // GEMM row m: output pixel m
  DISCO_HOST_DEVICE static Row row(const ConvGemmParams& g, int, int m) {
    return nhwc_output_pixel(g, m, g.max_m, padded_channels(g.p.C));
  }
  // (r, s, c8) of the chunk; r >= R past the end of the reduction.
  struct Cursor {
    int c8, r, s;
  };
  DISCO_HOST_DEVICE static Cursor cursor(const ConvGemmParams& g, int, int kc0) {
    const int cpt = chunks_per_tap(g.p);
    const int tap = kc0 / cpt;
    return Cursor{kc0 - tap * cpt, tap / g.p.S, tap % g.p.S};
  }
  DISCO_HOST_DEVICE static void advance(const ConvGemmParams& g, int, Cursor& cur, int step) {
    const int cpt = chunks_per_tap(g.p);
    cur.c8 += step;
    while (cur.c8 >= cpt) {
      cur.c8 -= cpt;
      if (++cur.s == g.p.S) {
        cur.s = 0;
        ++cur.r;
      }
    }
  }
  DISCO_HOST_DEVICE static int64_t a_chunk(const ConvGemmParams& g, int, const Row& row, const Cursor& cur) {
    if (!row.valid || cur.r >= g.p.R) return -1;
    const int h = row.hb + cur.r * g.p.dil_h, w = row.wb + cur.s * g.p.dil_w;
    if (h < 0 || h >= g.p.H || w < 0 || w >= g.p.W) return -1;
    return row.base + (int64_t(h) * g.p.W + w) * padded_channels(g.p.C) + kChunk * cur.c8;
  }
  // Filter n's chunk at the cursor (into wp).
  DISCO_HOST_DEVICE static int64_t b_chunk(const ConvGemmParams& g, int, int n, const Cursor& cur) {
    if (n < 0 || n >= g.gemm_n || cur.r >= g.p.R) return -1;
    return int64_t(n) * gemm_k(g.p) + ((cur.r * g.p.S + cur.s) * chunks_per_tap(g.p) + cur.c8) * kChunk;
  }
  // The packed layouts (pack kernels, tests): x[n][c][h][w] in xp, w[k][c][r][s] in wp.
  DISCO_HOST_DEVICE static int64_t xp_off(const Conv2dProblem& p, int n, int c, int h, int w) {
    return ((int64_t(n) * p.H + h) * p.W + w) * padded_channels(p.C) + c;
  }
  DISCO_HOST_DEVICE static int64_t wp_off(const Conv2dProblem& p, int k, int c, int r, int s) {
    return ((int64_t(k) * p.R + r) * p.S + s) * padded_channels(p.C) + c;
  }
};

template <int CH>
struct NhwcDgradT {
  using Out = DgradView;
  static constexpr int kChunk = CH;
  DISCO_HOST_DEVICE static int padded_channels(int K) { return nhwc_padded_channels(K, CH); }
  DISCO_HOST_DEVICE static int chunks_per_tap(const Conv2dProblem& p) { return padded_channels(p.K) / kChunk; }
  DISCO_HOST_DEVICE static int gemm_m(const ConvGemmParams& g, int slot) { return g.ph[slot].M; }
  DISCO_HOST_DEVICE static int chunks(const ConvGemmParams& g, int slot) {
    return g.ph[slot].h.ntaps * g.ph[slot].w.ntaps * chunks_per_tap(g.p);
  }
  DISCO_HOST_DEVICE static int max_gemm_k(const ConvGemmParams& g) {
    int m = 0;
    for (int s = 0; s < g.num_slots; ++s) m = chunks(g, s) > m ? chunks(g, s) : m;
    return m * kChunk;
  }
  struct Row {
    int64_t base;  // (n P Q) Kp
    int i, j;      // the phase's input row / column index
    bool valid;
  };
  DISCO_HOST_DEVICE static Row row(const ConvGemmParams& g, int slot, int m) {
    Row r{0, 0, 0, false};
    const DgradPhase& ph = g.ph[slot];
    if (m < 0 || m >= ph.M) return r;
    int n, ij;
    ph.div_ij.divmod(m, n, ij);
    ph.div_j.divmod(ij, r.i, r.j);
    r.base = int64_t(n) * g.p.P * g.p.Q * padded_channels(g.p.K);
    r.valid = true;
    return r;
  }
  // (k8, th, tw) of the chunk; th >= ntaps_h past the end of the reduction.
  struct Cursor {
    int k8, th, tw;
  };
  DISCO_HOST_DEVICE static Cursor cursor(const ConvGemmParams& g, int slot, int kc0) {
    const DgradPhase& ph = g.ph[slot];
    const int cpt = chunks_per_tap(g.p);
    if (ph.w.ntaps <= 0 || ph.h.ntaps <= 0) return Cursor{0, ph.h.ntaps, 0};  // no taps: past the end
    const int tap = kc0 / cpt;
    return Cursor{kc0 - tap * cpt, tap / ph.w.ntaps, tap % ph.w.ntaps};
  }
  DISCO_HOST_DEVICE static void advance(const ConvGemmParams& g, int slot, Cursor& cur, int step) {
    const DgradPhase& ph = g.ph[slot];
    if (ph.w.ntaps <= 0 || ph.h.ntaps <= 0) return;  // nothing is ever read
    const int cpt = chunks_per_tap(g.p);
    cur.k8 += step;
    while (cur.k8 >= cpt) {
      cur.k8 -= cpt;
      if (++cur.tw == ph.w.ntaps) {
        cur.tw = 0;
        ++cur.th;
      }
    }
  }
  DISCO_HOST_DEVICE static int64_t a_chunk(const ConvGemmParams& g, int slot, const Row& row, const Cursor& cur) {
    const DgradPhase& ph = g.ph[slot];
    if (!row.valid || cur.th >= ph.h.ntaps) return -1;
    const int pp = row.i + ph.h.in0 - cur.th * ph.h.in_step;
    const int qq = row.j + ph.w.in0 - cur.tw * ph.w.in_step;
    if (pp < 0 || pp >= g.p.P || qq < 0 || qq >= g.p.Q) return -1;
    return row.base + (int64_t(pp) * g.p.Q + qq) * padded_channels(g.p.K) + kChunk * cur.k8;
  }
  // Input channel n's chunk at the cursor (into wd): tap (r, s) of the phase's (th, tw).
  DISCO_HOST_DEVICE static int64_t b_chunk(const ConvGemmParams& g, int slot, int n, const Cursor& cur) {
    const DgradPhase& ph = g.ph[slot];
    if (n < 0 || n >= g.gemm_n || cur.th >= ph.h.ntaps) return -1;
    const int r = ph.h.tap0 + cur.th * ph.h.tap_step, s = ph.w.tap0 + cur.tw * ph.w.tap_step;
    return ((int64_t(r) * g.p.S + s) * g.p.C + n) * padded_channels(g.p.K) + kChunk * cur.k8;
  }
  // The packed layouts: dy[n][k][p][q] in dyp, w[k][c][r][s] in wd.
  DISCO_HOST_DEVICE static int64_t dyp_off(const Conv2dProblem& p, int n, int k, int pp, int qq) {
    return ((int64_t(n) * p.P + pp) * p.Q + qq) * padded_channels(p.K) + k;
  }
  DISCO_HOST_DEVICE static int64_t wd_off(const Conv2dProblem& p, int k, int c, int r, int s) {
    return ((int64_t(r) * p.S + s) * p.C + c) * padded_channels(p.K) + k;
  }
};
using NhwcFprop = NhwcFpropT<8>;  // BF16 packs
using NhwcDgrad = NhwcDgradT<8>;
using NhwcFprop32 = NhwcFpropT<4>;  // FP32 packs (the TF32 kernels)
using NhwcDgrad32 = NhwcDgradT<4>;

// Weight gradient, channels-last: both operands are packed, dy -> dyp (N x P x Q x Kp, as
// dgrad's A) and x -> xp (N x H x W x Cp, as fprop's A). GEMM rows are the filters k (M = K;
// dyp has Kp), columns (r, s, c) with c fastest (N = R S Cp, GEMM column n -> r S + s = n / Cp,
// c = n % Cp), the reduction runs over the pixels kr = (n, p, q) of dy (N P Q). Both operands
// are contiguous along their GEMM dimension, not the reduction: a 16-byte chunk holds CH rows
// (dyp: CH filters of one pixel) or CH columns (xp: CH channels of one tap and pixel); CH = 8
// (BF16 packs) or 4 (FP32 packs, the TF32 kernel), the channel counts padded to a multiple of
// CH. The output dw[k][c][r][s]; columns of padded channels (c >= C) are not written
// (c_off = -1).
template <int CH>
struct NhwcWgradT {
  static constexpr bool kSkipCols = true;
  static constexpr int kChunk = CH;
  DISCO_HOST_DEVICE static int padded_channels(int C) { return nhwc_padded_channels(C, CH); }
  DISCO_HOST_DEVICE static int gemm_n(const Conv2dProblem& p) { return p.R * p.S * padded_channels(p.C); }
  DISCO_HOST_DEVICE static int gemm_m(const ConvGemmParams& g, int) { return g.max_m; }
  DISCO_HOST_DEVICE static int max_gemm_k(const ConvGemmParams& g) { return g.max_kred; }
  // Rows m .. m+CH-1 (m % CH == 0) at reduction index kr, into dyp.
  DISCO_HOST_DEVICE static int64_t a_chunk(const ConvGemmParams& g, int kr, int m) {
    const int Kp = padded_channels(g.p.K);
    if (kr < 0 || kr >= g.max_kred || m < 0 || m >= Kp) return -1;
    return int64_t(kr) * Kp + m;
  }
  // Columns n .. n+CH-1 (n % CH == 0): their tap and channel chunk (decoded once per loader).
  struct Col {
    int r, s, c8;  // c8: the channel chunk (channels CH c8 ..)
    bool valid;
  };
  DISCO_HOST_DEVICE static Col col(const ConvGemmParams& g, int n) {
    const int cpt = padded_channels(g.p.C) / kChunk;
    Col c{0, 0, 0, false};
    if (n < 0 || n >= gemm_n(g.p)) return c;
    const int chunk = n / kChunk, rs = chunk / cpt;
    c.c8 = chunk - rs * cpt;
    c.r = rs / g.p.S;
    c.s = rs - c.r * g.p.S;
    c.valid = true;
    return c;
  }
  // Reduction index kr: the dy pixel (n, p, q) (decoded once per slice and row).
  using Pix = NhwcPixel;
  DISCO_HOST_DEVICE static Pix pix(const ConvGemmParams& g, int kr) {
    return nhwc_output_pixel(g, kr, g.max_kred, padded_channels(g.p.C));
  }
  // Columns of `col` at pixel `px`, into xp.
  DISCO_HOST_DEVICE static int64_t b_chunk(const ConvGemmParams& g, const Pix& px, const Col& col) {
    if (!px.valid || !col.valid) return -1;
    const int h = px.hb + col.r * g.p.dil_h, w = px.wb + col.s * g.p.dil_w;
    if (h < 0 || h >= g.p.H || w < 0 || w >= g.p.W) return -1;
    return px.base + (int64_t(h) * g.p.W + w) * padded_channels(g.p.C) + kChunk * col.c8;
  }
  // dw offset of GEMM (m, n) = (k, (r, s, c)); -1 for a padded channel.
  DISCO_HOST_DEVICE static int64_t c_off(const ConvGemmParams& g, int, int m, int n) {
    const int Cp = padded_channels(g.p.C);
    const int rs = n / Cp, c = n - rs * Cp;
    if (c >= g.p.C) return -1;
    return (int64_t(m) * g.p.C + c) * g.p.R * g.p.S + rs;
  }
};
using NhwcWgrad = NhwcWgradT<8>;    // BF16 packs
using NhwcWgrad32 = NhwcWgradT<4>;  // FP32 packs (the TF32 kernel)

// Element accessors composed from the row/column contexts, for CPU tests and references:
// offset into the A (resp. B) source, or -1 where the implicit matrix holds a zero.
template <class View>
inline int64_t a_offset(const ConvGemmParams& g, int slot, int m, int kr);
template <>
inline int64_t a_offset<FpropView>(const ConvGemmParams& g, int slot, int m, int kr) {
  return FpropView::a_elem(g, slot, FpropView::a_row(g, slot, m), kr);
}
template <>
inline int64_t a_offset<DgradView>(const ConvGemmParams& g, int slot, int m, int kr) {
  return DgradView::a_elem(g, slot, DgradView::a_row(g, slot, m), kr);
}
template <>
inline int64_t a_offset<WgradView>(const ConvGemmParams& g, int slot, int m, int kr) {
  return WgradView::a_elem(g, slot, WgradView::a_col(g, slot, kr), m);
}
template <class View>
inline int64_t b_offset(const ConvGemmParams& g, int slot, int kr, int n) {
  return View::b_elem(g, slot, View::b_col(g, slot, kr), n);
}

// Split-K partition: k-tiles [begin, end) of `split` out of `splits` (end may equal begin).
DISCO_HOST_DEVICE void splitk_range(int ktiles, int splits, int split, int& begin, int& end) {
  const int per = (ktiles + splits - 1) / splits;
  begin = split * per;
  end = begin + per;
  if (end > ktiles) end = ktiles;
  if (begin > end) begin = end;
}

}  // namespace convidx
}  // namespace disco
