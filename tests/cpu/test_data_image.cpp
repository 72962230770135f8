// Image decoding, encoding, CHW conversion and grids.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <stb/stb_image_write.h>

#include "disco/data/image.hpp"

namespace fs = std::filesystem;
using namespace disco::data;

namespace {

// A fresh, empty temporary folder for one test.
fs::path temp_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("disco_test_data_image_" + tag);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A w x h test pattern with `comp` channels: channel c of (x, y) = (x * 40 + y * 7 + c * 50) % 256.
std::vector<uint8_t> pattern(int w, int h, int comp) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * comp);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c) px[(static_cast<size_t>(y) * w + x) * comp + c] = uint8_t((x * 40 + y * 7 + c * 50) % 256);
  return px;
}

// The message of the disco::Error thrown by f (fails the test if none is thrown).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const disco::Error& e) {
    return e.what();
  }
  FAIL("expected a disco::Error");
  return "";
}

}  // namespace

TEST_CASE("load_image decodes PNG with 1-4 channels to RGB", "[data]") {
  const fs::path dir = temp_dir("png");
  const int w = 6, h = 5;
  for (int comp = 1; comp <= 4; ++comp) {
    const std::vector<uint8_t> px = pattern(w, h, comp);
    const fs::path path = dir / ("c" + std::to_string(comp) + ".png");
    REQUIRE(stbi_write_png(path.string().c_str(), w, h, comp, px.data(), w * comp));
    const Image img = load_image(path.string());
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    REQUIRE(img.rgb.size() == static_cast<size_t>(w) * h * 3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) {
          // grey (1, 2 channels) is replicated; alpha (2, 4 channels) is dropped
          const int src_c = comp <= 2 ? 0 : c;
          const float want = px[(static_cast<size_t>(y) * w + x) * comp + src_c] / 255.0f;
          REQUIRE(img.at(x, y, c) == Approx(want).margin(1e-6));
        }
  }
}

TEST_CASE("load_image decodes BMP and JPEG, grey and colour", "[data]") {
  const fs::path dir = temp_dir("bmp_jpg");
  const int w = 16, h = 12;
  for (int comp : {1, 3, 4}) {
    const std::vector<uint8_t> px = pattern(w, h, comp);
    const fs::path bmp = dir / ("c" + std::to_string(comp) + ".bmp");
    REQUIRE(stbi_write_bmp(bmp.string().c_str(), w, h, comp, px.data()));
    const Image img = load_image(bmp.string());
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) {
          const float want = px[(static_cast<size_t>(y) * w + x) * comp + (comp == 1 ? 0 : c)] / 255.0f;
          REQUIRE(img.at(x, y, c) == Approx(want).margin(1e-6));
        }
  }
  // JPEG is lossy: a smooth image must come back close
  for (int comp : {1, 3}) {
    std::vector<uint8_t> px(static_cast<size_t>(w) * h * comp);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < comp; ++c) px[(static_cast<size_t>(y) * w + x) * comp + c] = uint8_t(60 + 6 * x + 4 * y + 30 * c);
    const fs::path jpg = dir / ("c" + std::to_string(comp) + ".jpg");
    REQUIRE(stbi_write_jpg(jpg.string().c_str(), w, h, comp, px.data(), 100));
    const Image img = load_image(jpg.string());
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    double max_err = 0;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) {
          const float want = px[(static_cast<size_t>(y) * w + x) * comp + (comp == 1 ? 0 : c)] / 255.0f;
          max_err = std::max(max_err, std::fabs(double(img.at(x, y, c)) - want));
        }
    REQUIRE(max_err < 0.06);
  }
}

TEST_CASE("load_image reports missing, empty, corrupt and truncated files by name", "[data]") {
  const fs::path dir = temp_dir("bad");
  SECTION("missing file") {
    const std::string p = (dir / "nope.jpg").string();
    const std::string msg = error_of([&] { load_image(p); });
    CHECK(msg.find(p) != std::string::npos);
    CHECK(msg.find("not found") != std::string::npos);
  }
  SECTION("a folder") {
    const std::string msg = error_of([&] { load_image(dir.string()); });
    CHECK(msg.find("directory") != std::string::npos);
  }
  SECTION("empty file") {
    write_bytes(dir / "empty.png", {});
    const std::string msg = error_of([&] { load_image((dir / "empty.png").string()); });
    CHECK(msg.find("empty.png") != std::string::npos);
    CHECK(msg.find("empty") != std::string::npos);
  }
  SECTION("garbage") {
    std::vector<uint8_t> junk(500);
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = uint8_t(i * 37 + 11);
    write_bytes(dir / "junk.jpg", junk);
    const std::string msg = error_of([&] { load_image((dir / "junk.jpg").string()); });
    CHECK(msg.find("junk.jpg") != std::string::npos);
    CHECK(msg.find("cannot decode") != std::string::npos);
  }
  SECTION("PNG signature with a damaged header chunk") {
    const std::vector<uint8_t> px = pattern(8, 8, 3);
    REQUIRE(stbi_write_png((dir / "ok.png").string().c_str(), 8, 8, 3, px.data(), 24));
    std::vector<uint8_t> b = read_bytes(dir / "ok.png");
    for (size_t i = 12; i < 16; ++i) b[i] = 'X';  // IHDR -> XXXX
    write_bytes(dir / "bad.png", b);
    const std::string msg = error_of([&] { load_image((dir / "bad.png").string()); });
    CHECK(msg.find("bad.png") != std::string::npos);
  }
  SECTION("truncated files of each format") {
    const int w = 40, h = 30;
    const std::vector<uint8_t> px = pattern(w, h, 3);
    REQUIRE(stbi_write_png((dir / "t.png").string().c_str(), w, h, 3, px.data(), w * 3));
    REQUIRE(stbi_write_bmp((dir / "t.bmp").string().c_str(), w, h, 3, px.data()));
    REQUIRE(stbi_write_jpg((dir / "t.jpg").string().c_str(), w, h, 3, px.data(), 90));
    for (const char* name : {"t.png", "t.bmp", "t.jpg"}) {
      INFO(name);
      REQUIRE_NOTHROW(load_image((dir / name).string()));
      std::vector<uint8_t> b = read_bytes(dir / name);
      b.resize(b.size() * 2 / 3);
      const fs::path cut = dir / (std::string("cut_") + name);
      write_bytes(cut, b);
      const std::string msg = error_of([&] { load_image(cut.string()); });
      CHECK(msg.find(cut.string()) != std::string::npos);
      CHECK(msg.find("truncated") != std::string::npos);
    }
  }
}

