#pragma once
// Every op of disco, backend-agnostic (each dispatches to Kernels<B>).
#include "disco/ops/activation.hpp"
#include "disco/ops/conv.hpp"
#include "disco/ops/elementwise.hpp"
#include "disco/ops/linear.hpp"
#include "disco/ops/loss.hpp"
#include "disco/ops/norm.hpp"
#include "disco/ops/reduce.hpp"
#include "disco/ops/tensor_ops.hpp"
#include "disco/ops/view.hpp"
