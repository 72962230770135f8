#pragma once
// Reading and writing the safetensors format (https://github.com/huggingface/safetensors),
// independent of any tensor type: tensors are RawTensor records (dtype name, shape, bytes).
//
// File layout:
//   [8 bytes] N, little-endian u64
//   [N bytes] JSON header, UTF-8, right-padded with spaces to a multiple of 8 by writers:
//             {"__metadata__": {"key": "value", ...},            (optional, str -> str)
//              "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   [rest]    byte buffer; data_offsets are relative to its start, data is little-endian,
//             row-major (C order). A 0-d tensor has shape [] and one element.
//
// Writing reproduces the reference (Rust/Python) writer byte for byte: tensors are laid out
// by descending dtype rank (8-byte types first, so every tensor is naturally aligned) then
// by name, the header is compact JSON ("__metadata__" first, only when non-empty, keys
// sorted), padded with spaces. The file is written atomically (see atomic_file.hpp).
//
// Reading validates strictly and throws disco::Error naming the file and the problem.
// It is slightly more lenient than the reference reader in one respect: unused bytes
// between or after tensors are allowed (the reference requires the tensors to tile the
// buffer exactly); overlapping tensors are rejected.
//
// Supported dtypes: BOOL U8 I8 F8_E5M2 F8_E4M3 F8_E8M0 I16 U16 F16 BF16 I32 U32 F32 C64
// F64 I64 U64 (sub-byte F4/F6 types are rejected as unknown). Numeric conversion helpers
// exist for the float types F16/BF16/F32/F64 and the integer types.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "disco/core/error.hpp"
#include "disco/io/atomic_file.hpp"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "disco/io/safetensors.hpp assumes a little-endian host");
#endif

