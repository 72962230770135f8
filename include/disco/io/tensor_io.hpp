#pragma once
// Tensor <-> safetensors records. Device-independent: values go through the host, so a
// file written from a CUDA tensor loads into a CPU one and back.
#include <map>
#include <string>

#include "disco/core/tensor.hpp"
#include "disco/io/safetensors.hpp"

namespace disco {

template <class B>
RawTensor to_raw(const Tensor<B>& t) {
  if (t.dtype() == DType::F64) return RawTensor::from_f64(t.template to_vector<double>(), t.shape());
  return RawTensor::from_f32(t.template to_vector<float>(), t.shape());
}

// A tensor of the record's dtype (F32 or F64; other dtypes are refused, naming `name`).
template <class B>
Tensor<B> from_raw(const RawTensor& r, const std::string& name) {
  if (r.dtype == "F32") return Tensor<B>::from_vector(r.to_f32(name), r.shape);
  if (r.dtype == "F64") return Tensor<B>::from_vector(r.to_f64(name), r.shape);
  fail("tensor '", name, "' has dtype ", r.dtype, ", expected F32 or F64");
}

// Save named tensors (plus metadata) to a safetensors file, atomically.
template <class B>
void save_tensors(const std::string& path, const std::map<std::string, Tensor<B>>& tensors,
                  const std::map<std::string, std::string>& metadata = {}) {
  SafetensorsFile f;
  f.metadata = metadata;
  for (auto& [name, t] : tensors) f.tensors.emplace(name, to_raw(t));
  write_safetensors(path, f);
}

template <class B>
std::map<std::string, Tensor<B>> load_tensors(const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  std::map<std::string, Tensor<B>> out;
  for (auto& [name, r] : f.tensors) out.emplace(name, from_raw<B>(r, path + ": " + name));
  return out;
}

}  // namespace disco
