# CPU emulation of the whole CUDA backend (included from tests/CMakeLists.txt; see README.md).
#
# disco_cuda_emu: src/cuda/*.cu with every kernel launch rewritten by transform_launches.py,
# plus src/cuda/runtime.cpp, blas.cpp, cudnn_conv.cpp (without cuDNN), compiled by the host
# compiler against the real CUDA headers and linked against emulated CUDA runtime / cuBLAS
# functions (emu_*.cpp). disco_cuda_tests_emu: tests/cuda/*.cpp, unchanged, on top of it.
# Needs the CUDA toolkit headers, python3 and x86-64; no nvcc, no GPU, any DISCO_CUDA setting.
#
# ctest: emu.cuda.<test file stem>, label `emu` (the CI default, ~1 min on 2 cores); the slow
# cases (see _disco_emu_slow below) only with -DDISCO_EMU_SLOW_TESTS=ON, as emu.cuda.slow
# (label `emu_slow`), or by hand: disco_cuda_tests_emu "<test name>" (see README.md).
if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  return()
endif()
if(NOT CUDAToolkit_INCLUDE_DIRS)
  find_package(CUDAToolkit QUIET)
endif()
find_path(DISCO_EMU_BACKEND_CUDA_INCLUDE_DIR NAMES cuda_runtime.h cublas_v2.h
          HINTS ${CUDAToolkit_INCLUDE_DIRS} "$ENV{CUDA_PATH}/include" "$ENV{CUDA_HOME}/include"
          PATHS /usr/local/cuda/include
          DOC "CUDA toolkit headers for the CPU emulation of disco::cuda (tests/emu_backend)")
find_program(DISCO_EMU_BACKEND_PYTHON NAMES python3)
set(_d "${DISCO_EMU_BACKEND_CUDA_INCLUDE_DIR}")
if(NOT _d OR NOT EXISTS "${_d}/cuda_runtime.h" OR NOT EXISTS "${_d}/cuda_bf16.h" OR NOT EXISTS "${_d}/cublas_v2.h"
   OR NOT DISCO_EMU_BACKEND_PYTHON)
  message(STATUS "disco: CUDA headers (with cuBLAS) or python3 not found; the CPU emulation of disco::cuda "
                 "(emu.cuda.*) is not built")
  return()
endif()
message(STATUS "disco: emu.cuda.* (CPU emulation of disco::cuda) use the CUDA headers in ${_d}")

