#pragma once
// Image transforms: centre crop, resize, horizontal flip, normalisation, and the
// training Pipeline (CenterCrop -> Resize -> RandomHorizontalFlip -> CHW in [-1, 1]),
// the same chain the official ContentDisentanglement code builds with torchvision.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "disco/core/error.hpp"
#include "disco/data/image.hpp"
#include "disco/data/random.hpp"

namespace disco {
namespace data {

namespace detail {
// Python's round(): halves go to the even neighbour (torchvision's crop offsets use it).
inline int round_half_even(double v) {
  double f = std::floor(v);
  double diff = v - f;
  if (diff > 0.5) return static_cast<int>(f) + 1;
  if (diff < 0.5) return static_cast<int>(f);
  return (static_cast<long long>(f) % 2 == 0) ? static_cast<int>(f) : static_cast<int>(f) + 1;
}
}  // namespace detail

// Crop a centred width x height window like torchvision CenterCrop: the offset is
// round((size - crop) / 2) with Python rounding; where the image is smaller than
// the crop, it is padded with zeros (black), floor(diff / 2) before and the rest
// after, as torchvision does.
inline Image center_crop(const Image& img, int crop_w, int crop_h) {
  DISCO_CHECK(crop_w > 0 && crop_h > 0, "center_crop: crop size must be positive, got ", crop_w, "x", crop_h);
  DISCO_CHECK(!img.empty(), "center_crop: empty input image");
  auto offset = [](int size, int crop) {
    return size >= crop ? detail::round_half_even((size - crop) / 2.0) : -((crop - size) / 2);
  };
  const int ox = offset(img.width, crop_w), oy = offset(img.height, crop_h);
  Image out(crop_w, crop_h, 0.0f);
  const int x_lo = std::max(0, -ox), x_hi = std::min(crop_w, img.width - ox);
  for (int y = 0; y < crop_h; ++y) {
    const int sy = y + oy;
    if (sy < 0 || sy >= img.height || x_hi <= x_lo) continue;
    std::copy(img.pixel(x_lo + ox, sy), img.pixel(x_lo + ox, sy) + 3 * (x_hi - x_lo), out.pixel(x_lo, y));
  }
  return out;
}

// Square centre crop; size == 0 means the largest centred square (min(width, height)).
inline Image center_crop(const Image& img, int size) {
  DISCO_CHECK(size >= 0, "center_crop: crop size must be >= 0 (0 = largest square), got ", size);
  if (size == 0) size = std::min(img.width, img.height);
  return center_crop(img, size, size);
}

enum class ResizeMode {
  // Exact box-filter average: each output pixel is the area-weighted mean of the
  // input pixels its footprint covers (OpenCV INTER_AREA when shrinking).
  Area,
  // PIL's Image.resize(BILINEAR), which is what torchvision's Resize does on PIL
  // images (and on tensors with antialias=True): a triangle filter on half-pixel
  // centres, widened by the scale factor when shrinking (so it antialiases);
  // when enlarging it is plain bilinear interpolation with edge clamping.
  // Differences from PIL are float rounding only (PIL rounds to 8 bits between the
  // horizontal and vertical passes).
  Bilinear,
  // Nearest neighbour at half-pixel centres (PIL NEAREST).
  Nearest,
};

inline const char* resize_mode_name(ResizeMode m) {
  switch (m) {
    case ResizeMode::Area: return "area";
    case ResizeMode::Bilinear: return "bilinear";
    case ResizeMode::Nearest: return "nearest";
  }
  return "?";
}

// "area" | "bilinear" | "nearest" -> ResizeMode.
inline ResizeMode parse_resize_mode(const std::string& s) {
  if (s == "area") return ResizeMode::Area;
  if (s == "bilinear") return ResizeMode::Bilinear;
  if (s == "nearest") return ResizeMode::Nearest;
  fail("resize mode: unknown '", s, "', expected one of: area, bilinear, nearest");
}

namespace detail {

// The taps of a 1-D resampling: output i reads input start[i] .. start[i]+count[i]-1
// with weights w[i * max_taps + k] (summing to 1).
struct Taps {
  std::vector<int> start, count;
  std::vector<float> w;
  int max_taps = 0;
};

inline Taps make_taps(int in, int out, ResizeMode mode) {
  Taps t;
  t.start.resize(out);
  t.count.resize(out);
  const double scale = static_cast<double>(in) / out;
  std::vector<std::vector<double>> ws(out);
  for (int i = 0; i < out; ++i) {
    int lo = 0;
    std::vector<double>& w = ws[i];
    if (mode == ResizeMode::Nearest) {
      lo = std::min(static_cast<int>((i + 0.5) * scale), in - 1);
      w = {1.0};
    } else if (mode == ResizeMode::Area) {
      const double a = i * scale, b = (i + 1) * scale;
      lo = std::min(static_cast<int>(std::floor(a)), in - 1);
      const int hi = std::min(static_cast<int>(std::ceil(b)), in);
      for (int j = lo; j < hi; ++j) w.push_back(std::max(0.0, std::min<double>(b, j + 1) - std::max<double>(a, j)));
    } else {  // Bilinear, PIL style
      const double fscale = std::max(scale, 1.0), support = fscale;
      const double center = (i + 0.5) * scale;
      lo = std::max(static_cast<int>(center - support + 0.5), 0);
      const int hi = std::min(static_cast<int>(center + support + 0.5), in);
      for (int j = lo; j < hi; ++j) w.push_back(std::max(0.0, 1.0 - std::fabs((j - center + 0.5) / fscale)));
    }
    double sum = 0;
    for (double v : w) sum += v;
    if (sum <= 0) {  // cannot happen for sane sizes; fall back to nearest
      w.assign(1, 1.0);
      sum = 1;
    }
    for (double& v : w) v /= sum;
    t.start[i] = lo;
    t.count[i] = static_cast<int>(w.size());
    t.max_taps = std::max(t.max_taps, t.count[i]);
  }
  t.w.assign(static_cast<size_t>(out) * t.max_taps, 0.0f);
  for (int i = 0; i < out; ++i)
    for (int k = 0; k < t.count[i]; ++k) t.w[static_cast<size_t>(i) * t.max_taps + k] = static_cast<float>(ws[i][k]);
  return t;
}

}  // namespace detail

// Resize to out_w x out_h with the given filter (separable: rows, then columns).
inline Image resize(const Image& img, int out_w, int out_h, ResizeMode mode = ResizeMode::Bilinear) {
  DISCO_CHECK(out_w > 0 && out_h > 0, "resize: output size must be positive, got ", out_w, "x", out_h);
  DISCO_CHECK(!img.empty(), "resize: empty input image");
  if (out_w == img.width && out_h == img.height) return img;
  const detail::Taps tx = detail::make_taps(img.width, out_w, mode);
  const detail::Taps ty = detail::make_taps(img.height, out_h, mode);
  // horizontal pass: img.height x out_w
  Image mid(out_w, img.height);
  for (int y = 0; y < img.height; ++y) {
    const float* row = img.pixel(0, y);
    float* dst = mid.pixel(0, y);
    for (int x = 0; x < out_w; ++x) {
      const float* w = &tx.w[static_cast<size_t>(x) * tx.max_taps];
      const float* src = row + 3 * tx.start[x];
      float r = 0, g = 0, b = 0;
      for (int k = 0; k < tx.count[x]; ++k) {
        r += w[k] * src[3 * k];
        g += w[k] * src[3 * k + 1];
        b += w[k] * src[3 * k + 2];
      }
      dst[3 * x] = r;
      dst[3 * x + 1] = g;
      dst[3 * x + 2] = b;
    }
  }
  // vertical pass: out_h x out_w, accumulating whole rows
  Image out(out_w, out_h);
  const size_t row_len = static_cast<size_t>(out_w) * 3;
  for (int y = 0; y < out_h; ++y) {
    float* dst = out.pixel(0, y);
    const float* w = &ty.w[static_cast<size_t>(y) * ty.max_taps];
    for (int k = 0; k < ty.count[y]; ++k) {
      const float* src = mid.pixel(0, ty.start[y] + k);
      const float wk = w[k];
      for (size_t i = 0; i < row_len; ++i) dst[i] += wk * src[i];
    }
  }
  return out;
}

// Square resize.
inline Image resize(const Image& img, int size, ResizeMode mode = ResizeMode::Bilinear) {
  return resize(img, size, size, mode);
}

// Mirror left-right.
inline Image horizontal_flip(const Image& img) {
  Image out(img.width, img.height);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const float* s = img.pixel(img.width - 1 - x, y);
      float* d = out.pixel(x, y);
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    }
  return out;
}

// [0, 1] -> [-1, 1] in place: (x - 0.5) / 0.5, like Normalize((.5,.5,.5), (.5,.5,.5)).
inline void normalize(float* v, size_t n) {
  for (size_t i = 0; i < n; ++i) v[i] = (v[i] - 0.5f) / 0.5f;
}
// [-1, 1] -> [0, 1] in place (no clamping).
inline void denormalize(float* v, size_t n) {
  for (size_t i = 0; i < n; ++i) v[i] = v[i] * 0.5f + 0.5f;
}

// The training transform: CenterCrop(crop) -> Resize(resolution) ->
// RandomHorizontalFlip(flip_prob) -> CHW floats in [-1, 1]. Output is always
// 3 x resolution x resolution.
struct Pipeline {
  int crop = 178;          // centred square crop; 0 = largest centred square
  int resolution = 128;    // output side length
  float flip_prob = 0.5f;  // probability of a horizontal flip
  ResizeMode mode = ResizeMode::Bilinear;

