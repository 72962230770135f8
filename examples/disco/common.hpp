#pragma once
// Shared pieces of the `disco` command-line tool: data set selection, tensor <-> image
// conversion, grids, and the error type the commands throw for bad options.
#include <CLI/CLI.hpp>
#include <disco/data/data.hpp>
#include <disco/disco.hpp>
#include <disco/model/checkpoint.hpp>
#ifdef DISCO_WITH_CUDA
#include <disco/cuda.hpp>
#endif
#include <filesystem>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace disco::cli {

namespace fs = std::filesystem;

// Where the training / evaluation images come from.
struct DataOptions {
  std::string dataroot;      // folders root/{trainA,...}, list files root/trainA.txt, or a split dir
  std::string domain_a, domain_b;  // explicit folders (e.g. facemask/with_mask, without_mask)
  bool synthetic = false;    // the embedded procedural faces
  uint64_t synthetic_seed = 1;
  int64_t synthetic_count = 20000;  // images per domain in the synthetic training set
  int crop = 178;            // CenterCrop size (0 = largest centred square)
  std::string resize_mode = "bilinear";
};

inline void add_data_options(CLI::App* app, DataOptions& o) {
  app->add_option("--dataroot", o.dataroot,
                  "data folder: trainA/ trainB/ testA/ testB/ folders, or trainA.txt ... list files "
                  "(as written by split-celeba / the official preprocess.py), or 'synthetic'");
  app->add_option("--domain-a", o.domain_a, "folder of domain A images (with the extra content)");
  app->add_option("--domain-b", o.domain_b, "folder of domain B images (without it)");
  app->add_flag("--synthetic", o.synthetic, "use the embedded procedural faces (A: glasses, B: none)");
  app->add_option("--synthetic-seed", o.synthetic_seed, "seed of the procedural faces")->capture_default_str();
  app->add_option("--synthetic-count", o.synthetic_count, "procedural faces per domain")->capture_default_str();
  app->add_option("--crop", o.crop, "center crop size before resizing (0 = largest centred square)")
      ->capture_default_str();
  app->add_option("--resize-mode", o.resize_mode, "bilinear or area")->capture_default_str();
}

inline bool is_synthetic(const DataOptions& o) { return o.synthetic || o.dataroot == "synthetic"; }

// Open the data set the options name, for a split (train or test).
inline std::shared_ptr<const data::Dataset> open_dataset(const DataOptions& o, data::Split split, int resolution) {
  if (is_synthetic(o)) {
    DISCO_CHECK(o.synthetic_count > 0, "--synthetic-count must be positive, got ", o.synthetic_count);
    data::SyntheticConfig sc;
    sc.seed = o.synthetic_seed;
    sc.resolution = resolution;
    sc.count_a = sc.count_b = size_t(o.synthetic_count);
    sc.split = split;
    return std::make_shared<data::SyntheticDataset>(sc);
  }
  if (!o.domain_a.empty() || !o.domain_b.empty()) {
    DISCO_CHECK(!o.domain_a.empty() && !o.domain_b.empty(), "--domain-a and --domain-b go together");
    return std::make_shared<data::FolderDataset>(o.domain_a, o.domain_b);
  }
  DISCO_CHECK(!o.dataroot.empty(), "no data given: use --dataroot DIR, --domain-a/--domain-b, or --synthetic");
  DISCO_CHECK(fs::exists(o.dataroot), "--dataroot: folder not found: '", o.dataroot, "'");
  const std::string s = data::split_name(split);
  if (fs::exists(fs::path(o.dataroot) / (s + "A.txt")))
    return std::make_shared<data::ListFileDataset>(o.dataroot, split);
  DISCO_CHECK(fs::is_directory(fs::path(o.dataroot) / (s + "A")), "--dataroot '", o.dataroot, "' has neither ", s,
              "A/ and ", s, "B/ folders nor ", s, "A.txt / ", s, "B.txt list files");
  return std::make_shared<data::FolderDataset>(o.dataroot, split);
}

inline data::Pipeline make_pipeline(const DataOptions& o, int resolution, bool flips) {
  data::Pipeline p;
  p.crop = is_synthetic(o) ? 0 : o.crop;  // procedural faces are rendered at the model's size
  p.resolution = resolution;
  p.flip_prob = flips ? 0.5f : 0.0f;
  p.mode = data::parse_resize_mode(o.resize_mode);
  return p;
}

template <class B>
Tensor<B> to_tensor(const data::Batch& b) {
  return Tensor<B>::from_vector(b.data, {b.n, b.c, b.h, b.w});
}

template <class B>
std::vector<data::Image> to_images(const Tensor<B>& t) {
  std::vector<float> v = t.template to_vector<float>();
  const int n = int(t.shape()[0]), c = int(t.shape()[1]), h = int(t.shape()[2]), w = int(t.shape()[3]);
  std::vector<data::Image> out;
  for (int i = 0; i < n; ++i) out.push_back(data::from_chw(v.data() + size_t(i) * c * h * w, c, h, w));
  return out;
}

// Images from files through the inference pipeline (no flip), as one batch.
inline data::Batch load_files(const std::vector<std::string>& files, const data::Pipeline& p) {
  data::Batch b;
  b.n = int(files.size());
  b.c = 3;
  b.h = b.w = p.resolution;
  b.data.resize(b.sample_size() * b.n);
  for (int i = 0; i < b.n; ++i) p.apply(data::load_image(files[i]), false, b.sample(i));
  return b;
}

