// ops_cuda: the memory-bound CUDA kernels of disco against the device's own copy bandwidth.
// Every figure is bytes that must move (each element read once and written once) per second,
// next to a device-to-device cudaMemcpyAsync that moves the same number of bytes (a buffer of
// half the traffic: a copy reads and writes it) and to a large copy (256 MiB), the peak:
//   - recon_adv_loss_fwd_bwd (the fused autoencoder loss, MSE and L1) at the model's sizes,
//     128 px and 256 px at batch 32 (m = 32 discriminator outputs, one per image), and 64M
//     elements for the asymptote: read pred, target, prob; write grad_pred, grad_disc;
//   - instance_norm_fwd / instance_norm_bwd fused with LeakyReLU 0.2 (encoders) or ReLU
//     (decoder) at the model's layer shapes, 128 px batch 32; backward from the forward input,
//     as the model calls it; next to cuDNN's batch norm over [1, N*C, H, W] (+ cuDNN ReLU),
//     which is what PyTorch's InstanceNorm2d runs, when disco::cuda has cuDNN;
//   - adam_update_counted over the parameters each of the model's two optimizers updates
//     (taken from a CPU ContentDisentangler at the default config), 28 bytes per element;
//   - add, leaky_relu_fwd and relu_fwd at 64M elements (add and ReLU next to cudnnOpTensor and
//     cudnnActivationForward when disco::cuda has cuDNN).
// Each op is checked once against the CPU backend (Kernels<CPU>, fresh random data; relative
// L2 <= 1e-5, scalar losses within 1e-5) before it is timed: warm-up, then CUDA events around
// each run, median of --iters runs, L2 flushed before every run (a memset of twice its size).
//
//   ops_cuda [--iters 20] [--warmup 3] [--csv FILE] [--quick] [--small] [--self-test]
//
// --quick: fewer instance-norm shapes and one optimizer. --small: tiny sizes (the CPU
// emulation smoke test). --self-test: checks the size tables and the traffic arithmetic on the
// CPU (no GPU). Without a CUDA device: one line "ops_cuda: no CUDA device ..." and exit 77.
// Exit status 1 when a check fails (the row says MISMATCH) or an op throws.
// The last lines, `fused_loss_fraction_of_copy: ...`, `instance_norm_vs_cudnn: ...` (geometric
// mean of cuDNN time / disco time) and `elementwise_vs_cudnn: ...`, are what tools/gpu_check.sh
// prints.
//
// Built against the CPU emulation of the CUDA runtime (tests/emu_backend, DISCO_OPS_CUDA_EMULATED),
// which has no cudaRuntimeGetVersion / cudaDriverGetVersion, it prints the CUDA headers' version
// instead (the emulation's events time the emulated work: those figures mean nothing).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <disco/backend/cpu/omp_env.hpp>
#include <disco/disco.hpp>

#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "disco/backend/cuda/runtime.hpp"

namespace dc = disco::cuda;
using CPUK = disco::Kernels<disco::CPU>;

