// disco::cuda kernel instantiations and launchers of the element-wise, reduction,
// normalization, loss and optimizer kernels (kernels/*.cuh). Convolutions live in
// conv_custom.cu (compiled in parallel), cuBLAS / cuDNN glue in blas.cpp / cudnn_conv.cpp.
#include <algorithm>
#include <cmath>
#include <vector>

#include "disco/backend/cuda/ops.hpp"
#include "internal.hpp"
#include "kernels/common.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/loss.cuh"
#include "kernels/norm.cuh"
#include "kernels/optim.cuh"

namespace disco {
namespace cuda {

using detail::grid_for;
using detail::stream;

namespace {

void check_n(int64_t n, const char* op) { DISCO_CHECK(n >= 0, op, ": negative element count ", n); }

template <class F>
void launch_map(int64_t n, const F& f) {
  if (n <= 0) return;
  const int64_t nvec = kern::map_vec4_groups(n, f);  // float4 groups when aligned
  kern::map_kernel<<<grid_for(std::max(nvec, n - 4 * nvec)), kern::kBlock, 0, stream()>>>(n, nvec, f);
  DISCO_CUDA_CHECK_LAUNCH();
}

// One-launch reduction with deterministic finish (see kernels/common.cuh); the first nvec
// float4 groups go through elem.vec4 (pass 0 when the data is not 16-byte aligned).
template <int NV, class Elem, class Fin>
void launch_reduce(int64_t n, int64_t nvec, const Elem& elem, const Fin& fin) {
  // One wave: no more blocks than fit on the GPU at once (the fused losses use ~40 registers,
  // 6 blocks of 256 per SM on sm_90, not the 8 grid_for assumes), so that no block runs after
  // the others have finished.
  static const int resident = [] {
    int per_sm = 0;
    DISCO_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern::reduce_finalize_kernel<NV, Elem, Fin>,
                                                                   kern::kBlock, 0));
    return std::max(per_sm, 1) * device_sm_count();
  }();
  const int blocks = std::min(grid_for(n, kern::kBlock, 4), resident);
  detail::Scratch ws(sizeof(double) * size_t(blocks) * NV + 16);
  double* partials = ws.as<double>();
  unsigned* counter = reinterpret_cast<unsigned*>(partials + size_t(blocks) * NV);
  DISCO_CUDA_CHECK(cudaMemsetAsync(counter, 0, sizeof(unsigned), stream()));
  kern::reduce_finalize_kernel<NV><<<blocks, kern::kBlock, 0, stream()>>>(n, nvec, elem, fin, partials, counter);
  DISCO_CUDA_CHECK_LAUNCH();
}

}  // namespace

// ---- element-wise ------------------------------------------------------------------------------
void fill(float* y, int64_t n, float v) { check_n(n, "fill"); launch_map(n, kern::FillOp{y, v}); }
void add(const float* a, const float* b, float* y, int64_t n) { check_n(n, "add"); launch_map(n, kern::AddOp{a, b, y}); }
void sub(const float* a, const float* b, float* y, int64_t n) { check_n(n, "sub"); launch_map(n, kern::SubOp{a, b, y}); }
void mul(const float* a, const float* b, float* y, int64_t n) { check_n(n, "mul"); launch_map(n, kern::MulOp{a, b, y}); }
void scale(const float* x, float s, float* y, int64_t n) { check_n(n, "scale"); launch_map(n, kern::ScaleOp{x, s, y}); }
void axpy(float alpha, const float* x, float* y, int64_t n) { check_n(n, "axpy"); launch_map(n, kern::AxpyOp{alpha, x, y}); }

void add_channel_bias(const float* x, const float* b, float* y, int64_t N, int64_t C, int64_t HW) {
  DISCO_CHECK(N >= 0 && C >= 0 && HW >= 0, "add_channel_bias: bad shape [", N, ", ", C, ", ", HW, "]");
  if (C == 0 || HW == 0) return;
  launch_map(N * C * HW, kern::ChannelBiasOp{x, b, y, C, HW});
}

void channel_sum(const float* dy, float* db, int64_t N, int64_t C, int64_t HW, bool accumulate) {
  DISCO_CHECK(N >= 0 && C >= 0 && HW >= 0, "channel_sum: bad shape [", N, ", ", C, ", ", HW, "]");
  DISCO_CHECK(C < (int64_t(1) << 31), "channel_sum: too many channels ", C);
  if (C == 0) return;
  kern::channel_sum_kernel<<<unsigned(C), kern::kBlock, 0, stream()>>>(dy, nullptr, db, N, C, HW, accumulate);
  DISCO_CUDA_CHECK_LAUNCH();
}

