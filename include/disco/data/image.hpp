#pragma once
// Image I/O for the data layer.
//
// disco::data::Image is always 3-channel RGB, stored row-major and interleaved
// (HWC: rgb[(y * width + x) * 3 + c]) as floats in [0, 1]. Decoding goes through
// stb_image (JPEG, PNG, BMP and whatever else stb reads); grey, grey+alpha and
// RGBA inputs become RGB (grey is replicated, alpha is dropped, not blended).
// EXIF orientation is ignored, as PIL's Image.open(...).convert('RGB') does.
//
// Every failure throws disco::Error naming the file and the reason.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include "disco/core/error.hpp"

namespace disco {
namespace data {

struct Image {
  int width = 0, height = 0;
  std::vector<float> rgb;  // HWC interleaved, 3 channels, values in [0, 1]

  Image() = default;
  Image(int w, int h, float fill = 0.0f) : width(w), height(h) {
    DISCO_CHECK(w >= 0 && h >= 0, "Image: negative size ", w, "x", h);
    rgb.assign(static_cast<size_t>(w) * h * 3, fill);
  }

  bool empty() const { return width == 0 || height == 0; }
  float* pixel(int x, int y) { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
  const float* pixel(int x, int y) const { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
  float& at(int x, int y, int c) { return pixel(x, y)[c]; }
  float at(int x, int y, int c) const { return pixel(x, y)[c]; }
};

// ---- 8-bit conversion -------------------------------------------------------------------

inline uint8_t to_u8(float v) {
  v = std::min(1.0f, std::max(0.0f, v));
  return static_cast<uint8_t>(std::lround(v * 255.0f));
}

// Interleaved 8-bit RGB -> Image.
inline Image image_from_rgb8(const uint8_t* px, int w, int h) {
  Image img(w, h);
  const size_t n = img.rgb.size();
  for (size_t i = 0; i < n; ++i) img.rgb[i] = px[i] * (1.0f / 255.0f);
  return img;
}

// Image -> interleaved 8-bit RGB (clamped, rounded to nearest).
inline std::vector<uint8_t> image_to_rgb8(const Image& img) {
  std::vector<uint8_t> out(img.rgb.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = to_u8(img.rgb[i]);
  return out;
}

// ---- decoding ---------------------------------------------------------------------------

namespace detail {

inline uint32_t rd_le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline uint16_t rd_le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t rd_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// stb_image decodes a cut-off JPEG or BMP without complaint (it pads the missing
// data), so the container is checked for completeness first. Returns an empty
// string when the file looks whole, else the reason.
inline std::string truncation_reason(const uint8_t* b, size_t n) {
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
    // JPEG: the last start-of-scan marker (FF DA) must be followed by an
    // end-of-image marker (FF D9). Entropy-coded data never holds FF DA / FF D9.
    size_t last_sos = n;
    for (size_t i = 0; i + 1 < n; ++i)
      if (b[i] == 0xFF && b[i + 1] == 0xDA) last_sos = i;
    if (last_sos == n) return "";  // no scan at all: let the decoder report it
    for (size_t i = last_sos + 2; i + 1 < n; ++i)
      if (b[i] == 0xFF && b[i + 1] == 0xD9) return "";
    return "truncated JPEG (no end-of-image marker after the last scan)";
  }
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 8 && std::memcmp(b, png_sig, 8) == 0) {
    // PNG: walk the chunks until IEND.
    size_t pos = 8;
    while (pos + 8 <= n) {
      uint32_t len = rd_be32(b + pos);
      if (std::memcmp(b + pos + 4, "IEND", 4) == 0) return "";
      uint64_t next = uint64_t(pos) + 12 + len;
      if (next > n) break;
      pos = static_cast<size_t>(next);
    }
    return "truncated PNG (file ends before the IEND chunk)";
  }
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') {
    if (n < 26) return "truncated BMP (incomplete header)";
    uint32_t offset = rd_le32(b + 10), hsize = rd_le32(b + 14);
    int64_t w, h;
    uint32_t bpp, compression = 0;
    if (hsize == 12) {
      w = rd_le16(b + 18);
      h = rd_le16(b + 20);
      bpp = rd_le16(b + 24);
    } else {
      if (n < 34) return "truncated BMP (incomplete header)";
      w = static_cast<int32_t>(rd_le32(b + 18));
      h = static_cast<int32_t>(rd_le32(b + 22));
      bpp = rd_le16(b + 28);
      compression = rd_le32(b + 30);
    }
    // uncompressed / bitfields: the pixel array size is known exactly
    if ((compression == 0 || compression == 3 || compression == 6) && w > 0 && bpp > 0) {
      uint64_t stride = ((uint64_t(w) * bpp + 31) / 32) * 4;
      uint64_t need = uint64_t(offset) + stride * uint64_t(h < 0 ? -h : h);
      if (need > n)
        return str("truncated BMP (pixel data needs ", need, " bytes, file has ", n, ")");
    }
  }
  return "";
}

inline std::vector<uint8_t> read_file_bytes(const std::string& path, const char* what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(what, ": file not found: '", path, "'");
  if (fs::is_directory(path, ec)) fail(what, ": '", path, "' is a directory, expected a file");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(what, ": cannot open '", path, "': ", std::strerror(errno));
  f.seekg(0, std::ios::end);
  std::streamoff size = f.tellg();
  f.seekg(0, std::ios::beg);
  if (size < 0) fail(what, ": cannot read '", path, "'");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), size))
    fail(what, ": read error on '", path, "'");
  return bytes;
}

}  // namespace detail