namespace disco {

// Largest header accepted, as in the reference implementation.
constexpr uint64_t kSafetensorsMaxHeaderSize = 100000000;

// ---- dtypes ---------------------------------------------------------------------------

// Size in bytes of one element of a safetensors dtype, or 0 when the name is unknown.
inline std::size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
      {"F32", 4},  {"C64", 8}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

inline bool safetensors_dtype_known(const std::string& dtype) { return safetensors_dtype_size(dtype) != 0; }

namespace detail {

// Rank used by the reference writer to order tensors (its Dtype enum order, which
// increases with alignment); larger ranks are written first.
inline int safetensors_dtype_rank(const std::string& dtype) {
  static const char* const order[] = {"BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                      "I16",  "U16", "F16", "BF16",    "I32",     "U32",
                                      "F32",  "C64", "F64", "I64",     "U64"};
  for (int i = 0; i < int(sizeof(order) / sizeof(order[0])); ++i)
    if (dtype == order[i]) return i;
  return -1;
}

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Number of elements of a shape; false on a negative extent or overflow past int64.
inline bool checked_numel(const std::vector<int64_t>& shape, uint64_t& out) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  out = n;
  return true;
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float bf16_to_float(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <class T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace detail

// ---- RawTensor --------------------------------------------------------------------------

// One tensor as stored in a safetensors file: dtype name, shape (empty for a 0-d scalar)
// and the little-endian row-major element bytes.
struct RawTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;

  // Product of the shape (1 for a 0-d tensor); throws on negative extents or overflow.
  int64_t numel() const {
    uint64_t n = 0;
    DISCO_CHECK(detail::checked_numel(shape, n), "RawTensor: invalid shape ", detail::shape_str(shape),
                " (negative extent or element count overflow)");
    return static_cast<int64_t>(n);
  }

  // Throw unless dtype is known, the shape valid and data.size() == numel * dtype size.
  // `name` is used in the message.
  void validate(const std::string& name = "tensor") const {
    const std::size_t es = safetensors_dtype_size(dtype);
    DISCO_CHECK(es != 0, "safetensors tensor '", name, "': unknown dtype '", dtype, "'");
    uint64_t n = 0;
    DISCO_CHECK(detail::checked_numel(shape, n), "safetensors tensor '", name, "': invalid shape ",
                detail::shape_str(shape), " (negative extent or element count overflow)");
    uint64_t bytes = 0;
    DISCO_CHECK(!__builtin_mul_overflow(n, uint64_t(es), &bytes) && bytes == data.size(),
                "safetensors tensor '", name, "': ", data.size(), " bytes of data but dtype ", dtype,
                " and shape ", detail::shape_str(shape), " need ", n, " elements x ", es, " bytes");
  }

  // Throw unless the shape equals `expected` (message names the tensor and both shapes).
  void expect_shape(const std::vector<int64_t>& expected, const std::string& name = "tensor") const {
    DISCO_CHECK(shape == expected, "safetensors tensor '", name, "': shape ", detail::shape_str(shape),
                " but expected ", detail::shape_str(expected));
  }

  // Build from typed values; values.size() must equal the product of shape.
  template <class T>
  static RawTensor from_values(const std::string& dtype, const std::vector<T>& values,
                               std::vector<int64_t> shape) {
    DISCO_CHECK(safetensors_dtype_size(dtype) == sizeof(T), "RawTensor: dtype '", dtype,
                "' does not hold ", sizeof(T), "-byte elements");
    RawTensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    uint64_t n = 0;
    DISCO_CHECK(detail::checked_numel(t.shape, n), "RawTensor: invalid shape ", detail::shape_str(t.shape));
    DISCO_CHECK(n == values.size(), "RawTensor: ", values.size(), " values given for shape ",
                detail::shape_str(t.shape), " (", n, " elements)");
    t.data.resize(values.size() * sizeof(T));
    if (!values.empty()) std::memcpy(t.data.data(), values.data(), t.data.size());
    return t;
  }
  static RawTensor from_f32(const std::vector<float>& v, std::vector<int64_t> shape) {
    return from_values("F32", v, std::move(shape));
  }
  static RawTensor from_f64(const std::vector<double>& v, std::vector<int64_t> shape) {
    return from_values("F64", v, std::move(shape));
  }
  static RawTensor from_i64(const std::vector<int64_t>& v, std::vector<int64_t> shape) {
    return from_values("I64", v, std::move(shape));
  }
  static RawTensor from_i32(const std::vector<int32_t>& v, std::vector<int64_t> shape) {
    return from_values("I32", v, std::move(shape));
  }
  static RawTensor from_u8(const std::vector<uint8_t>& v, std::vector<int64_t> shape) {
    return from_values("U8", v, std::move(shape));
  }

  // Read back as floats: accepts F32, F64 (narrowed), F16 and BF16 (widened).
  std::vector<float> to_f32(const std::string& name = "tensor") const { return to_floating<float>(name); }
  // Read back as doubles: accepts F64, F32, F16, BF16 (all exact).
  std::vector<double> to_f64(const std::string& name = "tensor") const { return to_floating<double>(name); }
  // Read back as int64: accepts BOOL, I8, I16, I32, I64, U8, U16, U32, U64 (range-checked).
  std::vector<int64_t> to_i64(const std::string& name = "tensor") const {
    validate(name);
    const std::size_t n = data.size() / safetensors_dtype_size(dtype);
    std::vector<int64_t> out(n);
    const uint8_t* p = data.data();
    if (dtype == "I64") {
      if (n) std::memcpy(out.data(), p, n * 8);
    } else if (dtype == "I32") {
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::load_le<int32_t>(p + 4 * i);
    } else if (dtype == "I16") {
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::load_le<int16_t>(p + 2 * i);
    } else if (dtype == "I8") {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(p[i]);
    } else if (dtype == "U8" || dtype == "BOOL") {
      for (std::size_t i = 0; i < n; ++i) out[i] = p[i];
    } else if (dtype == "U16") {
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::load_le<uint16_t>(p + 2 * i);
    } else if (dtype == "U32") {
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::load_le<uint32_t>(p + 4 * i);
    } else if (dtype == "U64") {
      for (std::size_t i = 0; i < n; ++i) {
        const uint64_t v = detail::load_le<uint64_t>(p + 8 * i);
        DISCO_CHECK(v <= uint64_t(std::numeric_limits<int64_t>::max()), "safetensors tensor '", name,
                    "': U64 element ", i, " = ", v, " does not fit in int64");
        out[i] = static_cast<int64_t>(v);
      }
    } else {
      fail("safetensors tensor '", name, "': dtype ", dtype,
           " cannot be read as int64 (expected an integer dtype: I8/I16/I32/I64/U8/U16/U32/U64/BOOL)");
    }
    return out;
  }

 private:
  template <class T>
  std::vector<T> to_floating(const std::string& name) const {
    validate(name);
    const std::size_t n = data.size() / safetensors_dtype_size(dtype);
    std::vector<T> out(n);
    const uint8_t* p = data.data();
    if (dtype == "F32") {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(detail::load_le<float>(p + 4 * i));
    } else if (dtype == "F64") {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(detail::load_le<double>(p + 8 * i));
    } else if (dtype == "F16") {
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::half_to_float(detail::load_le<uint16_t>(p + 2 * i));
    } else if (dtype == "BF16") {
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::bf16_to_float(detail::load_le<uint16_t>(p + 2 * i));
    } else {
      fail("safetensors tensor '", name, "': dtype ", dtype, " cannot be read as ",
           sizeof(T) == 4 ? "float" : "double", " (expected a floating dtype: F16/BF16/F32/F64)");
    }
    return out;
  }
};

// ---- files ------------------------------------------------------------------------------

// A whole safetensors file in memory. Tensors are kept sorted by name.
struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, RawTensor> tensors;
  std::string source;  // path it was read from (used in messages); empty when built in memory

