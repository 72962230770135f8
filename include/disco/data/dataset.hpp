#pragma once
// Two-domain image data sets (domain A: images with the extra content, e.g.
// glasses; domain B: without) and the plain-float Batch the trainer consumes.
//
// A Dataset hands out raw images by (domain, index); get() runs them through a
// Pipeline to CHW floats in [-1, 1]. Implementations here:
//   FolderDataset    root/{trainA,trainB,testA,testB} or an explicit pair of folders
//   ListFileDataset  root/{trainA,trainB,testA,testB}.txt, one image path per line
//                    (the files the official ContentDisentanglement preprocess.py writes)
// CelebA splits live in celeba.hpp, procedural faces in synthetic_faces.hpp.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "disco/core/error.hpp"
#include "disco/data/image.hpp"
#include "disco/data/random.hpp"
#include "disco/data/transforms.hpp"

namespace disco {
namespace data {

enum class Domain { A = 0, B = 1 };
enum class Split { Train = 0, Test = 1 };

inline const char* domain_name(Domain d) { return d == Domain::A ? "A" : "B"; }
inline const char* split_name(Split s) { return s == Split::Train ? "train" : "test"; }

// "train" | "test" -> Split.
inline Split parse_split(const std::string& s) {
  if (s == "train") return Split::Train;
  if (s == "test") return Split::Test;
  fail("split: unknown '", s, "', expected train or test");
}

// A batch of n images as planar floats, NCHW, values in [-1, 1].
struct Batch {
  int n = 0, c = 0, h = 0, w = 0;
  std::vector<float> data;

  size_t sample_size() const { return static_cast<size_t>(c) * h * w; }
  float* sample(int i) { return data.data() + static_cast<size_t>(i) * sample_size(); }
  const float* sample(int i) const { return data.data() + static_cast<size_t>(i) * sample_size(); }
  // Sample i back as an Image in [0, 1].
  Image image(int i) const {
    DISCO_CHECK(i >= 0 && i < n, "Batch::image: index ", i, " out of range for a batch of ", n);
    return from_chw(sample(i), c, h, w);
  }
};

// All samples of a batch tiled into one image, `cols` per row (the last row may be short).
inline Image tile_batch(const Batch& b, int cols, int pad = 2, float background = 1.0f) {
  DISCO_CHECK(b.n > 0, "tile_batch: empty batch");
  DISCO_CHECK(cols > 0, "tile_batch: cols must be positive, got ", cols);
  DISCO_CHECK(b.data.size() == b.sample_size() * b.n, "tile_batch: batch holds ", b.data.size(), " values, expected ",
              b.n, "x", b.c, "x", b.h, "x", b.w);
  const int rows = (b.n + cols - 1) / cols;
  std::vector<Image> cells(static_cast<size_t>(rows) * cols);
  for (int i = 0; i < b.n; ++i) cells[i] = b.image(i);
  return tile_grid(cells, rows, cols, pad, background);
}

// The data set interface. load() and item_name() must be safe to call from several
// threads at once (the background loader does).
class Dataset {
 public:
  virtual ~Dataset() = default;

  // Number of images in a domain (> 0 for every implementation here).
  virtual size_t size(Domain d) const = 0;
  // Image i of domain d, untransformed, RGB in [0, 1].
  virtual Image load(Domain d, size_t i) const = 0;
  // A name for image i (its path, or a synthetic id), for messages.
  virtual std::string item_name(Domain d, size_t i) const = 0;
  // One line saying what this data set is.
  virtual std::string describe() const = 0;

  // Image i through the pipeline into out[p.sample_size()] (CHW, [-1, 1]).
  void get(Domain d, size_t i, const Pipeline& p, bool flip, float* out) const { p.apply(load(d, i), flip, out); }
  // Image i through the pipeline with a random flip from rng (one draw).
  std::vector<float> get(Domain d, size_t i, const Pipeline& p, Pcg32& rng) const {
    return p.apply(load(d, i), p.draw_flip(rng));
  }

