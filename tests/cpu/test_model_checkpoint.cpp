// Tests of disco/model/checkpoint.hpp: save -> load gives identical outputs and optimizer
// state, resuming equals uninterrupted training, and bad files (another config, truncated,
// wrong format, missing / misshapen tensors) fail with a clear disco::Error that leaves
// the model untouched.
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "disco/disco.hpp"
#include "disco/model/checkpoint.hpp"

namespace {

namespace fs = std::filesystem;
using disco::CPU;
using disco::ModelConfig;
using Catch::Contains;
using Tensor = disco::Tensor<CPU>;
using Model = disco::ContentDisentangler<CPU>;

struct CkTempDir {
  std::string path;
  CkTempDir() {
    std::string tmpl = (fs::temp_directory_path() / "disco_model_ckpt_XXXXXX").string();
    REQUIRE(::mkdtemp(&tmpl[0]) != nullptr);
    path = tmpl;
  }
  ~CkTempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  // Leftover temporary files of atomic writes.
  std::vector<std::string> temps() const {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(path))
      if (e.path().filename().string().find(".tmp") != std::string::npos) out.push_back(e.path().string());
    return out;
  }
};

ModelConfig ck_tiny() {
  ModelConfig c;
  c.resolution = 64;
  c.base_channels = 8;
  c.code_channels = 32;
  c.sep = 4;
  c.disc_hidden = 32;
  c.disc_weight = 0.01;  // both optimizers take steps
  c.lr = 1e-3;
  c.disc_lr = 1e-3;
  return c;
}

// The training data of step k: a pure function of k.
std::pair<Tensor, Tensor> ck_batch(int64_t k) {
  disco::Generator g(1000 + uint64_t(k));
  Tensor a = Tensor::rand({2, 3, 64, 64}, g, disco::DType::F32, -1.0, 1.0);
  Tensor b = Tensor::rand({2, 3, 64, 64}, g, disco::DType::F32, -1.0, 1.0);
  return {a, b};
}

void ck_train(Model& m, int64_t steps) {
  for (int64_t i = 0; i < steps; ++i) {
    auto [a, b] = ck_batch(m.step());
    m.train_step(a, b);
  }
}

double ck_max_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

// Largest difference over every parameter (and, when asked, the Adam moments).
double ck_model_diff(Model& x, Model& y, bool with_optim = false) {
  auto px = x.named_parameters(), py = y.named_parameters();
  REQUIRE(px.size() == py.size());
  double d = 0;
  for (size_t i = 0; i < px.size(); ++i) {
    REQUIRE(px[i].first == py[i].first);
    d = std::max(d, ck_max_diff(px[i].second, py[i].second));
  }
  if (with_optim) {
    auto cmp = [&](disco::optim::Adam<CPU>& ox, disco::optim::Adam<CPU>& oy) {
      REQUIRE(ox.params().size() == oy.params().size());
      CHECK(ox.step_count() == oy.step_count());
      for (size_t i = 0; i < ox.params().size(); ++i) {
        REQUIRE(ox.exp_avg(i).defined() == oy.exp_avg(i).defined());
        if (!ox.exp_avg(i).defined()) continue;
        d = std::max(d, ck_max_diff(ox.exp_avg(i), oy.exp_avg(i)));
        d = std::max(d, ck_max_diff(ox.exp_avg_sq(i), oy.exp_avg_sq(i)));
      }
    };
    cmp(x.ae_optimizer(), y.ae_optimizer());
    cmp(x.disc_optimizer(), y.disc_optimizer());
  }
  return d;
}

std::vector<char> ck_read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}
void ck_write(const std::string& path, const std::vector<char>& bytes, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(n));
}

}  // namespace