  bool has(const std::string& name) const { return tensors.count(name) != 0; }

  // The tensor called `name`; throws naming the tensor, the file and a few available names.
  const RawTensor& at(const std::string& name) const {
    const auto it = tensors.find(name);
    if (it != tensors.end()) return it->second;
    std::string avail;
    int shown = 0;
    for (const auto& kv : tensors) {
      if (shown == 8) {
        avail += ", ...";
        break;
      }
      avail += (shown++ ? ", " : "") + kv.first;
    }
    fail("safetensors", source.empty() ? std::string() : " file '" + source + "'", ": no tensor named '",
         name, "' (", tensors.size(), " tensors: ", avail.empty() ? "none" : avail, ")");
  }
  RawTensor& at(const std::string& name) {
    return const_cast<RawTensor&>(static_cast<const SafetensorsFile&>(*this).at(name));
  }
};

// Where one tensor lives in a file (offsets relative to the start of the data buffer).
struct SafetensorsTensorInfo {
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
  int64_t numel() const {
    uint64_t n = 1;
    detail::checked_numel(shape, n);
    return static_cast<int64_t>(n);
  }
};

// The parsed and validated header of a file, without the tensor data.
struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  std::map<std::string, SafetensorsTensorInfo> tensors;
  uint64_t header_size = 0;  // N, the JSON length including padding
  uint64_t data_start = 0;   // 8 + N: file offset of the data buffer
  uint64_t file_size = 0;
};

