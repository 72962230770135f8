#pragma once
// Tensor<B>: an N-d float32/float64 array on backend B with shared storage, views
// and the autograd hooks. The op functions that build graphs live in ops/; the
// backward engine in autograd/.
#include <algorithm>
#include <functional>
#include <iomanip>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "disco/core/backend.hpp"
#include "disco/core/dtype.hpp"
#include "disco/core/error.hpp"
#include "disco/core/random.hpp"
#include "disco/core/shape.hpp"

namespace disco {

template <class B> class Tensor;
template <class B> struct TensorImpl;

// One recorded operation of the tape: the inputs it read and how to map the gradient
// of its output to gradients of those inputs. `backward` fills `grads_in` (one slot per
// input; an undefined tensor means "no gradient").
template <class B>
struct Node {
  const char* name = "op";
  std::vector<Tensor<B>> inputs;
  std::function<void(const Tensor<B>& grad_out, std::vector<Tensor<B>>& grads_in)> backward;
};

template <class B>
struct TensorImpl {
  std::shared_ptr<void> storage;  // the allocation; views share it
  int64_t offset = 0;             // in elements
  Shape shape, strides;
  DType dtype = DType::F32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl<B>> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node<B>> grad_fn;     // the op that made a non-leaf
};

// Gradient recording on/off for this thread (see NoGradGuard).
inline bool& grad_mode_flag() {
  thread_local bool enabled = true;
  return enabled;
}
inline bool grad_enabled() { return grad_mode_flag(); }

// RAII scope without gradient recording: `{ disco::NoGradGuard g; ... }`.
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_mode_flag()) { grad_mode_flag() = false; }
  ~NoGradGuard() { grad_mode_flag() = prev_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

template <class B>
class Tensor {
 public:
  using Impl = TensorImpl<B>;
  Tensor() = default;
  explicit Tensor(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

  // ---- factories ---------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::F32) {
    for (auto d : shape)
      DISCO_CHECK(d >= 0, "Tensor::empty: negative size in shape ", shape_str(shape));
    auto impl = std::make_shared<Impl>();
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    impl->dtype = dtype;
    impl->storage = Device<B>::allocate(std::max<int64_t>(shape_numel(shape), 1) * dtype_size(dtype));
    return Tensor(impl);
  }
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32) {
    Tensor t = empty(shape, dtype);
    t.fill_(value);
    return t;
  }
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32) { return full(shape, 0.0, dtype); }
  static Tensor ones(const Shape& shape, DType dtype = DType::F32) { return full(shape, 1.0, dtype); }
  static Tensor scalar(double v, DType dtype = DType::F32) { return full({}, v, dtype); }
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
    DISCO_CHECK(int64_t(values.size()) == shape_numel(shape), "Tensor::from_vector: ", values.size(),
                " values do not fill shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
    Tensor t = empty(shape, dtype_of<T>::value);
    Device<B>::copy_from_host(t.raw_data(), values.data(), values.size() * sizeof(T));
    return t;
  }
  // Values drawn on the host by disco::Generator, so a seed means the same numbers
  // on every backend and platform.
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32, double mean = 0,
                      double stddev = 1) {
    return dispatch_dtype(dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      std::vector<T> v(shape_numel(shape));
      for (auto& x : v) x = static_cast<T>(mean + stddev * gen.normal());
      return from_vector(v, shape);
    });
  }
  static Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::F32, double lo = 0,
                     double hi = 1) {
    return dispatch_dtype(dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      std::vector<T> v(shape_numel(shape));
      for (auto& x : v) x = static_cast<T>(gen.uniform(lo, hi));
      return from_vector(v, shape);
    });
  }

  // ---- metadata ----------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return checked().shape; }
  const Shape& strides() const { return checked().strides; }
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const { return shape()[normalize_dim("Tensor::size", d, shape().size())]; }
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return checked().dtype; }
  int64_t offset() const { return checked().offset; }
  bool is_contiguous() const { return strides() == contiguous_strides(shape()) || numel() <= 1; }
  const std::shared_ptr<Impl>& impl() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- raw data ----------------------------------------------------------------------
  // Pointer to the first element (a device pointer on device backends).
  void* raw_data() const {
    return static_cast<char*>(checked().storage.get()) + impl_->offset * dtype_size(impl_->dtype);
  }
  template <class T>
  T* data() const {
    DISCO_CHECK(dtype() == dtype_of<T>::value, "Tensor::data: tensor of shape ", shape_str(shape()),
                " holds ", dtype_name(dtype()), ", requested ", dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw_data());
  }
  // Contiguous copy on the host.
  template <class T>
  std::vector<T> to_vector() const {
    Tensor c = contiguous();
    return dispatch_dtype(c.dtype(), [&](auto tag) {
      using S = typename decltype(tag)::type;
      std::vector<S> tmp(c.numel());
      Device<B>::copy_to_host(tmp.data(), c.raw_data(), tmp.size() * sizeof(S));
      return std::vector<T>(tmp.begin(), tmp.end());
    });
  }
  double item() const {
    DISCO_CHECK(numel() == 1, "Tensor::item: expected one element, got shape ", shape_str(shape()));
    return to_vector<double>()[0];
  }
  // Element at a multi-index (bounds checked).
  double at(const std::vector<int64_t>& idx) const {
    DISCO_CHECK(idx.size() == shape().size(), "Tensor::at: ", idx.size(), " indices for a tensor of shape ",
                shape_str(shape()));
    int64_t off = 0;
    for (std::size_t i = 0; i < idx.size(); ++i) {
      DISCO_CHECK(idx[i] >= 0 && idx[i] < shape()[i], "Tensor::at: index ", idx[i], " out of range for dim ",
                  i, " of shape ", shape_str(shape()));
      off += idx[i] * strides()[i];
    }
    return dispatch_dtype(dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      T v;
      Device<B>::copy_to_host(&v, static_cast<const T*>(raw_data()) + off, sizeof(T));
      return double(v);
    });
  }

  // ---- in-place, no autograd ------------------------------------------------------------
  Tensor& fill_(double v);                 // backend fill
  Tensor& copy_(const Tensor& src);        // same shape, any strides
  Tensor& zero_() { return fill_(0.0); }

  // Contiguous version (self if already contiguous). Records autograd.
  Tensor contiguous() const;
  Tensor clone() const;  // always a fresh copy; records autograd

  // Views (record autograd; see ops/view.hpp).
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const { return reshape(shape); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end) const { return narrow(dim, start, end - start); }
  Tensor flatten(int64_t start_dim = 1) const;

  // A view of the same storage with new shape/strides/offset; no autograd, no checks
  // beyond bounds. Building block of the view ops.
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
    auto impl = std::make_shared<Impl>();
    impl->storage = checked().storage;
    impl->shape = shape;
    impl->strides = strides;
    impl->offset = offset;
    impl->dtype = impl_->dtype;
    return Tensor(impl);
  }

  // ---- autograd --------------------------------------------------------------------------
  bool requires_grad() const { return checked().requires_grad; }
  // Mark a leaf as a parameter / input whose gradient is wanted.
  Tensor& set_requires_grad(bool r = true) {
    DISCO_CHECK(!checked().grad_fn || r, "Tensor::set_requires_grad(false) on a non-leaf; use detach()");
    impl_->requires_grad = r;
    return *this;
  }
  Tensor grad() const { return Tensor(checked().grad); }
  // Replace the accumulated gradient (undefined clears it); it must match shape and dtype.
  void set_grad(const Tensor& g) {
    DISCO_CHECK(!g.defined() || (g.shape() == shape() && g.dtype() == dtype()), "Tensor::set_grad: gradient of shape ",
                shape_str(g.shape()), " (", dtype_name(g.dtype()), ") for a tensor of shape ", shape_str(shape()), " (",
                dtype_name(dtype()), ")");
    checked().grad = g.impl_;
  }
  void zero_grad() { checked().grad.reset(); }
  const std::shared_ptr<Node<B>>& grad_fn() const { return checked().grad_fn; }
  bool is_leaf() const { return !checked().grad_fn; }
  // Same storage, cut from the graph.
  Tensor detach() const { return as_strided(shape(), strides(), offset()); }
  // Run reverse-mode differentiation from this scalar (or with an explicit grad_output).
  void backward() const;
  void backward(const Tensor& grad_output) const;
  // backward() that frees the graph as it goes (PyTorch's default, retain_graph=False): each
  // node's saved tensors and input references are dropped right after its backward ran, so
  // activations are released during the sweep instead of when the last handle on the graph
  // dies. A later backward through a released node throws. The training step uses it.
  void backward_release() const;

 private:
  Impl& checked() const {
    DISCO_CHECK(impl_ != nullptr, "Tensor: use of an undefined (empty) tensor");
    return *impl_;
  }
  std::shared_ptr<Impl> impl_;
};

template <class B>
std::ostream& operator<<(std::ostream& os, const Tensor<B>& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor<" << B::name << ">(" << dtype_name(t.dtype()) << ", shape " << shape_str(t.shape());
  auto v = t.template to_vector<double>();
  os << ", values [";
  const auto old_precision = os.precision(6);  // restored below: the caller's stream keeps its own
  const std::size_t shown = std::min<std::size_t>(v.size(), 16);
  for (std::size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << v[i];
  if (shown < v.size()) os << ", ... (" << v.size() << " in all)";
  os.precision(old_precision);
  return os << "])";
}

// Error helper: check that two tensors have the same shape and dtype.
template <class B>
void check_same(const char* op, const Tensor<B>& a, const Tensor<B>& b) {
  DISCO_CHECK(a.shape() == b.shape(), op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
              " differ (expected equal shapes)");
  DISCO_CHECK(a.dtype() == b.dtype(), op, ": dtypes ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()),
              " differ (expected equal dtypes)");
}

}  // namespace disco
