// Procedural faces: determinism, ground-truth consistency and speed.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <vector>

#include "disco/data/synthetic_faces.hpp"

using namespace disco::data;

namespace {

SyntheticDataset make_ds(uint64_t seed, int res, Split split = Split::Train) {
  SyntheticConfig cfg;
  cfg.seed = seed;
  cfg.resolution = res;
  cfg.count_a = 500;
  cfg.count_b = 400;
  cfg.split = split;
  return SyntheticDataset(cfg);
}

bool same_pixel(const Image& a, const Image& b, int x, int y) {
  for (int c = 0; c < 3; ++c)
    if (a.at(x, y, c) != b.at(x, y, c)) return false;
  return true;
}

float colour_dist(const Image& img, int x, int y, RGB c) {
  return std::fabs(img.at(x, y, 0) - c.r) + std::fabs(img.at(x, y, 1) - c.g) + std::fabs(img.at(x, y, 2) - c.b);
}

}  // namespace

TEST_CASE("synthetic faces are deterministic per seed", "[data]") {
  const SyntheticDataset a = make_ds(7, 64), b = make_ds(7, 64), c = make_ds(8, 64);
  for (size_t i = 0; i < 6; ++i) {
    for (Domain d : {Domain::A, Domain::B}) {
      const Image x = a.load(d, i), y = b.load(d, i), z = c.load(d, i);
      REQUIRE(x.width == 64);
      REQUIRE(image_to_rgb8(x) == image_to_rgb8(y));  // identical bytes
      REQUIRE(x.rgb == y.rgb);
      REQUIRE(image_to_rgb8(x) != image_to_rgb8(z));  // another seed, another face
    }
    // A and B, train and test come from different streams
    REQUIRE(a.load(Domain::A, i).rgb != a.load(Domain::B, i).rgb);
    REQUIRE(a.load(Domain::B, i).rgb != make_ds(7, 64, Split::Test).load(Domain::B, i).rgb);
    REQUIRE(a.load(Domain::B, i).rgb != a.load(Domain::B, i + 1).rgb);
  }
  // parameters are pinned: the same bits on every platform and with any compiler flags
  const FaceParams f1 = sample_face(123, 4);
  CHECK(f1.head_rx == 0x1.a44bcap-3f);
  CHECK(f1.eye_y == 0x1.e0e606p-2f);
  CHECK(f1.hair_style == HairStyle::Bun);
  const GlassesParams g1 = sample_glasses(123, 4), g2 = sample_glasses(123, 5);
  CHECK(g1.thickness == 0x1.3ab942p-6f);
  CHECK(g1.style == GlassesStyle::Oval);
  CHECK((g1.frame.r != g2.frame.r || g1.thickness != g2.thickness));
  CHECK(a.item_name(Domain::A, 3) == "synthetic:trainA:3");
  CHECK_THROWS_AS(a.load(Domain::B, 400), disco::Error);
}

TEST_CASE("synthetic data set varies hair styles, glasses styles and colours", "[data]") {
  int hair[static_cast<int>(HairStyle::Count)] = {}, glasses[static_cast<int>(GlassesStyle::Count)] = {};
  int sunglasses = 0;
  for (uint64_t i = 0; i < 400; ++i) {
    ++hair[static_cast<int>(sample_face(1, i).hair_style)];
    const GlassesParams g = sample_glasses(1, i);
    ++glasses[static_cast<int>(g.style)];
    sunglasses += g.tint_alpha > 0.5f;
  }
  for (int h : hair) CHECK(h > 30);
  for (int g : glasses) CHECK(g > 50);
  CHECK(sunglasses > 100);
  CHECK(sunglasses < 300);
}