TEST_CASE("save_png round-trips and reports unwritable paths", "[data]") {
  const fs::path dir = temp_dir("save");
  Image img(7, 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = float(i % 256) / 255.0f;
  img.rgb[0] = -0.5f;  // clamped
  img.rgb[1] = 1.5f;
  save_png((dir / "out.png").string(), img);
  const Image back = load_image((dir / "out.png").string());
  REQUIRE(back.width == 7);
  REQUIRE(back.height == 3);
  CHECK(back.rgb[0] == 0.0f);
  CHECK(back.rgb[1] == 1.0f);
  for (size_t i = 2; i < img.rgb.size(); ++i) REQUIRE(back.rgb[i] == Approx(img.rgb[i]).margin(1e-6));
  const std::string msg = error_of([&] { save_png((dir / "no" / "such" / "x.png").string(), img); });
  CHECK(msg.find("x.png") != std::string::npos);
  CHECK_THROWS_AS(save_png((dir / "e.png").string(), Image()), disco::Error);
}

TEST_CASE("CHW conversion maps [0,1] to [-1,1] planes and back", "[data]") {
  Image img(3, 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c) img.at(x, y, c) = 0.1f * x + 0.3f * y + 0.05f * c;
  const std::vector<float> chw = to_chw(img);
  REQUIRE(chw.size() == 18);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 3; ++x) REQUIRE(chw[(c * 2 + y) * 3 + x] == Approx(img.at(x, y, c) * 2 - 1));
  const Image back = from_chw(chw, 3, 2, 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) REQUIRE(back.rgb[i] == Approx(img.rgb[i]).margin(1e-6));
  // out-of-range values are clamped, grey is replicated
  const std::vector<float> grey = {-3.0f, 0.0f, 3.0f, 0.5f};
  const Image g = from_chw(grey, 1, 2, 2);
  CHECK(g.at(0, 0, 2) == 0.0f);
  CHECK(g.at(1, 0, 0) == Approx(0.5f));
  CHECK(g.at(0, 1, 1) == 1.0f);
  CHECK(g.at(1, 1, 0) == Approx(0.75f));
  CHECK_THROWS_AS(from_chw(grey, 2, 1, 2), disco::Error);
  CHECK_THROWS_AS(from_chw(grey, 3, 2, 2), disco::Error);
}

TEST_CASE("tile_grid and transfer_grid lay out cells with padding", "[data]") {
  auto solid = [](float v) { return Image(4, 3, v); };
  // 2 x 3 grid, pad 1, background 1: the top-left cell blank
  const std::vector<Image> cells = {Image(), solid(0.1f), solid(0.2f), solid(0.3f), solid(0.4f), solid(0.5f)};
  const Image g = tile_grid(cells, 2, 3, 1, 1.0f);
  REQUIRE(g.width == 3 * 4 + 4 * 1);
  REQUIRE(g.height == 2 * 3 + 3 * 1);
  CHECK(g.at(0, 0, 0) == 1.0f);   // padding
  CHECK(g.at(1, 1, 0) == 1.0f);   // blank cell
  CHECK(g.at(6, 1, 1) == Approx(0.1f));   // cell (0, 1) starts at x = 1 + 5
  CHECK(g.at(11, 3, 2) == Approx(0.2f));  // cell (0, 2) starts at x = 11
  CHECK(g.at(1, 5, 0) == Approx(0.3f));   // cell (1, 0) starts at y = 5
  CHECK(g.at(14, 7, 0) == Approx(0.5f));
  CHECK(g.at(5, 1, 0) == 1.0f);  // padding between columns
  CHECK_THROWS_AS(tile_grid(cells, 2, 2), disco::Error);
  std::vector<Image> mixed = cells;
  mixed[3] = Image(5, 3, 0.0f);
  CHECK_THROWS_WITH(tile_grid(mixed, 2, 3), Catch::Contains("cell 3"));

  const std::vector<Image> top = {solid(0.1f), solid(0.2f)}, left = {solid(0.7f)};
  const Image t = transfer_grid(top, left, {{solid(0.8f), solid(0.9f)}}, 2, 1.0f);
  REQUIRE(t.width == 3 * 4 + 4 * 2);
  REQUIRE(t.height == 2 * 3 + 3 * 2);
  CHECK(t.at(2, 2, 0) == 1.0f);           // blank corner
  CHECK(t.at(8, 2, 0) == Approx(0.1f));   // top row
  CHECK(t.at(2, 7, 0) == Approx(0.7f));   // left column
  CHECK(t.at(14, 7, 0) == Approx(0.9f));  // cell (0, 1)
  CHECK_THROWS_AS(transfer_grid(top, left, {{solid(0.8f)}}), disco::Error);
}