namespace {

enum class Mode { Full, Quick, Small };
const char* mode_name(Mode m) { return m == Mode::Full ? "full" : (m == Mode::Quick ? "quick" : "small"); }

// ---- sizes and traffic -------------------------------------------------------------------------------
// Bytes that must move, 4 per float read or written.
int64_t loss_bytes(int64_t n, int64_t m) { return 4 * (3 * n + 2 * m); }      // pred, target, grad_pred; prob, grad_disc
int64_t norm_fwd_bytes(int64_t NC, int64_t HW) { return 4 * (2 * NC * HW + 2 * NC); }  // x, y; mean, rstd out
int64_t norm_bwd_bytes(int64_t NC, int64_t HW) { return 4 * (3 * NC * HW + 2 * NC); }  // dy, x, dx; mean, rstd in
int64_t adam_bytes(int64_t n) { return 28 * n; }  // param, grad, m, v read; param, m, v written
int64_t add_bytes(int64_t n) { return 12 * n; }
int64_t unary_bytes(int64_t n) { return 8 * n; }
// The reference copy for a kernel moving `traffic` bytes copies half of it (read + written),
// rounded up to 256 bytes.
int64_t copy_buffer_bytes(int64_t traffic) { return (traffic / 2 + 255) / 256 * 256; }

struct LossSize {
  std::string tag;
  int64_t n, m;
};
// The model's AE step calls the fused loss on the decoder output [N, 3, R, R] and the
// discriminator's output [N] (one probability per image).
std::vector<LossSize> loss_sizes(Mode mode) {
  // small: the 64 px model at batch 2, and a length that is not a multiple of 4 (the kernels'
  // scalar tail after their float4 groups)
  if (mode == Mode::Small) return {{"small", 2 * 3 * 64 * 64, 2}, {"large", (int64_t(1) << 16) + 3, 3}};
  return {{"128px", int64_t(32) * 3 * 128 * 128, 32}, {"256px", int64_t(32) * 3 * 256 * 256, 32},
          {"large", int64_t(1) << 26, 32}};
}

disco::ModelConfig model_config(Mode mode) {
  disco::ModelConfig cfg;  // the official defaults: 128 px, base 32, code 512, sep 25
  if (mode == Mode::Small) {
    cfg.resolution = 64;
    cfg.base_channels = 4;
    cfg.code_channels = 16;
    cfg.sep = 4;
    cfg.disc_hidden = 8;
  }
  return cfg;
}
int model_batch(Mode mode) { return mode == Mode::Small ? 2 : 32; }

struct NormShape {
  std::string layer;
  int64_t NC, HW;
  dc::Activation act;
};
// Every InstanceNorm of the model at `batch`: after each encoder conv (E1; E2 has the same
// maps with fewer channels) with LeakyReLU 0.2, after each decoder transposed conv but the
// last with ReLU. Rows = batch x channels, HW = the layer's output map.
std::vector<NormShape> all_norm_shapes(const disco::ModelConfig& cfg, int batch) {
  std::vector<NormShape> v;
  const auto e1 = cfg.e1_channels();
  for (size_t i = 0; i < e1.size(); ++i) {
    const int64_t s = cfg.resolution >> (i + 1);
    v.push_back({"E1.norm" + std::to_string(i + 1), int64_t(batch) * e1[i], s * s, dc::Activation::LeakyReLU});
  }
  const auto dch = cfg.decoder_channels();
  for (size_t i = 0; i + 1 < dch.size(); ++i) {
    const int64_t s = int64_t(cfg.bottleneck()) << (i + 1);
    v.push_back({"D.norm" + std::to_string(i + 1), int64_t(batch) * dch[i + 1], s * s, dc::Activation::ReLU});
  }
  return v;
}
std::vector<NormShape> norm_shapes(Mode mode) {
  const auto all = all_norm_shapes(model_config(mode), model_batch(mode));
  if (mode == Mode::Full) return all;
  // quick: E1.norm1, 2, 4 (64x64, 32x32, 8x8 maps) and the decoder's first and last;
  // small: the first and last encoder norm and the decoder's last
  const std::vector<std::string> keep = mode == Mode::Quick
      ? std::vector<std::string>{"E1.norm1", "E1.norm2", "E1.norm4", "D.norm1", "D.norm5"}
      : std::vector<std::string>{"E1.norm1", "E1.norm5", "D.norm4"};
  std::vector<NormShape> v;
  for (const auto& s : all)
    if (std::find(keep.begin(), keep.end(), s.layer) != keep.end()) v.push_back(s);
  return v;
}

struct ParamGroup {
  std::string name;
  std::vector<int64_t> sizes;  // element counts of the tensors one optimizer step updates
  int64_t total() const {
    int64_t t = 0;
    for (int64_t n : sizes) t += n;
    return t;
  }
};
// The parameters each optimizer updates (those with gradients: the conv biases before an
// InstanceNorm are frozen by default), from a CPU model: the autoencoder's (e1, e2, decoder)
// and the discriminator's.
std::vector<ParamGroup> param_groups(Mode mode) {
  disco::ContentDisentangler<disco::CPU> model(model_config(mode));
  ParamGroup ae{"autoencoder", {}}, disc{"discriminator", {}};
  for (const auto& np : model.named_parameters()) {
    if (!np.second.requires_grad()) continue;
    (np.first.rfind("disc.", 0) == 0 ? disc : ae).sizes.push_back(np.second.numel());
  }
  if (mode == Mode::Quick) return {ae};
  return {ae, disc};
}

int64_t elementwise_n(Mode mode) { return mode == Mode::Small ? int64_t(1) << 14 : int64_t(1) << 26; }
int64_t large_copy_bytes(Mode mode) { return mode == Mode::Small ? int64_t(1) << 20 : int64_t(256) << 20; }

// ---- self-test (no GPU) --------------------------------------------------------------------------------
int self_test() {
  int fails = 0;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::printf("self-test FAILED: %s\n", what.c_str());
      ++fails;
    }
  };
  // fused loss: 128 px batch 32 is 1572864 values, 12 bytes each, + 8 per image
  const auto ls = loss_sizes(Mode::Full);
  expect(ls.size() == 3 && ls[0].n == 1572864 && ls[0].m == 32, "128 px loss size n = 32*3*128*128, m = 32");
  expect(ls[1].n == 4 * ls[0].n && ls[1].m == 32, "256 px loss size is 4x the 128 px one");
  expect(loss_bytes(ls[0].n, ls[0].m) == 18874368 + 256, "128 px loss traffic 12 n + 8 m bytes");
  expect(loss_bytes(1, 0) == 12, "loss: pred, target read and grad written");
  for (Mode m : {Mode::Full, Mode::Quick, Mode::Small})
    for (const auto& s : loss_sizes(m)) expect(s.n > 0 && s.m > 0, std::string("loss sizes positive, ") + mode_name(m));
  // traffic of the other ops
  expect(norm_fwd_bytes(1024, 4096) == 4 * (2 * 1024 * 4096 + 2 * 1024), "norm fwd traffic");
  expect(norm_bwd_bytes(1, 4) == 4 * (12 + 2), "norm bwd traffic");
  expect(adam_bytes(1) == 7 * 4 && add_bytes(1) == 12 && unary_bytes(1) == 8, "adam / add / unary traffic");
  expect(copy_buffer_bytes(1000) == 512 && copy_buffer_bytes(512) == 256 && copy_buffer_bytes(18874624) == 9437440,
         "the reference copy moves half the traffic, rounded up to 256 bytes");

  // instance norm: the model's 11 norms at 128 px batch 32
  const auto all = all_norm_shapes(model_config(Mode::Full), 32);
  expect(all.size() == 11, "6 encoder norms + 5 decoder norms");
  if (all.size() == 11) {
    const int64_t want[11][2] = {{32 * 32, 64 * 64}, {32 * 64, 32 * 32}, {32 * 128, 16 * 16}, {32 * 256, 8 * 8},
                                 {32 * 487, 4 * 4},  {32 * 487, 2 * 2},  {32 * 512, 4 * 4},   {32 * 256, 8 * 8},
                                 {32 * 128, 16 * 16}, {32 * 64, 32 * 32}, {32 * 32, 64 * 64}};
    for (size_t i = 0; i < 11; ++i)
      expect(all[i].NC == want[i][0] && all[i].HW == want[i][1],
             all[i].layer + " is [" + std::to_string(want[i][0]) + ", " + std::to_string(want[i][1]) + "]");
    expect(all[0].act == dc::Activation::LeakyReLU && all[10].act == dc::Activation::ReLU,
           "encoder norms with LeakyReLU, decoder norms with ReLU");
  }
  for (Mode m : {Mode::Full, Mode::Quick, Mode::Small}) {
    const auto ns = norm_shapes(m);
    expect(!ns.empty(), std::string("norm shapes, ") + mode_name(m));
    // the check data pairs each value with its mirror image around the row mean
    for (const auto& s : ns) expect(s.HW % 2 == 0 && s.HW > 1, s.layer + ": HW even");
  }
  expect(norm_shapes(Mode::Quick).size() == 5 && norm_shapes(Mode::Small).size() == 3, "quick / small norm subsets");

  // Adam: the trainable parameters of the default model (E1, E2, decoder conv weights and the
  // last decoder bias; the discriminator's two linear layers), counted by hand:
  //   E1 16 * (3*32 + 32*64 + 64*128 + 128*256 + 256*487 + 487*487) = 6479120
  //   E2 16 * (3*32 + 32*64 + 64*128 + 128*128 + 128*128 + 128*25)   =  740864
  //   D  16 * (512*512 + 512*256 + 256*128 + 128*64 + 64*32 + 32*3) + 3 = 6981123
  //   disc 1948*512 + 512 + 512*1 + 1 = 998401
  try {
    const auto g = param_groups(Mode::Full);
    expect(g.size() == 2, "two optimizers");
    if (g.size() == 2) {
      expect(g[0].total() == 6479120 + 740864 + 6981123, "autoencoder trainable parameters: 14201107, got " +
                                                             std::to_string(g[0].total()));
      expect(g[0].sizes.size() == 19, "autoencoder tensors: 18 conv weights + 1 bias, got " +
                                          std::to_string(g[0].sizes.size()));
      expect(g[1].total() == 998401 && g[1].sizes.size() == 4, "discriminator: 4 tensors, 998401 parameters");
      expect(adam_bytes(g[0].total()) == 397630996, "autoencoder Adam traffic 28 bytes per parameter");
    }
    const auto q = param_groups(Mode::Quick);
    expect(q.size() == 1 && q[0].total() == 14201107, "quick: the autoencoder's optimizer only");
    for (const auto& s : param_groups(Mode::Small))
      expect(s.total() > 0 && s.total() < 200000, "small model parameters (" + s.name + ") are few");
  } catch (const std::exception& e) {
    expect(false, std::string("building the parameter list: ") + e.what());
  }
  expect(elementwise_n(Mode::Full) == 67108864 && large_copy_bytes(Mode::Full) == 268435456, "large sizes");
  std::printf(fails ? "self-test: %d failure(s)\n" : "self-test: ok\n", fails);
  return fails ? 1 : 0;
}

