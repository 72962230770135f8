// `disco eval`: result grids; on the synthetic faces, reconstruction / transfer /
// removal PSNR against the generator's ground truth, and a leakage probe (held-out
// accuracy of a logistic regression telling A from B on E1 codes; 50% = no leakage).
#include "eval.hpp"

#include <Eigen/Dense>
#include <cmath>
#include <iostream>

#include "disco/io/atomic_file.hpp"

namespace disco::cli {

namespace {

double psnr(const data::Image& x, const data::Image& y) {
  DISCO_CHECK(x.rgb.size() == y.rgb.size(), "psnr: image sizes differ");
  double se = 0;
  for (size_t i = 0; i < x.rgb.size(); ++i) {
    const double d = double(x.rgb[i]) - double(y.rgb[i]);
    se += d * d;
  }
  const double mse = se / double(x.rgb.size());
  return 10.0 * std::log10(1.0 / std::max(mse, 1e-12));
}

template <class F>
double mean_over(int n, F&& f) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += f(i);
  return s / std::max(1, n);
}

// L2-regularised logistic regression trained by full-batch gradient descent on
// standardised features; returns {train accuracy, test accuracy}.
std::pair<double, double> logistic_probe(const Eigen::MatrixXd& Xtr, const Eigen::VectorXd& ytr,
                                         const Eigen::MatrixXd& Xte, const Eigen::VectorXd& yte) {
  Eigen::RowVectorXd mu = Xtr.colwise().mean();
  Eigen::RowVectorXd sd = ((Xtr.rowwise() - mu).array().square().colwise().mean()).sqrt().max(1e-6);
  auto norm = [&](const Eigen::MatrixXd& X) -> Eigen::MatrixXd {
    return ((X.rowwise() - mu).array().rowwise() / sd.array()).matrix();
  };
  Eigen::MatrixXd A = norm(Xtr), T = norm(Xte);
  Eigen::VectorXd w = Eigen::VectorXd::Zero(A.cols());
  double b = 0;
  const double lr = 0.5, lambda = 1e-3;
  const double n = double(A.rows());
  for (int it = 0; it < 300; ++it) {
    Eigen::VectorXd z = (A * w).array() + b;
    Eigen::VectorXd p = (1.0 / (1.0 + (-z.array()).exp())).matrix();
    Eigen::VectorXd g = p - ytr;
    w -= lr * ((A.transpose() * g) / n + lambda * w) / std::sqrt(double(A.cols()) / 64.0 + 1.0);
    b -= lr * g.mean();
  }
  auto acc = [&](const Eigen::MatrixXd& X, const Eigen::VectorXd& y) {
    Eigen::VectorXd z = (X * w).array() + b;
    int ok = 0;
    for (int i = 0; i < z.size(); ++i) ok += ((z[i] > 0) == (y[i] > 0.5));
    return double(ok) / double(std::max<Eigen::Index>(1, z.size()));
  };
  return {acc(A, ytr), acc(T, yte)};
}

template <class B>
Eigen::MatrixXd codes(ContentDisentangler<B>& m, const data::Batch& b) {
  Tensor<B> c = m.encode_common(to_tensor<B>(b));
  auto v = c.template to_vector<double>();
  Eigen::MatrixXd out(c.shape()[0], c.shape()[1]);
  for (Eigen::Index i = 0; i < out.rows(); ++i)
    for (Eigen::Index j = 0; j < out.cols(); ++j) out(i, j) = v[size_t(i * out.cols() + j)];
  return out;
}

template <class B>
nlohmann::json eval_on(const EvalOptions& o) {
  ensure_dir(o.out);
  auto m = load_model<B>(o.model);
  const int res = m->config().resolution;
  auto ds = open_dataset(o.data, data::Split::Test, res);
  const data::Pipeline p = make_pipeline(o.data, res, false);
  NoGradGuard ng;
  nlohmann::json j;
  j["model"] = o.model;
  j["device"] = o.device;
  j["config"] = m->config().to_json();
  j["dataset"] = ds->describe();

  const int nd = int(std::min<size_t>({size_t(o.num_display), ds->size(data::Domain::A), ds->size(data::Domain::B)}));
  Tensor<B> guides = to_tensor<B>(data::first_images(*ds, data::Domain::A, nd, p));
  Tensor<B> bases = to_tensor<B>(data::first_images(*ds, data::Domain::B, nd, p));
  const std::string grid = (fs::path(o.out) / "transfer_grid.png").string();
  const std::string rgrid = (fs::path(o.out) / "removal_grid.png").string();
  data::save_png(grid, transfer_grid(*m, bases, guides));
  data::save_png(rgrid, removal_grid(*m, guides));
  j["grids"] = {grid, rgrid};

  const int n = int(std::min<size_t>({size_t(o.count), ds->size(data::Domain::A), ds->size(data::Domain::B)}));
  DISCO_CHECK(n >= 4, "eval: need at least 4 test images per domain, have ", n);
  data::Batch ba = data::first_images(*ds, data::Domain::A, n, p);
  data::Batch bb = data::first_images(*ds, data::Domain::B, n, p);

  if (auto* syn = dynamic_cast<const data::SyntheticDataset*>(ds.get())) {
    // Run the model in chunks; guide of base i is A image (i + 1) mod n.
    std::vector<data::Image> rec_a, rec_b, trans, rem;
    const int chunk = 16;
    for (int s = 0; s < n; s += chunk) {
      const int k = std::min(chunk, n - s);
      std::vector<size_t> ia, ib, ig;
      for (int i = s; i < s + k; ++i) {
        ia.push_back(size_t(i));
        ib.push_back(size_t(i));
        ig.push_back(size_t((i + 1) % n));
      }
      Tensor<B> a = to_tensor<B>(data::make_batch(*ds, data::Domain::A, ia, p));
      Tensor<B> b = to_tensor<B>(data::make_batch(*ds, data::Domain::B, ib, p));
      Tensor<B> g = to_tensor<B>(data::make_batch(*ds, data::Domain::A, ig, p));
      for (auto& im : to_images(m->reconstruct(a))) rec_a.push_back(im);
      for (auto& im : to_images(m->decode(m->encode_common(b), m->zero_separate(k)))) rec_b.push_back(im);
      for (auto& im : to_images(m->transfer(b, g))) trans.push_back(im);
      for (auto& im : to_images(m->remove(a))) rem.push_back(im);
    }
    auto prep = [&](const data::Image& im) { return p.prepare(im, false); };
    nlohmann::json ps;
    ps["reconstruction_a"] = mean_over(n, [&](int i) { return psnr(rec_a[i], ba.image(i)); });
    ps["reconstruction_b"] = mean_over(n, [&](int i) { return psnr(rec_b[i], bb.image(i)); });
    ps["transfer"] = mean_over(n, [&](int i) { return psnr(trans[i], prep(syn->gt_transfer(i, (i + 1) % n))); });
    ps["removal"] = mean_over(n, [&](int i) { return psnr(rem[i], prep(syn->gt_remove(i))); });
    // What doing nothing scores: the base itself as the transfer, the input as the removal.
    ps["transfer_identity_baseline"] =
        mean_over(n, [&](int i) { return psnr(bb.image(i), prep(syn->gt_transfer(i, (i + 1) % n))); });
    ps["removal_identity_baseline"] = mean_over(n, [&](int i) { return psnr(ba.image(i), prep(syn->gt_remove(i))); });
    j["psnr"] = ps;
  }

  // Leakage probe: first half of each domain trains the classifier, second half tests it.
  {
    Eigen::MatrixXd ca = codes(*m, ba), cb = codes(*m, bb);
    const int h = n / 2;
    Eigen::MatrixXd Xtr(2 * h, ca.cols()), Xte(2 * (n - h), ca.cols());
    Eigen::VectorXd ytr(2 * h), yte(2 * (n - h));
    Xtr << ca.topRows(h), cb.topRows(h);
    Xte << ca.bottomRows(n - h), cb.bottomRows(n - h);
    ytr << Eigen::VectorXd::Ones(h), Eigen::VectorXd::Zero(h);
    yte << Eigen::VectorXd::Ones(n - h), Eigen::VectorXd::Zero(n - h);
    auto [tr, te] = logistic_probe(Xtr, ytr, Xte, yte);
    j["leakage_probe"] = {{"test_accuracy", te}, {"train_accuracy", tr}, {"n_train", 2 * h}, {"n_test", 2 * (n - h)},
                          {"features", ca.cols()},
                          {"meaning", "held-out accuracy of a logistic regression telling A from B on E1 codes; "
                                      "0.5 = no leakage of the extra content into E1"}};
  }
  const std::string json_path = (fs::path(o.out) / "eval.json").string();
  atomic_write_text(json_path, j.dump(2) + "\n");
  return j;
}

}  // namespace

nlohmann::json run_eval(const EvalOptions& o) {
  return on_device(o.device, "", o.math, "tf32", "", [&](auto backend) { return eval_on<decltype(backend)>(o); });
}

void add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd = app.add_subcommand("eval", "grids, PSNR against ground truth (synthetic data) and the leakage probe");
  cmd->add_option("--model", o->model, "weights file or checkpoint")->required();
  cmd->add_option("--out", o->out, "output folder (eval.json, grids)")->capture_default_str();
  cmd->add_option("--count", o->count, "test images per domain")->capture_default_str();
  cmd->add_option("--num-display", o->num_display, "images per side of the grids")->capture_default_str();
  add_inference_device_options(cmd, o->device, o->math);
  add_data_options(cmd, o->data);
  cmd->callback([o] {
    if (o->data.dataroot.empty() && o->data.domain_a.empty()) o->data.synthetic = true;
    auto j = run_eval(*o);
    std::cout << j.dump(2) << "\n";
  });
}

}  // namespace disco::cli
