#pragma once
// Element types. float32 is the working type; float64 exists for gradient checks.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "disco/core/error.hpp"

namespace disco {

enum class DType { F32, F64 };

inline std::size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 8; }
inline const char* dtype_name(DType t) { return t == DType::F32 ? "float32" : "float64"; }

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };

template <class T> struct type_tag { using type = T; };

// Call fn(type_tag<T>{}) with T the C++ type of `t`.
template <class Fn>
decltype(auto) dispatch_dtype(DType t, Fn&& fn) {
  if (t == DType::F32) return fn(type_tag<float>{});
  return fn(type_tag<double>{});
}

}  // namespace disco

// DISCO_TYPED(dtype, statements): run the statements with `T` bound to float or double.
#define DISCO_TYPED(dt, ...)                          \
  ::disco::dispatch_dtype((dt), [&](auto disco_tag_) { \
    using T = typename decltype(disco_tag_)::type;     \
    __VA_ARGS__;                                       \
  })
