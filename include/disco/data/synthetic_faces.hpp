#pragma once
// Procedural cartoon faces: disco's built-in two-domain data set.
//
// Domain A: faces wearing glasses; domain B: faces without. Every face and every
// pair of glasses is drawn from parameters sampled by an integer PRNG (Pcg32), so
// a seed fully determines the data set. Parameters are bit-identical on every
// platform and with any compiler flags (the sampling arithmetic is written so that
// FMA contraction cannot change it); rendering uses only + - * / sqrt floor (no
// libm transcendentals), so images agree across platforms up to last-bit float
// differences where a compiler fuses multiply-adds, which practically never
// change an 8-bit value.
//
// Shapes are signed-distance functions evaluated in "face coordinates" (the unit
// square, face centred at (0.5, 0.5)) and anti-aliased by their distance in
// pixels, so any output size works (64, 128, 256, ...). A pose (shift, scale,
// small rotation) maps face coordinates into the image.
//
// Glasses geometry is computed from the face (lens centres on its eyes, lens size
// from its eye spacing, temples reaching its head outline), while style, colour,
// thickness, proportions and tint come from GlassesParams. So rendering face F
// with the glasses of another face G is the ground truth of transferring G's
// glasses onto F, and rendering F with none is the ground truth of removal.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "disco/core/error.hpp"
#include "disco/data/dataset.hpp"
#include "disco/data/image.hpp"
#include "disco/data/random.hpp"