TEST_CASE("synthetic ground truth is consistent with the domains", "[data]") {
  const int res = 128;
  const SyntheticDataset ds = make_ds(3, res);
  for (size_t i = 0; i < 8; ++i) {
    INFO("A image " << i);
    // render(face, own glasses) is the A image
    const FaceParams f = ds.face(Domain::A, i);
    const GlassesParams g = ds.glasses(i);
    PixelBox box;
    const Image with = render_face(f, &g, res, &box);
    REQUIRE(with.rgb == ds.load(Domain::A, i).rgb);
    // removing the glasses changes only the band around the eyes
    const Image without = ds.gt_remove(i);
    REQUIRE(without.rgb == render_face(f, nullptr, res).rgb);
    REQUIRE(!box.empty());
    CHECK(box.y1 - box.y0 < res * 0.4);  // a band, not the whole face
    CHECK(box.x1 - box.x0 > res * 0.25);
    int changed = 0;
    for (int y = 0; y < res; ++y)
      for (int x = 0; x < res; ++x)
        if (!same_pixel(with, without, x, y)) {
          ++changed;
          REQUIRE(box.contains(x, y));
        }
    CHECK(changed > res * res / 100);  // the glasses are clearly visible
    // the eyes lie inside that band
    for (float side : {-1.0f, 1.0f}) {
      float ex, ey;
      face_to_pixel(f, res, 0.5f + side * f.eye_dx, f.eye_y, ex, ey);
      CHECK(box.contains(int(ex), int(ey)));
    }
  }
  // B images equal the face rendered bare
  for (size_t i = 0; i < 4; ++i) REQUIRE(ds.load(Domain::B, i).rgb == render_face(ds.face(Domain::B, i), nullptr, res).rgb);
}

TEST_CASE("transfer ground truth puts the guide's frame on the base's eyes", "[data]") {
  const int res = 256;  // thick enough frames to find fully covered frame pixels
  const SyntheticDataset ds = make_ds(11, res);
  for (size_t k = 0; k < 6; ++k) {
    const size_t base = k, guide = 10 + k;
    INFO("base " << base << " guide " << guide);
    const Image t = ds.gt_transfer(base, guide);
    const Image bare = ds.load(Domain::B, base);
    const FaceParams f = ds.face(Domain::B, base);
    const GlassesParams g = ds.glasses(guide);
    const GlassesGeometry geo = glasses_geometry(f, g);
    // the lens centres sit on the base face's eyes
    CHECK(geo.cx[0] == Approx(0.5f - f.eye_dx));
    CHECK(geo.cx[1] == Approx(0.5f + f.eye_dx));
    CHECK(std::fabs(geo.cy - f.eye_y) < geo.half_h * 0.2f);
    // the rim crosses the horizontal line through the lens centre at the outer edge:
    // look for a pixel of the guide's frame colour near there
    float u, v;
    if (g.style == GlassesStyle::Aviator)  // widest at 0.12 half-heights below the centre
      face_to_pixel(f, res, geo.cx[0] - geo.half_w * 0.94f, geo.cy + 0.12f * geo.half_h, u, v);
    else
      face_to_pixel(f, res, geo.cx[0] - geo.half_w, geo.cy, u, v);
    const int px = int(u), py = int(v);
    float best = 1e9f;
    for (int dy = -4; dy <= 4; ++dy)
      for (int dx = -4; dx <= 4; ++dx) best = std::min(best, colour_dist(t, px + dx, py + dy, g.frame));
    CHECK(best < 0.03f);
    CHECK(t.rgb != bare.rgb);
    // everything away from the glasses is the base image
    PixelBox box;
    (void)render_face(f, &g, res, &box);
    for (int y = 0; y < res; ++y)
      for (int x = 0; x < res; ++x)
        if (!box.contains(x, y)) REQUIRE(same_pixel(t, bare, x, y));
  }
  // the guide's own glasses on the guide's own face reproduce the guide
  {
    const Image a = ds.load(Domain::A, 2);
    const GlassesParams g = ds.glasses(2);
    CHECK(render_face(ds.face(Domain::A, 2), &g, res).rgb == a.rgb);
  }
  CHECK_THROWS_AS(ds.gt_transfer(400, 0), disco::Error);
}

TEST_CASE("synthetic faces render at any size, quickly", "[data]") {
  for (int size : {64, 96, 256}) {
    const Image img = render_face(sample_face(5, 1), nullptr, size);
    REQUIRE(img.width == size);
    REQUIRE(img.height == size);
    for (float v : img.rgb) REQUIRE((v >= 0.0f && v <= 1.0f));
  }
  CHECK_THROWS_AS(render_face(sample_face(5, 1), nullptr, 4), disco::Error);
  const SyntheticDataset ds = make_ds(9, 128);
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < 40; ++i) (void)ds.load(i % 2 ? Domain::A : Domain::B, i);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 40;
  WARN("synthetic 128 px render: " << ms << " ms/image");
#ifdef NDEBUG
  CHECK(ms < 10.0);  // about 1 ms in optimised builds; generous for slow, busy machines
#endif
}
