// Folder and list-file data sets, including the real face-mask photos.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <stb/stb_image_write.h>

#include "disco/data/dataset.hpp"

namespace fs = std::filesystem;
using namespace disco::data;

namespace {

fs::path temp_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("disco_test_data_dataset_" + tag);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A w x h PNG filled with grey level v (0..255).
void write_png(const fs::path& p, int w, int h, uint8_t v) {
  fs::create_directories(p.parent_path());
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3, v);
  REQUIRE(stbi_write_png(p.string().c_str(), w, h, 3, px.data(), w * 3));
}

}  // namespace

TEST_CASE("FolderDataset lists image files sorted, any extension case", "[data]") {
  const fs::path root = temp_dir("folders");
  write_png(root / "trainA" / "b.png", 8, 6, 10);
  write_png(root / "trainA" / "a.PNG", 8, 6, 20);
  write_png(root / "trainA" / "sub" / "c.png", 8, 6, 30);  // folders are walked recursively
  write_png(root / "trainA" / ".hidden.png", 8, 6, 40);    // hidden files are skipped
  std::ofstream(root / "trainA" / "notes.txt") << "not an image";
  write_png(root / "trainB" / "x.bmp.png", 10, 10, 250);
  fs::create_directories(root / "testA");
  write_png(root / "testB" / "y.png", 4, 4, 0);

  const FolderDataset ds(root.string(), Split::Train);
  REQUIRE(ds.size(Domain::A) == 3);
  REQUIRE(ds.size(Domain::B) == 1);
  CHECK(fs::path(ds.item_name(Domain::A, 0)).filename() == "a.PNG");
  CHECK(fs::path(ds.item_name(Domain::A, 1)).filename() == "b.png");
  CHECK(fs::path(ds.item_name(Domain::A, 2)).filename() == "c.png");
  CHECK(ds.load(Domain::A, 0).at(0, 0, 0) == Approx(20 / 255.0f));

  // transformed samples: crop 0 -> 6x6, resize to 4, CHW in [-1, 1]
  Pipeline p;
  p.crop = 0;
  p.resolution = 4;
  const Batch b = make_batch(ds, Domain::A, {2, 0}, p);
  REQUIRE(b.n == 2);
  REQUIRE(b.c == 3);
  REQUIRE(b.h == 4);
  REQUIRE(b.data.size() == 2u * 3 * 4 * 4);
  CHECK(b.data[0] == Approx(30 / 255.0f * 2 - 1));
  CHECK(b.sample(1)[47] == Approx(20 / 255.0f * 2 - 1));
  CHECK(b.image(0).at(3, 3, 2) == Approx(30 / 255.0f));
  const Image tiled = tile_batch(b, 3, 1);
  CHECK(tiled.width == 3 * 4 + 4);
  CHECK(tiled.height == 4 + 2);
  CHECK(tiled.at(6, 1, 0) == Approx(20 / 255.0f));
  CHECK(tiled.at(11, 1, 0) == 1.0f);  // the empty third cell
  Pcg32 rng(1);
  CHECK(ds.get(Domain::B, 0, p, rng).size() == p.sample_size());
  CHECK_THROWS_WITH(ds.load(Domain::A, 3), Catch::Contains("out of range"));

  // empty and missing domains are named
  CHECK_THROWS_WITH(FolderDataset(root.string(), Split::Test), Catch::Contains("testA") && Catch::Contains("no images"));
  fs::remove_all(root / "testA");
  CHECK_THROWS_WITH(FolderDataset(root.string(), Split::Test), Catch::Contains("testA") && Catch::Contains("not found"));
  CHECK_THROWS_WITH(FolderDataset((root / "trainA").string(), (root / "nowhere").string()),
                    Catch::Contains("nowhere"));
}

TEST_CASE("ListFileDataset resolves entries against the list folder, an image root or as given", "[data]") {
  const fs::path root = temp_dir("lists");
  write_png(root / "imgs" / "1.png", 5, 5, 100);
  write_png(root / "imgs" / "2.png", 5, 5, 200);
  write_png(root / "other" / "3.png", 5, 5, 50);
  {
    std::ofstream a(root / "trainA.txt");
    a << "imgs/1.png\n\n  imgs/2.png  \r\n";  // blank lines and padding are ignored
    std::ofstream b(root / "trainB.txt");
    b << (root / "other" / "3.png").string();  // absolute, no final newline (as preprocess.py writes)
  }
  const ListFileDataset ds(root.string(), Split::Train);
  REQUIRE(ds.size(Domain::A) == 2);
  REQUIRE(ds.size(Domain::B) == 1);
  CHECK(ds.load(Domain::A, 1).at(2, 2, 1) == Approx(200 / 255.0f));
  CHECK(ds.load(Domain::B, 0).at(0, 0, 0) == Approx(50 / 255.0f));

  // entries relative to a separate image root
  {
    std::ofstream a(root / "testA.txt");
    a << "1.png\nmissing.png\n";
    std::ofstream b(root / "testB.txt");
    b << "2.png\n";
  }
  const ListFileDataset test(root.string(), Split::Test, (root / "imgs").string());
  CHECK(test.load(Domain::A, 0).at(0, 0, 0) == Approx(100 / 255.0f));
  CHECK_THROWS_WITH(test.load(Domain::A, 1), Catch::Contains("missing.png") && Catch::Contains("testA.txt line 2"));

  // a missing or empty list file
  std::ofstream(root / "trainB.txt") << "\n\n";
  CHECK_THROWS_WITH(ListFileDataset(root.string(), Split::Train), Catch::Contains("trainB.txt"));
  fs::remove(root / "trainB.txt");
  CHECK_THROWS_WITH(ListFileDataset(root.string(), Split::Train),
                    Catch::Contains("trainB.txt") && Catch::Contains("not found"));
}

TEST_CASE("FolderDataset on the real face-mask photos", "[data]") {
  const fs::path base = fs::path(DISCO_SHARED_DIR) / "data" / "facemask";
  if (!fs::is_directory(base / "with_mask") || !fs::is_directory(base / "without_mask")) {
    WARN("skipped: " << base.string() << " not found");
    return;
  }
  const FolderDataset ds((base / "with_mask").string(), (base / "without_mask").string());
  CHECK(ds.size(Domain::A) > 500);
  CHECK(ds.size(Domain::B) > 500);
  Pipeline p;
  p.crop = 0;  // the photos are not 178 px CelebA crops
  p.resolution = 64;
  for (Domain d : {Domain::A, Domain::B}) {
    for (size_t i = 0; i < ds.size(d); i += ds.size(d) / 6) {
      INFO(ds.item_name(d, i));
      const Image img = ds.load(d, i);
      REQUIRE(img.width > 50);
      REQUIRE(img.height > 50);
      std::vector<float> x(p.sample_size());
      ds.get(d, i, p, true, x.data());
      float lo = 1, hi = -1;
      for (float v : x) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      REQUIRE(lo >= -1.0f);
      REQUIRE(hi <= 1.0f);
      REQUIRE(hi - lo > 0.2f);  // a real photo, not a blank
    }
  }
}
