// Crop, resize, flip and the training pipeline against hand-computed values.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "disco/data/transforms.hpp"

using namespace disco::data;

namespace {

// Pixel (x, y) = (v, v + 0.01, v + 0.02) with v = code(x, y).
template <class F>
Image make(int w, int h, F code) {
  Image img(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) img.at(x, y, c) = code(x, y) + 0.01f * c;
  return img;
}

// Encodes the source position so crops can be checked: v = (10 x + y) / 100.
Image coords(int w, int h) {
  return make(w, h, [](int x, int y) { return (10 * x + y) / 100.0f; });
}

float v_of(int x, int y) { return (10 * x + y) / 100.0f; }

}  // namespace

TEST_CASE("center_crop follows torchvision offsets and zero padding", "[data]") {
  SECTION("offsets round half to even") {
    // 5 wide -> 3: offset round(1) = 1; 4 high -> 3: offset round(0.5) = 0
    Image c = center_crop(coords(5, 4), 3);
    REQUIRE(c.width == 3);
    REQUIRE(c.height == 3);
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 3; ++x) REQUIRE(c.at(x, y, 0) == Approx(v_of(x + 1, y)));
    // 6 high -> 3: offset round(1.5) = 2
    c = center_crop(coords(3, 6), 3);
    CHECK(c.at(0, 0, 0) == Approx(v_of(0, 2)));
    CHECK(c.at(2, 2, 1) == Approx(v_of(2, 4) + 0.01f));
  }
  SECTION("CelebA 178x218 -> 178: rows 20..197") {
    const Image c = center_crop(coords(178, 218), 178);
    REQUIRE(c.width == 178);
    REQUIRE(c.height == 178);
    CHECK(c.at(0, 0, 0) == Approx(v_of(0, 20)));
    CHECK(c.at(177, 177, 0) == Approx(v_of(177, 197)));
  }
  SECTION("smaller than the crop: zero padding, floor(diff / 2) before") {
    // 2x2 -> 5x5: padded 1 before and 2 after in each direction
    const Image c = center_crop(coords(2, 2), 5);
    REQUIRE(c.width == 5);
    for (int y = 0; y < 5; ++y)
      for (int x = 0; x < 5; ++x) {
        const bool inside = x >= 1 && x <= 2 && y >= 1 && y <= 2;
        INFO(x << "," << y);
        REQUIRE(c.at(x, y, 0) == Approx(inside ? v_of(x - 1, y - 1) : 0.0f));
      }
    // padding in one direction only: 6x2 -> 4x4: x offset 1, y padded 1 before
    const Image d = center_crop(coords(6, 2), 4);
    CHECK(d.at(0, 0, 0) == 0.0f);
    CHECK(d.at(0, 1, 0) == Approx(v_of(1, 0)));
    CHECK(d.at(3, 2, 0) == Approx(v_of(4, 1)));
    CHECK(d.at(3, 3, 2) == 0.0f);
  }
  SECTION("size 0 takes the largest centred square") {
    const Image c = center_crop(coords(7, 4), 0);
    REQUIRE(c.width == 4);
    REQUIRE(c.height == 4);
    CHECK(c.at(0, 0, 0) == Approx(v_of(2, 0)));  // offset round(1.5) = 2
  }
  CHECK_THROWS_AS(center_crop(coords(4, 4), -1), disco::Error);
  CHECK_THROWS_AS(center_crop(Image(), 3), disco::Error);
}

TEST_CASE("area resize averages boxes, with fractional coverage", "[data]") {
  // 4x4 -> 2x2: plain 2x2 block means
  const Image img = make(4, 4, [](int x, int y) { return float(x + 4 * y); });
  const Image r = resize(img, 2, 2, ResizeMode::Area);
  CHECK(r.at(0, 0, 0) == Approx((0 + 1 + 4 + 5) / 4.0f));
  CHECK(r.at(1, 0, 0) == Approx((2 + 3 + 6 + 7) / 4.0f));
  CHECK(r.at(1, 1, 2) == Approx((10 + 11 + 14 + 15) / 4.0f + 0.02f));
  // 3 -> 2 in x: out0 = (p0 + 0.5 p1) / 1.5, out1 = (0.5 p1 + p2) / 1.5
  const Image row = make(3, 1, [](int x, int) { return float(x * x); });  // 0, 1, 4
  const Image s = resize(row, 2, 1, ResizeMode::Area);
  CHECK(s.at(0, 0, 0) == Approx((0 + 0.5f * 1) / 1.5f));
  CHECK(s.at(1, 0, 0) == Approx((0.5f * 1 + 4) / 1.5f));
  // a constant image stays constant
  const Image k = resize(Image(37, 23, 0.3f), 10, 7, ResizeMode::Area);
  for (float v : k.rgb) REQUIRE(v == Approx(0.3f));
}

