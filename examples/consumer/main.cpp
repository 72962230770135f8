// Built by the test suite against an *installed* disco: proves find_package(disco) works.
#include <disco/disco.hpp>

#include <iostream>

int main() {
  disco::Generator gen(1);
  auto x = disco::Tensor<disco::CPU>::randn({2, 3, 8, 8}, gen).set_requires_grad();
  disco::nn::Conv2d<disco::CPU> conv(3, 4, 4, {2, 1, 1}, true, gen);
  auto loss = disco::mean(conv(x));
  loss.backward();
  std::cout << "consumer ok: loss " << loss.item() << ", grad shape " << disco::shape_str(x.grad().shape()) << "\n";
  return x.grad().defined() ? 0 : 1;
}
