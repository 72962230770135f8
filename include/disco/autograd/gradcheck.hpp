#pragma once
// Finite-difference gradient check (central differences, float64): compares the
// analytic gradient of sum(f(inputs) * r), for a fixed random r, with numerical ones.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "disco/ops/ops.hpp"

namespace disco {

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0, max_rel_err = 0;
  std::string message;  // the worst element, when !ok
};

// f maps the inputs to one tensor; every input must be float64 with requires_grad set.
template <class B>
GradcheckResult gradcheck(const std::function<Tensor<B>(const std::vector<Tensor<B>>&)>& f, std::vector<Tensor<B>> inputs,
                          double eps = 1e-6, double atol = 1e-7, double rtol = 1e-5, uint64_t seed = 7) {
  for (auto& t : inputs)
    DISCO_CHECK(t.dtype() == DType::F64, "gradcheck: inputs must be float64, got ", dtype_name(t.dtype()));
  Generator gen(seed);
  Tensor<B> out0 = f(inputs);
  Tensor<B> r = Tensor<B>::randn(out0.shape(), gen, DType::F64);
  auto objective = [&](const std::vector<Tensor<B>>& in) { return sum(mul(f(in), r)); };
  for (auto& t : inputs) t.zero_grad();
  objective(inputs).backward();
  GradcheckResult res;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    Tensor<B>& x = inputs[k];
    if (!x.requires_grad()) continue;
    Tensor<B> g = x.grad();
    std::vector<double> analytic = g.defined() ? g.template to_vector<double>() : std::vector<double>(x.numel(), 0.0);
    std::vector<double> vals = x.template to_vector<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double numeric;
      {
        NoGradGuard ng;
        const double orig = vals[i];
        vals[i] = orig + eps;
        x.copy_(Tensor<B>::from_vector(vals, x.shape()));
        const double fp = objective(inputs).item();
        vals[i] = orig - eps;
        x.copy_(Tensor<B>::from_vector(vals, x.shape()));
        const double fm = objective(inputs).item();
        vals[i] = orig;
        x.copy_(Tensor<B>::from_vector(vals, x.shape()));
        numeric = (fp - fm) / (2 * eps);
      }
      const double err = std::fabs(numeric - analytic[i]);
      const double rel = err / std::max(std::fabs(numeric), 1e-12);
      res.max_abs_err = std::max(res.max_abs_err, err);
      if (err > atol + rtol * std::fabs(numeric)) {
        res.max_rel_err = std::max(res.max_rel_err, rel);
        if (res.ok)
          res.message = str("input ", k, " element ", i, ": analytic ", analytic[i], " numeric ", numeric);
        res.ok = false;
      }
    }
  }
  return res;
}

}  // namespace disco