// Decode an encoded image held in memory; `name` is used in error messages.
inline Image decode_image(const uint8_t* bytes, size_t size, const std::string& name) {
  if (size == 0) fail("load_image: '", name, "' is empty (0 bytes)");
  std::string trunc = detail::truncation_reason(bytes, size);
  if (!trunc.empty()) fail("load_image: cannot decode '", name, "': ", trunc);
  DISCO_CHECK(size <= static_cast<size_t>(INT32_MAX), "load_image: '", name, "' is too large (", size,
              " bytes)");
  int w = 0, h = 0, comp = 0;
  uint8_t* px = stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &comp, 3);
  if (!px) {
    const char* why = stbi_failure_reason();
    fail("load_image: cannot decode '", name, "': ", why ? why : "unknown stb_image error",
         " (supported: JPEG, PNG, BMP)");
  }
  Image img;
  try {
    img = image_from_rgb8(px, w, h);
  } catch (...) {
    stbi_image_free(px);
    throw;
  }
  stbi_image_free(px);
  return img;
}

// Load an image file as RGB floats in [0, 1]. Throws disco::Error naming `path`
// when the file is missing, unreadable, corrupt or truncated.
inline Image load_image(const std::string& path) {
  std::vector<uint8_t> bytes = detail::read_file_bytes(path, "load_image");
  return decode_image(bytes.data(), bytes.size(), path);
}

// Write an image as an 8-bit RGB PNG (values clamped to [0, 1], rounded).
inline void save_png(const std::string& path, const Image& img) {
  DISCO_CHECK(!img.empty(), "save_png: image for '", path, "' is empty (", img.width, "x", img.height, ")");
  DISCO_CHECK(img.rgb.size() == static_cast<size_t>(img.width) * img.height * 3, "save_png: image for '",
              path, "' has ", img.rgb.size(), " values, expected ", img.width, "x", img.height, "x3");
  std::vector<uint8_t> px = image_to_rgb8(img);
  if (!stbi_write_png(path.c_str(), img.width, img.height, 3, px.data(), img.width * 3))
    fail("save_png: cannot write '", path, "' (does the folder exist and is it writable?)");
}

// ---- CHW float conversion ------------------------------------------------------------------

// Write img as planar CHW floats in [-1, 1] (v * 2 - 1, i.e. (v - 0.5) / 0.5) to out[3*h*w].
inline void to_chw(const Image& img, float* out) {
  const size_t plane = static_cast<size_t>(img.width) * img.height;
  const float* src = img.rgb.data();
  for (size_t i = 0; i < plane; ++i) {
    out[i] = src[3 * i] * 2.0f - 1.0f;
    out[plane + i] = src[3 * i + 1] * 2.0f - 1.0f;
    out[2 * plane + i] = src[3 * i + 2] * 2.0f - 1.0f;
  }
}

inline std::vector<float> to_chw(const Image& img) {
  std::vector<float> out(static_cast<size_t>(img.width) * img.height * 3);
  to_chw(img, out.data());
  return out;
}