void channel_dot(const float* a, const float* b, float* out, int64_t N, int64_t C, int64_t HW, bool accumulate) {
  DISCO_CHECK(N >= 0 && C >= 0 && HW >= 0, "channel_dot: bad shape [", N, ", ", C, ", ", HW, "]");
  DISCO_CHECK(C < (int64_t(1) << 31), "channel_dot: too many channels ", C);
  DISCO_CHECK(b != nullptr, "channel_dot: second operand must not be null (use channel_sum)");
  if (C == 0) return;
  kern::channel_sum_kernel<<<unsigned(C), kern::kBlock, 0, stream()>>>(a, b, out, N, C, HW, accumulate);
  DISCO_CUDA_CHECK_LAUNCH();
}

void sub_channel(const float* x, const float* v, float* y, int64_t N, int64_t C, int64_t HW) {
  DISCO_CHECK(N >= 0 && C >= 0 && HW >= 0, "sub_channel: bad shape [", N, ", ", C, ", ", HW, "]");
  if (C == 0 || HW == 0) return;
  launch_map(N * C * HW, kern::ChannelSubOp{x, v, y, C, HW});
}
void mul_channel(const float* x, const float* v, float* y, int64_t N, int64_t C, int64_t HW) {
  DISCO_CHECK(N >= 0 && C >= 0 && HW >= 0, "mul_channel: bad shape [", N, ", ", C, ", ", HW, "]");
  if (C == 0 || HW == 0) return;
  launch_map(N * C * HW, kern::ChannelMulOp{x, v, y, C, HW});
}

void affine(const float* x, float alpha, float beta, float* y, int64_t n) {
  check_n(n, "affine");
  launch_map(n, kern::AffineOp{x, alpha, beta, y});
}
void broadcast_scalar(const float* v, float s, float* y, int64_t n) {
  check_n(n, "broadcast_scalar");
  launch_map(n, kern::BroadcastScalarOp{v, s, y});
}
void scale_by_scalar(const float* x, const float* v, float* y, int64_t n) {
  check_n(n, "scale_by_scalar");
  launch_map(n, kern::ScaleByScalarOp{x, v, y});
}

void relu_fwd(const float* x, float* y, int64_t n) { check_n(n, "relu_fwd"); launch_map(n, kern::ReluFwd{x, y}); }
void leaky_relu_fwd(const float* x, float* y, int64_t n, float slope) {
  check_n(n, "leaky_relu_fwd");
  launch_map(n, kern::LeakyFwd{x, y, slope});
}
void tanh_fwd(const float* x, float* y, int64_t n) { check_n(n, "tanh_fwd"); launch_map(n, kern::TanhFwd{x, y}); }
void sigmoid_fwd(const float* x, float* y, int64_t n) { check_n(n, "sigmoid_fwd"); launch_map(n, kern::SigmoidFwd{x, y}); }

void relu_bwd(const float* dy, const float* xy, float* dx, int64_t n, bool acc) {
  check_n(n, "relu_bwd");
  launch_map(n, kern::ActBwd<kern::ActBwdKind::Relu>{dy, xy, dx, 0.f, acc});
}
void leaky_relu_bwd(const float* dy, const float* xy, float* dx, int64_t n, float slope, bool acc) {
  check_n(n, "leaky_relu_bwd");
  DISCO_CHECK(slope >= 0.f, "leaky_relu_bwd: needs slope >= 0 (sign of x and y must agree), got ", slope);
  launch_map(n, kern::ActBwd<kern::ActBwdKind::Leaky>{dy, xy, dx, slope, acc});
}
void leaky_relu_bwd_from_input(const float* dy, const float* x, float* dx, int64_t n, float slope, bool acc) {
  check_n(n, "leaky_relu_bwd_from_input");
  launch_map(n, kern::ActBwd<kern::ActBwdKind::Leaky>{dy, x, dx, slope, acc});
}
void tanh_bwd(const float* dy, const float* y, float* dx, int64_t n, bool acc) {
  check_n(n, "tanh_bwd");
  launch_map(n, kern::ActBwd<kern::ActBwdKind::Tanh>{dy, y, dx, 0.f, acc});
}
void sigmoid_bwd(const float* dy, const float* y, float* dx, int64_t n, bool acc) {
  check_n(n, "sigmoid_bwd");
  launch_map(n, kern::ActBwd<kern::ActBwdKind::Sigmoid>{dy, y, dx, 0.f, acc});
}