TEST_CASE("checkpoint: save -> load gives identical outputs and optimizer state", "[model][checkpoint]") {
  CkTempDir dir;
  Model m(ck_tiny());
  ck_train(m, 2);
  const std::string path = dir.file("ck.safetensors");
  disco::save_checkpoint(m, path, {{"data_seed", "17"}, {"note", "hello"}});
  CHECK(dir.temps().empty());

  // the file names every parameter and both Adam states
  const disco::SafetensorsHeader h = disco::read_safetensors_header(path);
  CHECK(h.metadata.at("format") == "disco-checkpoint");
  CHECK(h.metadata.at("step") == "2");
  CHECK(h.metadata.at("optim.ae.step") == "2");
  CHECK(h.metadata.at("optim.disc.step") == "2");
  CHECK(h.metadata.at("data_seed") == "17");
  for (const char* n : {"e1.full.0.weight", "decoder.main.3.bias", "disc.classify.2.weight",
                        "optim.ae.exp_avg.e1.full.0.weight", "optim.ae.exp_avg_sq.decoder.main.12.bias",
                        "optim.disc.exp_avg.disc.classify.0.weight", "optim.disc.exp_avg_sq.disc.classify.2.bias"})
    CHECK(h.tensors.count(n) == 1);
  CHECK(h.tensors.count("optim.ae.exp_avg.disc.classify.0.weight") == 0);

  ModelConfig other_seed = ck_tiny();
  other_seed.seed = 99;  // different initial weights, same architecture
  Model r(other_seed);
  REQUIRE(ck_model_diff(m, r) > 0);
  auto meta = disco::load_checkpoint(r, path);
  CHECK(meta.at("data_seed") == "17");
  CHECK(meta.at("note") == "hello");
  CHECK(r.step() == 2);
  CHECK(ck_model_diff(m, r, true) == 0.0);

  Tensor base = ck_batch(50).first, guide = ck_batch(51).first;
  CHECK(ck_max_diff(m.transfer(base, guide), r.transfer(base, guide)) == 0.0);
  CHECK(ck_max_diff(m.remove(guide), r.remove(guide)) == 0.0);

  // one more step from both gives identical parameters (Adam moments and step restored)
  auto [a, b] = ck_batch(2);
  const disco::StepLosses lm = m.train_step(a, b), lr = r.train_step(a, b);
  CHECK(lm.ae == lr.ae);
  CHECK(lm.disc == lr.disc);
  CHECK(ck_model_diff(m, r, true) == 0.0);

  // a fresh optimizer (weights only) does NOT give the same step: the state matters
  Model fresh(other_seed);
  disco::load_checkpoint(fresh, path);
  Model weights_only(other_seed);
  disco::load_weights(weights_only, path);  // parameters only, fresh Adam
  CHECK(weights_only.step() == 0);
  CHECK(ck_model_diff(fresh, weights_only) == 0.0);
  fresh.train_step(a, b);
  weights_only.train_step(a, b);
  CHECK(ck_model_diff(fresh, weights_only) > 0.0);
}

TEST_CASE("checkpoint: a weights file loads for inference but is not a training checkpoint", "[model][checkpoint]") {
  CkTempDir dir;
  Model m(ck_tiny());
  ck_train(m, 1);
  const std::string wpath = dir.file("weights.safetensors");
  disco::save_weights(m, wpath);
  const disco::SafetensorsHeader h = disco::read_safetensors_header(wpath);
  CHECK(h.metadata.at("format") == "disco-weights");
  for (auto& [n, t] : h.tensors) CHECK(n.rfind("optim.", 0) != 0);
  ModelConfig stored;
  REQUIRE(disco::read_stored_config(wpath, stored));
  CHECK(stored.to_json() == m.config().to_json());

  Model r(stored);
  disco::load_weights(r, wpath);
  CHECK(ck_model_diff(m, r) == 0.0);
  Model r2(stored);
  CHECK_THROWS_WITH(disco::load_checkpoint(r2, wpath), Contains("not a disco training checkpoint") &&
                                                           Contains("disco-weights") && Contains(wpath));
}