 protected:
  void check_index(Domain d, size_t i) const {
    DISCO_CHECK(i < size(d), "dataset ", describe(), ": index ", i, " out of range for domain ", domain_name(d),
                " of size ", size(d));
  }
};

// A batch of the given images of one domain; flips[k] (if given) says whether to flip
// image k. Use e.g. for the fixed test images shown in result grids.
inline Batch make_batch(const Dataset& ds, Domain d, const std::vector<size_t>& indices, const Pipeline& p,
                        const std::vector<bool>* flips = nullptr) {
  DISCO_CHECK(!flips || flips->size() == indices.size(), "make_batch: ", indices.size(), " indices but ",
              flips->size(), " flip flags");
  Batch b;
  b.n = static_cast<int>(indices.size());
  b.c = 3;
  b.h = b.w = p.resolution;
  b.data.resize(b.sample_size() * b.n);
  for (int k = 0; k < b.n; ++k) ds.get(d, indices[k], p, flips ? (*flips)[k] : false, b.sample(k));
  return b;
}

// The first n images of a domain, unflipped (n is clamped to the domain size).
inline Batch first_images(const Dataset& ds, Domain d, size_t n, const Pipeline& p) {
  n = std::min(n, ds.size(d));
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  return make_batch(ds, d, idx, p);
}

// ---- file-based data sets ----------------------------------------------------------------

// True when the file name ends in .jpg .jpeg .png or .bmp (any letter case).
inline bool is_image_file_name(const std::string& name) {
  std::string ext;
  const size_t dot = name.find_last_of('.');
  if (dot == std::string::npos) return false;
  for (size_t i = dot; i < name.size(); ++i) ext += static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// All image files under dir (recursively, as the official code walks folders),
// sorted by path. Hidden files (name starting with '.') are skipped.
// Throws when dir is missing or not a folder; returns an empty list for no images.
inline std::vector<std::string> list_image_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail("image folder not found: '", dir, "'");
  if (!fs::is_directory(dir, ec)) fail("'", dir, "' is not a folder");
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec), end;
  if (ec) fail("cannot list folder '", dir, "': ", ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) fail("cannot list folder '", dir, "': ", ec.message());
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && is_image_file_name(name)) files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// A data set given by two lists of image paths. Images are decoded on every load().
class FileListDataset : public Dataset {
 public:
  FileListDataset(std::vector<std::string> files_a, std::vector<std::string> files_b, std::string description)
      : files_{std::move(files_a), std::move(files_b)}, description_(std::move(description)) {
    DISCO_CHECK(!files_[0].empty(), description_, ": domain A has no images");
    DISCO_CHECK(!files_[1].empty(), description_, ": domain B has no images");
  }

  size_t size(Domain d) const override { return files_[static_cast<int>(d)].size(); }
  Image load(Domain d, size_t i) const override {
    check_index(d, i);
    return load_image(resolve(d, i));
  }
  std::string item_name(Domain d, size_t i) const override {
    check_index(d, i);
    return files_[static_cast<int>(d)][i];
  }
  std::string describe() const override { return description_; }
  const std::vector<std::string>& files(Domain d) const { return files_[static_cast<int>(d)]; }

 protected:
  // The path to open for item i (list files override this to search roots).
  virtual std::string resolve(Domain d, size_t i) const { return files_[static_cast<int>(d)][i]; }

  std::vector<std::string> files_[2];
  std::string description_;
};

// Images from folders: root/trainA + root/trainB (or testA/testB), or an explicit
// pair (dir_a, dir_b), e.g. facemask/with_mask and facemask/without_mask.
class FolderDataset : public FileListDataset {
 public:
  FolderDataset(const std::string& root, Split split)
      : FolderDataset(sub(root, "A", split), sub(root, "B", split)) {}
  FolderDataset(const std::string& dir_a, const std::string& dir_b)
      : FileListDataset(list_domain(dir_a), list_domain(dir_b), "folders A='" + dir_a + "' B='" + dir_b + "'") {}

