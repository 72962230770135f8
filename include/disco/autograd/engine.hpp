#pragma once
// The tape: recording an op's backward closure on its output, and the reverse sweep.
//
// Every op in ops/ computes its output with Kernels<B> and then calls record(): when
// gradient mode is on and some input requires a gradient, the output gets a Node
// holding the inputs and a closure mapping grad_out to the inputs' gradients.
// Tensor::backward() walks the nodes in reverse topological order, summing the
// gradients that reach each tensor, and accumulates into the .grad of leaves.
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "disco/core/tensor.hpp"
#include "disco/ops/kinds.hpp"

namespace disco {

template <class B>
using BackwardFn = std::function<void(const Tensor<B>& grad_out, std::vector<Tensor<B>>& grads_in)>;

template <class B>
bool any_requires_grad(const std::vector<Tensor<B>>& inputs) {
  if (!grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

// Attach a backward closure to `out` when a gradient is needed; returns `out`.
template <class B>
Tensor<B> record(Tensor<B> out, const char* name, std::vector<Tensor<B>> inputs, BackwardFn<B> fn) {
  if (!any_requires_grad(inputs)) return out;
  auto node = std::make_shared<Node<B>>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->backward = std::move(fn);
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

namespace detail {

template <class B>
Tensor<B> add_tensors(const Tensor<B>& a, const Tensor<B>& b) {
  Tensor<B> ac = a.contiguous(), bc = b.contiguous();
  Tensor<B> out = Tensor<B>::empty(a.shape(), a.dtype());
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Kernels<B>::binary(BinaryKind::Add, ac.template data<T>(), bc.template data<T>(), out.template data<T>(),
                       out.numel());
  });
  return out;
}

// The buffer for an element-wise backward's result (same shape as the incoming gradient g,
// written index by index after reading g there): g itself when nothing but the engine holds
// it -- neither its TensorImpl nor its storage, so no other node, leaf or caller can see the
// overwrite -- else a new one. Saves one activation-sized buffer per such node, which in the
// model's backward is what sets the peak (the norm + activation after each decoder conv).
// Must be called before anything else takes a handle on g (g.contiguous() does).
template <class B>
Tensor<B> grad_buffer_like(const Tensor<B>& g) {
  if (g.is_contiguous() && g.impl().use_count() == 1 && g.impl()->storage.use_count() == 1) return g;
  return Tensor<B>::empty(g.shape(), g.dtype());
}

// Add g into the .grad of leaf `t` (reusing g's buffer when nobody else holds it: neither
// its storage nor its TensorImpl, which a backward may hand to several inputs at once).
template <class B>
void accumulate_leaf(const Tensor<B>& t, const Tensor<B>& g) {
  auto& impl = *t.impl();
  if (!impl.grad) {
    const bool own = g.is_contiguous() && g.offset() == 0 && g.impl().use_count() == 1 &&
                     g.impl()->storage.use_count() == 1;
    if (own) {
      impl.grad = g.impl();
    } else {
      Tensor<B> c = Tensor<B>::empty(g.shape(), g.dtype());
      c.copy_(g);
      impl.grad = c.impl();
    }
    return;
  }
  Tensor<B> cur(impl.grad);
  if (!cur.is_contiguous()) {  // a strided gradient given to set_grad: add out of place, copy back
    cur.copy_(add_tensors(cur, g));
    return;
  }
  Tensor<B> gc = g.contiguous();
  dispatch_dtype(g.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Kernels<B>::axpy(T(1), gc.template data<T>(), cur.template data<T>(), cur.numel());
  });
}

}  // namespace detail

// Reverse sweep from `root` seeded with `grad_root` (same shape as root). With `release`,
// each node is released right after its backward ran: its closure (and with it the tensors
// it saved) and its input handles are dropped, and a later backward through it throws.
template <class B>
void run_backward(const Tensor<B>& root, const Tensor<B>& grad_root, bool release = false) {
  DISCO_CHECK(root.requires_grad(), "backward: the tensor of shape ", shape_str(root.shape()),
              " does not require a gradient (no parameter or input with requires_grad reaches it)");
  check_same("backward: grad_output", root, grad_root);
  NoGradGuard no_grad;
  using Impl = TensorImpl<B>;
  // Post-order DFS over tensors that have a grad_fn, iterative to survive deep graphs. The
  // order holds each tensor until its node ran: a released node drops its inputs, which may
  // be the last other handle on a tensor still waiting its turn.
  std::vector<std::shared_ptr<Impl>> order;
  std::unordered_set<Impl*> seen;
  std::vector<std::pair<std::shared_ptr<Impl>, std::size_t>> stack;
  if (root.impl()->grad_fn) {
    stack.push_back({root.impl(), 0});
    seen.insert(root.impl().get());
  }
  while (!stack.empty()) {
    auto& [impl, next] = stack.back();
    auto& inputs = impl->grad_fn->inputs;
    if (next < inputs.size()) {
      const std::shared_ptr<Impl>& child = inputs[next++].impl();
      if (child && child->grad_fn && child->requires_grad && !seen.count(child.get())) {
        seen.insert(child.get());
        stack.push_back({child, 0});
      }
    } else {
      order.push_back(std::move(impl));
      stack.pop_back();
    }
  }
  if (!root.impl()->grad_fn) {  // a leaf: its gradient is (a copy of) the seed, which the caller keeps
    detail::accumulate_leaf(root, grad_root.clone());
    return;
  }
  std::unordered_map<Impl*, Tensor<B>> grads;
  grads[root.impl().get()] = grad_root;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    std::shared_ptr<Impl> impl = std::move(*it);  // the order's handle ends with this iteration
    auto found = grads.find(impl.get());
    if (found == grads.end()) continue;
    Tensor<B> g = std::move(found->second);
    grads.erase(found);
    Node<B>& node = *impl->grad_fn;
    std::vector<Tensor<B>> gin(node.inputs.size());
    node.backward(g, gin);
    g = Tensor<B>();  // a backward may have handed g itself on (grad_buffer_like): let a leaf adopt it
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      const Tensor<B>& in = node.inputs[i];
      if (!gin[i].defined() || !in.defined() || !in.requires_grad()) continue;
      DISCO_CHECK(gin[i].shape() == in.shape(), "backward of ", node.name, ": gradient ", i, " has shape ",
                  shape_str(gin[i].shape()), ", expected ", shape_str(in.shape()));
      if (in.grad_fn()) {
        auto slot = grads.find(in.impl().get());
        if (slot == grads.end()) grads.emplace(in.impl().get(), gin[i]);
        else slot->second = detail::add_tensors(slot->second, gin[i]);
      } else {
        detail::accumulate_leaf(in, gin[i]);
      }
    }
    if (release) {
      const char* name = node.name;
      node.inputs.clear();
      node.inputs.shrink_to_fit();
      node.backward = [name](const Tensor<B>&, std::vector<Tensor<B>>&) {
        fail("backward: the graph through ", name, " was already released by backward_release(); "
             "compute the forward again for another backward");
      };
    }
  }
}

template <class B>
void Tensor<B>::backward() const {
  DISCO_CHECK(numel() == 1, "backward: called on a tensor of shape ", shape_str(shape()),
              "; expected a scalar (or pass grad_output)");
  run_backward(*this, Tensor<B>::full(shape(), 1.0, dtype()));
}

template <class B>
void Tensor<B>::backward(const Tensor<B>& grad_output) const {
  run_backward(*this, grad_output);
}

template <class B>
void Tensor<B>::backward_release() const {
  DISCO_CHECK(numel() == 1, "backward_release: called on a tensor of shape ", shape_str(shape()),
              "; it needs a single-element tensor");
  run_backward(*this, Tensor<B>::full(shape(), 1.0, dtype()), true);
}

}  // namespace disco
