#pragma once
// disco::Error and the checking macros used everywhere in the library.
// Library code never aborts or exits: every failure is a thrown disco::Error
// whose message names the operation, the shapes and what was expected.
#include <sstream>
#include <stdexcept>
#include <string>

namespace disco {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void stream_all(std::ostringstream&) {}
template <class T, class... Rest>
void stream_all(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  stream_all(os, rest...);
}
}  // namespace detail

// Build a message from any streamable pieces: disco::str("conv2d: got ", shape).
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  detail::stream_all(os, args...);
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(str(args...));
}

}  // namespace disco

// DISCO_CHECK(cond, pieces...): throw disco::Error built from the pieces when cond is false.
#define DISCO_CHECK(cond, ...)                 \
  do {                                         \
    if (!(cond)) ::disco::fail(__VA_ARGS__);   \
  } while (0)
