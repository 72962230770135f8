// Tests of disco/io/safetensors.hpp and disco/io/atomic_file.hpp.
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "disco/io/atomic_file.hpp"
#include "disco/io/safetensors.hpp"

namespace fs = std::filesystem;

namespace {

// A fresh temporary directory, removed with its contents at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "disco_io_test_XXXXXX").string();
    REQUIRE(::mkdtemp(&tmpl[0]) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  // Names of leftover temporary files.
  std::vector<std::string> temp_leftovers() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) {
      const std::string n = e.path().filename().string();
      if (n.find(".tmp.") != std::string::npos) out.push_back(n);
    }
    return out;
  }
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string read_text(const std::string& path) {
  const auto b = read_bytes(path);
  return std::string(b.begin(), b.end());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE(out.good());
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

void append_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

template <class T>
void append_values(std::vector<uint8_t>& out, std::initializer_list<T> values) {
  for (T v : values) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // host is little-endian (checked by the header)
    out.insert(out.end(), b, b + sizeof(T));
  }
}

// Bytes of a safetensors file: u64 length, header (space-padded to 8 when `pad`), data.
std::vector<uint8_t> file_bytes(std::string header, const std::vector<uint8_t>& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<uint8_t> out;
  append_u64(out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// Run f, require a disco::Error whose message contains every piece.
void require_error(const std::function<void()>& f, std::initializer_list<std::string> pieces) {
  bool threw = false;
  try {
    f();
  } catch (const disco::Error& e) {
    threw = true;
    const std::string msg = e.what();
    INFO("message: " << msg);
    for (const auto& p : pieces) {
      INFO("expected to contain: " << p);
      CHECK(msg.find(p) != std::string::npos);
    }
  }
  CHECK(threw);
}

disco::SafetensorsFile sample_file() {
  disco::SafetensorsFile f;
  f.metadata["format"] = "pt";
  f.metadata["note"] = "quotes \" backslash \\ newline \n unicode \xc3\xa9\xe2\x82\xac";
  f.tensors["conv.weight"] = disco::RawTensor::from_f32({1.5f, -2.f, 3.25f, 0.f, 1e-30f, -7.f}, {2, 3});
  f.tensors["scale"] = disco::RawTensor::from_f64({3.141592653589793}, {});  // 0-d scalar
  f.tensors["step"] = disco::RawTensor::from_i64({-5, 0, std::numeric_limits<int64_t>::max()}, {3});
  f.tensors["empty_i64"] = disco::RawTensor::from_i64({}, {0});
  f.tensors["empty_u8"] = disco::RawTensor::from_u8({}, {4, 0, 2});
  f.tensors["mask"] = disco::RawTensor::from_u8({1, 0, 255}, {3});
  f.tensors["idx"] = disco::RawTensor::from_i32({-1, 2, 3, 4}, {2, 2});
  disco::RawTensor h;
  h.dtype = "BF16";
  h.shape = {2};
  h.data = {0x80, 0x3f, 0x00, 0xc0};  // 1.0, -2.0
  f.tensors["half"] = h;
  disco::RawTensor b;
  b.dtype = "BOOL";
  b.shape = {1, 1};
  b.data = {1};
  f.tensors["flag"] = b;
  return f;
}

}  // namespace

// ---- RawTensor ---------------------------------------------------------------------------

TEST_CASE("RawTensor: typed construction and read-back", "[io]") {
  using disco::RawTensor;
  const RawTensor f = RawTensor::from_f32({1.f, 2.5f, -3.f, 4.f, 5.f, 6.f}, {2, 3});
  CHECK(f.dtype == "F32");
  CHECK(f.shape == std::vector<int64_t>{2, 3});
  CHECK(f.data.size() == 24);
  CHECK(f.numel() == 6);
  CHECK(f.to_f32() == std::vector<float>{1.f, 2.5f, -3.f, 4.f, 5.f, 6.f});
  CHECK(f.to_f64() == std::vector<double>{1.0, 2.5, -3.0, 4.0, 5.0, 6.0});  // F32 -> double widening

  const RawTensor d = RawTensor::from_f64({0.1, -1e300}, {2});
  CHECK(d.dtype == "F64");
  CHECK(d.to_f64() == std::vector<double>{0.1, -1e300});
  CHECK(d.to_f32()[0] == 0.1f);

  const RawTensor s = RawTensor::from_f64({42.0}, {});  // 0-d
  CHECK(s.numel() == 1);
  CHECK(s.to_f64() == std::vector<double>{42.0});

  const RawTensor i = RawTensor::from_i64({-3, 9}, {2});
  CHECK(i.to_i64() == std::vector<int64_t>{-3, 9});
  CHECK(RawTensor::from_i32({-7, 8}, {2}).to_i64() == std::vector<int64_t>{-7, 8});
  CHECK(RawTensor::from_u8({200, 1}, {1, 2}).to_i64() == std::vector<int64_t>{200, 1});
  CHECK(RawTensor::from_f32({}, {0, 3}).to_f32().empty());

  // F16 and BF16 decode.
  RawTensor h;
  h.dtype = "F16";
  h.shape = {6};
  const uint16_t halfs[6] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000};
  h.data.resize(12);
  std::memcpy(h.data.data(), halfs, 12);
  const auto hv = h.to_f32();
  CHECK(hv[0] == 1.f);
  CHECK(hv[1] == -2.f);
  CHECK(hv[2] == 65504.f);
  CHECK(hv[3] == std::ldexp(1.f, -24));
  CHECK(std::isinf(hv[4]));
  CHECK((hv[5] == 0.f && std::signbit(hv[5])));
  RawTensor bf;
  bf.dtype = "BF16";
  bf.shape = {1};
  bf.data = {0x80, 0x3f};
  CHECK(bf.to_f64() == std::vector<double>{1.0});
}

