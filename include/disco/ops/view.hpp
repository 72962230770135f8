#pragma once
// View and layout ops: reshape, narrow/slice, flatten, concat, split. Views share
// storage; their backward maps the gradient back to the source's shape.
#include <numeric>

#include "disco/ops/tensor_ops.hpp"

namespace disco {

// Resolve one -1 entry and check the element count.
inline Shape infer_shape(const char* op, const Shape& from, Shape to) {
  int64_t known = 1, unknown = -1;
  for (std::size_t i = 0; i < to.size(); ++i) {
    if (to[i] == -1) {
      DISCO_CHECK(unknown < 0, op, ": more than one -1 in target shape ", shape_str(to));
      unknown = int64_t(i);
    } else {
      DISCO_CHECK(to[i] >= 0, op, ": negative size in target shape ", shape_str(to));
      known *= to[i];
    }
  }
  const int64_t n = shape_numel(from);
  if (unknown >= 0) {
    DISCO_CHECK(known > 0 && n % known == 0, op, ": cannot view ", shape_str(from), " (", n,
                " elements) as ", shape_str(to));
    to[unknown] = n / known;
  }
  DISCO_CHECK(shape_numel(to) == n, op, ": cannot view ", shape_str(from), " (", n, " elements) as ",
              shape_str(to), " (", shape_numel(to), " elements)");
  return to;
}

template <class B>
Tensor<B> Tensor<B>::reshape(const Shape& target) const {
  const Shape to = infer_shape("reshape", shape(), target);
  Tensor<B> src = contiguous();
  Tensor<B> out = src.as_strided(to, contiguous_strides(to), src.offset());
  const Shape from = shape();
  return record<B>(out, "reshape", {src}, [from](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
    gi[0] = g.reshape(from);
  });
}

template <class B>
Tensor<B> Tensor<B>::flatten(int64_t start_dim) const {
  const int d = normalize_dim("flatten", start_dim, shape().size());
  Shape to(shape().begin(), shape().begin() + d);
  to.push_back(1);  // the product of the flattened dims (also right when one of them is 0)
  for (std::size_t i = std::size_t(d); i < shape().size(); ++i) to.back() *= shape()[i];
  return reshape(to);
}

template <class B>
Tensor<B> Tensor<B>::narrow(int64_t dim, int64_t start, int64_t length) const {
  const int d = normalize_dim("narrow", dim, shape().size());
  DISCO_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: range [", start, ", ",
              start + length, ") out of bounds for dim ", d, " of shape ", shape_str(shape()));
  Shape sh = shape();
  sh[d] = length;
  Tensor<B> out = as_strided(sh, strides(), offset() + start * strides()[d]);
  const Shape full_shape = shape();
  const DType dt = dtype();
  return record<B>(out, "narrow", {*this},
                   [full_shape, dt, d, start, length](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     Tensor<B> z = Tensor<B>::zeros(full_shape, dt);
                     z.narrow(d, start, length).copy_(g);
                     gi[0] = z;
                   });
}

// Join tensors along `dim`; all other sizes and the dtype must agree.
template <class B>
Tensor<B> concat(const std::vector<Tensor<B>>& parts, int64_t dim) {
  DISCO_CHECK(!parts.empty(), "concat: no tensors given");
  const Tensor<B>& first = parts[0];
  const int d = normalize_dim("concat", dim, first.shape().size());
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Tensor<B>& t = parts[i];
    DISCO_CHECK(t.dim() == first.dim(), "concat: tensor ", i, " has shape ", shape_str(t.shape()),
                ", expected rank ", first.dim(), " like ", shape_str(first.shape()));
    DISCO_CHECK(t.dtype() == first.dtype(), "concat: tensor ", i, " is ", dtype_name(t.dtype()), ", expected ",
                dtype_name(first.dtype()));
    for (int64_t k = 0; k < first.dim(); ++k)
      DISCO_CHECK(k == d || t.shape()[k] == first.shape()[k], "concat along dim ", d, ": tensor ", i,
                  " has shape ", shape_str(t.shape()), ", expected ", shape_str(first.shape()),
                  " in every other dim");
    out_shape[d] += t.shape()[d];
  }
  Tensor<B> out = Tensor<B>::empty(out_shape, first.dtype());
  std::vector<int64_t> sizes;
  int64_t at = 0;
  for (const auto& t : parts) {
    out.detach().narrow(d, at, t.shape()[d]).copy_(t);
    sizes.push_back(t.shape()[d]);
    at += t.shape()[d];
  }
  return record<B>(out, "concat", parts, [sizes, d](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
    int64_t off = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      gi[i] = g.narrow(d, off, sizes[i]).contiguous();
      off += sizes[i];
    }
  });
}

// Split along `dim` into pieces of the given sizes (views).
template <class B>
std::vector<Tensor<B>> split(const Tensor<B>& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const int d = normalize_dim("split", dim, x.shape().size());
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
  DISCO_CHECK(total == x.shape()[d], "split: sizes sum to ", total, " but dim ", d, " of shape ",
              shape_str(x.shape()), " is ", x.shape()[d]);
  std::vector<Tensor<B>> out;
  int64_t at = 0;
  for (auto s : sizes) {
    out.push_back(x.narrow(d, at, s));
    at += s;
  }
  return out;
}

}  // namespace disco
