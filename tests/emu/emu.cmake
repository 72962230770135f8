# CPU emulation of the CUDA kernels (included from tests/CMakeLists.txt).
#
# conv_igemm_emu compiles kernels/conv2d_igemm.cuh with the host compiler (tests/emu/cuda_emu.hpp:
# keyword shims, one std::thread per CUDA thread, emulated mma.sync) and checks fprop / dgrad /
# wgrad against tests/reference/conv_ref.hpp. It needs only the CUDA toolkit *headers*
# (cuda_runtime.h, cuda_bf16.h): no GPU, no nvcc, no disco::cuda, so it is built whenever the
# headers are found, also with DISCO_CUDA=OFF. ctest entry emu.conv_igemm, label `emu` (not
# `gpu`): the reduced case list, about 25 s on 2 cores; `conv_igemm_emu --full` runs all cases
# (about 2 minutes).
#
# kernels_emu does the same for kernels/{common,elementwise,norm,loss,optim}.cuh, launched as
# src/cuda/disco_cuda.cu launches them (re-implemented in the test), against the CPU backend
# (disco::Kernels<disco::CPU>, hence Eigen). ctest entry emu.kernels, label `emu`.
if(NOT CUDAToolkit_INCLUDE_DIRS)
  find_package(CUDAToolkit QUIET)
endif()
find_path(DISCO_EMU_CUDA_INCLUDE_DIR NAMES cuda_runtime.h cuda_bf16.h
          HINTS ${CUDAToolkit_INCLUDE_DIRS} "$ENV{CUDA_PATH}/include" "$ENV{CUDA_HOME}/include"
          PATHS /usr/local/cuda/include
          DOC "CUDA toolkit headers for the CPU emulation test (tests/emu)")
if(NOT DISCO_EMU_CUDA_INCLUDE_DIR OR NOT EXISTS "${DISCO_EMU_CUDA_INCLUDE_DIR}/cuda_bf16.h"
   OR NOT EXISTS "${DISCO_EMU_CUDA_INCLUDE_DIR}/cuda_runtime.h")
  message(STATUS "disco: CUDA toolkit headers not found; emu.conv_igemm / emu.kernels (CPU emulation of the "
                 "CUDA kernels) are not built (set DISCO_EMU_CUDA_INCLUDE_DIR to enable it)")
  return()
endif()
message(STATUS "disco: emu.conv_igemm / emu.kernels use the CUDA headers in ${DISCO_EMU_CUDA_INCLUDE_DIR}")

add_executable(conv_igemm_emu ${CMAKE_CURRENT_LIST_DIR}/conv_igemm_emu.cpp)
set_target_properties(conv_igemm_emu PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
target_include_directories(conv_igemm_emu PRIVATE
  ${PROJECT_SOURCE_DIR}            # kernels/*.cuh
  ${PROJECT_SOURCE_DIR}/include    # disco/problem/*.hpp
  ${PROJECT_SOURCE_DIR}/tests)     # reference/conv_ref.hpp, emu/cuda_emu.hpp
target_include_directories(conv_igemm_emu SYSTEM PRIVATE ${DISCO_EMU_CUDA_INCLUDE_DIR})
# -O1 whatever the build type: the run time is thread switching (barriers), so -O2 / -O3 only
# lengthen the compile. #pragma unroll is nvcc's.
target_compile_options(conv_igemm_emu PRIVATE -O1 -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas)
target_link_libraries(conv_igemm_emu PRIVATE Threads::Threads)

add_test(NAME emu.conv_igemm COMMAND conv_igemm_emu)
# TIMEOUT also ends a hang (a __syncthreads that not every thread reaches deadlocks the emulation)
set_tests_properties(emu.conv_igemm PROPERTIES LABELS emu TIMEOUT 600)

add_executable(kernels_emu ${CMAKE_CURRENT_LIST_DIR}/kernels_emu.cpp)
set_target_properties(kernels_emu PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
target_include_directories(kernels_emu PRIVATE
  ${PROJECT_SOURCE_DIR}            # kernels/*.cuh
  ${PROJECT_SOURCE_DIR}/include    # disco/backend/cpu/kernels.hpp (the reference)
  ${PROJECT_SOURCE_DIR}/tests)     # emu/cuda_emu.hpp
target_include_directories(kernels_emu SYSTEM PRIVATE ${DISCO_EMU_CUDA_INCLUDE_DIR})
# Eigen only (no OpenMP): the reference loops run on one thread, next to the emulated threads.
target_compile_options(kernels_emu PRIVATE -O1 -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas)
target_link_libraries(kernels_emu PRIVATE Eigen3::Eigen Threads::Threads)

add_test(NAME emu.kernels COMMAND kernels_emu)
set_tests_properties(emu.kernels PROPERTIES LABELS emu TIMEOUT 300)