TEST_CASE("RawTensor: type and size checks", "[io]") {
  using disco::RawTensor;
  require_error([] { RawTensor::from_f32({1.f, 2.f}, {3}); }, {"2 values", "[3]"});
  require_error([] { RawTensor::from_f32({1.f}, {-1}); }, {"shape"});
  require_error([] { RawTensor::from_values<float>("F64", {1.f}, {1}); }, {"F64"});
  const RawTensor i = RawTensor::from_i64({1, 2}, {2});
  require_error([&] { i.to_f32("layer.bias"); }, {"layer.bias", "I64", "float"});
  require_error([&] { i.to_f64("layer.bias"); }, {"layer.bias", "I64", "double"});
  const RawTensor f = RawTensor::from_f32({1.f}, {1});
  require_error([&] { f.to_i64("w"); }, {"'w'", "F32", "int64"});

  RawTensor bad = RawTensor::from_f32({1.f, 2.f, 3.f}, {3});
  bad.shape = {4};  // element count mismatch
  require_error([&] { bad.to_f32("enc.weight"); }, {"enc.weight", "12 bytes", "[4]"});
  require_error([&] { bad.validate("enc.weight"); }, {"enc.weight"});
  RawTensor unk = f;
  unk.dtype = "F17";
  require_error([&] { unk.to_f32("x"); }, {"'x'", "unknown dtype", "F17"});
  require_error([&] { f.expect_shape({2, 2}, "fc.w"); }, {"fc.w", "[1]", "[2,2]"});
  f.expect_shape({1}, "fc.w");

  RawTensor big;
  big.dtype = "U64";
  big.shape = {1};
  big.data.assign(8, 0xff);
  require_error([&] { big.to_i64("ids"); }, {"ids", "does not fit"});
}

// ---- round trips -------------------------------------------------------------------------

