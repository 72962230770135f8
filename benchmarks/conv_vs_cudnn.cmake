# conv_vs_cudnn: disco's CUDA convolutions against cuDNN at the model's layer shapes
# (needs the CUDA backend; skips without a GPU). --self-test checks the layer table on the CPU.
if(NOT TARGET disco_cuda)
  return()
endif()
add_executable(conv_vs_cudnn ${CMAKE_CURRENT_LIST_DIR}/conv_vs_cudnn.cpp)
target_link_libraries(conv_vs_cudnn PRIVATE disco::cuda CUDA::cudart disco_build_flags)
if(DISCO_BUILD_TESTS)
  add_test(NAME bench.conv_vs_cudnn_self_test COMMAND conv_vs_cudnn --self-test)
endif()
