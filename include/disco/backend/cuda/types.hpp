#pragma once
// Small enums shared by the CUDA backend's host API (plain C++, no CUDA headers).
namespace disco {
namespace cuda {

// Arithmetic of the matrix products (convolutions, linear layers). Inputs and outputs are
// always float32 in memory; the mode says what the multiply-adds run in:
//   FP32  plain float FMA (exact path, slowest)
//   TF32  tensor cores, inputs rounded to TF32 (10-bit mantissa), FP32 accumulation
//   BF16  tensor cores, inputs rounded to bfloat16 (8-bit mantissa), FP32 accumulation
enum class MathMode { FP32, TF32, BF16 };

// Which implementation runs a convolution: disco's own implicit-GEMM kernels, cuDNN (the
// fastest algorithm of cudnnFind*AlgorithmEx, cached per problem), or Auto: whichever of the
// two ran the problem faster when it was first seen (timed once, cached; disco's kernels
// without cuDNN, with tuning off, or while a CUDA graph is being captured before the choice).
enum class ConvAlgo { Custom, Cudnn, Auto };

// The three directions of a convolution (a transposed convolution's forward is Dgrad).
enum class ConvDir { Fprop, Dgrad, Wgrad };

// Activation fused into instance norm.
enum class Activation { None, ReLU, LeakyReLU };

// Reconstruction term of the fused autoencoder loss.
enum class ReconLoss { MSE, L1 };

inline const char* to_string(MathMode m) {
  switch (m) {
    case MathMode::FP32: return "fp32";
    case MathMode::TF32: return "tf32";
    case MathMode::BF16: return "bf16";
  }
  return "?";
}
inline const char* to_string(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::Custom: return "disco";
    case ConvAlgo::Cudnn: return "cudnn";
    case ConvAlgo::Auto: return "auto";
  }
  return "?";
}
inline const char* to_string(ConvDir d) {
  switch (d) {
    case ConvDir::Fprop: return "fprop";
    case ConvDir::Dgrad: return "dgrad";
    case ConvDir::Wgrad: return "wgrad";
  }
  return "?";
}

}  // namespace cuda
}  // namespace disco