TEST_CASE("safetensors: round trip of several dtypes, scalars, empty shapes and metadata", "[io]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const disco::SafetensorsFile f = sample_file();
  disco::write_safetensors(path, f);
  CHECK(dir.temp_leftovers().empty());

  const disco::SafetensorsFile g = disco::read_safetensors(path);
  CHECK(g.source == path);
  CHECK(g.metadata == f.metadata);
  REQUIRE(g.tensors.size() == f.tensors.size());
  for (const auto& kv : f.tensors) {
    INFO(kv.first);
    REQUIRE(g.has(kv.first));
    const disco::RawTensor& t = g.at(kv.first);
    CHECK(t.dtype == kv.second.dtype);
    CHECK(t.shape == kv.second.shape);
    CHECK(t.data == kv.second.data);
  }
  CHECK(g.at("scale").shape.empty());
  CHECK(g.at("scale").to_f64() == std::vector<double>{3.141592653589793});
  CHECK(g.at("step").to_i64() == std::vector<int64_t>{-5, 0, std::numeric_limits<int64_t>::max()});
  CHECK(g.at("empty_u8").shape == std::vector<int64_t>{4, 0, 2});
  CHECK(g.at("empty_u8").data.empty());
  CHECK(g.at("half").to_f32() == std::vector<float>{1.f, -2.f});
  require_error([&] { g.at("nope"); }, {"nope", path});

  // The in-memory forms agree with the file.
  CHECK(disco::serialize_safetensors(f) == read_bytes(path));
  const disco::SafetensorsFile m = disco::parse_safetensors(read_bytes(path), "mem");
  CHECK(m.at("conv.weight").data == f.at("conv.weight").data);

  // Header only: shapes, dtypes, offsets, metadata; data aligned to the dtype size.
  const disco::SafetensorsHeader h = disco::read_safetensors_header(path);
  CHECK(h.metadata == f.metadata);
  REQUIRE(h.tensors.size() == f.tensors.size());
  CHECK(h.data_start % 8 == 0);
  CHECK(h.data_start == 8 + h.header_size);
  CHECK(h.file_size == read_bytes(path).size());
  for (const auto& kv : h.tensors) {
    INFO(kv.first);
    const disco::RawTensor& t = f.at(kv.first);
    CHECK(kv.second.dtype == t.dtype);
    CHECK(kv.second.shape == t.shape);
    CHECK(kv.second.end - kv.second.begin == t.data.size());
    CHECK(kv.second.numel() == t.numel());
    CHECK(kv.second.begin % disco::safetensors_dtype_size(t.dtype) == 0);
  }

  // One tensor.
  const disco::RawTensor w = disco::read_safetensors_tensor(path, "conv.weight");
  CHECK(w.to_f32() == f.at("conv.weight").to_f32());
  require_error([&] { disco::read_safetensors_tensor(path, "missing.t"); }, {path, "missing.t"});

  // Overwrite with a different file.
  disco::SafetensorsFile f2;
  f2.tensors["only"] = disco::RawTensor::from_f32({7.f}, {1, 1});
  disco::write_safetensors(path, f2);
  const auto g2 = disco::read_safetensors(path);
  CHECK(g2.metadata.empty());
  CHECK(g2.tensors.size() == 1);
  CHECK(g2.at("only").to_f32() == std::vector<float>{7.f});
}

TEST_CASE("safetensors: empty file round trip", "[io]") {
  TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  disco::write_safetensors(path, disco::SafetensorsFile{});
  const auto g = disco::read_safetensors(path);
  CHECK(g.tensors.empty());
  CHECK(g.metadata.empty());
}

// ---- compatibility with the reference implementation ----------------------------------------

