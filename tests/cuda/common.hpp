#pragma once
// Helpers of the CUDA tests: fresh random data (seed printed, DISCO_TEST_SEED to replay),
// upload / download, NaN poisoning (cudaMemset 0xFF, independent of disco's kernels) and the
// relative L2 error against double-precision references.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "disco/backend/cuda/runtime.hpp"
#include "disco/backend/cuda/types.hpp"

namespace dtest {

using disco::cuda::DeviceArray;

inline uint32_t seed() {
  static const uint32_t s = [] {
    if (const char* e = std::getenv("DISCO_TEST_SEED")) return uint32_t(std::strtoul(e, nullptr, 10));
    return uint32_t(std::random_device{}());
  }();
  return s;
}
inline std::mt19937& rng() {
  static std::mt19937 r(seed());
  return r;
}

inline std::vector<float> randu(size_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng());
  return v;
}
inline std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

inline DeviceArray<float> upload(const std::vector<float>& h) {
  DeviceArray<float> d(h.size());
  disco::cuda::memcpy_h2d(d.data(), h.data(), h.size() * sizeof(float));
  return d;
}
inline std::vector<float> download(const float* d, size_t n) {
  std::vector<float> h(n);
  disco::cuda::memcpy_d2h(h.data(), d, n * sizeof(float));
  return h;
}
inline std::vector<float> download(const DeviceArray<float>& d) { return download(d.data(), d.size()); }
inline float download_scalar(const float* d) {
  float h = 0.f;
  disco::cuda::memcpy_d2h(&h, d, sizeof(float));
  return h;
}
// Fill with NaN (all bits set) so that elements a kernel fails to write are caught.
inline void poison(float* d, size_t n) { disco::cuda::memset(d, 0xFF, n * sizeof(float)); }
inline void poison(DeviceArray<float>& d) { poison(d.data(), d.size()); }
inline DeviceArray<float> poisoned(size_t n) {
  DeviceArray<float> d(n);
  poison(d);
  return d;
}

// sqrt(sum (got - want)^2 / sum want^2); +inf when got has a non-finite value or sizes differ.
inline double rel_l2(const std::vector<float>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double d = double(got[i]) - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}
inline double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  return rel_l2(got, to_double(want));
}

inline double tolerance(disco::cuda::MathMode m) { return m == disco::cuda::MathMode::FP32 ? 1e-5 : 5e-3; }

}  // namespace dtest