 private:
  static std::string sub(const std::string& root, const char* dom, Split split) {
    return (std::filesystem::path(root) / (std::string(split_name(split)) + dom)).string();
  }
  static std::vector<std::string> list_domain(const std::string& dir) {
    std::vector<std::string> files = list_image_files(dir);
    DISCO_CHECK(!files.empty(), "FolderDataset: no images (.jpg .jpeg .png .bmp) in folder '", dir, "'");
    return files;
  }
};

// One image path per line (blank lines and surrounding white space ignored).
// Returns the entries with their 1-based line numbers.
inline std::vector<std::pair<std::string, int>> read_list_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail("list file not found: '", path, "'");
    fail("cannot open list file '", path, "'");
  }
  std::vector<std::pair<std::string, int>> out;
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    size_t a = 0, b = line.size();
    while (a < b && std::isspace(static_cast<unsigned char>(line[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(line[b - 1]))) --b;
    if (b > a) out.emplace_back(line.substr(a, b - a), lineno);
  }
  return out;
}

// Images named by list files root/trainA.txt + root/trainB.txt (or testA/testB).
// A relative entry is looked up, in order, under image_root (when given), under
// the list file's folder, and relative to the working directory (the official
// preprocess.py writes os.path.join(celeba_dir, name), usable from its cwd).
// Absolute entries are used as they are. Files are checked when loaded.
class ListFileDataset : public FileListDataset {
 public:
  ListFileDataset(const std::string& root, Split split, const std::string& image_root = "")
      : ListFileDataset(read_domain(root, "A", split), read_domain(root, "B", split), root, split, image_root) {}

 private:
  using Entries = std::pair<std::vector<std::string>, std::vector<int>>;
  ListFileDataset(Entries a, Entries b, const std::string& root, Split split, const std::string& image_root)
      : FileListDataset(std::move(a.first), std::move(b.first),
                        "list files " + list_path(root, "A", split) + " / " + list_path(root, "B", split)),
        lines_{std::move(a.second), std::move(b.second)},
        root_(root),
        image_root_(image_root),
        split_(split) {}

  static std::string list_path(const std::string& root, const char* dom, Split split) {
    return (std::filesystem::path(root) / (std::string(split_name(split)) + dom + ".txt")).string();
  }
  static Entries read_domain(const std::string& root, const char* dom, Split split) {
    const std::string path = list_path(root, dom, split);
    Entries e;
    for (auto& [name, line] : read_list_file(path)) {
      e.first.push_back(name);
      e.second.push_back(line);
    }
    DISCO_CHECK(!e.first.empty(), "ListFileDataset: list file '", path, "' names no images");
    return e;
  }

  std::string resolve(Domain d, size_t i) const override {
    namespace fs = std::filesystem;
    const std::string& entry = files_[static_cast<int>(d)][i];
    const fs::path p(entry);
    std::error_code ec;
    std::vector<fs::path> tries;
    if (!p.is_absolute()) {
      if (!image_root_.empty()) tries.push_back(fs::path(image_root_) / p);
      tries.push_back(fs::path(root_) / p);
    }
    tries.push_back(p);
    for (const fs::path& t : tries)
      if (fs::exists(t, ec)) return t.string();
    std::string looked;
    for (const fs::path& t : tries) looked += (looked.empty() ? "'" : ", '") + t.string() + "'";
    fail("ListFileDataset: image '", entry, "' (", list_path(root_, domain_name(d), split_),
         " line ", lines_[static_cast<int>(d)][i], ") not found; looked at ", looked);
  }

  std::vector<int> lines_[2];
  std::string root_, image_root_;
  Split split_;
};

// Write one list file: one path per line.
inline void write_list_file(const std::string& path, const std::vector<std::string>& entries) {
  std::ofstream f(path);
  if (!f) fail("cannot create list file '", path, "' (does the folder exist?)");
  for (const std::string& e : entries) f << e << '\n';
  if (!f) fail("write error on list file '", path, "'");
}

}  // namespace data
}  // namespace disco