TEST_CASE("safetensors: byte-exact compatibility with the reference writer", "[io]") {
  TempDir dir;
  SECTION("single F32 tensor (header already a multiple of 8, no padding)") {
    // safetensors.numpy.save_file({"attn.0": np.arange(6, dtype=np.float32).reshape(1, 2, 3)})
    const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
    REQUIRE(header.size() == 64);
    std::vector<uint8_t> data;
    append_values<float>(data, {0.f, 1.f, 2.f, 3.f, 4.f, 5.f});
    const auto bytes = file_bytes(header, data);
    REQUIRE(bytes.size() == 8 + 64 + 24);
    CHECK(bytes[0] == 64);

    const std::string path = dir.file("ref.safetensors");
    write_bytes(path, bytes);
    const auto f = disco::read_safetensors(path);
    REQUIRE(f.tensors.size() == 1);
    CHECK(f.at("attn.0").dtype == "F32");
    CHECK(f.at("attn.0").shape == std::vector<int64_t>{1, 2, 3});
    CHECK(f.at("attn.0").to_f32() == std::vector<float>{0.f, 1.f, 2.f, 3.f, 4.f, 5.f});

    // Our writer produces the very same bytes.
    const std::string out = dir.file("ours.safetensors");
    disco::write_safetensors(out, f);
    CHECK(read_bytes(out) == bytes);
  }
  SECTION("padding with spaces") {
    const std::string header = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
    REQUIRE(header.size() == 65);  // padded with 7 spaces to 72
    std::vector<uint8_t> data;
    append_values<float>(data, {0.f, 1.f, 2.f, 3.f, 4.f, 5.f});
    const auto bytes = file_bytes(header, data);
    CHECK(bytes[0] == 72);
    disco::SafetensorsFile f;
    f.tensors["attn0"] = disco::RawTensor::from_f32({0.f, 1.f, 2.f, 3.f, 4.f, 5.f}, {1, 1, 2, 3});
    CHECK(disco::serialize_safetensors(f) == bytes);
    CHECK(disco::parse_safetensors(bytes).at("attn0").shape == std::vector<int64_t>{1, 1, 2, 3});
  }
  SECTION("no tensors, with and without metadata") {
    CHECK(disco::serialize_safetensors(disco::SafetensorsFile{}) == file_bytes("{}", {}));
    CHECK(file_bytes("{}", {}).size() == 16);
    disco::SafetensorsFile f;
    f.metadata["framework"] = "pt";
    const auto expect = file_bytes(R"({"__metadata__":{"framework":"pt"}})", {});
    CHECK(expect[0] == 40);
    CHECK(disco::serialize_safetensors(f) == expect);
  }
  SECTION("mixed dtypes: laid out by descending dtype rank, then name") {
    // Reference writer order: I64 > F64 > F32 > U8, so b, d, a, c.
    const std::string header =
        R"({"__metadata__":{"format":"pt"},)"
        R"("b":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
        R"("d":{"dtype":"F64","shape":[],"data_offsets":[16,24]},)"
        R"("a":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},)"
        R"("c":{"dtype":"U8","shape":[3],"data_offsets":[32,35]}})";
    std::vector<uint8_t> data;
    append_values<int64_t>(data, {-1, 1});
    append_values<double>(data, {0.5});
    append_values<float>(data, {1.f, 2.f});
    append_values<uint8_t>(data, {7, 8, 9});
    const auto bytes = file_bytes(header, data);

    disco::SafetensorsFile f;
    f.metadata["format"] = "pt";
    f.tensors["a"] = disco::RawTensor::from_f32({1.f, 2.f}, {2});
    f.tensors["b"] = disco::RawTensor::from_i64({-1, 1}, {2});
    f.tensors["c"] = disco::RawTensor::from_u8({7, 8, 9}, {3});
    f.tensors["d"] = disco::RawTensor::from_f64({0.5}, {});
    CHECK(disco::serialize_safetensors(f) == bytes);

    const std::string path = dir.file("mixed.safetensors");
    write_bytes(path, bytes);
    const auto g = disco::read_safetensors(path);
    CHECK(g.metadata.at("format") == "pt");
    CHECK(g.at("b").to_i64() == std::vector<int64_t>{-1, 1});
    CHECK(g.at("d").to_f64() == std::vector<double>{0.5});
    CHECK(g.at("a").to_f32() == std::vector<float>{1.f, 2.f});
    CHECK(g.at("c").to_i64() == std::vector<int64_t>{7, 8, 9});
  }
  SECTION("older writers: unpadded header, entries in any order, whitespace") {
    const std::string header =
        "{ \"z\": {\"shape\": [2], \"dtype\": \"I32\", \"data_offsets\": [8, 16]},\n"
        "  \"y\": {\"data_offsets\": [0, 8], \"dtype\": \"F32\", \"shape\": [1, 2]} }";
    std::vector<uint8_t> data;
    append_values<float>(data, {3.f, 4.f});
    append_values<int32_t>(data, {5, 6});
    const std::string path = dir.file("old.safetensors");
    write_bytes(path, file_bytes(header, data, /*pad=*/false));
    const auto g = disco::read_safetensors(path);
    CHECK(g.at("y").to_f32() == std::vector<float>{3.f, 4.f});
    CHECK(g.at("z").to_i64() == std::vector<int64_t>{5, 6});
  }
}