TEST_CASE("checkpoint: a weights file carries the caller's metadata in one write", "[model][checkpoint]") {
  CkTempDir dir;
  Model m(ck_tiny());
  const std::string wpath = dir.file("weights.safetensors");
  // the trainer records the training crop this way; format and config cannot be overridden
  disco::save_weights(m, wpath, {{"crop", "0"}, {"format", "other"}});
  const disco::SafetensorsHeader h = disco::read_safetensors_header(wpath);
  CHECK(h.metadata.at("crop") == "0");
  CHECK(h.metadata.at("format") == "disco-weights");
  ModelConfig stored;
  REQUIRE(disco::read_stored_config(wpath, stored));
  CHECK(stored.to_json() == m.config().to_json());
}

TEST_CASE("checkpoint: resuming equals uninterrupted training", "[model][checkpoint]") {
  CkTempDir dir;
  const int64_t N = 3, M = 2;
  Model straight(ck_tiny());
  ck_train(straight, N + M);

  Model first(ck_tiny());
  ck_train(first, N);
  const std::string path = dir.file("ck.safetensors");
  disco::save_checkpoint(first, path);
  Model resumed(ck_tiny());
  disco::load_checkpoint(resumed, path);
  REQUIRE(resumed.step() == N);
  ck_train(resumed, M);
  // and continuing the first model in memory is the same again
  ck_train(first, M);

  CHECK(resumed.step() == N + M);
  CHECK(resumed.ae_optimizer().step_count() == N + M);
  CHECK(resumed.disc_optimizer().step_count() == N + M);
  // Everything is float32 on disk and the CPU kernels are deterministic for a fixed
  // thread count, so the match is exact.
  CHECK(ck_model_diff(first, straight, true) == 0.0);
  CHECK(ck_model_diff(resumed, straight, true) == 0.0);

  // saving twice in a row gives the same bytes (deterministic files)
  disco::save_checkpoint(resumed, dir.file("a.safetensors"));
  disco::save_checkpoint(straight, dir.file("b.safetensors"));
  CHECK(ck_read(dir.file("a.safetensors")) == ck_read(dir.file("b.safetensors")));
  CHECK(dir.temps().empty());
}

TEST_CASE("checkpoint: another model config fails naming the differing field", "[model][checkpoint]") {
  CkTempDir dir;
  Model m(ck_tiny());
  const std::string path = dir.file("ck.safetensors");
  disco::save_checkpoint(m, path);

  ModelConfig c = ck_tiny();
  c.sep = 8;
  Model other(c);
  const auto before = other.named_parameters()[0].second.to_vector<float>();
  CHECK_THROWS_AS(disco::load_checkpoint(other, path), disco::Error);
  CHECK_THROWS_WITH(disco::load_checkpoint(other, path),
                    Contains(path) && Contains("another model config") && Contains("sep 4 (model has 8)"));
  CHECK_THROWS_WITH(disco::load_weights(other, path), Contains("sep 4 (model has 8)"));
  CHECK(other.named_parameters()[0].second.to_vector<float>() == before);  // untouched
  CHECK(other.step() == 0);

  c = ck_tiny();
  c.base_channels = 16;
  c.disc_hidden = 64;
  Model wide(c);
  CHECK_THROWS_WITH(disco::load_checkpoint(wide, path), Contains("base_channels 8 (model has 16)") &&
                                                            Contains("disc_hidden 32 (model has 64)"));
  c = ck_tiny();
  c.resolution = 128;
  Model big(c);
  CHECK_THROWS_WITH(disco::load_weights(big, path), Contains("resolution 64 (model has 128)"));
  c = ck_tiny();
  c.code_channels = 64;
  Model wide_code(c);
  CHECK_THROWS_WITH(disco::load_weights(wide_code, path), Contains("code_channels 32 (model has 64)"));

  // training hyper-parameters are not part of the architecture: they load
  c = ck_tiny();
  c.lr = 0.5;
  c.disc_weight = 0;
  c.seed = 3;
  Model hyper(c);
  CHECK_NOTHROW(disco::load_checkpoint(hyper, path));
  CHECK(hyper.config().lr == 0.5);  // the model keeps its own config
}

