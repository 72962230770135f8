#pragma once
// Checkpoints and weight files of a ContentDisentangler, as safetensors:
//
//   weights file     every parameter under its official name (e1.full.0.weight ...);
//                    __metadata__: format=disco-weights, config (JSON)
//   checkpoint       the weights, plus both Adam states as
//                    optim.ae.exp_avg.<name>, optim.ae.exp_avg_sq.<name>, optim.disc.*;
//                    __metadata__: format=disco-checkpoint, config, step, optim.ae.step,
//                    optim.disc.step, and any caller entries (the trainer stores its
//                    data-order seed and RNG state there)
//
// Written atomically (temp file, fsync, rename). Loading checks the config, then every
// name, shape and dtype, and lists every mismatch in one disco::Error.
#include <cerrno>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "disco/io/tensor_io.hpp"
#include "disco/model/content_disentangler.hpp"

namespace disco {

namespace ckpt_detail {
inline std::string config_diff(const ModelConfig& file, const ModelConfig& want) {
  std::string d;
  auto field = [&](const char* n, int a, int b) {
    if (a != b) d += str(d.empty() ? "" : ", ", n, " ", a, " (model has ", b, ")");
  };
  field("resolution", file.resolution, want.resolution);
  field("sep", file.sep, want.sep);
  field("code_channels", file.code_channels, want.code_channels);
  field("base_channels", file.base_channels, want.base_channels);
  field("disc_hidden", file.disc_hidden, want.disc_hidden);
  return d;
}
// A non-negative integer metadata entry (0 when absent).
inline int64_t meta_int(const std::map<std::string, std::string>& meta, const std::string& key,
                        const std::string& path) {
  auto it = meta.find(key);
  if (it == meta.end()) return 0;
  const std::string& v = it->second;
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  DISCO_CHECK(!v.empty() && end && *end == '\0' && errno == 0 && x >= 0, path, ": metadata '", key, "' is '", v,
              "', expected a non-negative integer");
  return x;
}
}  // namespace ckpt_detail

// The config stored in a weights file or checkpoint, when there is one.
inline bool read_stored_config(const std::string& path, ModelConfig& out) {
  SafetensorsHeader h = read_safetensors_header(path);
  auto it = h.metadata.find("config");
  if (it == h.metadata.end()) return false;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": the stored config is not valid JSON: ", e.what());
  }
  out = ModelConfig::from_json(j);
  return true;
}

template <class B>
void save_weights(const ContentDisentangler<B>& m, const std::string& path,
                  const std::map<std::string, std::string>& extra_metadata = {}) {
  std::map<std::string, Tensor<B>> t;
  for (auto& [n, p] : m.named_parameters()) t.emplace(n, p);
  std::map<std::string, std::string> meta = extra_metadata;
  meta["format"] = "disco-weights";
  meta["config"] = m.config().to_json().dump();
  save_tensors(path, t, meta);
}

template <class B>
void save_checkpoint(ContentDisentangler<B>& m, const std::string& path,
                     const std::map<std::string, std::string>& extra_metadata = {}) {
  std::map<std::string, Tensor<B>> t;
  auto add_optim = [&](const char* tag, optim::Adam<B>& opt, const std::vector<std::pair<std::string, Tensor<B>>>& named) {
    for (std::size_t i = 0; i < named.size(); ++i) {
      if (!opt.exp_avg(i).defined()) continue;
      t.emplace(str("optim.", tag, ".exp_avg.", named[i].first), opt.exp_avg(i));
      t.emplace(str("optim.", tag, ".exp_avg_sq.", named[i].first), opt.exp_avg_sq(i));
    }
  };
  auto named = m.named_parameters();
  std::vector<std::pair<std::string, Tensor<B>>> ae_named, disc_named;
  for (auto& np : named) {
    t.emplace(np.first, np.second);
    (np.first.rfind("disc.", 0) == 0 ? disc_named : ae_named).push_back(np);
  }
  add_optim("ae", m.ae_optimizer(), ae_named);
  add_optim("disc", m.disc_optimizer(), disc_named);
  std::map<std::string, std::string> meta = extra_metadata;
  meta["format"] = "disco-checkpoint";
  meta["config"] = m.config().to_json().dump();
  meta["step"] = std::to_string(m.step());
  meta["optim.ae.step"] = std::to_string(m.ae_optimizer().step_count());
  meta["optim.disc.step"] = std::to_string(m.disc_optimizer().step_count());
  save_tensors(path, t, meta);
}