void f32_to_bf16(const float* x, void* y, int64_t n) {
  check_n(n, "f32_to_bf16");
  launch_map(n, kern::ToBf16Op{x, static_cast<__nv_bfloat16*>(y)});
}
void bf16_to_f32(const void* x, float* y, int64_t n) {
  check_n(n, "bf16_to_f32");
  launch_map(n, kern::FromBf16Op{static_cast<const __nv_bfloat16*>(x), y, false});
}
namespace detail {
// y (=|+=) float(x_bf16); used by the cuDNN BF16 path.
void bf16_to_f32_acc(const void* x, float* y, int64_t n, bool accumulate) {
  launch_map(n, kern::FromBf16Op{static_cast<const __nv_bfloat16*>(x), y, accumulate});
}
}  // namespace detail

// ---- reductions -----------------------------------------------------------------------------------
void sum(const float* x, int64_t n, float* out) {
  check_n(n, "sum");
  launch_reduce<1>(n, kern::vec4_groups(n, {x}), kern::RedElem<kern::RedKind::Sum>{x}, kern::ScalarFin{out, 1.0});
}
void mean(const float* x, int64_t n, float* out) {
  check_n(n, "mean");
  launch_reduce<1>(n, kern::vec4_groups(n, {x}), kern::RedElem<kern::RedKind::Sum>{x},
                   kern::ScalarFin{out, n > 0 ? 1.0 / double(n) : NAN});
}
void sumsq(const float* x, int64_t n, float* out) {
  check_n(n, "sumsq");
  launch_reduce<1>(n, kern::vec4_groups(n, {x}), kern::RedElem<kern::RedKind::SumSq>{x}, kern::ScalarFin{out, 1.0});
}

void max_abs_diff(const float* a, const float* b, int64_t n, float* out) {
  check_n(n, "max_abs_diff");
  const int blocks = std::max(1, std::min(grid_for(n), 1024));
  detail::Scratch partials(sizeof(float) * 2 * size_t(blocks));
  kern::max_abs_diff_kernel<<<blocks, kern::kBlock, 0, stream()>>>(a, b, n, partials.as<float>());
  DISCO_CUDA_CHECK_LAUNCH();
  kern::max_abs_diff_finish_kernel<<<1, kern::kBlock, 0, stream()>>>(partials.as<float>(), blocks, out);
  DISCO_CUDA_CHECK_LAUNCH();
}

void copy_strided(const float* src, const int64_t* ss, float* dst, const int64_t* ds, const int64_t* shape, int ndim) {
  DISCO_CHECK(ndim >= 1 && ndim <= 6, "copy_strided: ndim must be in [1, 6], got ", ndim);
  kern::StridedCopyArgs a{};
  int64_t total = 1;
  for (int d = 0; d < ndim; ++d) {
    DISCO_CHECK(shape[d] >= 0, "copy_strided: negative extent ", shape[d], " in dim ", d);
    a.shape[d] = shape[d];
    a.src_stride[d] = ss[d];
    a.dst_stride[d] = ds[d];
    total *= shape[d];
  }
  a.ndim = ndim;
  if (total == 0) return;
  kern::copy_strided_kernel<<<grid_for(total), kern::kBlock, 0, stream()>>>(src, dst, total, a);
  DISCO_CUDA_CHECK_LAUNCH();
}

// ---- instance norm ------------------------------------------------------------------------------
namespace {
int norm_block(int64_t HW) { return HW <= 256 ? 32 : (HW <= 4096 ? 128 : 256); }
}  // namespace

void instance_norm_fwd(const float* x, float* y, float* mean_out, float* rstd_out, int64_t NC, int64_t HW, float eps,
                       Activation act, float slope) {
  DISCO_CHECK(NC >= 0 && HW > 0, "instance_norm_fwd: bad shape [", NC, ", ", HW, "]");
  DISCO_CHECK(NC < (int64_t(1) << 31), "instance_norm_fwd: too many rows ", NC);
  if (NC == 0) return;
  const int b = norm_block(HW);
  switch (act) {
    case Activation::None:
      kern::instance_norm_fwd_kernel<kern::NormAct::None><<<unsigned(NC), b, 0, stream()>>>(x, y, mean_out, rstd_out, HW, eps, slope);
      break;
    case Activation::ReLU:
      kern::instance_norm_fwd_kernel<kern::NormAct::Relu><<<unsigned(NC), b, 0, stream()>>>(x, y, mean_out, rstd_out, HW, eps, slope);
      break;
    case Activation::LeakyReLU:
      kern::instance_norm_fwd_kernel<kern::NormAct::Leaky><<<unsigned(NC), b, 0, stream()>>>(x, y, mean_out, rstd_out, HW, eps, slope);
      break;
  }
  DISCO_CUDA_CHECK_LAUNCH();
}