namespace detail {

// Validate a header JSON text against a data buffer of `buffer_size` bytes.
// `where` names the file in messages ("safetensors file 'x.safetensors'").
inline SafetensorsHeader parse_safetensors_header_json(const char* text, std::size_t size,
                                                       uint64_t buffer_size, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, text + size);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": header is not valid JSON: ", e.what());
  }
  DISCO_CHECK(j.is_object(), where, ": header must be a JSON object, got ", j.type_name());

  SafetensorsHeader h;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& v = it.value();
    if (key == "__metadata__") {
      DISCO_CHECK(v.is_object(), where, ": \"__metadata__\" must be an object of strings, got ", v.type_name());
      for (auto m = v.begin(); m != v.end(); ++m) {
        DISCO_CHECK(m.value().is_string(), where, ": \"__metadata__\" entry '", m.key(),
                    "' must be a string, got ", m.value().type_name());
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string t = where + ": tensor '" + key + "'";
    DISCO_CHECK(v.is_object(), t, ": entry must be an object, got ", v.type_name());
    SafetensorsTensorInfo info;
    // dtype
    const auto d = v.find("dtype");
    DISCO_CHECK(d != v.end(), t, ": missing \"dtype\"");
    DISCO_CHECK(d->is_string(), t, ": \"dtype\" must be a string, got ", d->type_name());
    info.dtype = d->get<std::string>();
    const std::size_t es = safetensors_dtype_size(info.dtype);
    DISCO_CHECK(es != 0, t, ": unknown dtype '", info.dtype, "'");
    // shape
    const auto s = v.find("shape");
    DISCO_CHECK(s != v.end(), t, ": missing \"shape\"");
    DISCO_CHECK(s->is_array(), t, ": \"shape\" must be an array, got ", s->type_name());
    for (const auto& e : *s) {
      DISCO_CHECK(e.is_number_unsigned() && e.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()),
                  t, ": \"shape\" entries must be non-negative integers, got ", s->dump());
      info.shape.push_back(static_cast<int64_t>(e.get<uint64_t>()));
    }
    // data_offsets
    const auto o = v.find("data_offsets");
    DISCO_CHECK(o != v.end(), t, ": missing \"data_offsets\"");
    DISCO_CHECK(o->is_array() && o->size() == 2 && (*o)[0].is_number_unsigned() && (*o)[1].is_number_unsigned(),
                t, ": \"data_offsets\" must be [begin, end] with non-negative integers, got ", o->dump());
    info.begin = (*o)[0].get<uint64_t>();
    info.end = (*o)[1].get<uint64_t>();
    DISCO_CHECK(info.end >= info.begin, t, ": data_offsets [", info.begin, ", ", info.end, "] end before begin");
    DISCO_CHECK(info.end <= buffer_size, t, ": data_offsets [", info.begin, ", ", info.end,
                "] out of range of the ", buffer_size, "-byte data buffer (file truncated?)");
    uint64_t n = 0, bytes = 0;
    DISCO_CHECK(checked_numel(info.shape, n) && !__builtin_mul_overflow(n, uint64_t(es), &bytes), t,
                ": shape ", shape_str(info.shape), " overflows");
    DISCO_CHECK(bytes == info.end - info.begin, t, ": data_offsets [", info.begin, ", ", info.end, "] hold ",
                info.end - info.begin, " bytes but dtype ", info.dtype, " and shape ", shape_str(info.shape),
                " need ", bytes);
    h.tensors.emplace(key, std::move(info));
  }
  // Overlaps: sort the non-empty ranges and compare neighbours.
  std::vector<std::pair<const std::string*, const SafetensorsTensorInfo*>> ranges;
  for (const auto& kv : h.tensors)
    if (kv.second.end > kv.second.begin) ranges.emplace_back(&kv.first, &kv.second);
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.second->begin, a.second->end) < std::make_pair(b.second->begin, b.second->end);
  });
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    const auto& a = ranges[i - 1];
    const auto& b = ranges[i];
    DISCO_CHECK(b.second->begin >= a.second->end, where, ": tensors '", *a.first, "' [", a.second->begin,
                ", ", a.second->end, ") and '", *b.first, "' [", b.second->begin, ", ", b.second->end,
                ") overlap");
  }
  return h;
}

struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

