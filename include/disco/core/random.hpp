#pragma once
// A small, platform-independent random generator. std:: distributions are
// implementation-defined, so disco draws its own: PCG32 (O'Neill) for integers,
// 24/53-bit mantissa fills for uniforms and Box-Muller for normals. The same seed
// gives the same numbers on every platform (normals to within libm's log/cos).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>

#include "disco/core/error.hpp"

namespace disco {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x853c49e6748fea9bULL, uint64_t stream = 0xda3e39cb94b95bdbULL) {
    seed_(seed, stream);
  }
  void seed(uint64_t s, uint64_t stream = 0xda3e39cb94b95bdbULL) { seed_(s, stream); }

  uint32_t next_u32() {
    uint64_t old = state_;
    state_ = old * 6364136223846793005ULL + inc_;
    uint32_t xorshifted = static_cast<uint32_t>(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = static_cast<uint32_t>(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
  }
  uint64_t next_u64() { return (uint64_t(next_u32()) << 32) | next_u32(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return n ? next_u64() % n : 0; }
  // Standard normal by Box-Muller; the second value of each pair is kept.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double t = 6.283185307179586476925 * u2;
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }

  // The full state as text and back (checkpoints store it).
  std::string state_string() const {
    return std::to_string(state_) + " " + std::to_string(inc_) + " " + (has_spare_ ? "1 " : "0 ") +
           hex_double(spare_);
  }
  void set_state_string(const std::string& s);

 private:
  void seed_(uint64_t seed, uint64_t stream) {
    state_ = 0;
    inc_ = (stream << 1u) | 1u;
    next_u32();
    state_ += seed;
    next_u32();
    has_spare_ = false;
    spare_ = 0;
  }
  static std::string hex_double(double d) {
    uint64_t bits;
    static_assert(sizeof bits == sizeof d, "double is 64 bit");
    std::memcpy(&bits, &d, sizeof d);
    return std::to_string(bits);
  }
  uint64_t state_ = 0, inc_ = 1;
  bool has_spare_ = false;
  double spare_ = 0;
};

}  // namespace disco

inline void disco::Generator::set_state_string(const std::string& s) {
  std::istringstream in(s);
  uint64_t st = 0, inc = 0, bits = 0;
  int spare = 0;
  in >> st >> inc >> spare >> bits;
  DISCO_CHECK(!in.fail() && (inc & 1u), "Generator: malformed state string '", s,
              "' (expected four integers: state inc has_spare spare_bits)");
  state_ = st;
  inc_ = inc;
  has_spare_ = spare != 0;
  std::memcpy(&spare_, &bits, sizeof bits);
}
