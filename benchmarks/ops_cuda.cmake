# ops_cuda: GB/s of disco's memory-bound CUDA kernels (fused loss, instance norm, Adam,
# element-wise) against a device-to-device copy of the same bytes (needs the CUDA backend;
# exits 77 without a GPU). --self-test checks the size tables and traffic arithmetic on the CPU.
# The same source runs on the CPU emulation as emu_ops_cuda (tests/emu_backend/emu_backend.cmake).
if(NOT TARGET disco_cuda)
  return()
endif()
add_executable(ops_cuda ${CMAKE_CURRENT_LIST_DIR}/ops_cuda.cpp)
target_link_libraries(ops_cuda PRIVATE disco::cuda CUDA::cudart disco_build_flags)
if(DISCO_BUILD_TESTS)
  add_test(NAME bench.ops_cuda_self_test COMMAND ops_cuda --self-test)
endif()