TEST_CASE("bilinear resize matches PIL's triangle filter", "[data]") {
  // 4 -> 2: support 2, out0 weights (3, 3, 1) / 7 on p0..p2, out1 (1, 3, 3) / 7 on p1..p3
  const Image row = make(4, 1, [](int x, int) { return 0.2f * x; });
  const Image d = resize(row, 2, 1, ResizeMode::Bilinear);
  CHECK(d.at(0, 0, 0) == Approx((0.0f * 3 + 0.2f * 3 + 0.4f * 1) / 7));
  CHECK(d.at(1, 0, 0) == Approx((0.2f * 1 + 0.4f * 3 + 0.6f * 3) / 7));
  // 2 -> 4: half-pixel centres 0.25, 0.75, 1.25, 1.75 with edge clamping
  const Image two = make(2, 1, [](int x, int) { return float(x); });
  const Image u = resize(two, 4, 1, ResizeMode::Bilinear);
  CHECK(u.at(0, 0, 0) == Approx(0.0f));
  CHECK(u.at(1, 0, 0) == Approx(0.25f));
  CHECK(u.at(2, 0, 0) == Approx(0.75f));
  CHECK(u.at(3, 0, 0) == Approx(1.0f));
  // separable: a 2D ramp stays a ramp when doubled
  const Image ramp = make(3, 3, [](int x, int y) { return 0.1f * x + 0.2f * y; });
  const Image big = resize(ramp, 6, 6, ResizeMode::Bilinear);
  CHECK(big.at(2, 3, 0) == Approx(0.1f * 0.75f + 0.2f * 1.25f));
  // nearest picks floor((i + 0.5) * scale)
  const Image n = resize(make(5, 1, [](int x, int) { return float(x); }), 2, 1, ResizeMode::Nearest);
  CHECK(n.at(0, 0, 0) == 1.0f);
  CHECK(n.at(1, 0, 0) == 3.0f);
  CHECK(parse_resize_mode("area") == ResizeMode::Area);
  CHECK_THROWS_WITH(parse_resize_mode("cubic"), Catch::Contains("cubic"));
}

TEST_CASE("horizontal_flip mirrors columns; normalize maps to [-1, 1]", "[data]") {
  const Image img = coords(3, 2);
  const Image f = horizontal_flip(img);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c) REQUIRE(f.at(x, y, c) == img.at(2 - x, y, c));
  float v[3] = {0.0f, 0.5f, 1.0f};
  normalize(v, 3);
  CHECK(v[0] == -1.0f);
  CHECK(v[1] == 0.0f);
  CHECK(v[2] == 1.0f);
  denormalize(v, 3);
  CHECK(v[0] == 0.0f);
  CHECK(v[2] == 1.0f);
}

TEST_CASE("Pipeline = crop -> resize -> flip -> CHW [-1, 1]", "[data]") {
  const Image img = make(30, 20, [](int x, int y) { return (x * 3 + y * 5) % 17 / 17.0f; });
  Pipeline p;
  p.crop = 0;
  p.resolution = 10;
  const std::vector<float> a = p.apply(img, true);
  REQUIRE(a.size() == p.sample_size());
  const Image manual = horizontal_flip(resize(center_crop(img, 20), 10, 10, ResizeMode::Bilinear));
  const std::vector<float> want = to_chw(manual);
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == Approx(want[i]).margin(1e-6));
  for (float v : a) REQUIRE((v >= -1.0f && v <= 1.0f));

  // flips from an RNG: p = 0 never, p = 1 always, 0.5 about half the time
  Pcg32 rng(5);
  p.flip_prob = 0.0f;
  CHECK(p.apply(img, rng) == p.apply(img, false));
  p.flip_prob = 1.0f;
  CHECK(p.apply(img, rng) == p.apply(img, true));
  p.flip_prob = 0.5f;
  int flips = 0;
  for (int i = 0; i < 1000; ++i) flips += p.draw_flip(rng);
  CHECK(flips > 430);
  CHECK(flips < 570);

  // the official CelebA setting: crop 178, resize 128
  Pipeline official;
  const std::vector<float> o = official.apply(make(178, 218, [](int, int) { return 0.5f; }), false);
  REQUIRE(o.size() == 3u * 128 * 128);
  p.resolution = 0;
  CHECK_THROWS_AS(p.apply(img, false), disco::Error);
}

TEST_CASE("Pcg32 and permutation are fixed functions of the seed", "[data]") {
  // reference values pin the generators so data never silently changes across platforms
  {
    Pcg32 r(42);
    CHECK(r.next_u32() == 2496657765u);
    CHECK(r.next_u32() == 3703219247u);
    CHECK(r.below(1000) == 682u);
    CHECK(permutation(10, 9) == std::vector<uint32_t>{6, 2, 9, 1, 5, 0, 8, 4, 3, 7});
    CHECK(hash_seed(1, 2, 3) == 2767719186234347478ull);
  }
  Pcg32 a(42), b(42), c(43);
  const uint32_t first = a.next_u32();
  CHECK(first == b.next_u32());
  CHECK(first != c.next_u32());
  for (int i = 0; i < 1000; ++i) {
    const uint32_t v = a.below(7);
    REQUIRE(v < 7);
    const float f = a.uniform();
    REQUIRE((f >= 0.0f && f < 1.0f));
  }
  const std::vector<uint32_t> p = permutation(100, 9);
  std::vector<uint32_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (uint32_t i = 0; i < 100; ++i) REQUIRE(sorted[i] == i);
  CHECK(p == permutation(100, 9));
  CHECK(p != permutation(100, 10));
}