  void validate() const {
    DISCO_CHECK(crop >= 0, "Pipeline: crop must be >= 0 (0 = largest centred square), got ", crop);
    DISCO_CHECK(resolution > 0, "Pipeline: resolution must be positive, got ", resolution);
    DISCO_CHECK(flip_prob >= 0.0f && flip_prob <= 1.0f, "Pipeline: flip_prob must be in [0, 1], got ", flip_prob);
  }

  // Number of floats apply() writes.
  size_t sample_size() const { return static_cast<size_t>(3) * resolution * resolution; }

  // One flip decision; always consumes exactly one draw from rng.
  bool draw_flip(Pcg32& rng) const { return rng.uniform() < flip_prob; }

  // Crop, resize and optionally flip; result stays an Image in [0, 1].
  Image prepare(const Image& img, bool flip) const {
    validate();
    Image x = center_crop(img, crop);
    x = resize(x, resolution, resolution, mode);
    return flip ? horizontal_flip(x) : x;
  }

  // Transform into out[sample_size()] (CHW, [-1, 1]).
  void apply(const Image& img, bool flip, float* out) const { to_chw(prepare(img, flip), out); }

  std::vector<float> apply(const Image& img, bool flip) const { return to_chw(prepare(img, flip)); }

  // Random flip drawn from rng (one draw).
  std::vector<float> apply(const Image& img, Pcg32& rng) const { return apply(img, draw_flip(rng)); }
};

}  // namespace data
}  // namespace disco