TEST_CASE("checkpoint: files without a config are checked tensor by tensor", "[model][checkpoint]") {
  CkTempDir dir;
  Model m(ck_tiny());
  std::map<std::string, Tensor> t;
  for (auto& [n, p] : m.named_parameters()) t.emplace(n, p);
  t.erase("e1.full.0.weight");
  t["e2.full.3.bias"] = Tensor::zeros({17});
  t["e9.extra"] = Tensor::zeros({1});
  const std::string path = dir.file("raw.safetensors");
  disco::save_tensors(path, t);
  Model r(ck_tiny());
  CHECK_THROWS_WITH(disco::load_weights(r, path),
                    Contains(path) && Contains("3 mismatch(es)") && Contains("missing e1.full.0.weight") &&
                        Contains("e2.full.3.bias has shape [17], expected [16]") && Contains("unexpected e9.extra"));
  CHECK(ck_model_diff(m, r) == 0.0);  // same seed; nothing was half-loaded

  // an F64 state dict (as a converter may write) is converted
  std::map<std::string, Tensor> t64;
  for (auto& [n, p] : m.named_parameters()) t64.emplace(n, Tensor::from_vector(p.to_vector<double>(), p.shape()));
  disco::save_tensors(dir.file("f64.safetensors"), t64);
  ModelConfig c = ck_tiny();
  c.seed = 5;
  Model r64(c);
  disco::load_weights(r64, dir.file("f64.safetensors"));
  CHECK(ck_model_diff(m, r64) == 0.0);
  CHECK(r64.named_parameters()[0].second.dtype() == disco::DType::F32);
}