// pread exactly `size` bytes at `offset` or throw.
inline void pread_all(int fd, void* dst, std::size_t size, uint64_t offset, const std::string& where) {
  auto* p = static_cast<uint8_t*>(dst);
  while (size > 0) {
    const ssize_t r = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      fail(where, ": read failed at offset ", offset, ": ", errno_message(err));
    }
    DISCO_CHECK(r != 0, where, ": unexpected end of file at offset ", offset);
    p += r;
    size -= static_cast<std::size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

inline SafetensorsHeader read_header_fd(int fd, const std::string& where) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    fail(where, ": stat failed: ", errno_message(err));
  }
  DISCO_CHECK(S_ISREG(st.st_mode), where, ": not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  DISCO_CHECK(file_size >= 8, where, ": file is ", file_size,
              " bytes, shorter than the 8-byte header length prefix (not a safetensors file)");
  uint8_t len_bytes[8];
  pread_all(fd, len_bytes, 8, 0, where);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  DISCO_CHECK(n <= kSafetensorsMaxHeaderSize, where, ": header length ", n, " exceeds the ",
              kSafetensorsMaxHeaderSize, "-byte limit (corrupt or not a safetensors file)");
  DISCO_CHECK(n <= file_size - 8, where, ": header length ", n, " exceeds the ", file_size - 8,
              " bytes after the length prefix (truncated or not a safetensors file)");
  std::string text(static_cast<std::size_t>(n), '\0');
  pread_all(fd, &text[0], text.size(), 8, where);
  SafetensorsHeader h = parse_safetensors_header_json(text.data(), text.size(), file_size - 8 - n, where);
  h.header_size = n;
  h.data_start = 8 + n;
  h.file_size = file_size;
  return h;
}

inline int open_for_read(const std::string& path, const std::string& where) {
  DISCO_CHECK(!path.empty(), "safetensors: empty file path");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(where, ": cannot open: ", errno_message(err));
  }
  return fd;
}

inline std::string where_file(const std::string& path) { return "safetensors file '" + path + "'"; }

// The header text (unpadded) and the tensors in data order, as the reference writer does.
inline std::string build_header(const SafetensorsFile& file, std::vector<const std::pair<const std::string, RawTensor>*>& order,
                                const std::string& where) {
  order.clear();
  for (const auto& kv : file.tensors) {
    DISCO_CHECK(kv.first != "__metadata__", where, ": a tensor cannot be named \"__metadata__\"");
    try {
      kv.second.validate(kv.first);
    } catch (const Error& e) {
      fail(where, ": ", e.what());
    }
    order.push_back(&kv);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return safetensors_dtype_rank(a->second.dtype) > safetensors_dtype_rank(b->second.dtype);
  });  // names already sorted by the map
  std::string h = "{";
  bool first = true;
  try {
    if (!file.metadata.empty()) {
      h += "\"__metadata__\":{";
      bool mfirst = true;
      for (const auto& kv : file.metadata) {
        if (!mfirst) h += ",";
        mfirst = false;
        h += nlohmann::json(kv.first).dump() + ":" + nlohmann::json(kv.second).dump();
      }
      h += "}";
      first = false;
    }
    uint64_t offset = 0;
    for (const auto* kv : order) {
      if (!first) h += ",";
      first = false;
      const RawTensor& t = kv->second;
      h += nlohmann::json(kv->first).dump() + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
      for (std::size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
      h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.data.size()) + "]}";
      offset += t.data.size();
    }
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": cannot encode a tensor name or metadata string as JSON: ", e.what());
  }
  h += "}";
  h.append((8 - h.size() % 8) % 8, ' ');
  DISCO_CHECK(h.size() <= kSafetensorsMaxHeaderSize, where, ": header of ", h.size(), " bytes exceeds the ",
              kSafetensorsMaxHeaderSize, "-byte limit");
  return h;
}

