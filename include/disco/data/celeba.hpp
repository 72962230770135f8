#pragma once
// CelebA: parse list_attr_celeba.txt and split the images into two domains by an
// attribute rule, following the official ContentDisentanglement preprocess.py:
//
//   glasses   A: Eyeglasses == 1                  B: Eyeglasses == -1
//   mouth     A: Mouth_Slightly_Open == 1         B: otherwise
//   smile     A: Smiling == 1                     B: otherwise
//   beard     A: Male, no 5_o_Clock_Shadow, and (Mustache or Goatee or not No_Beard)
//             B: Male, no 5_o_Clock_Shadow, No_Beard, no Mustache, no Goatee
//             (everyone else, e.g. all women, is left out)
//   custom:<Attribute_Name>   A: attribute == 1   B: otherwise
//
// Domains keep the file order; the first num_test (default 64) of each are the
// test set, the rest the training set.
//
// File format: line 1 the image count, line 2 the attribute names, then one line
// per image: "<file name> v1 ... vN" with every v equal to 1 or -1.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "disco/core/error.hpp"
#include "disco/data/dataset.hpp"

namespace disco {
namespace data {

struct CelebAAttributes {
  std::vector<std::string> names;  // attribute names, in file order (40 for CelebA)
  std::vector<std::string> files;  // image file names, in file order
  std::vector<int8_t> values;      // files.size() x names.size(), each 1 or -1

