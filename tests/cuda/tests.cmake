# CUDA tests: one Catch2 binary; each tests/cuda/test_*.cpp becomes a ctest entry labelled
# `gpu`. Without a CUDA device the binary prints "SKIP: no CUDA device" and returns 77,
# which ctest reports as skipped. Plain C++ (g++): the tests only use disco::cuda's host API.
if(NOT TARGET disco_cuda)
  return()
endif()
file(GLOB DISCO_CUDA_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.cpp)
add_executable(disco_cuda_tests ${CMAKE_CURRENT_LIST_DIR}/main.cpp ${DISCO_CUDA_TEST_SOURCES})
target_include_directories(disco_cuda_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(disco_cuda_tests PRIVATE disco::cuda disco_build_flags Catch2::Catch2)
set(_disco_cuda_test_env "")
if(DISCO_CUDNN_LIBRARY_DIR)
  # cuDNN 9 loads its sub-libraries (libcudnn_cnn, ...) with dlopen: make them findable
  set(_disco_cuda_test_env "LD_LIBRARY_PATH=${DISCO_CUDNN_LIBRARY_DIR}:$ENV{LD_LIBRARY_PATH}")
endif()
foreach(src ${DISCO_CUDA_TEST_SOURCES})
  get_filename_component(stem ${src} NAME_WE)
  add_test(NAME cuda.${stem} COMMAND disco_cuda_tests "[#${stem}]" --filenames-as-tags)
  set_tests_properties(cuda.${stem} PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900)
  if(_disco_cuda_test_env)
    set_tests_properties(cuda.${stem} PROPERTIES ENVIRONMENT "${_disco_cuda_test_env}")
  endif()
endforeach()