// Planar CHW floats in [-1, 1] -> Image ((v + 1) / 2, clamped to [0, 1]).
// c must be 1 (grey, replicated) or 3.
inline Image from_chw(const float* chw, int c, int h, int w) {
  DISCO_CHECK(c == 1 || c == 3, "from_chw: expected 1 or 3 channels, got ", c, " (shape ", c, "x", h, "x", w,
              ")");
  DISCO_CHECK(h > 0 && w > 0, "from_chw: bad shape ", c, "x", h, "x", w);
  Image img(w, h);
  const size_t plane = static_cast<size_t>(w) * h;
  for (size_t i = 0; i < plane; ++i)
    for (int k = 0; k < 3; ++k) {
      float v = (chw[(c == 3 ? k : 0) * plane + i] + 1.0f) * 0.5f;
      img.rgb[3 * i + k] = std::min(1.0f, std::max(0.0f, v));
    }
  return img;
}

inline Image from_chw(const std::vector<float>& chw, int c, int h, int w) {
  DISCO_CHECK(chw.size() == static_cast<size_t>(c) * h * w, "from_chw: buffer has ", chw.size(),
              " values, expected ", c, "x", h, "x", w);
  return from_chw(chw.data(), c, h, w);
}

// ---- grids --------------------------------------------------------------------------------

// Tile cells (row-major, rows*cols of them) into one image with `pad` pixels of
// `background` between and around the cells. Empty cells (default Image) stay
// background. All non-empty cells must share one size.
inline Image tile_grid(const std::vector<Image>& cells, int rows, int cols, int pad = 2,
                       float background = 1.0f) {
  DISCO_CHECK(rows > 0 && cols > 0, "tile_grid: need rows, cols > 0, got ", rows, "x", cols);
  DISCO_CHECK(pad >= 0, "tile_grid: negative padding ", pad);
  DISCO_CHECK(cells.size() == static_cast<size_t>(rows) * cols, "tile_grid: got ", cells.size(),
              " cells for a ", rows, "x", cols, " grid");
  int cw = 0, ch = 0;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (cells[i].empty()) continue;
    if (cw == 0) {
      cw = cells[i].width;
      ch = cells[i].height;
    }
    DISCO_CHECK(cells[i].width == cw && cells[i].height == ch, "tile_grid: cell ", i, " is ", cells[i].width,
                "x", cells[i].height, ", expected ", cw, "x", ch, " like the first non-empty cell");
  }
  DISCO_CHECK(cw > 0, "tile_grid: all cells are empty");
  Image out(cols * cw + (cols + 1) * pad, rows * ch + (rows + 1) * pad, background);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const Image& cell = cells[static_cast<size_t>(r) * cols + c];
      if (cell.empty()) continue;
      const int x0 = pad + c * (cw + pad), y0 = pad + r * (ch + pad);
      for (int y = 0; y < ch; ++y)
        std::copy(cell.pixel(0, y), cell.pixel(0, y) + 3 * cw, out.pixel(x0, y0 + y));
    }
  return out;
}

// A result grid in the style of the paper's figures: the top row holds `top`
// (e.g. the guides), the left column holds `left` (e.g. the bases), the top-left
// cell is blank and cells[i][j] (row i of `left`, column j of `top`) fills the rest.
inline Image transfer_grid(const std::vector<Image>& top, const std::vector<Image>& left,
                           const std::vector<std::vector<Image>>& cells, int pad = 2, float background = 1.0f) {
  DISCO_CHECK(cells.size() == left.size(), "transfer_grid: ", cells.size(), " rows of cells for ", left.size(),
              " left-column images");
  const int rows = static_cast<int>(left.size()) + 1, cols = static_cast<int>(top.size()) + 1;
  std::vector<Image> grid(static_cast<size_t>(rows) * cols);
  for (size_t j = 0; j < top.size(); ++j) grid[j + 1] = top[j];
  for (size_t i = 0; i < left.size(); ++i) {
    DISCO_CHECK(cells[i].size() == top.size(), "transfer_grid: row ", i, " has ", cells[i].size(),
                " cells, expected ", top.size());
    grid[(i + 1) * cols] = left[i];
    for (size_t j = 0; j < top.size(); ++j) grid[(i + 1) * cols + j + 1] = cells[i][j];
  }
  return tile_grid(grid, rows, cols, pad, background);
}

}  // namespace data
}  // namespace disco