set(_emu_dir ${CMAKE_CURRENT_LIST_DIR})
set(_emu_gen ${CMAKE_CURRENT_BINARY_DIR}/emu_backend)
file(MAKE_DIRECTORY ${_emu_gen})
file(GLOB _emu_cu CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/cuda/*.cu)
set(_emu_generated "")
foreach(cu ${_emu_cu})
  get_filename_component(stem ${cu} NAME_WE)
  set(out ${_emu_gen}/${stem}.emu.cpp)
  add_custom_command(OUTPUT ${out}
    COMMAND ${DISCO_EMU_BACKEND_PYTHON} ${_emu_dir}/transform_launches.py ${cu} ${out}
    DEPENDS ${cu} ${_emu_dir}/transform_launches.py
    COMMENT "emu: rewriting the kernel launches of ${stem}.cu" VERBATIM)
  list(APPEND _emu_generated ${out})
endforeach()
set_source_files_properties(${_emu_generated} PROPERTIES
  COMPILE_OPTIONS "-include;${_emu_dir}/emu_device.hpp;-Wno-unknown-pragmas"
  OBJECT_DEPENDS ${_emu_dir}/emu_device.hpp)

file(GLOB _emu_cpp CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/cuda/*.cpp)
add_library(disco_cuda_emu STATIC ${_emu_generated} ${_emu_cpp}
  ${_emu_dir}/emu_runtime.cpp ${_emu_dir}/emu_cuda_api.cpp ${_emu_dir}/emu_cublas.cpp)
set_target_properties(disco_cuda_emu PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
target_include_directories(disco_cuda_emu PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/src/cuda ${_emu_dir})
target_include_directories(disco_cuda_emu SYSTEM PRIVATE ${_d})
# -O2 whatever the build type: the emulated kernels are the run time. No cuDNN
# (DISCO_HAVE_CUDNN undefined): cudnn_available() is false, ConvAlgo::Cudnn throws.
target_compile_options(disco_cuda_emu PRIVATE -O2 -Wall -Wextra -Wno-unused-parameter -ffp-contract=off)
target_compile_definitions(disco_cuda_emu INTERFACE DISCO_WITH_CUDA=1)
target_link_libraries(disco_cuda_emu PUBLIC disco Threads::Threads PRIVATE disco_build_flags)

file(GLOB _emu_tests CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cuda/test_*.cpp)
add_executable(disco_cuda_tests_emu ${PROJECT_SOURCE_DIR}/tests/cuda/main.cpp ${_emu_tests})
target_include_directories(disco_cuda_tests_emu PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/tests/cuda)
target_link_libraries(disco_cuda_tests_emu PRIVATE disco_cuda_emu disco_build_flags Catch2::Catch2)

# Fresh random data each run (the seed is printed; set this to replay one).
set(DISCO_EMU_TEST_SEED "" CACHE STRING "DISCO_TEST_SEED of the emu.cuda.* ctest entries (empty: random)")
# Per-layer conv tuning off (timing emulated kernels only costs time); the [plans] tests
# switch it on themselves. Exact-size device blocks (DISCO_CUDA_EXACT_ALLOC=1): every tensor is
# its own allocation of its own size, so the emulation's check of every cp.async source (inside
# one device allocation) sees a read past a tensor's end.
set(_emu_env "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;DISCO_CONV_AUTOTUNE=0;DISCO_CUDA_EXACT_ALLOC=1")
if(NOT DISCO_EMU_TEST_SEED STREQUAL "")
  list(APPEND _emu_env "DISCO_TEST_SEED=${DISCO_EMU_TEST_SEED}")
endif()
# Test cases too slow for the CI default (measured on 2 cores, see README.md).
set(_disco_emu_slow
  "convolutions match the double reference"          # ~45 s
  "convolution gradients accumulate"                 # ~40 s
  "GraphedTrainStep: hooks force eager steps*")  # (the TF32 and BF16 graphs) ~45 s
set(_emu_exclude "")
foreach(t ${_disco_emu_slow})
  string(APPEND _emu_exclude " ~\"${t}\"")
endforeach()
foreach(src ${_emu_tests})
  get_filename_component(stem ${src} NAME_WE)
  add_test(NAME emu.cuda.${stem} COMMAND disco_cuda_tests_emu "[#${stem}]${_emu_exclude}" --filenames-as-tags)
  set_tests_properties(emu.cuda.${stem} PROPERTIES LABELS emu TIMEOUT 600
                       ENVIRONMENT "${_emu_env}")
endforeach()
# The wgmma kernels switched off by the environment (tools/gpu_check.sh does it when its probe
# of them fails): no wgmma candidates.
add_test(NAME emu.cuda.wgmma_off COMMAND disco_cuda_tests_emu "[wgmma_env]")
set_tests_properties(emu.cuda.wgmma_off PROPERTIES LABELS emu TIMEOUT 300 ENVIRONMENT "${_emu_env};DISCO_WGMMA=0")
option(DISCO_EMU_SLOW_TESTS "register emu.cuda.slow: the CUDA tests too slow for the CPU emulation's CI default" OFF)
if(DISCO_EMU_SLOW_TESTS AND _disco_emu_slow)
  string(REPLACE ";" "\",\"" _emu_slow_list "${_disco_emu_slow}")
  add_test(NAME emu.cuda.slow COMMAND disco_cuda_tests_emu "\"${_emu_slow_list}\"")
  set_tests_properties(emu.cuda.slow PROPERTIES LABELS emu_slow TIMEOUT 3600
                       ENVIRONMENT "${_emu_env}")
endif()

# Not a test: counts what one training step enqueues (docs/benchmarks.md, launch census).
add_executable(emu_step_census EXCLUDE_FROM_ALL ${_emu_dir}/step_census.cpp)
target_include_directories(emu_step_census PRIVATE ${_emu_dir})
target_include_directories(emu_step_census SYSTEM PRIVATE ${_d})
target_link_libraries(emu_step_census PRIVATE disco_cuda_emu disco_build_flags)
# benchmarks/train_step on the emulated backend: its CUDA code paths (--math, --graph) and the
# lines step_vs_pytorch.py parses (median_ms, pipelined_ms, peak_mem_bytes,
# steady_peak_mem_bytes, the graph's node count) without a GPU; the times mean nothing.
add_executable(emu_train_step ${PROJECT_SOURCE_DIR}/benchmarks/train_step.cpp)
target_link_libraries(emu_train_step PRIVATE disco_cuda_emu disco_build_flags)
add_test(NAME emu.bench.train_step
         COMMAND bash ${_emu_dir}/train_step_check.sh $<TARGET_FILE:emu_train_step>)
set_tests_properties(emu.bench.train_step PROPERTIES LABELS emu TIMEOUT 300
                     ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;DISCO_CONV_AUTOTUNE=0")
# The `disco` tool on the emulated backend: `disco train --device cuda --cuda-graph` runs a
# few steps, saves, and its checkpoint resumes on the CPU tool (emu.cli.train_cuda).
if(TARGET disco_tool)
  set(_emu_tool_src main train apply eval step celeba demo)
  list(TRANSFORM _emu_tool_src PREPEND ${PROJECT_SOURCE_DIR}/examples/disco/)
  list(TRANSFORM _emu_tool_src APPEND .cpp)
  add_executable(emu_disco ${_emu_tool_src})
  target_link_libraries(emu_disco PRIVATE disco_cuda_emu disco_build_flags)
  add_test(NAME emu.cli.train_cuda
           COMMAND bash ${_emu_dir}/train_cuda.sh $<TARGET_FILE:emu_disco> $<TARGET_FILE:disco_tool>
                   ${CMAKE_CURRENT_BINARY_DIR}/emu_train_cuda)
  set_tests_properties(emu.cli.train_cuda PROPERTIES LABELS emu TIMEOUT 300
                       ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")
  # `disco step --device cuda` (disco's CUDA kernels, FP32, on the emulation) against the official
  # PyTorch step in float64: tools/parity_check.py's tolerances, as cli.parity_pytorch for the CPU
  find_program(DISCO_PYTHON3 NAMES python3)
  if(DISCO_PYTHON3)
    add_test(NAME emu.cli.parity_cuda
             COMMAND ${DISCO_PYTHON3} ${PROJECT_SOURCE_DIR}/tools/parity_check.py --disco $<TARGET_FILE:emu_disco>
                     --device cuda --resolution 64 --sep 8 --code-channels 64 --base-channels 16 --batch 2)
    set_tests_properties(emu.cli.parity_cuda PROPERTIES LABELS "emu;pytorch" TIMEOUT 300 SKIP_RETURN_CODE 77
                         ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive;DISCO_CONV_AUTOTUNE=0")
  endif()
endif()
# benchmarks/ops_cuda on the emulated backend at tiny sizes (--small): the whole program path,
# its correctness checks against the CPU backend included, without a GPU. The emulation has no
# cudaRuntimeGetVersion: DISCO_OPS_CUDA_EMULATED prints the CUDA headers' version instead.
add_executable(emu_ops_cuda ${PROJECT_SOURCE_DIR}/benchmarks/ops_cuda.cpp)
target_compile_definitions(emu_ops_cuda PRIVATE DISCO_OPS_CUDA_EMULATED=1)
target_include_directories(emu_ops_cuda SYSTEM PRIVATE ${_d})
target_link_libraries(emu_ops_cuda PRIVATE disco_cuda_emu disco_build_flags)
add_test(NAME emu.bench.ops_cuda COMMAND emu_ops_cuda --small --iters 2)
set_tests_properties(emu.bench.ops_cuda PROPERTIES LABELS emu TIMEOUT 300
                     ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")
