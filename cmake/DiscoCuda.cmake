# The CUDA backend: static library disco_cuda (disco::cuda) built from src/cuda/*.cu|*.cpp.
# Included by the top-level CMakeLists.txt after the disco target is defined.
#
#   DISCO_CUDA=AUTO  build it when nvcc is found (PATH, CUDACXX or /usr/local/cuda/bin/nvcc)
#   DISCO_CUDA=ON    build it or stop with an error
#   DISCO_CUDA=OFF   do nothing
#   CMAKE_CUDA_ARCHITECTURES  default 90 (H100 / H200)
#   DISCO_CUDNN_ROOT          extra place to look for cuDNN (include/ and lib/)
#
# cuDNN is searched in DISCO_CUDNN_ROOT / $CUDNN_ROOT, the CUDA toolkit and PyTorch's pip
# package (python3 -c "import nvidia.cudnn"). Without it, disco_cuda still builds and
# ConvAlgo::Cudnn throws. Sets DISCO_HAS_CUDA (ON/OFF) for disco-config.cmake.

set(DISCO_HAS_CUDA OFF)
string(TOUPPER "${DISCO_CUDA}" _disco_cuda_mode)
if(_disco_cuda_mode STREQUAL "OFF" OR _disco_cuda_mode STREQUAL "FALSE" OR _disco_cuda_mode STREQUAL "0")
  message(STATUS "disco: CUDA backend off (DISCO_CUDA=${DISCO_CUDA})")
  return()
endif()

include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS "/usr/local/cuda/bin/nvcc")
  set(CMAKE_CUDA_COMPILER "/usr/local/cuda/bin/nvcc" CACHE FILEPATH "CUDA compiler")
endif()
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(_disco_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR
      "disco: DISCO_CUDA=ON but no CUDA compiler was found. Put nvcc on PATH, set CUDACXX or "
      "-DCMAKE_CUDA_COMPILER=/path/to/nvcc, or configure with -DDISCO_CUDA=OFF (or AUTO).")
  endif()
  message(STATUS "disco: no nvcc found; building without the CUDA backend (DISCO_CUDA=AUTO)")
  return()
endif()

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES 90 CACHE STRING "CUDA architectures to build for (90 = H100/H200)")
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)

# ---- cuDNN -----------------------------------------------------------------------------------
set(_disco_cudnn_roots "")
if(DISCO_CUDNN_ROOT)
  list(APPEND _disco_cudnn_roots "${DISCO_CUDNN_ROOT}")
endif()
if(DEFINED ENV{CUDNN_ROOT})
  list(APPEND _disco_cudnn_roots "$ENV{CUDNN_ROOT}")
endif()
list(APPEND _disco_cudnn_roots "${CUDAToolkit_LIBRARY_ROOT}")
get_filename_component(_disco_cuda_tk_root "${CUDAToolkit_BIN_DIR}" DIRECTORY)
list(APPEND _disco_cudnn_roots "${_disco_cuda_tk_root}")
find_program(_disco_python3 NAMES python3 python)
if(_disco_python3)
  execute_process(
    COMMAND "${_disco_python3}" -c "import nvidia.cudnn as m; print(list(m.__path__)[0])"
    OUTPUT_VARIABLE _disco_pip_cudnn OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
    RESULT_VARIABLE _disco_pip_rv TIMEOUT 60)
  if(_disco_pip_rv EQUAL 0 AND EXISTS "${_disco_pip_cudnn}")
    list(APPEND _disco_cudnn_roots "${_disco_pip_cudnn}")
  endif()
  # other wheel layouts (e.g. nvidia/cu13/...): the folder above any cudnn.h in the nvidia namespace
  execute_process(
    COMMAND "${_disco_python3}" -c
      "import nvidia,glob,os;print(';'.join(sorted({os.path.dirname(os.path.dirname(h)) for p in nvidia.__path__ for h in glob.glob(os.path.join(p,'**','cudnn.h'),recursive=True)})))"
    OUTPUT_VARIABLE _disco_pip_cudnn2 OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
    RESULT_VARIABLE _disco_pip_rv2 TIMEOUT 60)
  if(_disco_pip_rv2 EQUAL 0 AND _disco_pip_cudnn2)
    list(APPEND _disco_cudnn_roots ${_disco_pip_cudnn2})
  endif()
endif()
list(REMOVE_DUPLICATES _disco_cudnn_roots)

if(NOT DISCO_CUDNN_INCLUDE_DIR OR NOT DISCO_CUDNN_LIBRARY)
  unset(DISCO_CUDNN_INCLUDE_DIR CACHE)
  unset(DISCO_CUDNN_LIBRARY CACHE)
  foreach(_root IN LISTS _disco_cudnn_roots)
    # header and library from the same root, so their versions agree
    find_path(_disco_cudnn_inc cudnn.h PATHS "${_root}" "${_root}/targets/x86_64-linux"
              PATH_SUFFIXES include NO_DEFAULT_PATH)
    find_library(_disco_cudnn_lib NAMES cudnn libcudnn.so.9 libcudnn.so.8
                 PATHS "${_root}" "${_root}/targets/x86_64-linux"
                 PATH_SUFFIXES lib64 lib lib/x64 NO_DEFAULT_PATH)
    if(_disco_cudnn_inc AND _disco_cudnn_lib)
      set(DISCO_CUDNN_INCLUDE_DIR "${_disco_cudnn_inc}" CACHE PATH "cuDNN include directory")
      set(DISCO_CUDNN_LIBRARY "${_disco_cudnn_lib}" CACHE FILEPATH "cuDNN library")
      unset(_disco_cudnn_inc CACHE)
      unset(_disco_cudnn_lib CACHE)
      break()
    endif()
    unset(_disco_cudnn_inc CACHE)
    unset(_disco_cudnn_lib CACHE)
  endforeach()