void instance_norm_bwd(const float* dy, const float* xy, bool is_output, const float* mean, const float* rstd, float* dx,
                       int64_t NC, int64_t HW, Activation act, float slope, bool accumulate) {
  DISCO_CHECK(NC >= 0 && HW > 0, "instance_norm_bwd: bad shape [", NC, ", ", HW, "]");
  DISCO_CHECK(NC < (int64_t(1) << 31), "instance_norm_bwd: too many rows ", NC);
  DISCO_CHECK(mean != nullptr && rstd != nullptr, "instance_norm_bwd: needs the saved mean and rstd");
  if (NC == 0) return;
  const int b = norm_block(HW);
  const unsigned g = unsigned(NC);
  if (is_output) {
    DISCO_CHECK(act == Activation::None || (act == Activation::LeakyReLU && slope > 0.f),
                "instance_norm_bwd: the forward output determines the normalized input only for no activation "
                "or LeakyReLU with slope > 0; pass the forward input instead");
    if (act == Activation::None)
      kern::instance_norm_bwd_kernel<kern::NormAct::None, true><<<g, b, 0, stream()>>>(dy, xy, mean, rstd, dx, HW, slope, accumulate);
    else
      kern::instance_norm_bwd_kernel<kern::NormAct::Leaky, true><<<g, b, 0, stream()>>>(dy, xy, mean, rstd, dx, HW, slope, accumulate);
  } else {
    switch (act) {
      case Activation::None:
        kern::instance_norm_bwd_kernel<kern::NormAct::None, false><<<g, b, 0, stream()>>>(dy, xy, mean, rstd, dx, HW, slope, accumulate);
        break;
      case Activation::ReLU:
        kern::instance_norm_bwd_kernel<kern::NormAct::Relu, false><<<g, b, 0, stream()>>>(dy, xy, mean, rstd, dx, HW, slope, accumulate);
        break;
      case Activation::LeakyReLU:
        kern::instance_norm_bwd_kernel<kern::NormAct::Leaky, false><<<g, b, 0, stream()>>>(dy, xy, mean, rstd, dx, HW, slope, accumulate);
        break;
    }
  }
  DISCO_CUDA_CHECK_LAUNCH();
}

// ---- losses ----------------------------------------------------------------------------------------
namespace {
template <kern::LossKind K>
void loss_launch(const float* p, const float* t, float tval, int64_t n, float* loss_out, float* grad, float gscale,
                 const char* name) {
  check_n(n, name);
  DISCO_CHECK(loss_out != nullptr, name, ": loss_out must not be null");
  const float coef = n > 0 ? float(double(gscale) / double(n)) : 0.f;
  launch_reduce<1>(n, kern::vec4_groups(n, {p, t, grad}), kern::LossElem<K>{p, t, tval, grad, coef},
                   kern::ScalarFin{loss_out, n > 0 ? 1.0 / double(n) : NAN});
}
}  // namespace

void mse_loss_fwd_bwd(const float* pred, const float* target, int64_t n, float* loss_out, float* grad, float gscale) {
  DISCO_CHECK(target != nullptr, "mse_loss_fwd_bwd: target must not be null");
  loss_launch<kern::LossKind::Mse>(pred, target, 0.f, n, loss_out, grad, gscale, "mse_loss_fwd_bwd");
}
void l1_loss_fwd_bwd(const float* pred, const float* target, int64_t n, float* loss_out, float* grad, float gscale) {
  DISCO_CHECK(target != nullptr, "l1_loss_fwd_bwd: target must not be null");
  loss_launch<kern::LossKind::L1>(pred, target, 0.f, n, loss_out, grad, gscale, "l1_loss_fwd_bwd");
}
void bce_loss_fwd_bwd(const float* prob, const float* target, float tval, int64_t n, float* loss_out, float* grad,
                      float gscale) {
  loss_launch<kern::LossKind::Bce>(prob, target, tval, n, loss_out, grad, gscale, "bce_loss_fwd_bwd");
}
void bce_with_logits_fwd_bwd(const float* logits, const float* target, float tval, int64_t n, float* loss_out,
                             float* grad, float gscale) {
  loss_launch<kern::LossKind::BceLogits>(logits, target, tval, n, loss_out, grad, gscale, "bce_with_logits_fwd_bwd");
}

