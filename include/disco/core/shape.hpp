#pragma once
// Shapes and strides: small vectors of int64 with printing and checking helpers.
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "disco/core/error.hpp"

namespace disco {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

inline std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

// Row-major (C-contiguous) strides of a shape, in elements.
inline Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// Normalise a possibly negative dim index against rank; throws naming the op.
inline int normalize_dim(const char* op, int64_t dim, std::size_t rank) {
  const int64_t r = static_cast<int64_t>(rank);
  DISCO_CHECK(dim >= -r && dim < r, op, ": dim ", dim, " out of range for a tensor of rank ", rank,
              " (expected ", -r, " <= dim < ", r, ")");
  return static_cast<int>(dim < 0 ? dim + r : dim);
}

}  // namespace disco