// ---- helpers --------------------------------------------------------------------------------------------
void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) disco::fail(what, ": ", cudaGetErrorString(e));
}
cudaStream_t stream() { return static_cast<cudaStream_t>(dc::get_stream()); }

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  float uniform(float lo, float hi) {  // 24 random bits
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * float(uint32_t(s >> 40)) / float(1 << 24);
  }
};
std::vector<float> random_vec(size_t n, uint64_t seed, float lo, float hi) {
  std::vector<float> v(n);
  Rng r(seed);
  for (auto& x : v) x = r.uniform(lo, hi);
  return v;
}
// Rows of instance-norm input whose normalized values all lie well away from the activation's
// kink at 0 (a value within rounding of the row mean would take ReLU's other branch on one
// side): each row is an offset c plus HW/2 values v with 0.05 <= |v| <= 1 and their negatives.
std::vector<float> kink_free_rows(int64_t NC, int64_t HW, uint64_t seed) {
  std::vector<float> x(size_t(NC * HW));
  Rng r(seed);
  const int64_t h = HW / 2;
  for (int64_t row = 0; row < NC; ++row) {
    const float c = r.uniform(-1.f, 1.f);
    float* xr = x.data() + row * HW;
    for (int64_t i = 0; i < h; ++i) {
      const float mag = r.uniform(0.05f, 1.f), v = r.uniform(-1.f, 1.f) < 0 ? -mag : mag;
      xr[i] = c + v;
      xr[i + h] = c - v;
    }
  }
  return x;
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
double rel_err(double got, double want) {
  if (!std::isfinite(got)) return INFINITY;
  return std::fabs(got - want) / std::max(std::fabs(want), 1e-30);
}

template <class T>
dc::DeviceArray<T> upload(const std::vector<T>& h) {
  dc::DeviceArray<T> d(h.size());
  dc::memcpy_h2d(d.data(), h.data(), d.bytes());
  return d;
}
template <class T>
std::vector<T> download(const dc::DeviceArray<T>& d) {
  std::vector<T> h(d.size());
  dc::memcpy_d2h(h.data(), d.data(), d.bytes());
  return h;
}

std::string version_str(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// L2 size in bytes, 0 when the runtime cannot tell (the query's error is cleared so the next
// launch check does not pick it up).
int64_t l2_cache_bytes() {
  int dev = 0, l2 = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return l2;
}

// ---- timing ----------------------------------------------------------------------------------------------
class Timer {
 public:
  explicit Timer(int64_t flush_bytes) : flush_bytes_(size_t(flush_bytes)), flush_(flush_bytes_) {
    cuda_ok(cudaEventCreate(&a_), "cudaEventCreate");
    cuda_ok(cudaEventCreate(&b_), "cudaEventCreate");
  }
  ~Timer() {
    cudaEventDestroy(a_);
    cudaEventDestroy(b_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Median microseconds of `iters` runs of f after `warmup` runs, L2 flushed before each.
  template <class F>
  double median_us(F&& f, int warmup, int iters) {
    for (int i = 0; i < warmup; ++i) f();
    dc::synchronize();
    std::vector<double> t;
    for (int i = 0; i < iters; ++i) {
      cuda_ok(cudaMemsetAsync(flush_.data(), i & 0xff, flush_bytes_, stream()), "cudaMemsetAsync (L2 flush)");
      cuda_ok(cudaEventRecord(a_, stream()), "cudaEventRecord");
      f();
      cuda_ok(cudaEventRecord(b_, stream()), "cudaEventRecord");
      cuda_ok(cudaEventSynchronize(b_), "cudaEventSynchronize");
      float ms = 0;
      cuda_ok(cudaEventElapsedTime(&ms, a_, b_), "cudaEventElapsedTime");
      t.push_back(1e3 * double(ms));
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }

 private:
  size_t flush_bytes_;
  dc::DeviceArray<unsigned char> flush_;
  cudaEvent_t a_{}, b_{};
};

constexpr double kTol = 1e-5;

struct Row {
  std::string op, shape, tag;  // tag: the fused loss's size label ("128px", ...)
  int64_t bytes = 0;
  double us = NAN, gbps = NAN, copy_gbps = NAN, err = NAN;
  bool ok = false;
  std::string note;
};

class Bench {
 public:
  Bench(int64_t flush_bytes, int warmup, int iters) : timer_(flush_bytes), warmup_(warmup), iters_(iters) {}

  // GB/s of a D2D copy moving `traffic` bytes (read + written), measured once per size.
  double copy_gbps(int64_t traffic) {
    const int64_t half = copy_buffer_bytes(traffic);
    auto it = copies_.find(half);
    if (it != copies_.end()) return it->second;
    dc::DeviceArray<unsigned char> src{size_t(half)}, dst{size_t(half)};
    dc::memset(src.data(), 0x3c, size_t(half));
    const double us = timer_.median_us(
        [&] {
          cuda_ok(cudaMemcpyAsync(dst.data(), src.data(), size_t(half), cudaMemcpyDeviceToDevice, stream()),
                  "cudaMemcpyAsync");
        },
        warmup_, iters_);
    const double g = 2.0 * double(half) / (us * 1e3);
    copies_[half] = g;
    return g;
  }
  void set_peak(double gbps) { peak_ = gbps; }
  double peak() const { return peak_; }

  // Checks err against the tolerance, times run() when it passed, prints and keeps the row.
  template <class F>
  void measure(Row r, double err, F&& run) {
    r.err = err;
    r.ok = std::isfinite(err) && err <= kTol;
    if (r.ok) {
      r.us = timer_.median_us(run, warmup_, iters_);
      r.gbps = double(r.bytes) / (r.us * 1e3);
      r.copy_gbps = copy_gbps(r.bytes);
    } else {
      ++failures_;
      r.note = "MISMATCH";
    }
    print(r);
    rows_.push_back(r);
  }
  // A row measured outside measure() (the reference copy): printed and written to the CSV.
  void add_reference(const Row& r) {
    print(r);
    rows_.push_back(r);
  }
  void error(Row r, const std::string& what) {
    ++failures_;
    r.note = "ERROR: " + what;
    print(r);
    rows_.push_back(r);
  }
  void header() const {
    std::printf("| %-27s | %-38s | %9s | %10s | %8s | %9s | %7s | %7s | %8s | %s\n", "op", "shape", "MB moved",
                "median us", "GB/s", "copy GB/s", "of copy", "of peak", "rel err", "note |");
    std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|------|\n", std::string(29, '-').c_str(), std::string(40, '-').c_str(),
                std::string(11, '-').c_str(), std::string(12, '-').c_str(), std::string(10, '-').c_str(),
                std::string(11, '-').c_str(), std::string(9, '-').c_str(), std::string(9, '-').c_str(),
                std::string(10, '-').c_str());
  }
  void print(const Row& r) const {
    std::printf("| %-27s | %-38s | %9.2f | %10.2f | %8.1f | %9.1f | %7.3f | %7.3f | %8.1e | %s |\n", r.op.c_str(),
                r.shape.c_str(), double(r.bytes) / 1e6, r.us, r.gbps, r.copy_gbps, r.gbps / r.copy_gbps,
                r.gbps / peak_, r.err, r.note.c_str());
    std::fflush(stdout);
  }
  const std::vector<Row>& rows() const { return rows_; }
  int failures() const { return failures_; }
  Timer& timer() { return timer_; }
  int warmup() const { return warmup_; }
  int iters() const { return iters_; }

 private:
  Timer timer_;
  int warmup_, iters_;
  double peak_ = NAN;
  std::map<int64_t, double> copies_;
  std::vector<Row> rows_;
  int failures_ = 0;
};

// ---- the ops -------------------------------------------------------------------------------------------
void bench_loss(Bench& b, dc::ReconLoss kind, const LossSize& s) {
  const bool l1 = kind == dc::ReconLoss::L1;
  Row r;
  r.op = std::string("recon_adv_loss ") + (l1 ? "l1" : "mse");
  r.shape = "n=" + std::to_string(s.n) + " m=" + std::to_string(s.m) + " (" + s.tag + ")";
  r.tag = s.tag;
  r.bytes = loss_bytes(s.n, s.m);
  const float label = 0.f, weight = 0.001f;  // the AE step: target label 0, disc_weight 0.001
  const auto hp = random_vec(size_t(s.n), 11, -1.f, 1.f), ht = random_vec(size_t(s.n), 12, -1.f, 1.f);
  const auto hq = random_vec(size_t(s.m), 13, 0.05f, 0.95f);
  auto pred = upload(hp), target = upload(ht), prob = upload(hq);
  dc::DeviceArray<float> out(3), gp(size_t(s.n)), gd(size_t(s.m));
  dc::memset(gp.data(), 0xFF, gp.bytes());  // NaN: every gradient must be written
  dc::memset(gd.data(), 0xFF, gd.bytes());
  auto run = [&] {
    dc::recon_adv_loss_fwd_bwd(kind, pred.data(), target.data(), s.n, prob.data(), s.m, label, weight, out.data(),
                               gp.data(), gd.data());
  };
  run();
  const auto got_out = download(out), got_gp = download(gp), got_gd = download(gd);
  std::vector<float> want_out(3), want_gp(size_t(s.n)), want_gd(size_t(s.m));
  CPUK::recon_adv_loss(l1 ? disco::LossKind::L1 : disco::LossKind::MSE, hp.data(), ht.data(), s.n, hq.data(), label,
                       s.m, double(weight), want_out.data(), want_gp.data(), want_gd.data());
  double err = std::max(rel_l2(got_gp, want_gp), rel_l2(got_gd, want_gd));
  for (int i = 0; i < 3; ++i) err = std::max(err, rel_err(got_out[size_t(i)], want_out[size_t(i)]));
  b.measure(r, err, run);
}

const char* act_name(dc::Activation a) {
  return a == dc::Activation::LeakyReLU ? "leaky 0.2" : (a == dc::Activation::ReLU ? "relu" : "none");
}
disco::UnaryKind to_unary(dc::Activation a) {
  return a == dc::Activation::LeakyReLU ? disco::UnaryKind::LeakyRelu
                                        : (a == dc::Activation::ReLU ? disco::UnaryKind::Relu : disco::UnaryKind::None);
}

// disco's fused kernels and, when disco::cuda has cuDNN, the same layer as PyTorch runs it on a
// GPU: cuDNN's batch norm over [1, N*C, H, W], then cuDNN's ReLU for the decoder layers
// (cuDNN has no LeakyReLU: for the encoder layers cuDNN times the norm alone, which flatters
// it). Both are charged the same bytes (the fused minimum), so their GB/s compare directly.
struct NormTiming {
  std::string layer;
  double disco_fwd_us = NAN, disco_bwd_us = NAN, cudnn_fwd_us = NAN, cudnn_bwd_us = NAN;
};
std::vector<NormTiming>& norm_timings() {
  static std::vector<NormTiming> t;
  return t;
}

void bench_norm(Bench& b, const NormShape& s) {
  const float eps = 1e-5f, slope = 0.2f;
  const std::string shape = s.layer + " [" + std::to_string(s.NC) + ", " + std::to_string(s.HW) + "]";
  const size_t n = size_t(s.NC * s.HW), rows = size_t(s.NC);
  const auto hx = kink_free_rows(s.NC, s.HW, 21), hdy = random_vec(n, 22, -1.f, 1.f);
  auto x = upload(hx), dy = upload(hdy);
  // Checks one implementation's forward (y, mean, rstd) and backward (dx) against the CPU
  // backend (statistics in double) for activation `act`, then times them: {fwd us, bwd us}
  // (NaN when a check failed). run_fwd / run_bwd write into the buffers passed to them.
  struct Out {
    dc::DeviceArray<float> y, mean, rstd, dx;
  };
  auto check_and_time = [&](const std::string& fwd_op, const std::string& bwd_op, const std::string& note,
                            dc::Activation act, Out& o, const std::function<void()>& run_fwd,
                            const std::function<void()>& run_bwd) {
    std::vector<float> wy(n), wmean(rows), wrstd(rows), wdx(n);
    CPUK::instance_norm_fwd(hx.data(), wy.data(), wmean.data(), wrstd.data(), s.NC, s.HW, double(eps), to_unary(act),
                            slope);
    CPUK::instance_norm_bwd(hdy.data(), hx.data(), static_cast<const float*>(nullptr), wmean.data(), wrstd.data(),
                            wdx.data(), s.NC, s.HW, to_unary(act), slope);
    dc::memset(o.y.data(), 0xFF, o.y.bytes());
    dc::memset(o.dx.data(), 0xFF, o.dx.bytes());
    Row r;
    r.shape = shape;
    r.note = note;
    r.op = fwd_op;
    r.bytes = norm_fwd_bytes(s.NC, s.HW);
    run_fwd();
    b.measure(r, std::max({rel_l2(download(o.y), wy), rel_l2(download(o.mean), wmean), rel_l2(download(o.rstd), wrstd)}),
              run_fwd);
    const double fwd_us = b.rows().back().us;
    run_fwd();  // the backward reads this forward's statistics
    r.op = bwd_op;
    r.bytes = norm_bwd_bytes(s.NC, s.HW);
    run_bwd();
    b.measure(r, rel_l2(download(o.dx), wdx), run_bwd);
    return std::make_pair(fwd_us, b.rows().back().us);
  };

  NormTiming& t = norm_timings().emplace_back();
  t.layer = s.layer;
  Out d{dc::DeviceArray<float>(n), dc::DeviceArray<float>(rows), dc::DeviceArray<float>(rows), dc::DeviceArray<float>(n)};
  std::tie(t.disco_fwd_us, t.disco_bwd_us) = check_and_time(
      std::string("instance_norm_fwd ") + act_name(s.act), std::string("instance_norm_bwd ") + act_name(s.act), "",
      s.act, d,
      [&] { dc::instance_norm_fwd(x.data(), d.y.data(), d.mean.data(), d.rstd.data(), s.NC, s.HW, eps, s.act, slope); },
      [&] {
        dc::instance_norm_bwd(dy.data(), x.data(), false, d.mean.data(), d.rstd.data(), d.dx.data(), s.NC, s.HW, s.act,
                              slope, false);
      });
  if (!dc::cudnn_available()) return;
  const dc::Activation cact = s.act == dc::Activation::ReLU ? dc::Activation::ReLU : dc::Activation::None;
  Out c{dc::DeviceArray<float>(n), dc::DeviceArray<float>(rows), dc::DeviceArray<float>(rows), dc::DeviceArray<float>(n)};
  std::tie(t.cudnn_fwd_us, t.cudnn_bwd_us) = check_and_time(
      std::string("cudnn batchnorm fwd ") + act_name(cact), std::string("cudnn batchnorm bwd ") + act_name(cact),
      cact == s.act ? "" : "norm only (no LeakyReLU in cuDNN)", cact, c,
      [&] { dc::cudnn_instance_norm_fwd(x.data(), c.y.data(), c.mean.data(), c.rstd.data(), s.NC, s.HW, eps, cact); },
      [&] {
        dc::cudnn_instance_norm_bwd(dy.data(), x.data(), c.y.data(), c.mean.data(), c.rstd.data(), c.dx.data(), s.NC,
                                    s.HW, eps, cact);
      });
}

// "instance_norm_vs_cudnn: fwd geomean 1.52x (min 1.10x E1.norm5), bwd ... (cuDNN time / disco
// time over N layers)" or why there is no comparison.
std::string norm_vs_cudnn_line() {
  if (!dc::cudnn_available()) return "instance_norm_vs_cudnn: not measured (disco::cuda built without cuDNN)";
  std::string line = "instance_norm_vs_cudnn:";
  char buf[160];
  for (int dir = 0; dir < 2; ++dir) {
    double logsum = 0, worst = INFINITY;
    int count = 0;
    std::string worst_layer;
    for (const NormTiming& t : norm_timings()) {
      const double d = dir == 0 ? t.disco_fwd_us : t.disco_bwd_us, c = dir == 0 ? t.cudnn_fwd_us : t.cudnn_bwd_us;
      if (!(d > 0) || !(c > 0)) continue;
      const double r = c / d;
      logsum += std::log(r);
      ++count;
      if (r < worst) {
        worst = r;
        worst_layer = t.layer;
      }
    }
    if (count == 0)
      std::snprintf(buf, sizeof buf, " %s none measured;", dir == 0 ? "fwd" : "bwd");
    else
      std::snprintf(buf, sizeof buf, " %s geomean %.2fx (min %.2fx %s, %d layers);", dir == 0 ? "fwd" : "bwd",
                    std::exp(logsum / count), worst, worst_layer.c_str(), count);
    line += buf;
  }
  return line + " speed-up = cuDNN time / disco time (cuDNN: batch norm over [1, N*C, H, W] + ReLU, as PyTorch)";
}

void bench_adam(Bench& b, const ParamGroup& g) {
  const int64_t total = g.total();
  Row r;
  r.op = "adam_update_counted";
  r.shape = g.name + " (" + std::to_string(g.sizes.size()) + " tensors, " + std::to_string(total) + ")";
  r.bytes = adam_bytes(total);
  // one buffer per state, the tensors laid out back to back (as separate allocations would be)
  const auto hp = random_vec(size_t(total), 31, -1.f, 1.f), hg = random_vec(size_t(total), 32, -1.f, 1.f);
  auto hm = random_vec(size_t(total), 33, -0.1f, 0.1f), hv = random_vec(size_t(total), 34, 0.f, 0.1f);
  for (auto& v : hv) v = v * v + 1e-4f;
  auto p = upload(hp), gr = upload(hg), m = upload(hm), v = upload(hv);
  const float scale = 0.5f;  // a clip coefficient, read on the device as the model does
  auto dscale = upload(std::vector<float>{scale});
  auto counter = upload(std::vector<long long>{9});  // the update is step t = 10
  std::vector<dc::AdamTensor> ts;
  int64_t off = 0;
  for (int64_t n : g.sizes) {
    ts.push_back({p.data() + off, gr.data() + off, m.data() + off, v.data() + off, n});
    off += n;
  }
  dc::AdamHyper h;
  h.lr = 0.05f;  // large enough that a wrong update shows in the parameters' relative error
  h.beta1 = 0.5f;
  h.beta2 = 0.999f;
  h.eps = 1e-8f;
  auto run = [&] { dc::adam_update_counted(ts, h, counter.data(), dscale.data()); };
  run();
  std::vector<float> wp = hp, wm = hm, wv = hv;
  CPUK::adam_update(wp.data(), hg.data(), wm.data(), wv.data(), total, double(h.lr), double(h.beta1), double(h.beta2),
                    double(h.eps), 0.0, 10, double(scale));
  const double err = std::max({rel_l2(download(p), wp), rel_l2(download(m), wm), rel_l2(download(v), wv),
                               download(counter)[0] == 10 ? 0.0 : INFINITY});
  b.measure(r, err, run);
}

// add and leaky_relu_fwd (the model's most common element-wise kernels), and, when disco::cuda
// has cuDNN, add and ReLU next to cudnnOpTensor and cudnnActivationForward.
std::string& elementwise_vs_cudnn() {
  static std::string line;
  return line;
}

void bench_elementwise(Bench& b, int64_t n) {
  const auto ha = random_vec(size_t(n), 41, -1.f, 1.f), hb = random_vec(size_t(n), 42, -1.f, 1.f);
  auto a = upload(ha), bb = upload(hb);
  dc::DeviceArray<float> y{size_t(n)};
  std::vector<float> want(static_cast<size_t>(n));
  Row r;
  r.shape = "n=" + std::to_string(n);
  // times a (disco, cuDNN) pair, both checked against `want` first; returns cuDNN time / disco time
  auto pair = [&](const std::string& op, int64_t bytes, const std::function<void()>& disco_run,
                  const std::function<void()>& cudnn_run) {
    r.op = op;
    r.bytes = bytes;
    dc::memset(y.data(), 0xFF, y.bytes());
    disco_run();
    b.measure(r, rel_l2(download(y), want), disco_run);
    const double disco_us = b.rows().back().us;
    if (!cudnn_run) return double(NAN);
    r.op = "cudnn " + op;
    dc::memset(y.data(), 0xFF, y.bytes());
    cudnn_run();
    b.measure(r, rel_l2(download(y), want), cudnn_run);
    return b.rows().back().us / disco_us;
  };
  const bool cudnn = dc::cudnn_available();

  for (size_t i = 0; i < want.size(); ++i) want[i] = ha[i] + hb[i];
  const double add_ratio = pair("add", add_bytes(n), [&] { dc::add(a.data(), bb.data(), y.data(), n); },
                                cudnn ? std::function<void()>([&] { dc::cudnn_add(a.data(), bb.data(), y.data(), n); })
                                      : std::function<void()>());

  for (size_t i = 0; i < want.size(); ++i) want[i] = disco::apply_unary(disco::UnaryKind::LeakyRelu, 0.2f, ha[i]);
  pair("leaky_relu_fwd 0.2", unary_bytes(n), [&] { dc::leaky_relu_fwd(a.data(), y.data(), n, 0.2f); }, {});

  for (size_t i = 0; i < want.size(); ++i) want[i] = ha[i] > 0.f ? ha[i] : 0.f;
  const double relu_ratio =
      pair("relu_fwd", unary_bytes(n), [&] { dc::relu_fwd(a.data(), y.data(), n); },
           cudnn ? std::function<void()>(
                       [&] { dc::cudnn_activation_fwd(dc::ReferenceActivation::ReLU, a.data(), y.data(), n); })
                 : std::function<void()>());
  if (cudnn) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "elementwise_vs_cudnn: add %.2fx, relu_fwd %.2fx at n=%lld (cuDNN time / disco time)",
                  add_ratio, relu_ratio, (long long)n);
    elementwise_vs_cudnn() = buf;
  } else {
    elementwise_vs_cudnn() = "elementwise_vs_cudnn: not measured (disco::cuda built without cuDNN)";
  }
}

// Runs one case; an exception (a launcher's disco::Error, out of memory) is a failed row.
template <class F>
void guarded(Bench& b, const std::string& op, const std::string& shape, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    Row r;
    r.op = op;
    r.shape = shape;
    r.tag = shape;  // (the fused loss's rows pass their size label)
    b.error(r, e.what());
  }
}

void write_csv(const std::string& path, const Bench& b, const std::string& device) {
  std::ofstream f(path);
  if (!f) {
    std::printf("ERROR: cannot write %s\n", path.c_str());
    return;
  }
  f << "device,op,shape,bytes,median_us,gbps,copy_gbps_same_bytes,fraction_of_copy,peak_copy_gbps,"
       "fraction_of_peak,rel_err,ok\n";
  for (const Row& r : b.rows())
    f << '"' << device << "\",\"" << r.op << "\",\"" << r.shape << "\"," << r.bytes << ',' << r.us << ',' << r.gbps
      << ',' << r.copy_gbps << ',' << r.gbps / r.copy_gbps << ',' << b.peak() << ',' << r.gbps / b.peak() << ','
      << r.err << ',' << (r.ok ? 1 : 0) << '\n';
  std::printf("wrote %s\n", path.c_str());
}

// "fused_loss_fraction_of_copy: mse 128px=0.85 256px=0.90 large=0.93; l1 ...; min=0.85 (vs a D2D
// copy of the same bytes) | of the large-copy peak: mse ...; l1 ...;"
std::string fused_loss_line(const Bench& b) {
  std::string same = "fused_loss_fraction_of_copy:", peak;
  double worst = INFINITY;
  char buf[64];
  for (const char* k : {"mse", "l1"}) {
    const std::string op = std::string("recon_adv_loss ") + k;
    same += std::string(" ") + k;
    peak += std::string(" ") + k;
    for (const Row& r : b.rows()) {
      if (r.op != op) continue;
      if (r.ok) {
        const double f = r.gbps / r.copy_gbps;
        worst = std::min(worst, f);
        std::snprintf(buf, sizeof buf, " %s=%.3f", r.tag.c_str(), f);
        same += buf;
        std::snprintf(buf, sizeof buf, " %s=%.3f", r.tag.c_str(), r.gbps / b.peak());
        peak += buf;
      } else {
        same += " " + r.tag + "=FAILED";
        peak += " " + r.tag + "=FAILED";
        worst = -1;
      }
    }
    same += ";";
    peak += ";";
  }
  if (worst == -1)
    same += " min=FAILED";
  else if (!std::isfinite(worst))
    same += " min=none";
  else {
    std::snprintf(buf, sizeof buf, " min=%.3f", worst);
    same += buf;
  }
  return same + " (vs a D2D copy of the same bytes) | of the large-copy peak:" + peak;
}

}  // namespace