void recon_adv_loss_fwd_bwd(ReconLoss kind, const float* pred, const float* target, int64_t n, const float* disc_prob,
                            int64_t m, float label, float weight, float* loss_out, float* grad_pred, float* grad_disc,
                            float gscale) {
  DISCO_CHECK(n > 0 && m > 0, "recon_adv_loss_fwd_bwd: needs n > 0 and m > 0, got n = ", n, ", m = ", m);
  DISCO_CHECK(loss_out != nullptr, "recon_adv_loss_fwd_bwd: loss_out (3 floats) must not be null");
  const float cp = float(double(gscale) / double(n));
  const float cd = float(double(gscale) * double(weight) / double(m));
  const kern::ReconAdvFin fin{loss_out, 1.0 / double(n), 1.0 / double(m), double(weight)};
  const int64_t nvec = kern::vec4_groups(n, {pred, target, grad_pred});
  if (kind == ReconLoss::L1)
    launch_reduce<2>(n + m, nvec, kern::ReconAdvElem<true>{pred, target, n, disc_prob, label, grad_pred, grad_disc, cp, cd}, fin);
  else
    launch_reduce<2>(n + m, nvec, kern::ReconAdvElem<false>{pred, target, n, disc_prob, label, grad_pred, grad_disc, cp, cd}, fin);
}

// ---- optimizer --------------------------------------------------------------------------------------
namespace {

// Cut tensors into chunks and call launch(table, blocks, first_block_index) per batch.
template <class Table, class SetTensor, class Launch>
void for_each_chunk_batch(size_t count, const std::vector<int64_t>& sizes, SetTensor set_tensor, Launch launch) {
  Table tab{};
  int nt = 0, nb = 0, block_offset = 0;
  auto flush = [&] {
    if (nb > 0) launch(tab, nb, block_offset);
    block_offset += nb;
    tab = Table{};
    nt = 0;
    nb = 0;
  };
  for (size_t i = 0; i < count; ++i) {
    const int64_t n = sizes[i];
    if (n <= 0) continue;
    const int64_t chunks = (n + kern::kMTChunk - 1) / kern::kMTChunk;
    DISCO_CHECK(chunks < (int64_t(1) << 31), "multi-tensor op: tensor ", i, " is too large (", n, " elements)");
    for (int64_t c = 0; c < chunks; ++c) {
      if (nb == kern::kMTMaxBlocks) flush();
      if (c == 0 || nb == 0) {  // (re)register the tensor in the current table
        if (nt == kern::kMTMaxTensors) flush();
        set_tensor(tab, nt, i);
        tab.t.n[nt] = n;
        ++nt;
      }
      tab.t.tensor_of_block[nb] = static_cast<unsigned char>(nt - 1);
      tab.t.chunk_of_block[nb] = int(c);
      ++nb;
    }
  }
  flush();
}

}  // namespace

namespace {
void adam_launch(const std::vector<AdamTensor>& ts, const AdamHyper& h, const float* grad_scale,
                 const long long* step_dev) {
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < ts.size(); ++i) {
    DISCO_CHECK(ts[i].n >= 0, "adam_update: tensor ", i, " has negative size");
    DISCO_CHECK(ts[i].n == 0 || (ts[i].param && ts[i].grad && ts[i].exp_avg && ts[i].exp_avg_sq),
                "adam_update: tensor ", i, " has a null pointer");
    sizes.push_back(ts[i].n);
  }
  const kern::AdamBias bias = kern::adam_bias(h.lr_d > 0 ? h.lr_d : double(h.lr), h.beta1_d > 0 ? h.beta1_d : double(h.beta1),
                                              h.beta2_d > 0 ? h.beta2_d : double(h.beta2), step_dev ? 1 : h.step);
  for_each_chunk_batch<kern::AdamTable>(
      ts.size(), sizes,
      [&](kern::AdamTable& t, int slot, size_t i) {
        t.p[slot] = ts[i].param;
        t.g[slot] = ts[i].grad;
        t.m[slot] = ts[i].exp_avg;
        t.v[slot] = ts[i].exp_avg_sq;
      },
      [&](const kern::AdamTable& t, int blocks, int) {
        kern::adam_kernel<<<blocks, kern::kBlock, 0, stream()>>>(
            t, h.beta1, h.beta2, h.eps, h.weight_decay, bias.step_size, bias.bc2_sqrt, grad_scale, step_dev,
            h.lr_d > 0 ? h.lr_d : double(h.lr), h.beta1_d > 0 ? h.beta1_d : double(h.beta1),
            h.beta2_d > 0 ? h.beta2_d : double(h.beta2));
        DISCO_CUDA_CHECK_LAUNCH();
      });
}
}  // namespace