// ---- malformed files -----------------------------------------------------------------------

TEST_CASE("safetensors: malformed files give errors naming the path", "[io]") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  auto read_all = [&] { disco::read_safetensors(path); };
  auto read_header = [&] { disco::read_safetensors_header(path); };
  std::vector<uint8_t> f32x2;
  append_values<float>(f32x2, {1.f, 2.f});
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  SECTION("missing file") {
    require_error(read_all, {path, "No such file"});
    require_error(read_header, {path, "No such file"});
  }
  SECTION("a directory") {
    require_error([&] { disco::read_safetensors(dir.path); }, {dir.path, "not a regular file"});
  }
  SECTION("shorter than 8 bytes") {
    write_bytes(path, {});
    require_error(read_all, {path, "shorter than"});
    write_bytes(path, {1, 2, 3, 4, 5});
    require_error(read_all, {path, "shorter than"});
  }
  SECTION("header length larger than the file") {
    auto b = file_bytes("{" + ok_entry + "}", f32x2);
    b[0] = 0xf0;  // 240 > file size
    write_bytes(path, b);
    require_error(read_all, {path, "header length 240"});
    require_error(read_header, {path, "header length 240"});
  }
  SECTION("absurd header length") {
    std::vector<uint8_t> b;
    append_u64(b, 200000000);
    b.resize(64, ' ');
    write_bytes(path, b);
    require_error(read_all, {path, "header length 200000000", "limit"});
    b.clear();
    append_u64(b, ~uint64_t(0));
    write_bytes(path, b);
    require_error(read_all, {path, "limit"});
  }
  SECTION("header not valid JSON") {
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32",)", {}));
    require_error(read_all, {path, "not valid JSON", "parse error"});
    write_bytes(path, file_bytes("\xff\xfe{}", {}));  // invalid UTF-8
    require_error(read_all, {path, "not valid JSON"});
  }
  SECTION("header JSON of the wrong shape") {
    write_bytes(path, file_bytes("[1,2,3]", {}));
    require_error(read_all, {path, "must be a JSON object"});
    write_bytes(path, file_bytes(R"({"t":[1,2]})", {}));
    require_error(read_all, {path, "'t'", "must be an object"});
    write_bytes(path, file_bytes(R"({"__metadata__":{"a":1}})", {}));
    require_error(read_all, {path, "__metadata__", "'a'", "string"});
    write_bytes(path, file_bytes(R"({"__metadata__":"x"})", {}));
    require_error(read_all, {path, "__metadata__"});
  }
  SECTION("tensor entry missing a field") {
    write_bytes(path, file_bytes(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", f32x2));
    require_error(read_all, {path, "'t'", "missing \"dtype\""});
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", f32x2));
    require_error(read_all, {path, "'t'", "missing \"shape\""});
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32","shape":[2]}})", f32x2));
    require_error(read_header, {path, "'t'", "missing \"data_offsets\""});
  }
  SECTION("unknown or mistyped dtype") {
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", f32x2));
    require_error(read_all, {path, "'t'", "unknown dtype 'F17'"});
    write_bytes(path, file_bytes(R"({"t":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", f32x2));
    require_error(read_all, {path, "'t'", "dtype"});
  }
  SECTION("bad shape values") {
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", f32x2));
    require_error(read_all, {path, "'t'", "non-negative integers"});
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", f32x2));
    require_error(read_all, {path, "'t'", "non-negative integers"});
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", f32x2));
    require_error(read_all, {path, "'t'", "\"shape\" must be an array"});
    write_bytes(path, file_bytes(
        R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", f32x2));
    require_error(read_all, {path, "'t'", "overflows"});
  }
  SECTION("bad data_offsets") {
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", f32x2));
    require_error(read_all, {path, "'t'", "data_offsets"});
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", f32x2));
    require_error(read_all, {path, "'t'", "end before begin"});
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", f32x2));
    require_error(read_all, {path, "'t'", "out of range"});
    write_bytes(path, file_bytes(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f32x2));
    require_error(read_all, {path, "'t'", "8 bytes", "need 12"});
  }
  SECTION("truncated data") {
    auto b = file_bytes("{" + ok_entry + "}", f32x2);
    b.resize(b.size() - 3);
    write_bytes(path, b);
    require_error(read_all, {path, "'t'", "out of range"});
  }
  SECTION("overlapping tensors") {
    std::vector<uint8_t> data;
    append_values<float>(data, {1.f, 2.f, 3.f});
    write_bytes(path, file_bytes(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data));
    require_error(read_all, {path, "'a'", "'b'", "overlap"});
    require_error(read_header, {path, "overlap"});
    // Empty tensors never overlap, gaps are allowed.
    write_bytes(path, file_bytes(
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
        R"("e":{"dtype":"F32","shape":[0],"data_offsets":[2,2]},)"
        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", data));
    const auto g = disco::read_safetensors(path);
    CHECK(g.at("b").to_f32() == std::vector<float>{3.f});
  }
  SECTION("in-memory parser validates too") {
    require_error([] { disco::parse_safetensors({1, 2}, "blob"); }, {"'blob'", "shorter than"});
    require_error([&] { disco::parse_safetensors(file_bytes("{" + ok_entry + "}", {}), "blob"); },
                  {"'blob'", "out of range"});
  }
}

TEST_CASE("safetensors: invalid tensors are refused before writing", "[io]") {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  disco::SafetensorsFile ok;
  ok.tensors["x"] = disco::RawTensor::from_f32({1.f}, {1});
  disco::write_safetensors(path, ok);
  const auto before = read_bytes(path);

  disco::SafetensorsFile bad;
  bad.tensors["w"] = disco::RawTensor::from_f32({1.f, 2.f}, {2});
  bad.tensors["w"].shape = {3};
  require_error([&] { disco::write_safetensors(path, bad); }, {path, "'w'"});
  bad.tensors["w"] = disco::RawTensor::from_f32({1.f, 2.f}, {2});
  bad.tensors["w"].dtype = "Q4";
  require_error([&] { disco::write_safetensors(path, bad); }, {path, "'w'", "Q4"});
  disco::SafetensorsFile meta_name;
  meta_name.tensors["__metadata__"] = disco::RawTensor::from_f32({1.f}, {1});
  require_error([&] { disco::write_safetensors(path, meta_name); }, {path, "__metadata__"});
  disco::SafetensorsFile bad_utf8;
  bad_utf8.metadata["k"] = "\xff";
  require_error([&] { disco::write_safetensors(path, bad_utf8); }, {path, "JSON"});

  CHECK(read_bytes(path) == before);
  CHECK(dir.temp_leftovers().empty());
}

// ---- atomic writes -------------------------------------------------------------------------

TEST_CASE("atomic_write_file: a failing writer leaves the old file intact", "[io]") {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  disco::atomic_write_text(path, "old contents\n");
  CHECK(read_text(path) == "old contents\n");

  struct Boom {};
  CHECK_THROWS_AS(disco::atomic_write_file(path,
                                           [](std::FILE* f) {
                                             std::fputs("new partial data", f);
                                             std::fflush(f);
                                             throw Boom{};
                                           }),
                  Boom);
  CHECK(read_text(path) == "old contents\n");
  CHECK(dir.temp_leftovers().empty());

  require_error([&] {
    disco::atomic_write_file(path, [](std::FILE* f) {
      std::fputs("half", f);
      disco::fail("writer gave up");
    });
  }, {"writer gave up"});
  CHECK(read_text(path) == "old contents\n");
  CHECK(dir.temp_leftovers().empty());

  disco::atomic_write_file(path, [](std::FILE* f) { std::fputs("new contents\n", f); });
  CHECK(read_text(path) == "new contents\n");
  CHECK(dir.temp_leftovers().empty());
}

TEST_CASE("atomic_write_file: real I/O failure mid-write (file size limit)", "[io]") {
  TempDir dir;
  const std::string path = dir.file("big.safetensors");
  disco::SafetensorsFile small;
  small.tensors["x"] = disco::RawTensor::from_f32({1.f, 2.f}, {2});
  disco::write_safetensors(path, small);
  const auto before = read_bytes(path);

  disco::SafetensorsFile big;
  big.tensors["w"] = disco::RawTensor::from_f32(std::vector<float>(1 << 18, 0.5f), {1 << 18});  // 1 MiB

  // Lower RLIMIT_FSIZE so writes past 64 KiB fail with EFBIG (SIGXFSZ ignored).
  struct rlimit old_lim;
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_lim) == 0);
  void (*old_handler)(int) = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old_lim;
  lim.rlim_cur = 64 * 1024;
  if (old_lim.rlim_max != RLIM_INFINITY && old_lim.rlim_max < lim.rlim_cur) lim.rlim_cur = old_lim.rlim_max;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
  std::string msg;
  try {
    disco::write_safetensors(path, big);
  } catch (const disco::Error& e) {
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_lim);
  ::signal(SIGXFSZ, old_handler);

  INFO(msg);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("File too large") != std::string::npos);
  CHECK(read_bytes(path) == before);
  CHECK(dir.temp_leftovers().empty());
  CHECK(disco::read_safetensors(path).at("x").to_f32() == std::vector<float>{1.f, 2.f});
}

