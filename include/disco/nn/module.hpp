#pragma once
// Module: a node of the network tree with ordered, named parameters and children.
// Names follow PyTorch's state-dict convention: "<child>.<child>.<param>", e.g.
// "full.0.weight" for the weight of the first layer of a Sequential named "full".
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "disco/core/tensor.hpp"

namespace disco::nn {

template <class B>
class Module {
 public:
  virtual ~Module() = default;
  // The module's computation on one input.
  virtual Tensor<B> forward(const Tensor<B>& x) = 0;
  Tensor<B> operator()(const Tensor<B>& x) { return forward(x); }
  virtual std::string type_name() const = 0;

  // Every parameter of this module and its children, depth-first in registration order.
  std::vector<std::pair<std::string, Tensor<B>>> named_parameters(const std::string& prefix = "") const {
    std::vector<std::pair<std::string, Tensor<B>>> out;
    collect(prefix, out);
    return out;
  }
  std::vector<Tensor<B>> parameters() const {
    std::vector<Tensor<B>> out;
    for (auto& np : named_parameters()) out.push_back(np.second);
    return out;
  }
  // Drop every parameter's accumulated gradient.
  void zero_grad() {
    for (auto& p : parameters()) p.zero_grad();
  }
  const std::vector<std::pair<std::string, std::shared_ptr<Module<B>>>>& children() const { return children_; }

  // name -> tensor (sharing storage with the parameters).
  std::map<std::string, Tensor<B>> state_dict(const std::string& prefix = "") const {
    std::map<std::string, Tensor<B>> out;
    for (auto& np : named_parameters(prefix)) out.emplace(np.first, np.second);
    return out;
  }
  // Copy values into the parameters; every missing, unexpected or mis-shaped name is
  // listed in the one error thrown (nothing is modified when anything mismatches).
  void load_state_dict(const std::map<std::string, Tensor<B>>& sd, const std::string& prefix = "",
                       bool strict = true) {
    std::vector<std::string> problems;
    auto params = named_parameters(prefix);
    for (auto& [name, t] : params) {
      auto it = sd.find(name);
      if (it == sd.end()) {
        problems.push_back("missing " + name);
      } else if (it->second.shape() != t.shape()) {
        problems.push_back(name + " has shape " + shape_str(it->second.shape()) + ", expected " + shape_str(t.shape()));
      } else if (it->second.dtype() != t.dtype()) {
        problems.push_back(name + " is " + dtype_name(it->second.dtype()) + ", expected " + dtype_name(t.dtype()));
      }
    }
    if (strict) {
      for (auto& [name, t] : sd) {
        if (name.compare(0, prefix.size(), prefix) != 0) continue;
        bool known = false;
        for (auto& np : params) known = known || np.first == name;
        if (!known) problems.push_back("unexpected " + name);
      }
    }
    if (!problems.empty()) {
      std::string msg = "load_state_dict: " + std::to_string(problems.size()) + " mismatch(es): ";
      for (std::size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
      fail(msg);
    }
    for (auto& [name, t] : params) t.copy_(sd.at(name));
  }

 protected:
  Tensor<B>& register_parameter(const std::string& name, Tensor<B> t) {
    t.set_requires_grad(true);
    params_.emplace_back(name, std::move(t));
    return params_.back().second;
  }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }
  Tensor<B> param(const std::string& name) const {
    for (auto& p : params_)
      if (p.first == name) return p.second;
    return Tensor<B>();
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor<B>>>& out) const {
    for (auto& p : params_) out.emplace_back(prefix + p.first, p.second);
    for (auto& c : children_) c.second->collect(prefix + c.first + ".", out);
  }
  std::vector<std::pair<std::string, Tensor<B>>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module<B>>>> children_;
};

}  // namespace disco::nn