endif()

# ---- the library ----------------------------------------------------------------------------
file(GLOB _disco_cuda_sources CONFIGURE_DEPENDS
  "${PROJECT_SOURCE_DIR}/src/cuda/*.cu" "${PROJECT_SOURCE_DIR}/src/cuda/*.cpp")
# src/cuda/conv_wgmma.cu holds the wgmma kernels (kernels/conv2d_wgmma.cuh): wgmma is an
# architecture-specific feature, so it is compiled for sm_90a alone (an object library whose
# objects go into disco_cuda), whatever CMAKE_CUDA_ARCHITECTURES says; the launcher offers the
# kernels only on compute capability 9.0. nvcc before 12.0 knows no sm_90a: then the file is
# compiled with the others and the kernels are never offered.
set(_disco_wgmma_source "${PROJECT_SOURCE_DIR}/src/cuda/conv_wgmma.cu")
set(DISCO_HAS_WGMMA OFF)
if(CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
  list(REMOVE_ITEM _disco_cuda_sources "${_disco_wgmma_source}")
  add_library(disco_cuda_wgmma OBJECT "${_disco_wgmma_source}")
  set_target_properties(disco_cuda_wgmma PROPERTIES
    CUDA_ARCHITECTURES OFF
    CUDA_RUNTIME_LIBRARY Shared
    POSITION_INDEPENDENT_CODE ON
    CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
  target_include_directories(disco_cuda_wgmma PRIVATE "${PROJECT_SOURCE_DIR}" "${PROJECT_SOURCE_DIR}/src/cuda")
  target_link_libraries(disco_cuda_wgmma PRIVATE disco CUDA::cudart)
  target_compile_definitions(disco_cuda_wgmma PRIVATE DISCO_WGMMA_SM90A=1)
  target_compile_options(disco_cuda_wgmma PRIVATE --generate-code=arch=compute_90a,code=sm_90a -lineinfo)
  set(DISCO_HAS_WGMMA ON)
endif()
add_library(disco_cuda STATIC ${_disco_cuda_sources})
if(TARGET disco_cuda_wgmma)
  target_sources(disco_cuda PRIVATE $<TARGET_OBJECTS:disco_cuda_wgmma>)
endif()
add_library(disco::cuda ALIAS disco_cuda)
set_target_properties(disco_cuda PROPERTIES
  EXPORT_NAME cuda
  CUDA_RUNTIME_LIBRARY Shared   # one CUDA runtime in the process: CUDA::cudart, shared
  POSITION_INDEPENDENT_CODE ON
  CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON
  CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
target_include_directories(disco_cuda PRIVATE "${PROJECT_SOURCE_DIR}" "${PROJECT_SOURCE_DIR}/src/cuda")
target_link_libraries(disco_cuda PUBLIC disco CUDA::cudart PRIVATE CUDA::cublas)
target_compile_definitions(disco_cuda INTERFACE DISCO_WITH_CUDA=1)
target_compile_options(disco_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>
  $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo>)

if(DISCO_CUDNN_INCLUDE_DIR AND DISCO_CUDNN_LIBRARY)
  get_filename_component(DISCO_CUDNN_LIBRARY_DIR "${DISCO_CUDNN_LIBRARY}" DIRECTORY)
  set(DISCO_CUDNN_LIBRARY_DIR "${DISCO_CUDNN_LIBRARY_DIR}" CACHE INTERNAL "")
  target_include_directories(disco_cuda PRIVATE "${DISCO_CUDNN_INCLUDE_DIR}")
  target_link_libraries(disco_cuda PRIVATE "${DISCO_CUDNN_LIBRARY}")
  target_compile_definitions(disco_cuda PRIVATE DISCO_HAVE_CUDNN=1)
  set(DISCO_HAS_CUDNN ON)
  message(STATUS "disco: cuDNN: ${DISCO_CUDNN_LIBRARY} (headers ${DISCO_CUDNN_INCLUDE_DIR})")
else()
  set(DISCO_HAS_CUDNN OFF)
  set(DISCO_CUDNN_LIBRARY_DIR "" CACHE INTERNAL "")
  message(WARNING "disco: cuDNN not found (looked in: ${_disco_cudnn_roots}); building disco::cuda WITHOUT "
                  "the cuDNN path: ConvAlgo::Cudnn throws, cuDNN comparisons in tests and benchmarks are "
                  "skipped. Set DISCO_CUDNN_ROOT to a folder with include/cudnn.h and lib/libcudnn.so*.")
endif()

install(TARGETS disco_cuda EXPORT discoCudaTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT discoCudaTargets NAMESPACE disco:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/disco)

set(DISCO_HAS_CUDA ON)
message(STATUS "disco: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures "
               "${CMAKE_CUDA_ARCHITECTURES}, cuDNN ${DISCO_HAS_CUDNN}, wgmma kernels (sm_90a) ${DISCO_HAS_WGMMA})")
