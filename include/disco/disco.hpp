#pragma once
// disco: the CPU umbrella header. Never includes cuda_runtime.h; the CUDA backend
// adds <disco/cuda.hpp> on top.
#include "disco/core/backend.hpp"
#include "disco/core/dtype.hpp"
#include "disco/core/error.hpp"
#include "disco/core/random.hpp"
#include "disco/core/shape.hpp"
#include "disco/core/tensor.hpp"
#include "disco/backend/cpu/kernels.hpp"
#include "disco/autograd/engine.hpp"
#include "disco/autograd/gradcheck.hpp"
#include "disco/ops/ops.hpp"
#include "disco/nn/layers.hpp"
#include "disco/optim/optim.hpp"