namespace disco {
namespace data {

struct RGB {
  float r = 0, g = 0, b = 0;
};

enum class HairStyle : int { Bald = 0, Short, Long, Bangs, Curly, Bun, Count };
enum class GlassesStyle : int { Round = 0, Rectangular, Aviator, Oval, Count };

inline const char* hair_style_name(HairStyle s) {
  static const char* n[] = {"bald", "short", "long", "bangs", "curly", "bun"};
  int i = static_cast<int>(s);
  return i >= 0 && i < static_cast<int>(HairStyle::Count) ? n[i] : "?";
}
inline const char* glasses_style_name(GlassesStyle s) {
  static const char* n[] = {"round", "rectangular", "aviator", "oval"};
  int i = static_cast<int>(s);
  return i >= 0 && i < static_cast<int>(GlassesStyle::Count) ? n[i] : "?";
}

// Everything that defines a face (lengths in face coordinates: the unit square).
struct FaceParams {
  // pose: the face centre goes to (0.5 + shift_x, 0.5 + shift_y) of the image,
  // scaled by `scale` and rotated by `angle` radians
  float shift_x = 0, shift_y = 0, scale = 1, angle = 0;
  RGB bg_top, bg_bottom;  // vertical background gradient
  RGB skin, hair, shirt, iris, lips;
  HairStyle hair_style = HairStyle::Short;
  float head_rx = 0.22f, head_ry = 0.28f;  // face ellipse half-axes, centred (0.5, 0.5)
  float hairline = 0.3f;                   // y of the top of the forehead
  float hair_volume = 0.02f;               // how far the hair stands off the head
  float hair_length = 0.9f;                // bottom of long hair
  float bangs_y = 0.38f;                   // lower edge of bangs
  int curls = 16;                          // number of curls around curly hair
  bool sideburns = true;                   // bald: hair at the sides
  float eye_y = 0.5f, eye_dx = 0.09f;      // eyes at (0.5 -+ eye_dx, eye_y)
  float eye_rx = 0.04f, eye_ry = 0.028f;
  int eye_style = 0;                       // 0: whites and iris, 1: dark ovals
  float gaze = 0;                          // horizontal iris offset, in eye widths
  float brow_gap = 0.06f, brow_thickness = 0.012f, brow_tilt = 0, brow_arch = 0.01f;
  int nose_style = 0;
  float nose_y = 0.58f, nose_size = 0.02f;
  int mouth_style = 0;
  float mouth_y = 0.66f, mouth_w = 0.07f, mouth_curve = 0.02f, mouth_thickness = 0.012f;
  float blush = 0;  // opacity of cheek blush
};

// Everything that defines a pair of glasses, independent of the face wearing it.
struct GlassesParams {
  GlassesStyle style = GlassesStyle::Round;
  RGB frame;                  // frame colour
  float thickness = 0.012f;   // frame line width (face units)
  RGB tint;                   // lens tint colour
  float tint_alpha = 0.1f;    // lens opacity (0 = clear)
  float lens_scale = 1.0f;    // lens width relative to the nominal size for the eyes
  float lens_aspect = 1.0f;   // lens height / width
  float corner = 0.3f;        // rectangular lenses: corner radius / half-height
  float lift = 0.0f;          // vertical lens offset from the eye, in lens half-heights
  float bridge_arch = 0.01f;  // how far the bridge arches up
};

// Where the glasses sit on a particular face (face coordinates).
struct GlassesGeometry {
  float cx[2] = {0, 0}, cy = 0;  // lens centres: [0] image-left, [1] image-right
  float half_w = 0, half_h = 0;  // lens half extents
  float thickness = 0;
  float temple_x[2] = {0, 0};    // where the temples meet the head outline
};

// Inclusive pixel rectangle; empty when x1 < x0.
struct PixelBox {
  int x0 = 0, y0 = 0, x1 = -1, y1 = -1;
  bool empty() const { return x1 < x0 || y1 < y0; }
  bool contains(int x, int y) const { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
  void add(int x, int y) {
    if (empty()) {
      x0 = x1 = x;
      y0 = y1 = y;
    } else {
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  }
};

namespace faces_detail {

// sin and cos from + - * / and floor only (identical on every IEEE platform).
inline void sincos_det(double a, double& s, double& c) {
  const double pi = 3.14159265358979323846, two_pi = 2 * pi;
  a -= two_pi * std::floor(a / two_pi + 0.5);  // [-pi, pi]
  double sign_c = 1;
  if (a > pi / 2) {
    a = pi - a;
    sign_c = -1;
  } else if (a < -pi / 2) {
    a = -pi - a;
    sign_c = -1;
  }
  const double x2 = a * a;
  // Taylor series to degree 15/16 on [-pi/2, pi/2]: error below 1e-11
  double sn = 1, cs = 1;
  for (int k = 15; k >= 3; k -= 2) sn = 1 - sn * x2 / (double(k) * (k - 1));
  for (int k = 16; k >= 2; k -= 2) cs = 1 - cs * x2 / (double(k) * (k - 1));
  s = a * sn;
  c = sign_c * cs;
}

inline float clamp01(float v) { return v < 0 ? 0 : (v > 1 ? 1 : v); }
inline float len2(float x, float y) { return std::sqrt(x * x + y * y); }
// a + b * c, rounded once: the double product of two floats is exact, so the result
// is the same whether or not the compiler fuses it into an FMA. Used by sampling,
// whose parameters must be bit-identical everywhere.
inline float madd(float a, float b, float c) {
  return static_cast<float>(static_cast<double>(a) + static_cast<double>(b) * static_cast<double>(c));
}
inline RGB mul(RGB c, float k) { return {clamp01(c.r * k), clamp01(c.g * k), clamp01(c.b * k)}; }
inline RGB mix(RGB a, RGB b, float t) { return {madd(a.r, b.r - a.r, t), madd(a.g, b.g - a.g, t), madd(a.b, b.b - a.b, t)}; }

// ---- signed distances (negative inside) ----

// Ellipse: first-order distance estimate, exact for circles and on the outline.
inline float sd_ellipse(float x, float y, float rx, float ry) {
  const float nx = x / rx, ny = y / ry;
  const float k = std::sqrt(nx * nx + ny * ny);
  const float g = len2(nx / rx, ny / ry);
  if (g < 1e-20f) return -std::min(rx, ry);
  return (k - 1) * k / g;
}
inline float sd_circle(float x, float y, float r) { return len2(x, y) - r; }
// Box with half extents (hw, hh) and corner radius r.
inline float sd_round_box(float x, float y, float hw, float hh, float r) {
  const float qx = std::fabs(x) - hw + r, qy = std::fabs(y) - hh + r;
  return len2(std::max(qx, 0.0f), std::max(qy, 0.0f)) + std::min(std::max(qx, qy), 0.0f) - r;
}
// Distance to segment a-b minus radius (a capsule).
inline float sd_capsule(float px, float py, float ax, float ay, float bx, float by, float r) {
  const float dx = bx - ax, dy = by - ay, qx = px - ax, qy = py - ay;
  const float dd = dx * dx + dy * dy;
  const float h = dd > 0 ? clamp01((qx * dx + qy * dy) / dd) : 0.0f;
  return len2(qx - h * dx, qy - h * dy) - r;
}

// A thick circular arc through (mx -+ w, my) whose middle bulges by `sag` (positive:
// downwards, like a smile), rotated by (cs, sn) about (mx, my); half thickness r.
struct Arc {
  float mx, my, w, sag, r, cs = 1, sn = 0;
  float eval(float px, float py) const {
    float x = px - mx, y = py - my;
    const float lx = cs * x + sn * y, ly = -sn * x + cs * y;
    if (std::fabs(sag) < 1e-4f) return sd_capsule(lx, ly, -w, 0, w, 0, r);
    // circle through the three points; work in a frame where the bulge points down (+y)
    const float s = std::fabs(sag);
    const float R = (w * w + s * s) / (2 * s);
    const float yy = sag > 0 ? ly : -ly;
    const float ax = std::fabs(lx), ay = yy - (s - R);  // relative to the circle centre (0, s - R)
    // the endpoints sit at centre + R * (+-sx, ey); the arc is the wedge around +y between them
    const float sx = w / R, ey = (R - s) / R;
    if (ay * sx < ax * ey)  // outside the wedge: distance to the nearer endpoint
      return len2(ax - sx * R, ay - ey * R) - r;
    return std::fabs(len2(ax, ay) - R) - r;
  }
};

// Canvas: draws SDF shapes given in face coordinates into an image under a pose.
class Canvas {
 public:
  Canvas(Image& img, const FaceParams& f) : img_(img), n_(img.width) {
    double s, c;
    sincos_det(f.angle, s, c);
    cs_ = static_cast<float>(c);
    sn_ = static_cast<float>(s);
    scale_ = f.scale;
    ox_ = 0.5f + f.shift_x;
    oy_ = 0.5f + f.shift_y;
    px_ = 1.0f / (n_ * scale_);
  }

  float pixel_size() const { return px_; }
  void track(PixelBox* box) { track_ = box; }

  // Blend colour `col` with opacity `alpha` wherever sdf(fx, fy) < 0, within the
  // face-space box [x0, x1] x [y0, y1]. `soft` widens the anti-aliasing ramp (in
  // face units) for blurry shapes such as blush; 0 means one pixel.
  template <class F>
  void fill(float x0, float y0, float x1, float y1, RGB col, float alpha, F&& sdf, float soft = 0) {
    const float ramp = std::max(px_, soft);
    const float m = ramp;  // margin for the ramp
    x0 -= m;
    y0 -= m;
    x1 += m;
    y1 += m;
    // pixel bounds of the transformed box
    float umin = 1e9f, umax = -1e9f, vmin = 1e9f, vmax = -1e9f;
    const float cx[4] = {x0, x1, x0, x1}, cy[4] = {y0, y0, y1, y1};
    for (int k = 0; k < 4; ++k) {
      float u, v;
      to_image(cx[k], cy[k], u, v);
      umin = std::min(umin, u);
      umax = std::max(umax, u);
      vmin = std::min(vmin, v);
      vmax = std::max(vmax, v);
    }
    const int i0 = std::max(0, static_cast<int>(std::floor(umin * n_ - 0.5f)));
    const int i1 = std::min(n_ - 1, static_cast<int>(std::ceil(umax * n_ - 0.5f)));
    const int j0 = std::max(0, static_cast<int>(std::floor(vmin * n_ - 0.5f)));
    const int j1 = std::min(n_ - 1, static_cast<int>(std::ceil(vmax * n_ - 0.5f)));
    const float inv = 1.0f / ramp;
    for (int j = j0; j <= j1; ++j) {
      const float dv = (j + 0.5f) / n_ - oy_;
      float* row = img_.pixel(0, j);
      for (int i = i0; i <= i1; ++i) {
        const float du = (i + 0.5f) / n_ - ox_;
        const float fx = 0.5f + (cs_ * du + sn_ * dv) / scale_;
        const float fy = 0.5f + (-sn_ * du + cs_ * dv) / scale_;
        const float cov = clamp01(0.5f - sdf(fx, fy) * inv);
        if (cov <= 0) continue;
        const float a = cov * alpha;
        float* p = row + 3 * i;
        p[0] += (col.r - p[0]) * a;
        p[1] += (col.g - p[1]) * a;
        p[2] += (col.b - p[2]) * a;
        if (track_) track_->add(i, j);
      }
    }
  }

  // face coordinates -> image unit coordinates
  void to_image(float fx, float fy, float& u, float& v) const {
    const float dx = (fx - 0.5f) * scale_, dy = (fy - 0.5f) * scale_;
    u = ox_ + cs_ * dx - sn_ * dy;
    v = oy_ + sn_ * dx + cs_ * dy;
  }

 private:
  Image& img_;
  int n_;
  float cs_ = 1, sn_ = 0, scale_ = 1, ox_ = 0.5f, oy_ = 0.5f, px_ = 0;
  PixelBox* track_ = nullptr;
};

inline RGB jitter(Pcg32& rng, RGB c, float amount) {
  return {clamp01(c.r + rng.uniform(-amount, amount)), clamp01(c.g + rng.uniform(-amount, amount)),
          clamp01(c.b + rng.uniform(-amount, amount))};
}
template <size_t N>
RGB pick(Pcg32& rng, const RGB (&palette)[N]) {
  return palette[rng.below(static_cast<uint32_t>(N))];
}

}  // namespace faces_detail

// ---- sampling ---------------------------------------------------------------------------

// The face number `index` of the stream `seed`.
inline FaceParams sample_face(uint64_t seed, uint64_t index) {
  using namespace faces_detail;
  Pcg32 rng(hash_seed(seed, index, 0xFACEull));
  FaceParams f;
  f.shift_x = rng.uniform(-0.04f, 0.04f);
  f.shift_y = rng.uniform(-0.03f, 0.04f);
  f.scale = rng.uniform(0.92f, 1.08f);
  f.angle = rng.uniform(-0.09f, 0.09f);

  // background: a pastel or muted colour, darker or lighter towards the bottom
  f.bg_top = {rng.uniform(0.3f, 0.95f), rng.uniform(0.3f, 0.95f), rng.uniform(0.3f, 0.95f)};
  f.bg_bottom = mul(f.bg_top, rng.uniform(0.65f, 1.15f));
  if (rng.bernoulli(0.3f)) f.bg_bottom = f.bg_top;

  static const RGB skins[] = {{0.99f, 0.87f, 0.76f}, {0.96f, 0.80f, 0.69f}, {0.92f, 0.74f, 0.60f},
                              {0.85f, 0.65f, 0.50f}, {0.76f, 0.56f, 0.40f}, {0.62f, 0.44f, 0.30f},
                              {0.48f, 0.33f, 0.22f}, {0.36f, 0.24f, 0.16f}};
  f.skin = jitter(rng, pick(rng, skins), 0.025f);
  static const RGB hairs[] = {{0.08f, 0.07f, 0.07f}, {0.23f, 0.15f, 0.10f}, {0.40f, 0.26f, 0.15f},
                              {0.55f, 0.25f, 0.12f}, {0.85f, 0.70f, 0.40f}, {0.90f, 0.86f, 0.72f},
                              {0.62f, 0.62f, 0.64f}, {0.72f, 0.32f, 0.14f}, {0.15f, 0.12f, 0.10f}};
  static const RGB dyed[] = {{0.32f, 0.45f, 0.85f}, {0.88f, 0.45f, 0.65f}, {0.45f, 0.75f, 0.55f}};
  f.hair = jitter(rng, rng.bernoulli(0.08f) ? pick(rng, dyed) : pick(rng, hairs), 0.03f);
  f.shirt = {rng.uniform(0.05f, 0.95f), rng.uniform(0.05f, 0.95f), rng.uniform(0.05f, 0.95f)};
  static const RGB irises[] = {{0.30f, 0.18f, 0.08f}, {0.45f, 0.30f, 0.12f}, {0.20f, 0.40f, 0.65f},
                               {0.25f, 0.50f, 0.30f}, {0.12f, 0.10f, 0.08f}, {0.45f, 0.55f, 0.60f}};
  f.iris = jitter(rng, pick(rng, irises), 0.03f);
  f.lips = mix(mul(f.skin, 0.72f), RGB{0.75f, 0.22f, 0.25f}, rng.uniform(0.3f, 0.7f));

  f.hair_style = static_cast<HairStyle>(rng.below(static_cast<uint32_t>(HairStyle::Count)));
  f.head_rx = rng.uniform(0.19f, 0.235f);
  f.head_ry = f.head_rx * rng.uniform(1.15f, 1.4f);
  f.hairline = madd(0.5f, -f.head_ry, rng.uniform(0.5f, 0.75f));
  f.hair_volume = rng.uniform(0.012f, 0.045f);
  f.hair_length = rng.uniform(0.82f, 1.02f);
  f.curls = rng.range(13, 21);
  f.sideburns = rng.bernoulli(0.7f);

  f.eye_y = madd(0.5f, f.head_ry, rng.uniform(-0.12f, 0.05f));
  f.eye_dx = f.head_rx * rng.uniform(0.38f, 0.47f);
  f.eye_rx = rng.uniform(0.030f, 0.045f);
  f.eye_ry = f.eye_rx * rng.uniform(0.55f, 0.8f);
  f.eye_style = rng.bernoulli(0.25f) ? 1 : 0;
  f.gaze = rng.uniform(-0.25f, 0.25f);
  f.brow_gap = f.eye_ry + rng.uniform(0.022f, 0.04f);
  f.brow_thickness = rng.uniform(0.008f, 0.016f);
  f.brow_tilt = rng.uniform(-0.2f, 0.2f);
  f.brow_arch = rng.uniform(0.0f, 0.014f);
  f.bangs_y = f.eye_y - f.brow_gap - rng.uniform(0.015f, 0.035f);

  f.nose_style = rng.range(0, 2);
  f.nose_size = rng.uniform(0.016f, 0.028f);
  const float chin = 0.5f + f.head_ry;
  f.mouth_y = madd(f.eye_y, chin - f.eye_y, rng.uniform(0.52f, 0.62f));
  f.nose_y = madd(f.eye_y, f.mouth_y - f.eye_y, rng.uniform(0.5f, 0.62f));
  f.mouth_style = rng.range(0, 2);
  f.mouth_w = f.head_rx * rng.uniform(0.25f, 0.42f);
  f.mouth_curve = rng.uniform(-0.006f, 0.03f);
  f.mouth_thickness = rng.uniform(0.008f, 0.014f);
  f.blush = rng.bernoulli(0.35f) ? rng.uniform(0.15f, 0.35f) : 0.0f;
  return f;
}

// The glasses number `index` of the stream `seed`.
inline GlassesParams sample_glasses(uint64_t seed, uint64_t index) {
  using namespace faces_detail;
  Pcg32 rng(hash_seed(seed, index, 0x61A55E5ull));
  GlassesParams g;
  g.style = static_cast<GlassesStyle>(rng.below(static_cast<uint32_t>(GlassesStyle::Count)));
  static const RGB frames[] = {{0.05f, 0.05f, 0.05f}, {0.35f, 0.20f, 0.10f}, {0.85f, 0.68f, 0.22f},
                               {0.76f, 0.77f, 0.80f}, {0.78f, 0.10f, 0.12f}, {0.10f, 0.16f, 0.50f},
                               {0.10f, 0.42f, 0.22f}, {0.55f, 0.15f, 0.55f}, {0.95f, 0.95f, 0.95f}};
  g.frame = jitter(rng, pick(rng, frames), 0.03f);
  g.thickness = rng.uniform(0.010f, 0.02f);
  if (g.style == GlassesStyle::Aviator) g.thickness *= 0.8f;  // metal frames are thinner
  if (rng.bernoulli(0.45f)) {  // sunglasses: dark, fairly opaque lenses
    static const RGB tints[] = {{0.05f, 0.05f, 0.06f}, {0.25f, 0.15f, 0.05f}, {0.10f, 0.25f, 0.15f},
                                {0.15f, 0.15f, 0.35f}, {0.45f, 0.10f, 0.10f}};
    g.tint = jitter(rng, pick(rng, tints), 0.03f);
    g.tint_alpha = rng.uniform(0.55f, 0.85f);
  } else {  // clear lenses with a faint tint
    g.tint = {rng.uniform(0.6f, 1.0f), rng.uniform(0.7f, 1.0f), rng.uniform(0.8f, 1.0f)};
    g.tint_alpha = rng.uniform(0.08f, 0.22f);
  }
  g.lens_scale = rng.uniform(0.92f, 1.22f);
  switch (g.style) {
    case GlassesStyle::Round: g.lens_aspect = 1.0f; break;
    case GlassesStyle::Rectangular: g.lens_aspect = rng.uniform(0.6f, 0.8f); break;
    case GlassesStyle::Aviator: g.lens_aspect = rng.uniform(0.85f, 1.0f); break;
    default: g.lens_aspect = rng.uniform(0.7f, 0.85f); break;
  }
  g.corner = rng.uniform(0.15f, 0.5f);
  g.lift = rng.uniform(-0.1f, 0.15f);
  g.bridge_arch = rng.uniform(0.004f, 0.016f);
  return g;
}

// Lens placement of glasses g on face f.
inline GlassesGeometry glasses_geometry(const FaceParams& f, const GlassesParams& g) {
  GlassesGeometry geo;
  geo.half_w = std::min(f.eye_dx * 0.72f * g.lens_scale, f.eye_dx * 0.88f);
  geo.half_w = std::max(geo.half_w, f.eye_rx * 1.15f);
  geo.half_h = std::max(geo.half_w * g.lens_aspect, f.eye_ry * 1.4f);
  geo.cx[0] = 0.5f - f.eye_dx;
  geo.cx[1] = 0.5f + f.eye_dx;
  geo.cy = f.eye_y - g.lift * geo.half_h;
  geo.thickness = g.thickness;
  geo.temple_x[0] = 0.5f - f.head_rx - 0.006f;
  geo.temple_x[1] = 0.5f + f.head_rx + 0.006f;
  return geo;
}

// ---- rendering --------------------------------------------------------------------------

// Where the face-coordinate point (fx, fy) of face f lands in a size x size
// rendering, in continuous pixel coordinates (pixel (i, j) covers [i, i+1) x [j, j+1)).
inline void face_to_pixel(const FaceParams& f, int size, float fx, float fy, float& px, float& py) {
  double s, c;
  faces_detail::sincos_det(f.angle, s, c);
  const float dx = (fx - 0.5f) * f.scale, dy = (fy - 0.5f) * f.scale;
  px = (0.5f + f.shift_x + static_cast<float>(c) * dx - static_cast<float>(s) * dy) * size;
  py = (0.5f + f.shift_y + static_cast<float>(s) * dx + static_cast<float>(c) * dy) * size;
}

namespace faces_detail {

// Signed distance to lens k (0 = image-left) of the given geometry.
inline float sd_lens(const GlassesParams& g, const GlassesGeometry& geo, int k, float x, float y) {
  x -= geo.cx[k];
  y -= geo.cy;
  const float xin = k == 0 ? x : -x;  // positive towards the nose
  const float w = geo.half_w, h = geo.half_h;
  switch (g.style) {
    case GlassesStyle::Round: return sd_circle(x, y, w);
    case GlassesStyle::Rectangular: return sd_round_box(x, y, w, h, g.corner * h);
    case GlassesStyle::Aviator: {
      // a teardrop: an ellipse sagging towards the nose with a flat, slanted top
      const float e = sd_ellipse(xin - 0.06f * w, y - 0.12f * h, w, h * 1.02f);
      const float top = -0.72f * h - 0.12f * xin;  // the top edge rises towards the temple
      const float plane = (top - y) * 0.993f;      // 1 / sqrt(1 + 0.12^2)
      return std::max(e, plane);
    }
    default: return sd_ellipse(x, y, w, h);
  }
}

inline void draw_glasses(Canvas& cv, const FaceParams& f, const GlassesParams& g) {
  const GlassesGeometry geo = glasses_geometry(f, g);
  const float t = geo.thickness, ht = t * 0.5f, w = geo.half_w, h = geo.half_h;
  const float pad = t + 0.1f * h;  // the aviator shape can poke out slightly
  // temples: from the outer lens edge to the head outline
  for (int k = 0; k < 2; ++k) {
    const float ex = k == 0 ? geo.cx[0] - w * 0.92f : geo.cx[1] + w * 0.92f;
    const float ey = geo.cy - h * 0.35f, tx = geo.temple_x[k], ty = geo.cy - h * 0.42f;
    cv.fill(std::min(ex, tx), std::min(ey, ty) - t, std::max(ex, tx), std::max(ey, ty) + t, g.frame, 1.0f,
            [&](float x, float y) { return sd_capsule(x, y, ex, ey, tx, ty, ht * 0.85f); });
  }
  for (int k = 0; k < 2; ++k) {
    const float bx0 = geo.cx[k] - w - pad, bx1 = geo.cx[k] + w + pad;
    const float by0 = geo.cy - h - pad, by1 = geo.cy + h * 1.2f + pad;
    // tint inside, then the rim
    cv.fill(bx0, by0, bx1, by1, g.tint, g.tint_alpha, [&](float x, float y) { return sd_lens(g, geo, k, x, y); });
    cv.fill(bx0, by0, bx1, by1, g.frame, 1.0f,
            [&](float x, float y) { return std::fabs(sd_lens(g, geo, k, x, y)) - ht; });
  }
  // bridge: an arch between the inner lens edges
  const float inner0 = geo.cx[0] + w * 0.95f, inner1 = geo.cx[1] - w * 0.95f;
  const float bmx = 0.5f * (inner0 + inner1), bw = std::max(0.5f * (inner1 - inner0), 0.002f);
  const float bmy = geo.cy - h * 0.25f;
  Arc bridge{bmx, bmy, bw, -g.bridge_arch, ht};
  cv.fill(bmx - bw - t, bmy - g.bridge_arch - t, bmx + bw + t, bmy + t, g.frame, 1.0f,
          [&](float x, float y) { return bridge.eval(x, y); });
  if (g.style == GlassesStyle::Aviator) {  // the straight double bar across the top
    const float y = geo.cy - h * 0.72f, x0 = geo.cx[0] + w * 0.5f, x1 = geo.cx[1] - w * 0.5f;
    cv.fill(x0 - t, y - t, x1 + t, y + t, g.frame, 1.0f,
            [&](float x, float yy) { return sd_capsule(x, yy, x0, y, x1, y, ht * 0.8f); });
  }
}

// The hair on top of the head: the head ellipse grown by the hair volume, minus the
// forehead, above clip_y; with side_min > 0 only the sides (|x - 0.5| > side_min)
// below top_y are kept (a bald head's remaining hair).
inline void draw_hair_cap(Canvas& cv, const FaceParams& f, float clip_y, float side_min = 0.0f,
                          float top_y = -1.0f) {
  const float vol = f.hair_volume;
  const float ocx = 0.5f, ocy = 0.5f - vol * 0.6f, orx = f.head_rx + vol, ory = f.head_ry + vol;
  const float fry = f.head_ry * 1.05f, frx = f.head_rx * 0.93f, fcy = f.hairline + fry;
  cv.fill(ocx - orx, ocy - ory, ocx + orx, std::min(clip_y, ocy + ory), f.hair, 1.0f, [&](float x, float y) {
    float d = sd_ellipse(x - ocx, y - ocy, orx, ory);
    d = std::max(d, -sd_ellipse(x - 0.5f, y - fcy, frx, fry));  // minus the forehead
    d = std::max(d, y - clip_y);
    if (side_min > 0) d = std::max(d, std::max(side_min - std::fabs(x - 0.5f), top_y - y));
    return d;
  });
}

inline void draw_face(Image& img, const FaceParams& f, const GlassesParams* glasses, PixelBox* glasses_box) {
  const int n = img.width;
  // background gradient (in image space: it does not move with the pose)
  for (int j = 0; j < n; ++j) {
    const RGB c = mix(f.bg_top, f.bg_bottom, (j + 0.5f) / n);
    float* row = img.pixel(0, j);
    for (int i = 0; i < n; ++i) {
      row[3 * i] = c.r;
      row[3 * i + 1] = c.g;
      row[3 * i + 2] = c.b;
    }
  }
  Canvas cv(img, f);
  const float rx = f.head_rx, ry = f.head_ry, vol = f.hair_volume;
  const float chin = 0.5f + ry;

  // hair behind the head
  switch (f.hair_style) {
    case HairStyle::Long: {
      const float hw = rx + vol + 0.018f, top = 0.5f - ry * 0.6f, bot = f.hair_length;
      const float cy = 0.5f * (top + bot), hh = 0.5f * (bot - top);
      cv.fill(0.5f - hw, top, 0.5f + hw, bot, f.hair, 1.0f,
              [&](float x, float y) { return sd_round_box(x - 0.5f, y - cy, hw, hh, 0.08f); });
      break;
    }
    case HairStyle::Bangs: {  // a bob down to the jaw
      const float hw = rx + vol + 0.01f, top = 0.5f - ry * 0.5f, bot = 0.5f + ry * 0.75f;
      const float cy = 0.5f * (top + bot), hh = 0.5f * (bot - top);
      cv.fill(0.5f - hw, top, 0.5f + hw, bot, f.hair, 1.0f,
              [&](float x, float y) { return sd_round_box(x - 0.5f, y - cy, hw, hh, 0.05f); });
      break;
    }
    case HairStyle::Curly: {
      const float acy = 0.5f - 0.05f, arx = rx + vol + 0.05f, ary = ry + 0.02f, cr = 0.035f + vol * 0.5f;
      std::vector<float> px(f.curls), py(f.curls);
      for (int k = 0; k < f.curls; ++k) {
        double s, c;
        sincos_det(6.283185307179586 * k / f.curls, s, c);
        px[k] = 0.5f + arx * static_cast<float>(c);
        py[k] = acy + ary * static_cast<float>(s);
      }
      cv.fill(0.5f - arx - cr, acy - ary - cr, 0.5f + arx + cr, acy + ary + cr, f.hair, 1.0f,
              [&](float x, float y) {
                float d = sd_ellipse(x - 0.5f, y - acy, arx, ary);
                for (int k = 0; k < f.curls; ++k) d = std::min(d, sd_circle(x - px[k], y - py[k], cr));
                return d;
              });
      break;
    }
    case HairStyle::Bun: {
      const float r = 0.06f + vol, cy = 0.5f - ry - vol - r * 0.45f;
      cv.fill(0.5f - r, cy - r, 0.5f + r, cy + r, f.hair, 1.0f,
              [&](float x, float y) { return sd_circle(x - 0.5f, y - cy, r); });
      break;
    }
    default: break;
  }

  // shoulders and neck
  const RGB neck = mul(f.skin, 0.86f);
  cv.fill(0.05f, chin - 0.02f, 0.95f, 1.5f, f.shirt, 1.0f,
          [&](float x, float y) { return sd_ellipse(x - 0.5f, y - (chin + 0.33f), 0.45f, 0.3f); });
  const float nw = rx * 0.45f;
  cv.fill(0.5f - nw, 0.5f, 0.5f + nw, chin + 0.1f, neck, 1.0f,
          [&](float x, float y) { return sd_round_box(x - 0.5f, y - (chin - 0.02f), nw, 0.1f, 0.03f); });
  cv.fill(0.5f - nw * 1.3f, chin, 0.5f + nw * 1.3f, chin + 0.12f, neck, 1.0f,  // neckline
          [&](float x, float y) { return sd_ellipse(x - 0.5f, y - (chin + 0.05f), nw * 1.25f, 0.06f); });

  // ears (hidden by long hair and bobs)
  if (f.hair_style != HairStyle::Long && f.hair_style != HairStyle::Bangs) {
    const float ey = f.eye_y + 0.03f, erx = 0.032f, ery = 0.05f;
    for (int k = 0; k < 2; ++k) {
      const float ex = 0.5f + (k == 0 ? -1.0f : 1.0f) * (rx - 0.005f);
      cv.fill(ex - erx, ey - ery, ex + erx, ey + ery, mul(f.skin, 0.93f), 1.0f,
              [&](float x, float y) { return sd_ellipse(x - ex, y - ey, erx, ery); });
      cv.fill(ex - erx, ey - ery, ex + erx, ey + ery, mul(f.skin, 0.75f), 1.0f, [&](float x, float y) {
        return std::fabs(sd_ellipse(x - ex, y - ey, erx * 0.55f, ery * 0.6f)) - 0.004f;
      });
    }
  }

  // the face, with a soft shadow under the chin
  cv.fill(0.5f - rx, 0.5f - ry, 0.5f + rx, 0.5f + ry, f.skin, 1.0f,
          [&](float x, float y) { return sd_ellipse(x - 0.5f, y - 0.5f, rx, ry); });
  if (f.blush > 0)
    for (int k = 0; k < 2; ++k) {
      const float bx = 0.5f + (k == 0 ? -1.0f : 1.0f) * f.eye_dx * 1.15f, by = f.eye_y + 0.085f, br = 0.035f;
      cv.fill(bx - br, by - br, bx + br, by + br, RGB{0.92f, 0.42f, 0.45f}, f.blush,
              [&](float x, float y) { return sd_circle(x - bx, y - by, br * 0.6f); }, 0.03f);
    }

  // hair in front
  const float eye_clip = f.eye_y - 0.005f;
  switch (f.hair_style) {
    case HairStyle::Bald:
      if (f.sideburns) draw_hair_cap(cv, f, eye_clip, rx * 0.7f, f.eye_y - ry * 0.45f);
      break;
    case HairStyle::Short: draw_hair_cap(cv, f, eye_clip); break;
    case HairStyle::Bun: draw_hair_cap(cv, f, eye_clip - 0.02f); break;
    case HairStyle::Long:
    case HairStyle::Curly: draw_hair_cap(cv, f, chin); break;
    case HairStyle::Bangs: {
      draw_hair_cap(cv, f, chin);
      const float orx = rx + vol, ory = ry + vol, ocy = 0.5f - vol * 0.6f, by = f.bangs_y;
      cv.fill(0.5f - orx, ocy - ory, 0.5f + orx, by + 0.02f, f.hair, 1.0f, [&](float x, float y) {
        // a zig-zag lower edge, period 0.045
        const float u = (x - 0.5f) / 0.045f, fr = u - std::floor(u);
        const float edge = by + 0.014f * std::fabs(fr - 0.5f);
        return std::max(sd_ellipse(x - 0.5f, y - ocy, orx, ory), y - edge);
      });
      break;
    }
    default: break;
  }

  // eyebrows
  const RGB brow = mix(f.hair, RGB{0.18f, 0.12f, 0.08f}, 0.45f);
  for (int k = 0; k < 2; ++k) {
    const float sgn = k == 0 ? -1.0f : 1.0f;
    const float bx = 0.5f + sgn * f.eye_dx, by = f.eye_y - f.brow_gap, bw = f.eye_rx * 1.25f;
    double s, c;
    sincos_det(-sgn * f.brow_tilt, s, c);  // positive tilt raises the inner ends
    Arc a{bx, by, bw, -f.brow_arch, f.brow_thickness * 0.5f, static_cast<float>(c), static_cast<float>(s)};
    const float m = bw + f.brow_thickness + f.brow_arch;
    cv.fill(bx - m, by - m, bx + m, by + m, brow, 1.0f, [&](float x, float y) { return a.eval(x, y); });
  }

  // eyes
  for (int k = 0; k < 2; ++k) {
    const float ex = 0.5f + (k == 0 ? -1.0f : 1.0f) * f.eye_dx, ey = f.eye_y, erx = f.eye_rx, ery = f.eye_ry;
    const float bx0 = ex - erx, by0 = ey - ery, bx1 = ex + erx, by1 = ey + ery;
    if (f.eye_style == 0) {
      auto sclera = [&](float x, float y) { return sd_ellipse(x - ex, y - ey, erx, ery); };
      const float ix = ex + f.gaze * erx * 0.5f, ir = ery * 0.9f;
      cv.fill(bx0, by0, bx1, by1, RGB{0.97f, 0.97f, 0.96f}, 1.0f, sclera);
      cv.fill(bx0, by0, bx1, by1, f.iris, 1.0f,
              [&](float x, float y) { return std::max(sd_circle(x - ix, y - ey, ir), sclera(x, y)); });
      cv.fill(bx0, by0, bx1, by1, RGB{0.03f, 0.03f, 0.03f}, 1.0f,
              [&](float x, float y) { return std::max(sd_circle(x - ix, y - ey, ir * 0.5f), sclera(x, y)); });
      cv.fill(bx0, by0, bx1, by1, RGB{1, 1, 1}, 0.9f,
              [&](float x, float y) { return sd_circle(x - ix - ir * 0.35f, y - ey + ir * 0.35f, ir * 0.22f); });
      // upper lid line
      cv.fill(bx0 - 0.01f, by0 - 0.01f, bx1 + 0.01f, ey, mul(f.skin, 0.35f), 1.0f, [&](float x, float y) {
        return std::max(std::fabs(sclera(x, y)) - 0.0035f, y - ey);
      });
    } else {
      const float r = ery * 0.85f;
      cv.fill(ex - r, ey - r * 1.3f, ex + r, ey + r * 1.3f, RGB{0.08f, 0.06f, 0.05f}, 1.0f,
              [&](float x, float y) { return sd_ellipse(x - ex, y - ey, r * 0.8f, r * 1.2f); });
      cv.fill(ex - r, ey - r, ex + r, ey + r, RGB{1, 1, 1}, 0.85f,
              [&](float x, float y) { return sd_circle(x - ex - r * 0.3f, y - ey + r * 0.45f, r * 0.25f); });
    }
  }

  // nose
  const RGB nose_col = mul(f.skin, 0.72f);
  const float ns = f.nose_size;
  if (f.nose_style == 0) {
    Arc a{0.5f, f.nose_y, ns, ns * 0.45f, 0.0045f};
    cv.fill(0.5f - ns - 0.01f, f.nose_y - 0.01f, 0.5f + ns + 0.01f, f.nose_y + ns, nose_col, 1.0f,
            [&](float x, float y) { return a.eval(x, y); });
  } else if (f.nose_style == 1) {
    const float top = f.eye_y + 0.03f, x0 = 0.5f + ns * 0.3f;
    cv.fill(0.5f - ns, top - 0.01f, 0.5f + ns + 0.01f, f.nose_y + 0.01f, nose_col, 1.0f, [&](float x, float y) {
      return std::min(sd_capsule(x, y, x0, top, x0 + ns * 0.5f, f.nose_y, 0.004f),
                      sd_capsule(x, y, x0 + ns * 0.5f, f.nose_y, 0.5f - ns * 0.3f, f.nose_y + 0.004f, 0.004f));
    });
  } else {
    cv.fill(0.5f - ns, f.nose_y - ns, 0.5f + ns, f.nose_y + ns, mul(f.skin, 0.9f), 0.7f,
            [&](float x, float y) { return sd_ellipse(x - 0.5f, y - f.nose_y, ns, ns * 0.8f); });
    for (int k = 0; k < 2; ++k) {
      const float nx = 0.5f + (k == 0 ? -0.45f : 0.45f) * ns, ny = f.nose_y + ns * 0.35f;
      cv.fill(nx - 0.01f, ny - 0.01f, nx + 0.01f, ny + 0.01f, nose_col, 1.0f,
              [&](float x, float y) { return sd_ellipse(x - nx, y - ny, 0.0055f, 0.0035f); });
    }
  }

  // mouth
  const float mw = f.mouth_w, my = f.mouth_y;
  if (f.mouth_style == 0) {
    Arc a{0.5f, my, mw, f.mouth_curve, f.mouth_thickness * 0.5f};
    cv.fill(0.5f - mw - 0.02f, my - 0.03f, 0.5f + mw + 0.02f, my + 0.04f, f.lips, 1.0f,
            [&](float x, float y) { return a.eval(x, y); });
  } else if (f.mouth_style == 1) {  // open smile with teeth
    const float depth = mw * 0.55f;
    auto mouth = [&](float x, float y) { return std::max(sd_ellipse(x - 0.5f, y - my, mw, depth), my - y); };
    cv.fill(0.5f - mw, my - 0.01f, 0.5f + mw, my + depth, RGB{0.35f, 0.07f, 0.09f}, 1.0f, mouth);
    cv.fill(0.5f - mw, my - 0.01f, 0.5f + mw, my + depth, RGB{0.96f, 0.96f, 0.94f}, 1.0f,
            [&](float x, float y) { return std::max(mouth(x, y), y - (my + depth * 0.3f)); });
    cv.fill(0.5f - mw - 0.01f, my - 0.01f, 0.5f + mw + 0.01f, my + depth + 0.01f, f.lips, 1.0f,
            [&](float x, float y) { return std::fabs(mouth(x, y)) - 0.003f; });
  } else {  // closed lips
    const float lh = 0.012f + f.mouth_thickness * 0.5f;
    cv.fill(0.5f - mw, my - lh, 0.5f + mw, my + lh, f.lips, 1.0f,
            [&](float x, float y) { return sd_ellipse(x - 0.5f, y - my, mw * 0.85f, lh); });
    Arc a{0.5f, my, mw * 0.8f, f.mouth_curve * 0.4f, 0.0025f};
    cv.fill(0.5f - mw, my - lh, 0.5f + mw, my + lh, mul(f.lips, 0.6f), 1.0f,
            [&](float x, float y) { return a.eval(x, y); });
  }

  if (glasses) {
    cv.track(glasses_box);
    draw_glasses(cv, f, *glasses);
    cv.track(nullptr);
  }
}

}  // namespace faces_detail

// Render face f, wearing `glasses` (or none when null), as a size x size RGB image.
// When glasses_box is given it receives the pixels the glasses touched.
inline Image render_face(const FaceParams& f, const GlassesParams* glasses, int size,
                         PixelBox* glasses_box = nullptr) {
  DISCO_CHECK(size >= 8 && size <= 8192, "render_face: size must be in [8, 8192], got ", size);
  Image img(size, size);
  if (glasses_box) *glasses_box = PixelBox{};
  faces_detail::draw_face(img, f, glasses, glasses_box);
  return img;
}

// ---- the data set -------------------------------------------------------------------------

struct SyntheticConfig {
  uint64_t seed = 2019;
  int resolution = 128;  // rendered image side length
  size_t count_a = 20000, count_b = 20000;
  Split split = Split::Train;  // train and test use disjoint parameter streams
};

// Domain A: face_a(i) wearing glasses(i); domain B: face_b(i), no glasses. The A and
// B faces, and the train and test sets, come from separate seed streams.
// Images are rendered at cfg.resolution; pair with Pipeline{crop = 0,
// resolution = cfg.resolution} (no crop, no resize) unless you want otherwise.
class SyntheticDataset : public Dataset {
 public:
  explicit SyntheticDataset(SyntheticConfig cfg = {}) : cfg_(cfg) {
    DISCO_CHECK(cfg_.resolution >= 8, "SyntheticDataset: resolution must be >= 8, got ", cfg_.resolution);
    DISCO_CHECK(cfg_.count_a > 0 && cfg_.count_b > 0, "SyntheticDataset: counts must be positive, got A=",
                cfg_.count_a, " B=", cfg_.count_b);
  }

  const SyntheticConfig& config() const { return cfg_; }
  size_t size(Domain d) const override { return d == Domain::A ? cfg_.count_a : cfg_.count_b; }
  Image load(Domain d, size_t i) const override {
    check_index(d, i);
    if (d == Domain::A) {
      const GlassesParams g = glasses(i);
      return render_face(face(Domain::A, i), &g, cfg_.resolution);
    }
    return render_face(face(Domain::B, i), nullptr, cfg_.resolution);
  }
  std::string item_name(Domain d, size_t i) const override {
    return str("synthetic:", split_name(cfg_.split), domain_name(d), ":", i);
  }
  std::string describe() const override {
    return str("synthetic faces (seed ", cfg_.seed, ", ", split_name(cfg_.split), ", ", cfg_.resolution, " px, A=",
               cfg_.count_a, " B=", cfg_.count_b, ")");
  }

  // Parameters of face i of a domain, and of the glasses worn by A face i.
  FaceParams face(Domain d, size_t i) const { return sample_face(stream(d == Domain::A ? 0xA : 0xB), i); }
  GlassesParams glasses(size_t a_index) const { return sample_glasses(stream(0x6A), a_index); }

  // Ground truth of transferring the glasses of A image guide_a onto B image base_b.
  Image gt_transfer(size_t base_b, size_t guide_a) const {
    check_index(Domain::B, base_b);
    check_index(Domain::A, guide_a);
    const GlassesParams g = glasses(guide_a);
    return render_face(face(Domain::B, base_b), &g, cfg_.resolution);
  }
  // Ground truth of removing the glasses from A image a.
  Image gt_remove(size_t a) const {
    check_index(Domain::A, a);
    return render_face(face(Domain::A, a), nullptr, cfg_.resolution);
  }

 private:
  uint64_t stream(uint64_t tag) const { return hash_seed(cfg_.seed, tag, static_cast<uint64_t>(cfg_.split)); }
  SyntheticConfig cfg_;
};

}  // namespace data
}  // namespace disco
