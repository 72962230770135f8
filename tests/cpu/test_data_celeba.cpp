// CelebA attribute parsing, domain splits and list-file output.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "disco/data/celeba.hpp"

namespace fs = std::filesystem;
using namespace disco::data;

namespace {

const char* kNames[40] = {"5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald",
                          "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
                          "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
                          "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
                          "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
                          "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
                          "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
                          "Wearing_Necklace", "Wearing_Necktie", "Young"};

int col(const std::string& name) {
  for (int i = 0; i < 40; ++i)
    if (name == kNames[i]) return i;
  return -1;
}

// One image row: every attribute -1 except those listed as 1.
struct Row {
  std::string file;
  std::vector<std::string> on;
};

// An attribute file in the CelebA layout (two spaces before positive values).
std::string make_file(const std::vector<Row>& rows, long count = -1) {
  std::string s = std::to_string(count < 0 ? static_cast<long>(rows.size()) : count) + "\n";
  for (const char* n : kNames) s += std::string(n) + " ";
  s += "\n";
  for (const Row& r : rows) {
    std::vector<int> v(40, -1);
    for (const std::string& a : r.on) v[col(a)] = 1;
    s += r.file;
    for (int x : v) s += x == 1 ? "  1" : " -1";
    s += "\n";
  }
  return s;
}

std::vector<Row> sample_rows() {
  return {
      {"000001.jpg", {"Male", "Mustache"}},                  // beard A, glasses B
      {"000002.jpg", {"Male", "Eyeglasses"}},                // beard A (No_Beard == -1), glasses A
      {"000003.jpg", {"Male", "No_Beard", "Smiling"}},       // beard B
      {"000004.jpg", {"Male", "5_o_Clock_Shadow"}},          // beard: excluded (shadow)
      {"000005.jpg", {"No_Beard", "Eyeglasses", "Smiling"}}, // beard: excluded (female)
      {"000006.jpg", {"Male", "Goatee", "No_Beard", "Mouth_Slightly_Open"}},  // beard A
      {"000007.jpg", {"No_Beard", "Mouth_Slightly_Open", "Eyeglasses", "Bald"}},
      {"000008.jpg", {"Male", "No_Beard"}},                  // beard B
  };
}

std::string error_of_text(const std::string& text) {
  try {
    parse_celeba_attributes_text(text, "attrs.txt");
  } catch (const disco::Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("CelebA attributes parse", "[data]") {
  const CelebAAttributes a = parse_celeba_attributes_text(make_file(sample_rows()), "attrs.txt");
  REQUIRE(a.rows() == 8);
  REQUIRE(a.names.size() == 40);
  CHECK(a.index("Eyeglasses") == 15);
  CHECK(a.index("Nope") == -1);
  CHECK(a.files[6] == "000007.jpg");
  CHECK(a.value(1, a.index("Eyeglasses")) == 1);
  CHECK(a.value(0, a.index("Eyeglasses")) == -1);
  // Windows line ends and a trailing blank line are fine
  std::string crlf;
  for (char c : make_file(sample_rows())) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  CHECK(parse_celeba_attributes_text(crlf + "\r\n", "crlf.txt").rows() == 8);
}

TEST_CASE("CelebA splits follow the official preprocess rules", "[data]") {
  const CelebAAttributes a = parse_celeba_attributes_text(make_file(sample_rows()), "attrs.txt");
  SECTION("glasses") {
    const DomainSplit s = split_celeba(a, "glasses", 1);
    CHECK(s.test_a == std::vector<std::string>{"000002.jpg"});
    CHECK(s.train_a == std::vector<std::string>{"000005.jpg", "000007.jpg"});
    CHECK(s.test_b == std::vector<std::string>{"000001.jpg"});
    CHECK(s.train_b.size() == 4);
  }
  SECTION("beard") {
    const DomainSplit s = split_celeba(a, "beard", 0);
    CHECK(s.train_a == std::vector<std::string>{"000001.jpg", "000002.jpg", "000006.jpg"});
    CHECK(s.train_b == std::vector<std::string>{"000003.jpg", "000008.jpg"});
    CHECK(s.test_a.empty());
  }
  SECTION("mouth, smile, custom") {
    CHECK(split_celeba(a, "mouth", 0).train_a == std::vector<std::string>{"000006.jpg", "000007.jpg"});
    CHECK(split_celeba(a, "smile", 0).train_a == std::vector<std::string>{"000003.jpg", "000005.jpg"});
    const DomainSplit bald = split_celeba(a, "custom:Bald", 64);
    CHECK(bald.test_a == std::vector<std::string>{"000007.jpg"});
    CHECK(bald.test_b.size() == 7);
    CHECK(bald.train_a.empty());
  }
  SECTION("unknown attribute and config") {
    CHECK_THROWS_WITH(split_celeba(a, "custom:Sunglasses", 64),
                      Catch::Contains("Sunglasses") && Catch::Contains("Eyeglasses") && Catch::Contains("Young"));
    CHECK_THROWS_WITH(split_celeba(a, "hats", 64), Catch::Contains("hats") && Catch::Contains("custom:"));
    CHECK_THROWS_AS(split_celeba(a, "custom:", 64), disco::Error);
  }
}

TEST_CASE("malformed CelebA attribute files name the faulty line", "[data]") {
  const std::vector<Row> rows = sample_rows();
  SECTION("count mismatch") {
    const std::string msg = error_of_text(make_file(rows, 9));
    CHECK(msg.find("attrs.txt:1:") != std::string::npos);
    CHECK(msg.find("9") != std::string::npos);
  }
  SECTION("bad count") {
    std::string t = make_file(rows);
    t.replace(0, 1, "x");
    CHECK(error_of_text(t).find("attrs.txt:1:") != std::string::npos);
  }
  SECTION("short row") {
    std::string t = make_file(rows);
    const size_t line5 = t.find("000003.jpg");  // the 5th line of the file
    t.erase(t.find('\n', line5) - 9, 9);        // drop the last three values
    const std::string msg = error_of_text(t);
    CHECK(msg.find("attrs.txt:5:") != std::string::npos);
    CHECK(msg.find("expected 41 fields") != std::string::npos);
  }
  SECTION("bad value") {
    std::string t = make_file(rows);
    const size_t p = t.find(" -1", t.find("000004.jpg"));
    t.replace(p, 3, "  0");
    const std::string msg = error_of_text(t);
    CHECK(msg.find("attrs.txt:6:") != std::string::npos);
    CHECK(msg.find("000004.jpg") != std::string::npos);
    CHECK(msg.find("expected 1 or -1") != std::string::npos);
  }
  SECTION("duplicate attribute name") {
    std::string t = make_file(rows);
    t.replace(t.find("Young"), 5, "Male ");
    CHECK(error_of_text(t).find("attrs.txt:2:") != std::string::npos);
  }
  SECTION("missing file") {
    CHECK_THROWS_WITH(parse_celeba_attributes("/nonexistent/list_attr_celeba.txt"),
                      Catch::Contains("/nonexistent/list_attr_celeba.txt"));
  }
}

TEST_CASE("CelebA split written as list files reads back", "[data]") {
  const fs::path dir = fs::temp_directory_path() / "disco_test_data_celeba";
  fs::remove_all(dir);
  fs::create_directories(dir / "img");
  const std::string attr_path = (dir / "list_attr_celeba.txt").string();
  {
    std::ofstream f(attr_path);
    f << make_file(sample_rows());
  }
  const DomainSplit s = split_celeba(parse_celeba_attributes(attr_path), "glasses", 1);
  write_split(s, (dir / "img").string(), (dir / "lists").string());
  for (const char* name : {"trainA.txt", "trainB.txt", "testA.txt", "testB.txt"})
    REQUIRE(fs::exists(dir / "lists" / name));
  const ListFileDataset train(( dir / "lists").string(), Split::Train);
  REQUIRE(train.size(Domain::A) == 2);
  REQUIRE(train.size(Domain::B) == 4);
  CHECK(train.item_name(Domain::A, 1) == (dir / "img" / "000007.jpg").string());
  const ListFileDataset test((dir / "lists").string(), Split::Test);
  CHECK(test.size(Domain::A) == 1);
  // images are only opened when loaded: a missing one names the list file and line
  CHECK_THROWS_WITH(train.load(Domain::B, 2),
                    Catch::Contains("000006.jpg") && Catch::Contains("trainB.txt line 3"));

  const CelebADataset celeba((dir / "img").string(), attr_path, "glasses", Split::Train, 1);
  CHECK(celeba.files(Domain::A) == train.files(Domain::A));
  CHECK(celeba.files(Domain::B) == train.files(Domain::B));
  // a split leaving a domain empty is an error naming it
  CHECK_THROWS_WITH(CelebADataset((dir / "img").string(), attr_path, "custom:Bald", Split::Train, 1),
                    Catch::Contains("domain A"));
}
