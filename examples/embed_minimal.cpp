// A user program embedding disco: train a small model on the built-in procedural faces
// for a few steps, then move glasses from one face onto another.
#include <disco/data/data.hpp>
#include <disco/disco.hpp>
#include <iostream>

int main() {
  disco::ModelConfig cfg;  // official defaults, shrunk for a quick run
  cfg.resolution = 64, cfg.base_channels = 8, cfg.code_channels = 32, cfg.sep = 4, cfg.disc_hidden = 32;
  disco::ContentDisentangler<disco::CPU> model(cfg);

  disco::data::SyntheticConfig sc;
  sc.resolution = cfg.resolution;
  disco::data::SyntheticDataset faces(sc);  // A: glasses, B: none
  disco::data::Pipeline pipe{0, cfg.resolution, 0.5f};
  disco::data::BatchLoader loader(faces, pipe, {/*batch*/ 4});
  auto tensor = [](const disco::data::Batch& b) { return disco::Tensor<disco::CPU>::from_vector(b.data, {b.n, 3, b.h, b.w}); };

  for (int step = 0; step < 3; ++step) {
    auto batch = loader.next();
    auto losses = model.train_step(tensor(batch.a), tensor(batch.b));
    std::cout << "step " << step << ": reconstruction " << losses.recon_a + losses.recon_b << "\n";
  }
  auto pair = loader.next();
  auto moved = model.transfer(tensor(pair.b), tensor(pair.a));  // a's glasses on b
  std::cout << "transfer output " << disco::shape_str(moved.shape()) << "\n";
}