inline void put_u64_le(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace detail

// Parse and validate only the header of `path` (names, dtypes, shapes, offsets, metadata);
// the tensor data is not read.
inline SafetensorsHeader read_safetensors_header(const std::string& path) {
  const std::string where = detail::where_file(path);
  detail::FdGuard g{detail::open_for_read(path, where)};
  return detail::read_header_fd(g.fd, where);
}

// Read and validate a whole file.
inline SafetensorsFile read_safetensors(const std::string& path) {
  const std::string where = detail::where_file(path);
  detail::FdGuard g{detail::open_for_read(path, where)};
  SafetensorsHeader h = detail::read_header_fd(g.fd, where);
  SafetensorsFile f;
  f.metadata = std::move(h.metadata);
  f.source = path;
  for (auto& kv : h.tensors) {
    RawTensor t;
    t.dtype = kv.second.dtype;
    t.shape = kv.second.shape;
    t.data.resize(static_cast<std::size_t>(kv.second.end - kv.second.begin));
    detail::pread_all(g.fd, t.data.data(), t.data.size(), h.data_start + kv.second.begin,
                      where + ": tensor '" + kv.first + "'");
    f.tensors.emplace(kv.first, std::move(t));
  }
  return f;
}

// Read one tensor of `path` (only its bytes are loaded).
inline RawTensor read_safetensors_tensor(const std::string& path, const std::string& name) {
  const std::string where = detail::where_file(path);
  detail::FdGuard g{detail::open_for_read(path, where)};
  const SafetensorsHeader h = detail::read_header_fd(g.fd, where);
  const auto it = h.tensors.find(name);
  DISCO_CHECK(it != h.tensors.end(), where, ": no tensor named '", name, "' (", h.tensors.size(), " tensors)");
  RawTensor t;
  t.dtype = it->second.dtype;
  t.shape = it->second.shape;
  t.data.resize(static_cast<std::size_t>(it->second.end - it->second.begin));
  detail::pread_all(g.fd, t.data.data(), t.data.size(), h.data_start + it->second.begin,
                    where + ": tensor '" + name + "'");
  return t;
}

// Parse a complete file image held in memory; `name` identifies it in messages.
inline SafetensorsFile parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& name = "<memory>") {
  const std::string where = "safetensors data '" + name + "'";
  DISCO_CHECK(bytes.size() >= 8, where, ": ", bytes.size(),
              " bytes, shorter than the 8-byte header length prefix (not a safetensors file)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<std::size_t>(i)];
  DISCO_CHECK(n <= kSafetensorsMaxHeaderSize, where, ": header length ", n, " exceeds the ",
              kSafetensorsMaxHeaderSize, "-byte limit");
  DISCO_CHECK(n <= bytes.size() - 8, where, ": header length ", n, " exceeds the ", bytes.size() - 8,
              " bytes after the length prefix");
  const SafetensorsHeader h = detail::parse_safetensors_header_json(
      reinterpret_cast<const char*>(bytes.data()) + 8, static_cast<std::size_t>(n), bytes.size() - 8 - n, where);
  SafetensorsFile f;
  f.metadata = h.metadata;
  f.source = name;
  const uint8_t* base = bytes.data() + 8 + n;
  for (const auto& kv : h.tensors) {
    RawTensor t;
    t.dtype = kv.second.dtype;
    t.shape = kv.second.shape;
    t.data.assign(base + kv.second.begin, base + kv.second.end);
    f.tensors.emplace(kv.first, std::move(t));
  }
  return f;
}

// The exact bytes write_safetensors would produce.
inline std::vector<uint8_t> serialize_safetensors(const SafetensorsFile& file) {
  std::vector<const std::pair<const std::string, RawTensor>*> order;
  const std::string header = detail::build_header(file, order, "safetensors serialization");
  std::size_t total = 8 + header.size();
  for (const auto* kv : order) total += kv->second.data.size();
  std::vector<uint8_t> out(total);
  detail::put_u64_le(out.data(), header.size());
  std::memcpy(out.data() + 8, header.data(), header.size());
  std::size_t pos = 8 + header.size();
  for (const auto* kv : order) {
    if (!kv->second.data.empty()) std::memcpy(out.data() + pos, kv->second.data.data(), kv->second.data.size());
    pos += kv->second.data.size();
  }
  return out;
}

// Write `file` to `path` atomically (the old file at `path` is never damaged).
// Tensors are validated (known dtype, data size == numel * dtype size) before anything is
// written; errors name the path.
inline void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  const std::string where = detail::where_file(path);
  std::vector<const std::pair<const std::string, RawTensor>*> order;
  const std::string header = detail::build_header(file, order, where);
  atomic_write_file(path, [&](std::FILE* f) {
    uint8_t len[8];
    detail::put_u64_le(len, header.size());
    fwrite_all(f, len, 8, where);
    fwrite_all(f, header.data(), header.size(), where);
    for (const auto* kv : order) fwrite_all(f, kv->second.data.data(), kv->second.data.size(), where);
  });
}

}  // namespace disco
