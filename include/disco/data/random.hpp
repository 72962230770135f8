#pragma once
// Small integer random number generators for the data layer.
//
// Everything here is defined by integer arithmetic only, so a given seed gives
// the same numbers on every platform and standard library (std:: distributions
// do not promise that). Floats are made from the top 24 bits of a draw, which
// is exact in IEEE single precision. Float results are computed so that compilers
// contracting a * b + c into fused multiply-adds (FMA) still give the same bits.
#include <cstdint>
#include <utility>
#include <vector>

namespace disco {
namespace data {

// One step of the splitmix64 finaliser: a strong 64-bit integer mix.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Combine a seed with any number of integer keys into one well-mixed seed:
// hash_seed(seed, domain, epoch) differs for every distinct key tuple in practice.
inline uint64_t hash_seed(uint64_t seed) { return mix64(seed); }
template <class... Rest>
uint64_t hash_seed(uint64_t seed, uint64_t key, Rest... rest) {
  return hash_seed(mix64(seed ^ mix64(key + 0x632BE59BD9B4E019ull)), static_cast<uint64_t>(rest)...);
}

// PCG32 (XSH-RR variant, 64-bit state): the generator used by all data code.
class Pcg32 {
 public:
  explicit Pcg32(uint64_t seed = 0, uint64_t stream = 0x5851F42D4C957F2Dull) { reseed(seed, stream); }

  void reseed(uint64_t seed, uint64_t stream = 0x5851F42D4C957F2Dull) {
    state_ = 0;
    inc_ = (stream << 1u) | 1u;
    next_u32();
    state_ += mix64(seed);
    next_u32();
  }

  uint32_t next_u32() {
    uint64_t old = state_;
    state_ = old * 6364136223846793005ull + inc_;
    uint32_t xorshifted = static_cast<uint32_t>(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = static_cast<uint32_t>(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
  }

  uint64_t next_u64() {
    uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }

  // Uniform integer in [0, n) without modulo bias (Lemire's method). n must be > 0.
  uint32_t below(uint32_t n) {
    uint64_t m = static_cast<uint64_t>(next_u32()) * n;
    uint32_t low = static_cast<uint32_t>(m);
    if (low < n) {
      uint32_t threshold = static_cast<uint32_t>(-n) % n;
      while (low < threshold) {
        m = static_cast<uint64_t>(next_u32()) * n;
        low = static_cast<uint32_t>(m);
      }
    }
    return static_cast<uint32_t>(m >> 32);
  }

  // Uniform integer in [lo, hi] (inclusive).
  int range(int lo, int hi) { return lo + static_cast<int>(below(static_cast<uint32_t>(hi - lo + 1))); }

  // Uniform float in [0, 1): 24 random bits scaled exactly.
  float uniform() { return static_cast<float>(next_u32() >> 8) * (1.0f / 16777216.0f); }

  // Uniform float in [lo, hi). Computed in double, where (hi - lo) * u is exact for
  // ordinary ranges, so fused multiply-add contraction cannot change the result.
  float uniform(float lo, float hi) {
    const double u = static_cast<double>(next_u32() >> 8) * (1.0 / 16777216.0);
    return static_cast<float>(static_cast<double>(lo) + (static_cast<double>(hi) - static_cast<double>(lo)) * u);
  }

  // True with probability p.
  bool bernoulli(float p) { return uniform() < p; }

 private:
  uint64_t state_ = 0, inc_ = 1;
};

// A permutation of 0..n-1 by Fisher-Yates driven by Pcg32(seed): identical everywhere.
inline std::vector<uint32_t> permutation(uint32_t n, uint64_t seed) {
  std::vector<uint32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = i;
  Pcg32 rng(seed);
  for (uint32_t i = n; i > 1; --i) {
    uint32_t j = rng.below(i);
    std::swap(p[i - 1], p[j]);
  }
  return p;
}

}  // namespace data
}  // namespace disco