TEST_CASE("checkpoint: a truncated file fails cleanly and leaves the model untouched", "[model][checkpoint]") {
  CkTempDir dir;
  Model m(ck_tiny());
  ck_train(m, 1);
  const std::string path = dir.file("ck.safetensors");
  disco::save_checkpoint(m, path);
  const std::vector<char> bytes = ck_read(path);
  REQUIRE(bytes.size() > 1000);

  ModelConfig c = ck_tiny();
  c.seed = 7;
  for (size_t keep : {size_t(0), size_t(5), size_t(8), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    INFO("kept " << keep << " of " << bytes.size() << " bytes");
    const std::string cut = dir.file("cut_" + std::to_string(keep) + ".safetensors");
    ck_write(cut, bytes, keep);
    Model r(c), fresh(c);
    CHECK_THROWS_AS(disco::load_checkpoint(r, cut), disco::Error);
    CHECK_THROWS_WITH(disco::load_checkpoint(r, cut), Contains(cut));
    CHECK_THROWS_AS(disco::load_weights(r, cut), disco::Error);
    ModelConfig stored;
    CHECK_THROWS_AS(disco::read_stored_config(cut, stored), disco::Error);
    CHECK(ck_model_diff(r, fresh, true) == 0.0);
    CHECK(r.step() == 0);
  }
  // a missing file names the path
  Model r(c);
  CHECK_THROWS_WITH(disco::load_checkpoint(r, dir.file("nope.safetensors")), Contains("nope.safetensors"));
}

TEST_CASE("checkpoint: loading into a model that has trained replaces all optimizer state", "[model][checkpoint]") {
  CkTempDir dir;
  ModelConfig no_disc = ck_tiny();
  no_disc.disc_weight = 0;  // the discriminator never steps: no disc state in the file
  Model src(no_disc);
  ck_train(src, 2);
  const std::string path = dir.file("ck.safetensors");
  disco::save_checkpoint(src, path);
  CHECK(disco::read_safetensors_header(path).tensors.count("optim.disc.exp_avg.disc.classify.0.weight") == 0);

  Model used(ck_tiny());  // disc_weight 0.01: has disc moments and 3 steps
  ck_train(used, 3);
  REQUIRE(used.disc_optimizer().exp_avg(0).defined());
  disco::load_checkpoint(used, path);
  CHECK(used.step() == 2);
  CHECK(used.disc_optimizer().step_count() == 0);
  for (size_t i = 0; i < used.disc_parameters().size(); ++i) CHECK_FALSE(used.disc_optimizer().exp_avg(i).defined());
  Model fresh(ck_tiny());
  disco::load_checkpoint(fresh, path);
  CHECK(ck_model_diff(used, fresh, true) == 0.0);
  auto [a, b] = ck_batch(2);
  used.train_step(a, b);
  fresh.train_step(a, b);
  CHECK(ck_model_diff(used, fresh, true) == 0.0);
}

TEST_CASE("checkpoint: a float64 checkpoint (as a converter may write) resumes exactly", "[model][checkpoint]") {
  CkTempDir dir;
  Model m(ck_tiny());
  ck_train(m, 2);
  disco::save_checkpoint(m, dir.file("f32.safetensors"));
  disco::SafetensorsFile f = disco::read_safetensors(dir.file("f32.safetensors"));
  for (auto& [name, r] : f.tensors) r = disco::RawTensor::from_f64(r.to_f64(name), r.shape);
  disco::write_safetensors(dir.file("f64.safetensors"), f);

  Model r(ck_tiny());
  disco::load_checkpoint(r, dir.file("f64.safetensors"));
  CHECK(ck_model_diff(m, r, true) == 0.0);
  CHECK(r.ae_optimizer().exp_avg(0).dtype() == disco::DType::F32);
  auto [a, b] = ck_batch(2);
  m.train_step(a, b);
  r.train_step(a, b);
  CHECK(ck_model_diff(m, r, true) == 0.0);
}

TEST_CASE("checkpoint: bad optimizer state or step metadata fails before anything is loaded", "[model][checkpoint]") {
  CkTempDir dir;
  Model m(ck_tiny());
  ck_train(m, 1);
  disco::save_checkpoint(m, dir.file("ck.safetensors"));
  const disco::SafetensorsFile good = disco::read_safetensors(dir.file("ck.safetensors"));
  ModelConfig c = ck_tiny();
  c.seed = 9;

  disco::SafetensorsFile f = good;
  f.tensors["optim.ae.exp_avg.e2.full.3.weight"] = disco::RawTensor::from_f32(std::vector<float>(4, 0.f), {4});
  disco::write_safetensors(dir.file("shape.safetensors"), f);
  Model r(c), fresh(c);
  CHECK_THROWS_WITH(disco::load_checkpoint(r, dir.file("shape.safetensors")),
                    Contains("optim.ae.exp_avg.e2.full.3.weight has shape [4], expected [16, 8, 4, 4]"));
  CHECK(ck_model_diff(r, fresh, true) == 0.0);
  // load_weights ignores optimizer state
  CHECK_NOTHROW(disco::load_weights(r, dir.file("shape.safetensors")));

  f = good;
  f.tensors.erase("optim.ae.exp_avg_sq.e1.full.0.weight");
  f.tensors["optim.ae.exp_avg.nothing"] = disco::RawTensor::from_f32(std::vector<float>(1, 0.f), {1});
  disco::write_safetensors(dir.file("half.safetensors"), f);
  Model r2(c);
  CHECK_THROWS_WITH(disco::load_checkpoint(r2, dir.file("half.safetensors")),
                    Contains("e1.full.0.weight has only one of exp_avg / exp_avg_sq") &&
                        Contains("unexpected optim.ae.exp_avg.nothing"));
  CHECK(ck_model_diff(r2, fresh, true) == 0.0);

  f = good;
  f.metadata["step"] = "three";
  disco::write_safetensors(dir.file("meta.safetensors"), f);
  Model r3(c);
  CHECK_THROWS_WITH(disco::load_checkpoint(r3, dir.file("meta.safetensors")),
                    Contains("metadata 'step' is 'three'") && Contains("meta.safetensors"));
  CHECK(ck_model_diff(r3, fresh, true) == 0.0);
  CHECK(r3.step() == 0);
}
