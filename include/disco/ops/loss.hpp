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

namespace detail {
// The fused loss over consecutive segments of pred / target and of prob: segment i covers
// segs[i].first elements of pred and segs[i].second of prob and gets its own
// recon_adv_loss; the result is the sum of their totals, with one gradient buffer per
// input. table_out: [segments, 3], {total, recon, adv} of each. `name` prefixes errors and
// names the node.
template <class B>
Tensor<B> recon_adv_loss_segments(const char* name, const Tensor<B>& pred, const Tensor<B>& target,
                                  const Tensor<B>& prob, double label, double weight, LossKind recon,
                                  const std::vector<std::pair<int64_t, int64_t>>& segs, Tensor<B>* table_out) {
  check_same(str(name, " (reconstruction)").c_str(), pred, target);
  DISCO_CHECK(recon == LossKind::MSE || recon == LossKind::L1, name, ": reconstruction loss must be MSE or L1");
  DISCO_CHECK(prob.dtype() == pred.dtype(), name, ": prob is ", dtype_name(prob.dtype()), ", expected ",
              dtype_name(pred.dtype()));
  DISCO_CHECK(prob.numel() > 0 && pred.numel() > 0, name, ": empty input (pred ", shape_str(pred.shape()), ", prob ",
              shape_str(prob.shape()), ")");
  DISCO_CHECK(!target.requires_grad(), name, ": the target must not require a gradient");
  const int64_t ns = int64_t(segs.size());
  Tensor<B> pc = pred.contiguous(), tc = target.contiguous(), qc = prob.contiguous();
  Tensor<B> table = Tensor<B>::empty({ns, 3}, pred.dtype());  // {total, recon, adv} per segment
  const bool need_grad = any_requires_grad<B>({pred, prob});
  Tensor<B> gpred = need_grad ? Tensor<B>::empty(pred.shape(), pred.dtype()) : Tensor<B>();
  Tensor<B> gprob = need_grad ? Tensor<B>::empty(prob.shape(), prob.dtype()) : Tensor<B>();
  Tensor<B> total = ns > 1 ? Tensor<B>::empty({}, pred.dtype()) : Tensor<B>();  // the totals added left to right
  DISCO_TYPED(pred.dtype(), {
    T* tab = table.template data<T>();
    int64_t ap = 0, aq = 0;
    for (int64_t i = 0; i < ns; ++i) {
      const auto [np, nq] = segs[size_t(i)];
      Kernels<B>::recon_adv_loss(recon, pc.template data<T>() + ap, tc.template data<T>() + ap, np,
                                 qc.template data<T>() + aq, T(label), nq, weight, tab + 3 * i,
                                 need_grad ? gpred.template data<T>() + ap : nullptr,
                                 need_grad ? gprob.template data<T>() + aq : nullptr);
      ap += np;
      aq += nq;
    }
    if (ns > 1) {
      T* out = total.template data<T>();
      Kernels<B>::binary(BinaryKind::Add, tab, tab + 3, out, 1);
      for (int64_t i = 2; i < ns; ++i) Kernels<B>::binary(BinaryKind::Add, out, tab + 3 * i, out, 1);
    }
  });
  if (ns == 1) total = table.detach().reshape({3}).narrow(0, 0, 1).reshape({});  // one segment: its own total
  if (table_out) *table_out = table;
  return record<B>(total, name, {pred, prob}, [gpred, gprob](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
    gi[0] = detail::scale_by_scalar_raw(gpred, g);
    gi[1] = detail::scale_by_scalar_raw(gprob, g);
  });
}
}  // namespace detail

// recon(pred, target) + weight * BCE(prob, label) with a constant label for every element
// of prob, the autoencoder's loss for one domain: reconstruction plus the weighted
// confusion term on the discriminator's output. One op: a single forward pass computes the
// scalar and both gradients (d/d pred and d/d prob); backward scales them by grad_out.
template <class B>
Tensor<B> recon_adv_loss(const Tensor<B>& pred, const Tensor<B>& target, const Tensor<B>& prob, double label,
                         double weight, LossKind recon = LossKind::MSE, ReconAdvParts* parts = nullptr,
                         Tensor<B>* parts_out = nullptr) {
  Tensor<B> table;
  Tensor<B> total = detail::recon_adv_loss_segments("recon_adv_loss", pred, target, prob, label, weight, recon,
                                                    {{pred.numel(), prob.numel()}}, &table);
  if (parts_out) *parts_out = table.reshape({3});  // {total, recon, adv}, stays in backend memory
  if (parts) {                                      // host values: synchronizes on CUDA
    auto v = table.template to_vector<double>();
    parts->recon = v[1];
    parts->adv = v[2];
  }
  return total;
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
  DISCO_CHECK(pred.dim() >= 1 && prob.dim() >= 1 && prob.shape()[0] == pred.shape()[0],
              "recon_adv_loss_grouped: pred ", shape_str(pred.shape()), " and prob ", shape_str(prob.shape()),
              " must have the same size in dim 0 (the samples)");
  DISCO_CHECK(!groups.empty(), "recon_adv_loss_grouped: no groups given");
  const int64_t n = pred.shape()[0];
  int64_t sum = 0;
  for (int64_t g : groups) {
    DISCO_CHECK(g > 0, "recon_adv_loss_grouped: group sizes must be positive, got ", g);
    sum += g;
  }
  DISCO_CHECK(sum == n, "recon_adv_loss_grouped: group sizes sum to ", sum, " but pred ", shape_str(pred.shape()),
              " holds ", n, " samples");
  const int64_t per_pred = pred.numel() / n, per_prob = prob.numel() / n;
  std::vector<std::pair<int64_t, int64_t>> segs;
  for (int64_t g : groups) segs.push_back({g * per_pred, g * per_prob});
  return detail::recon_adv_loss_segments("recon_adv_loss_grouped", pred, target, prob, label, weight, recon, segs,
                                         parts_out);
}

}  // namespace disco
