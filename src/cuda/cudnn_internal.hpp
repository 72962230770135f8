#pragma once
// Private cuDNN glue of disco::cuda (not installed; only with DISCO_HAVE_CUDNN): the error
// check that throws disco::Error with cuDNN's message, file, line and expression, and the
// process-wide handle shared by the convolution (cudnn_conv.cpp) and normalization
// (cudnn_norm.cpp) paths.
#if defined(DISCO_HAVE_CUDNN)
#include <cudnn.h>

#include "disco/core/error.hpp"

#define DISCO_CUDNN_CHECK(expr)                                                                           \
  do {                                                                                                    \
    const cudnnStatus_t disco_st_ = (expr);                                                               \
    if (disco_st_ != CUDNN_STATUS_SUCCESS)                                                                \
      ::disco::fail("cuDNN error ", cudnnGetErrorString(disco_st_), " (", int(disco_st_), ") at ", __FILE__, \
                    ":", __LINE__, " in `", #expr, "`");                                                  \
  } while (0)

namespace disco {
namespace cuda {
namespace detail {
// The process-wide handle (created on first use, never destroyed: no teardown-order issues),
// bound to disco's current stream (runtime.hpp) on every call.
cudnnHandle_t cudnn_handle();
}  // namespace detail
}  // namespace cuda
}  // namespace disco
#endif