  size_t rows() const { return files.size(); }
  // Column of an attribute, or -1 when there is none of that name.
  int index(const std::string& name) const {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return static_cast<int>(i);
    return -1;
  }
  // Column of an attribute; throws listing the valid names when absent.
  int require(const std::string& name) const {
    int i = index(name);
    if (i < 0) {
      std::string all;
      for (const std::string& n : names) all += (all.empty() ? "" : " ") + n;
      fail("CelebA: unknown attribute '", name, "'; valid names: ", all);
    }
    return i;
  }
  int value(size_t row, int col) const { return values[row * names.size() + col]; }
};

// Parse the text of an attribute file; `name` is used in messages ("name:line: ...").
inline CelebAAttributes parse_celeba_attributes_text(const std::string& text, const std::string& name) {
  CelebAAttributes out;
  size_t pos = 0, lineno = 0;
  const size_t n = text.size();
  std::vector<std::pair<size_t, size_t>> tok;  // [begin, end) of the tokens of the current line
  // Split the next line into tokens; false at end of text.
  auto next_line = [&]() {
    if (pos >= n) return false;
    ++lineno;
    tok.clear();
    while (pos < n && text[pos] != '\n') {
      while (pos < n && text[pos] != '\n' && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\r')) ++pos;
      size_t b = pos;
      while (pos < n && text[pos] != '\n' && text[pos] != ' ' && text[pos] != '\t' && text[pos] != '\r') ++pos;
      if (pos > b) tok.emplace_back(b, pos);
    }
    if (pos < n) ++pos;  // the '\n'
    return true;
  };
  auto token = [&](size_t k) { return text.substr(tok[k].first, tok[k].second - tok[k].first); };

  if (!next_line() || tok.empty()) fail(name, ":1: expected the image count, found an empty line");
  if (tok.size() != 1) fail(name, ":1: expected a single image count, found ", tok.size(), " fields");
  long long count = -1;
  {
    const std::string t = token(0);
    char* end = nullptr;
    count = std::strtoll(t.c_str(), &end, 10);
    if (end == t.c_str() || *end != '\0' || count < 0)
      fail(name, ":1: expected the image count (a non-negative integer), found '", t, "'");
  }
  if (!next_line() || tok.empty()) fail(name, ":2: expected the attribute names, found ", pos >= n ? "end of file" : "an empty line");
  for (size_t k = 0; k < tok.size(); ++k) {
    std::string a = token(k);
    if (out.index(a) >= 0) fail(name, ":2: attribute '", a, "' is listed twice");
    out.names.push_back(a);
  }
  const size_t na = out.names.size();
  out.files.reserve(static_cast<size_t>(count));
  out.values.reserve(static_cast<size_t>(count) * na);
  while (next_line()) {
    if (tok.empty()) continue;  // blank lines (e.g. at the end) are ignored
    if (tok.size() != na + 1)
      fail(name, ":", lineno, ": expected ", na + 1, " fields (file name + ", na, " attributes), found ", tok.size());
    out.files.push_back(token(0));
    for (size_t k = 1; k <= na; ++k) {
      const size_t b = tok[k].first, len = tok[k].second - b;
      int8_t v;
      if (len == 1 && text[b] == '1')
        v = 1;
      else if (len == 2 && text[b] == '-' && text[b + 1] == '1')
        v = -1;
      else
        fail(name, ":", lineno, ": attribute ", out.names[k - 1], " of '", token(0), "' is '", token(k),
             "', expected 1 or -1");
      out.values.push_back(v);
    }
  }
  if (static_cast<long long>(out.files.size()) != count)
    fail(name, ":1: the header says ", count, " images but the file lists ", out.files.size());
  return out;
}

// Parse list_attr_celeba.txt (or a file in the same format).
inline CelebAAttributes parse_celeba_attributes(const std::string& path) {
  std::vector<uint8_t> bytes = detail::read_file_bytes(path, "CelebA attributes");
  return parse_celeba_attributes_text(std::string(bytes.begin(), bytes.end()), path);
}

// File names of the four parts of a two-domain split.
struct DomainSplit {
  std::vector<std::string> train_a, train_b, test_a, test_b;
  const std::vector<std::string>& get(Domain d, Split s) const {
    if (s == Split::Train) return d == Domain::A ? train_a : train_b;
    return d == Domain::A ? test_a : test_b;
  }
};

// Split by a config: glasses | beard | mouth | smile | custom:<Attribute_Name>.
inline DomainSplit split_celeba(const CelebAAttributes& attrs, const std::string& config, size_t num_test = 64) {
  std::vector<std::string> all_a, all_b;
  const std::string custom = "custom:";
  if (config == "glasses") {
    const int g = attrs.require("Eyeglasses");
    for (size_t r = 0; r < attrs.rows(); ++r) (attrs.value(r, g) == 1 ? all_a : all_b).push_back(attrs.files[r]);
  } else if (config == "beard") {
    const int male = attrs.require("Male"), shadow = attrs.require("5_o_Clock_Shadow"),
              mustache = attrs.require("Mustache"), goatee = attrs.require("Goatee"),
              no_beard = attrs.require("No_Beard");
    for (size_t r = 0; r < attrs.rows(); ++r) {
      if (attrs.value(r, male) != 1 || attrs.value(r, shadow) != -1) continue;
      const bool hair = attrs.value(r, mustache) == 1 || attrs.value(r, goatee) == 1 || attrs.value(r, no_beard) == -1;
      (hair ? all_a : all_b).push_back(attrs.files[r]);  // not hair => No_Beard and no mustache/goatee
    }
  } else {
    std::string attr;
    if (config == "mouth")
      attr = "Mouth_Slightly_Open";
    else if (config == "smile")
      attr = "Smiling";
    else if (config.compare(0, custom.size(), custom) == 0 && config.size() > custom.size())
      attr = config.substr(custom.size());
    else
      fail("CelebA split: unknown config '", config,
           "'; expected glasses, beard, mouth, smile or custom:<Attribute_Name>");
    const int c = attrs.require(attr);
    for (size_t r = 0; r < attrs.rows(); ++r) (attrs.value(r, c) == 1 ? all_a : all_b).push_back(attrs.files[r]);
  }
  DomainSplit s;
  auto cut = [num_test](std::vector<std::string>& all, std::vector<std::string>& test, std::vector<std::string>& train) {
    const size_t k = std::min(num_test, all.size());
    test.assign(all.begin(), all.begin() + k);
    train.assign(all.begin() + k, all.end());
  };
  cut(all_a, s.test_a, s.train_a);
  cut(all_b, s.test_b, s.train_b);
  return s;
}

// Write a split as list files dest/{trainA,trainB,testA,testB}.txt (creating dest),
// each line image_root/<file name> (just the file name when image_root is empty).
// ListFileDataset(dest, split) reads it back.
inline void write_split(const DomainSplit& split, const std::string& image_root, const std::string& dest) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec || !fs::is_directory(dest)) fail("write_split: cannot create folder '", dest, "': ", ec.message());
  auto write = [&](const char* file, const std::vector<std::string>& names) {
    std::vector<std::string> lines;
    lines.reserve(names.size());
    for (const std::string& nm : names) lines.push_back(image_root.empty() ? nm : (fs::path(image_root) / nm).string());
    write_list_file((fs::path(dest) / file).string(), lines);
  };
  write("trainA.txt", split.train_a);
  write("trainB.txt", split.train_b);
  write("testA.txt", split.test_a);
  write("testB.txt", split.test_b);
}

// CelebA images in image_dir split by `config` from attr_file.
class CelebADataset : public FileListDataset {
 public:
  CelebADataset(const std::string& image_dir, const std::string& attr_file, const std::string& config, Split split,
                size_t num_test = 64)
      : CelebADataset(image_dir, split_celeba(parse_celeba_attributes(attr_file), config, num_test), split,
                      "CelebA " + config + " " + split_name(split) + " (" + image_dir + ")") {}

 private:
  CelebADataset(const std::string& image_dir, const DomainSplit& s, Split split, std::string desc)
      : FileListDataset(paths(image_dir, s.get(Domain::A, split), desc + " domain A"),
                        paths(image_dir, s.get(Domain::B, split), desc + " domain B"), desc) {}
  static std::vector<std::string> paths(const std::string& dir, const std::vector<std::string>& names,
                                        const std::string& what) {
    DISCO_CHECK(!names.empty(), what, ": no images match");
    std::vector<std::string> out;
    out.reserve(names.size());
    for (const std::string& nm : names) out.push_back((std::filesystem::path(dir) / nm).string());
    return out;
  }
};

}  // namespace data
}  // namespace disco