TEST_CASE("atomic_write_file: bad destinations error cleanly", "[io]") {
  TempDir dir;
  disco::SafetensorsFile f;
  f.tensors["x"] = disco::RawTensor::from_f32({1.f}, {1});

  const std::string missing = dir.file("no/such/dir/m.safetensors");
  require_error([&] { disco::write_safetensors(missing, f); }, {missing, "No such file or directory"});
  require_error([&] { disco::atomic_write_text(missing, "x"); }, {missing, "No such file or directory"});
  CHECK(!fs::exists(dir.file("no")));

  // Target is an existing directory: the rename fails, nothing is left behind.
  const std::string sub = dir.file("sub");
  fs::create_directory(sub);
  require_error([&] { disco::write_safetensors(sub, f); }, {sub, "rename"});
  CHECK(fs::is_directory(sub));
  CHECK(dir.temp_leftovers().empty());

  require_error([&] { disco::atomic_write_text("", "x"); }, {"empty"});
  require_error([&] { disco::atomic_write_text(sub + "/", "x"); }, {sub});

  if (::geteuid() != 0) {  // root ignores directory permissions
    const std::string ro = dir.file("ro");
    fs::create_directory(ro);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    require_error([&] { disco::write_safetensors(ro + "/x.safetensors", f); },
                  {ro + "/x.safetensors", "Permission denied"});
    fs::permissions(ro, fs::perms::owner_all);
  }
}

TEST_CASE("atomic_write_file: keeps the permissions of the replaced file", "[io]") {
  TempDir dir;
  const std::string path = dir.file("p.txt");
  disco::atomic_write_text(path, "a");
  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  disco::atomic_write_text(path, "b");
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  CHECK(read_text(path) == "b");
}