// The official save_imgs layout: guides on top, bases on the left, transfers inside.
template <class B>
data::Image transfer_grid(ContentDisentangler<B>& m, const Tensor<B>& bases, const Tensor<B>& guides) {
  const int64_t nb = bases.shape()[0], ng = guides.shape()[0];
  std::vector<std::vector<data::Image>> cells(nb);
  NoGradGuard ng_guard;
  Tensor<B> common = m.encode_common(bases);
  Tensor<B> sep = m.encode_separate(guides);
  for (int64_t j = 0; j < ng; ++j) {
    // every base with guide j's separate code
    std::vector<Tensor<B>> rows(nb, sep.narrow(0, j, 1));
    Tensor<B> out = m.decode(common, concat<B>(rows, 0));
    auto imgs = to_images(out);
    for (int64_t i = 0; i < nb; ++i) cells[i].push_back(imgs[i]);
  }
  return data::transfer_grid(to_images(guides), to_images(bases), cells);
}

// A two-row grid: inputs on top, their removals below.
template <class B>
data::Image removal_grid(ContentDisentangler<B>& m, const Tensor<B>& a) {
  auto top = to_images(a), bottom = to_images(m.remove(a));
  std::vector<data::Image> cells = top;
  cells.insert(cells.end(), bottom.begin(), bottom.end());
  return data::tile_grid(cells, 2, int(top.size()));
}

// Build a model whose config is read from a weights file or checkpoint, and load it.
template <class B>
std::unique_ptr<ContentDisentangler<B>> load_model(const std::string& path) {
  DISCO_CHECK(fs::exists(path), "--model: file not found: '", path, "'");
  ModelConfig cfg;
  DISCO_CHECK(read_stored_config(path, cfg), path,
              ": no model config in the file's metadata (expected a disco weights file or checkpoint)");
  auto m = std::make_unique<ContentDisentangler<B>>(cfg);
  load_weights(*m, path);
  return m;
}

// The crop a model was trained with (stored in its metadata), else the fallback.
inline int stored_crop(const std::string& path, int fallback) {
  SafetensorsHeader h = read_safetensors_header(path);
  auto it = h.metadata.find("crop");
  return it == h.metadata.end() ? fallback : std::stoi(it->second);
}

inline void ensure_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  DISCO_CHECK(fs::is_directory(dir), "cannot create output folder '", dir, "'", ec ? ": " + ec.message() : "");
}

// --device / --conv-algo / --math of `train` and `step`: checks them and calls run(CPU{}) or,
// after applying the convolution / GEMM settings, run(CUDA{}). An empty math is
// default_math. extra_cuda_only: a flag of the command that needs --device cuda ("" if none).
// ", conv auto, math tf32" for the CUDA backend (the settings on_device applied), "" for the CPU.
template <class B>
std::string cuda_settings_note() {
#ifdef DISCO_WITH_CUDA
  if constexpr (std::is_same_v<B, CUDA>) {
    const cuda::ConvSettings& s = cuda::conv_settings();
    std::string algo = cuda::to_string(s.algo);
    if (s.algo == cuda::ConvAlgo::Auto && !cuda::cudnn_available()) algo += " (no cuDNN in this build: disco's kernels)";
    return ", conv " + algo + ", math " + cuda::to_string(s.mode);
  }
#endif
  return "";
}

template <class F>
auto on_device(const std::string& device, const std::string& conv_algo, const std::string& math,
               const char* default_math, const std::string& extra_cuda_only, F&& run) {
  DISCO_CHECK(conv_algo.empty() || conv_algo == "disco" || conv_algo == "cudnn" || conv_algo == "auto",
              "--conv-algo: '", conv_algo, "' is not disco, cudnn or auto");
  DISCO_CHECK(math.empty() || math == "fp32" || math == "tf32" || math == "bf16", "--math: '", math,
              "' is not fp32, tf32 or bf16");
  if (device == "cpu") {
    DISCO_CHECK(conv_algo.empty() && math.empty() && extra_cuda_only.empty(), "--conv-algo, --math",
                extra_cuda_only.empty() ? "" : " and " + extra_cuda_only,
                " apply to --device cuda only (the CPU computes in float32)");
    return run(CPU{});
  }
  if (device == "cuda") {
#ifdef DISCO_WITH_CUDA
    DISCO_CHECK(cuda::device_available(), "--device cuda: no usable CUDA device found (driver or GPU missing); "
                                          "use --device cpu");
    const std::string m = math.empty() ? std::string(default_math) : math;
    cuda::conv_settings().algo = conv_algo == "cudnn"  ? cuda::ConvAlgo::Cudnn
                                 : conv_algo == "auto" ? cuda::ConvAlgo::Auto
                                                       : cuda::ConvAlgo::Custom;
    cuda::conv_settings().mode =
        m == "fp32" ? cuda::MathMode::FP32 : (m == "bf16" ? cuda::MathMode::BF16 : cuda::MathMode::TF32);
    if (conv_algo == "cudnn") DISCO_CHECK(cuda::cudnn_available(), "--conv-algo cudnn: this build of disco has no cuDNN");
    return run(CUDA{});
#else
    fail("--device cuda: this build of disco has no CUDA backend (configure with -DDISCO_CUDA=ON on a machine "
         "with nvcc); use --device cpu");
#endif
  }
  fail("--device: '", device, "' is not cpu or cuda");
}

// --device and --math of the inference commands (transfer, remove, eval).
inline void add_inference_device_options(CLI::App* cmd, std::string& device, std::string& math) {
  cmd->add_option("--device", device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--math", math, "--device cuda: fp32, tf32 or bf16 for convolutions and GEMMs (default tf32)");
}

// Registration of each subcommand (one file each).
void add_train(CLI::App& app);
void add_apply(CLI::App& app);  // transfer, remove
void add_eval(CLI::App& app);
void add_step(CLI::App& app);
void add_split_celeba(CLI::App& app);
void add_demo(CLI::App& app);

}  // namespace disco::cli