// Load parameters from a weights file, a checkpoint, or any safetensors file holding the
// four prefixed state dicts. Checks the stored config (when present) and every tensor.
// Returns the file's metadata.
template <class B>
std::map<std::string, std::string> load_weights(ContentDisentangler<B>& m, const std::string& path,
                                                bool with_optimizer = false) {
  SafetensorsFile f = read_safetensors(path);
  auto cfg_it = f.metadata.find("config");
  if (cfg_it != f.metadata.end()) {
    ModelConfig stored;
    read_stored_config(path, stored);
    DISCO_CHECK(stored.same_architecture(m.config()), path, ": checkpoint of another model config: ",
                ckpt_detail::config_diff(stored, m.config()));
  }
  std::vector<std::string> problems;
  auto named = m.named_parameters();
  auto check_tensor = [&](const std::string& name, const RawTensor& r, const Shape& want) {
    if (r.shape != want)
      problems.push_back(name + " has shape " + shape_str(r.shape) + ", expected " + shape_str(want));
    else if (r.dtype != "F32" && r.dtype != "F64")
      problems.push_back(name + " has dtype " + r.dtype + ", expected F32");
  };
  for (auto& [name, p] : named) {
    auto it = f.tensors.find(name);
    if (it == f.tensors.end()) {
      problems.push_back("missing " + name);
      continue;
    }
    check_tensor(name, it->second, p.shape());
  }
  for (auto& [name, r] : f.tensors) {
    if (name.rfind("optim.", 0) == 0) continue;
    bool known = false;
    for (auto& np : named) known = known || np.first == name;
    if (!known) problems.push_back("unexpected " + name);
  }
  // Optimizer state: optim.<ae|disc>.<exp_avg|exp_avg_sq>.<parameter name>, both or neither.
  struct Moments {
    const RawTensor *m1 = nullptr, *m2 = nullptr;
  };
  std::map<std::string, Moments> moments;  // by parameter name
  int64_t file_step = 0, ae_step = 0, disc_step = 0;
  if (with_optimizer) {
    for (auto& [name, p] : named) {
      const char* tag = name.rfind("disc.", 0) == 0 ? "disc" : "ae";
      auto m1 = f.tensors.find(str("optim.", tag, ".exp_avg.", name));
      auto m2 = f.tensors.find(str("optim.", tag, ".exp_avg_sq.", name));
      if (m1 == f.tensors.end() && m2 == f.tensors.end()) continue;
      if (m1 == f.tensors.end() || m2 == f.tensors.end()) {
        problems.push_back(str("optimizer state of ", name, " has only one of exp_avg / exp_avg_sq"));
        continue;
      }
      check_tensor(m1->first, m1->second, p.shape());
      check_tensor(m2->first, m2->second, p.shape());
      moments[name] = {&m1->second, &m2->second};
    }
    for (auto& [name, r] : f.tensors) {
      if (name.rfind("optim.", 0) != 0) continue;
      bool known = false;
      for (auto& np : named) {
        const char* tag = np.first.rfind("disc.", 0) == 0 ? "disc" : "ae";
        known = known || name == str("optim.", tag, ".exp_avg.", np.first) ||
                name == str("optim.", tag, ".exp_avg_sq.", np.first);
      }
      if (!known) problems.push_back("unexpected " + name);
    }
    file_step = ckpt_detail::meta_int(f.metadata, "step", path);
    ae_step = ckpt_detail::meta_int(f.metadata, "optim.ae.step", path);
    disc_step = ckpt_detail::meta_int(f.metadata, "optim.disc.step", path);
  }
  if (!problems.empty()) {
    std::string msg = path + ": " + std::to_string(problems.size()) + " mismatch(es) with the model (" +
                      m.config().describe() + "): ";
    for (std::size_t i = 0; i < problems.size() && i < 12; ++i) msg += (i ? "; " : "") + problems[i];
    if (problems.size() > 12) msg += str("; ... and ", problems.size() - 12, " more");
    fail(msg);
  }
  // Everything checked: convert first (may still throw on bad data), then copy.
  auto to_model = [&](const RawTensor& r, const std::string& name, const Tensor<B>& like) {
    Tensor<B> v = from_raw<B>(r, path + ": " + name);
    if (v.dtype() != like.dtype()) v = Tensor<B>::from_vector(r.to_f32(name), like.shape());
    return v;
  };
  std::vector<Tensor<B>> values;
  for (auto& [name, p] : named) values.push_back(to_model(f.tensors.at(name), name, p));
  std::map<std::string, std::pair<Tensor<B>, Tensor<B>>> state;
  for (auto& [name, mm] : moments) {
    Tensor<B> like;
    for (auto& np : named)
      if (np.first == name) like = np.second;
    state[name] = {to_model(*mm.m1, "optim exp_avg of " + name, like),
                   to_model(*mm.m2, "optim exp_avg_sq of " + name, like)};
  }
  for (std::size_t i = 0; i < named.size(); ++i) named[i].second.copy_(values[i]);
  if (with_optimizer) {
    // A parameter without state in the file gets none (as a fresh optimizer), so loading
    // into a model that has trained leaves nothing of its old state behind.
    auto restore = [&](optim::Adam<B>& opt, const std::vector<Tensor<B>>& params, int64_t steps) {
      for (std::size_t i = 0; i < params.size(); ++i) {
        std::string pname;
        for (auto& np : named)
          if (np.second.same(params[i])) pname = np.first;
        auto it = state.find(pname);
        opt.exp_avg(i) = it == state.end() ? Tensor<B>() : it->second.first;
        opt.exp_avg_sq(i) = it == state.end() ? Tensor<B>() : it->second.second;
      }
      opt.set_step_count(steps);
    };
    restore(m.ae_optimizer(), m.ae_parameters(), ae_step);
    restore(m.disc_optimizer(), m.disc_parameters(), disc_step);
    m.set_step(file_step);
  }
  return f.metadata;
}

// Resume: weights, both optimizers and the step counter.
template <class B>
std::map<std::string, std::string> load_checkpoint(ContentDisentangler<B>& m, const std::string& path) {
  SafetensorsHeader h = read_safetensors_header(path);
  auto fmt = h.metadata.find("format");
  DISCO_CHECK(fmt != h.metadata.end() && fmt->second == "disco-checkpoint", path,
              ": not a disco training checkpoint (format '", fmt == h.metadata.end() ? "none" : fmt->second,
              "', expected 'disco-checkpoint'; a weights file can be loaded with load_weights)");
  return load_weights(m, path, true);
}

}  // namespace disco
