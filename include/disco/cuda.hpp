#pragma once
// disco with the CUDA backend: everything of <disco/disco.hpp> plus Tensor<CUDA>,
// ContentDisentangler<CUDA>, GraphedTrainStep (the training step as a CUDA graph) and the
// disco::cuda host API. Plain C++ (no cuda_runtime.h);
// link disco::cuda (which also defines DISCO_WITH_CUDA).
#include "disco/disco.hpp"
#include "disco/backend/cuda/backend.hpp"
#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "disco/backend/cuda/runtime.hpp"
#include "disco/backend/cuda/types.hpp"
#include "disco/model/graphed_step.hpp"
