#pragma once
// Losses (mean reduction, PyTorch semantics) and the fused reconstruction +
// adversarial loss. Each forward computes the value and the gradient in one pass;
// backward only scales the stored gradient by grad_out.
#include "disco/ops/reduce.hpp"

namespace disco {

namespace detail {
template <class B>
Tensor<B> scale_by_scalar_raw(const Tensor<B>& grad, const Tensor<B>& gout) {
  Tensor<B> out = Tensor<B>::empty(grad.shape(), grad.dtype());
  Tensor<B> gc = gout.contiguous();
  DISCO_TYPED(grad.dtype(), Kernels<B>::scale_by_scalar(grad.template data<T>(), gc.template data<T>(),
                                                        out.template data<T>(), out.numel()));
  return out;
}
}  // namespace detail

// mean over elements of loss(pred, target). The target gets a gradient for MSE and L1
// (the negative of pred's); BCE targets are constants.
template <class B>
Tensor<B> loss(LossKind k, const Tensor<B>& pred, const Tensor<B>& target) {
  check_same(loss_name(k), pred, target);
  DISCO_CHECK(pred.numel() > 0, loss_name(k), ": empty input of shape ", shape_str(pred.shape()));
  Tensor<B> pc = pred.contiguous(), tc = target.contiguous();
  Tensor<B> out = Tensor<B>::empty({}, pred.dtype());
  const bool need_grad = any_requires_grad<B>({pred, target});
  Tensor<B> grad = need_grad ? Tensor<B>::empty(pred.shape(), pred.dtype()) : Tensor<B>();
  DISCO_TYPED(pred.dtype(), Kernels<B>::loss_fwd_bwd(k, pc.template data<T>(), tc.template data<T>(), pc.numel(),
                                                     out.template data<T>(), need_grad ? grad.template data<T>() : nullptr,
                                                     1.0));
  const bool target_grad = (k == LossKind::MSE || k == LossKind::L1);
  DISCO_CHECK(target_grad || !target.requires_grad(), loss_name(k), ": the target must not require a gradient");
  return record<B>(out, loss_name(k), {pred, target}, [grad, target_grad](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
    gi[0] = detail::scale_by_scalar_raw(grad, g);
    if (target_grad) gi[1] = detail::affine_raw(gi[0], -1.0, 0.0);
  });
}

template <class B> Tensor<B> mse_loss(const Tensor<B>& p, const Tensor<B>& t) { return loss(LossKind::MSE, p, t); }
template <class B> Tensor<B> l1_loss(const Tensor<B>& p, const Tensor<B>& t) { return loss(LossKind::L1, p, t); }
// Binary cross-entropy on probabilities in [0, 1] (log clamped at -100 as PyTorch does).
template <class B> Tensor<B> bce(const Tensor<B>& p, const Tensor<B>& t) { return loss(LossKind::BCE, p, t); }
template <class B> Tensor<B> bce_with_logits(const Tensor<B>& x, const Tensor<B>& t) {
  return loss(LossKind::BCEWithLogits, x, t);
}

// The values behind a fused loss, read back on request (costs a device sync).
struct ReconAdvParts {
  double recon = 0, adv = 0;
};

// recon(pred, target) + weight * BCE(prob, label) with a constant label for every element
// of prob, the autoencoder's loss for one domain: reconstruction plus the weighted
// confusion term on the discriminator's output. One op: a single forward pass computes the
// scalar and both gradients (d/d pred and d/d prob); backward scales them by grad_out.
template <class B>
Tensor<B> recon_adv_loss(const Tensor<B>& pred, const Tensor<B>& target, const Tensor<B>& prob, double label,
                         double weight, LossKind recon = LossKind::MSE, ReconAdvParts* parts = nullptr,
                         Tensor<B>* parts_out = nullptr) {
  check_same("recon_adv_loss (reconstruction)", pred, target);
  DISCO_CHECK(recon == LossKind::MSE || recon == LossKind::L1, "recon_adv_loss: reconstruction loss must be MSE or L1");
  DISCO_CHECK(prob.dtype() == pred.dtype(), "recon_adv_loss: prob is ", dtype_name(prob.dtype()), ", expected ",
              dtype_name(pred.dtype()));
  DISCO_CHECK(prob.numel() > 0 && pred.numel() > 0, "recon_adv_loss: empty input (pred ", shape_str(pred.shape()),
              ", prob ", shape_str(prob.shape()), ")");
  Tensor<B> pc = pred.contiguous(), tc = target.contiguous(), qc = prob.contiguous();
  Tensor<B> out3 = Tensor<B>::empty({3}, pred.dtype());  // total, recon, adv
  const bool need_grad = any_requires_grad<B>({pred, prob});
  Tensor<B> gpred = need_grad ? Tensor<B>::empty(pred.shape(), pred.dtype()) : Tensor<B>();
  Tensor<B> gprob = need_grad ? Tensor<B>::empty(prob.shape(), prob.dtype()) : Tensor<B>();
  DISCO_TYPED(pred.dtype(), Kernels<B>::recon_adv_loss(recon, pc.template data<T>(), tc.template data<T>(), pc.numel(),
                                                       qc.template data<T>(), T(label), qc.numel(), weight,
                                                       out3.template data<T>(),
                                                       need_grad ? gpred.template data<T>() : nullptr,
                                                       need_grad ? gprob.template data<T>() : nullptr));
  if (parts_out) *parts_out = out3.detach();  // {total, recon, adv}, stays in backend memory
  if (parts) {  // host values: synchronizes on CUDA
    auto v = out3.template to_vector<double>();
    parts->recon = v[1];
    parts->adv = v[2];
  }
  Tensor<B> total = out3.detach().narrow(0, 0, 1).reshape({});
  DISCO_CHECK(!target.requires_grad(), "recon_adv_loss: the target must not require a gradient");
  return record<B>(total, "recon_adv_loss", {pred, prob}, [gpred, gprob](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
    gi[0] = detail::scale_by_scalar_raw(gpred, g);
    gi[1] = detail::scale_by_scalar_raw(gprob, g);
  });
}

// recon_adv_loss over groups of samples stacked along dim 0 (pred, target [N, ...], prob
// [N, ...]; groups = {n0, n1, ...} consecutive samples, summing to N): every group gets its
// own loss, with its own means, exactly as if recon_adv_loss ran on the group's slices, and
// the result is the sum of the groups' totals. It is how a model that runs both domains in
// one batch takes the two domains' losses: the gradient is one buffer for the whole batch
// (no narrow on the output, whose backward would allocate a zero-filled full-size gradient
// per group and add them). parts_out, if given: [G, 3], {total, recon, adv} of each group,
// in backend memory.
template <class B>
Tensor<B> recon_adv_loss_grouped(const Tensor<B>& pred, const Tensor<B>& target, const Tensor<B>& prob, double label,
                                 double weight, LossKind recon, const std::vector<int64_t>& groups,
                                 Tensor<B>* parts_out = nullptr) {
  check_same("recon_adv_loss_grouped (reconstruction)", pred, target);
  DISCO_CHECK(recon == LossKind::MSE || recon == LossKind::L1,
              "recon_adv_loss_grouped: reconstruction loss must be MSE or L1");
  DISCO_CHECK(prob.dtype() == pred.dtype(), "recon_adv_loss_grouped: prob is ", dtype_name(prob.dtype()),
              ", expected ", dtype_name(pred.dtype()));
  DISCO_CHECK(pred.dim() >= 1 && prob.dim() >= 1 && prob.shape()[0] == pred.shape()[0],
              "recon_adv_loss_grouped: pred ", shape_str(pred.shape()), " and prob ", shape_str(prob.shape()),
              " must have the same size in dim 0 (the samples)");
  DISCO_CHECK(!groups.empty(), "recon_adv_loss_grouped: no groups given");
  int64_t total_n = 0;
  for (int64_t g : groups) {
    DISCO_CHECK(g > 0, "recon_adv_loss_grouped: group sizes must be positive, got ", g);
    total_n += g;
  }
  const int64_t n = pred.shape()[0];
  DISCO_CHECK(total_n == n, "recon_adv_loss_grouped: group sizes sum to ", total_n, " but pred ",
              shape_str(pred.shape()), " holds ", n, " samples");
  DISCO_CHECK(pred.numel() > 0 && prob.numel() > 0, "recon_adv_loss_grouped: empty input (pred ",
              shape_str(pred.shape()), ", prob ", shape_str(prob.shape()), ")");
  DISCO_CHECK(!target.requires_grad(), "recon_adv_loss_grouped: the target must not require a gradient");
  const int64_t per_pred = pred.numel() / n, per_prob = prob.numel() / n;
  const int64_t ng = int64_t(groups.size());
  Tensor<B> pc = pred.contiguous(), tc = target.contiguous(), qc = prob.contiguous();
  Tensor<B> parts = Tensor<B>::empty({ng, 3}, pred.dtype());  // {total, recon, adv} per group
  const bool need_grad = any_requires_grad<B>({pred, prob});
  Tensor<B> gpred = need_grad ? Tensor<B>::empty(pred.shape(), pred.dtype()) : Tensor<B>();
  Tensor<B> gprob = need_grad ? Tensor<B>::empty(prob.shape(), prob.dtype()) : Tensor<B>();
  Tensor<B> out = Tensor<B>::empty({}, pred.dtype());
  DISCO_TYPED(pred.dtype(), {
    const T* p = pc.template data<T>();
    const T* t = tc.template data<T>();
    const T* q = qc.template data<T>();
    T* pp = parts.template data<T>();
    T* gp = need_grad ? gpred.template data<T>() : nullptr;
    T* gq = need_grad ? gprob.template data<T>() : nullptr;
    int64_t at = 0;
    for (int64_t i = 0; i < ng; ++i) {
      const int64_t rows = groups[size_t(i)];
      Kernels<B>::recon_adv_loss(recon, p + at * per_pred, t + at * per_pred, rows * per_pred, q + at * per_prob,
                                 T(label), rows * per_prob, weight, pp + 3 * i, gp ? gp + at * per_pred : nullptr,
                                 gq ? gq + at * per_prob : nullptr);
      at += rows;
    }
    // The sum of the groups' totals (column 0), left to right.
    if (ng == 1) {
      Device<B>::copy(out.template data<T>(), pp, sizeof(T));
    } else {
      Kernels<B>::binary(BinaryKind::Add, pp, pp + 3, out.template data<T>(), 1);
      for (int64_t i = 2; i < ng; ++i)
        Kernels<B>::binary(BinaryKind::Add, out.template data<T>(), pp + 3 * i, out.template data<T>(), 1);
    }
  });
  if (parts_out) *parts_out = parts;
  return record<B>(out, "recon_adv_loss_grouped", {pred, prob},
                   [gpred, gprob](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     gi[0] = detail::scale_by_scalar_raw(gpred, g);
                     gi[1] = detail::scale_by_scalar_raw(gprob, g);
                   });
}

}  // namespace disco