int main(int argc, char** argv) {
  disco::prefer_passive_openmp(argv);  // the CPU references run OpenMP loops
  int iters = 20, warmup = 3;
  bool warmup_set = false;
  Mode mode = Mode::Full;
  std::string csv;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next_int = [&](int lo) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ops_cuda: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      const std::string v = argv[++i];
      char* end = nullptr;
      const long x = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || x < lo || x > 100000) {
        std::fprintf(stderr, "ops_cuda: %s %s is not an integer in [%d, 100000]\n", a.c_str(), v.c_str(), lo);
        std::exit(2);
      }
      return int(x);
    };
    if (a == "-h" || a == "--help") {
      std::printf("usage: ops_cuda [--iters N] [--warmup N] [--csv FILE] [--quick] [--small] [--self-test]\n");
      return 0;
    }
    if (a == "--self-test") return self_test();
    else if (a == "--iters") iters = next_int(1);
    else if (a == "--warmup") { warmup = next_int(0); warmup_set = true; }
    else if (a == "--quick") mode = Mode::Quick;
    else if (a == "--small") mode = Mode::Small;
    else if (a == "--csv") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ops_cuda: --csv needs a file name\n");
        return 2;
      }
      csv = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: ops_cuda [--iters N] [--warmup N] [--csv FILE] [--quick] [--small] [--self-test]"
                   " (unknown option %s)\n", a.c_str());
      return 2;
    }
  }
  if (mode == Mode::Small && !warmup_set) warmup = 1;
  if (!dc::device_available()) {
    std::printf("ops_cuda: no CUDA device (it needs a GPU; --self-test runs without one)\n");
    return 77;
  }
  std::string device;
  try {
    device = dc::device_name();
#if defined(DISCO_OPS_CUDA_EMULATED)
    const std::string versions = "CUDA headers " + version_str(CUDART_VERSION) + " (emulated runtime)";
#else
    int rt = 0, drv = 0;
    cuda_ok(cudaRuntimeGetVersion(&rt), "cudaRuntimeGetVersion");
    cuda_ok(cudaDriverGetVersion(&drv), "cudaDriverGetVersion");
    const std::string versions = "CUDA runtime " + version_str(rt) + ", driver " + version_str(drv);
#endif
    const int64_t l2 = l2_cache_bytes();
    const int64_t flush = l2 > 0 ? 2 * l2 : (mode == Mode::Small ? int64_t(2) << 20 : int64_t(256) << 20);
    std::printf("ops_cuda: %s, %d SMs, %s\n", device.c_str(), dc::device_sm_count(), versions.c_str());
    std::printf("ops_cuda: %s sizes, median of %d runs after %d warm-up, L2 %s flushed before each run (%.0f MiB "
                "memset); GB/s = bytes that must move (read once + written once) / time\n",
                mode_name(mode), iters, warmup, l2 > 0 ? (std::to_string(l2 >> 20) + " MiB").c_str() : "(size unknown)",
                double(flush) / (1 << 20));

    Bench b(flush, warmup, iters);
    // the reference: one large copy, the peak every row is also compared with
    const int64_t big = large_copy_bytes(mode);
    b.set_peak(b.copy_gbps(2 * big));
    std::printf("copy peak: %.1f GB/s (cudaMemcpyAsync D2D of %lld MiB, read + written counted)\n\n", b.peak(),
                (long long)(big >> 20));
    b.header();
    {
      Row r;
      r.op = "memcpy D2D (reference)";
      r.shape = std::to_string(big >> 20) + " MiB buffer";
      r.bytes = 2 * copy_buffer_bytes(2 * big);
      r.gbps = r.copy_gbps = b.peak();
      r.us = double(r.bytes) / (b.peak() * 1e3);
      r.err = 0;
      r.ok = true;
      b.add_reference(r);
    }
    for (const auto& s : loss_sizes(mode))
      for (dc::ReconLoss k : {dc::ReconLoss::MSE, dc::ReconLoss::L1})
        guarded(b, k == dc::ReconLoss::L1 ? "recon_adv_loss l1" : "recon_adv_loss mse", s.tag,
                [&] { bench_loss(b, k, s); });
    for (const auto& s : norm_shapes(mode)) guarded(b, "instance_norm", s.layer, [&] { bench_norm(b, s); });
    std::vector<ParamGroup> groups;
    guarded(b, "adam_update_counted", "model parameters", [&] { groups = param_groups(mode); });
    for (const auto& g : groups) guarded(b, "adam_update_counted", g.name, [&] { bench_adam(b, g); });
    guarded(b, "elementwise", "n=" + std::to_string(elementwise_n(mode)), [&] { bench_elementwise(b, elementwise_n(mode)); });

    std::printf("\ncopy GB/s: a D2D copy moving the same bytes (half of them read, half written); "
                "of copy = GB/s / copy GB/s; of peak = GB/s / %.1f GB/s\n", b.peak());
    if (!csv.empty()) write_csv(csv, b, device);
    if (b.failures()) std::printf("%d case(s) failed (MISMATCH or ERROR above)\n", b.failures());
    std::printf("%s\n", fused_loss_line(b).c_str());
    std::printf("%s\n", norm_vs_cudnn_line().c_str());
    if (!elementwise_vs_cudnn().empty()) std::printf("%s\n", elementwise_vs_cudnn().c_str());
    return b.failures() ? 1 : 0;
  } catch (const std::exception& e) {
    std::printf("ops_cuda: error: %s\n", e.what());
    return 1;
  }
}