void adam_update(const std::vector<AdamTensor>& ts, const AdamHyper& h, const float* grad_scale) {
  DISCO_CHECK(h.step >= 1, "adam_update: step must be >= 1 (got ", h.step, ")");
  adam_launch(ts, h, grad_scale, nullptr);
}

void adam_update_counted(const std::vector<AdamTensor>& ts, const AdamHyper& h, long long* step_counter,
                         const float* grad_scale) {
  DISCO_CHECK(step_counter, "adam_update_counted: null step counter");
  kern::increment_counter_kernel<<<1, 1, 0, stream()>>>(step_counter);
  DISCO_CUDA_CHECK_LAUNCH();
  adam_launch(ts, h, grad_scale, step_counter);
}

void clip_grad_norm_async(const std::vector<GradTensor>& gs, float max_norm, float* norm_out, float* coef_out,
                          bool scale_grads) {
  std::vector<int64_t> sizes;
  int64_t total_blocks = 0;
  for (size_t i = 0; i < gs.size(); ++i) {
    DISCO_CHECK(gs[i].n >= 0, "clip_grad_norm: tensor ", i, " has negative size");
    DISCO_CHECK(gs[i].n == 0 || gs[i].grad, "clip_grad_norm: tensor ", i, " has a null pointer");
    sizes.push_back(gs[i].n);
    total_blocks += (gs[i].n + kern::kMTChunk - 1) / kern::kMTChunk;
  }
  DISCO_CHECK(total_blocks < (int64_t(1) << 30), "clip_grad_norm: too many chunks");
  detail::Scratch part(sizeof(double) * size_t(total_blocks > 0 ? total_blocks : 1));
  detail::Scratch coef_tmp(sizeof(float));
  float* coef = coef_out ? coef_out : coef_tmp.as<float>();
  auto set = [&](kern::GradTable& t, int slot, size_t i) { t.g[slot] = gs[i].grad; };
  for_each_chunk_batch<kern::GradTable>(gs.size(), sizes, set, [&](const kern::GradTable& t, int blocks, int offset) {
    kern::sumsq_chunks_kernel<<<blocks, kern::kBlock, 0, stream()>>>(t, part.as<double>(), offset);
    DISCO_CUDA_CHECK_LAUNCH();
  });
  kern::grad_norm_finalize_kernel<<<1, kern::kBlock, 0, stream()>>>(part.as<double>(), int(total_blocks), max_norm,
                                                                    norm_out, coef);
  DISCO_CUDA_CHECK_LAUNCH();
  if (scale_grads) {
    for_each_chunk_batch<kern::GradTable>(gs.size(), sizes, set, [&](const kern::GradTable& t, int blocks, int) {
      kern::scale_chunks_kernel<<<blocks, kern::kBlock, 0, stream()>>>(t, coef);
      DISCO_CUDA_CHECK_LAUNCH();
    });
  }
}

void sgd_update(float* param, const float* grad, float* buf, int64_t n, float lr, float momentum, float weight_decay,
                bool first, float grad_scale) {
  check_n(n, "sgd_update");
  DISCO_CHECK(n == 0 || (param && grad && (buf || momentum == 0.f)), "sgd_update: null pointer");
  launch_map(n, kern::SgdOp{param, grad, buf, lr, momentum, weight_decay, grad_scale, first});
}

float clip_grad_norm(const std::vector<GradTensor>& gs, float max_norm) {
  detail::Scratch norm(sizeof(float));
  clip_grad_norm_async(gs, max_norm, norm.as<float>(), nullptr, true);
  float h = 0.f;
  memcpy_d2h(&h, norm.as<float>(), sizeof(float));
  return h;
}

}  // namespace cuda
}  // namespace disco
