# The `disco` command-line tool and the embedding example.
add_executable(disco_tool
  ${CMAKE_CURRENT_LIST_DIR}/disco/main.cpp
  ${CMAKE_CURRENT_LIST_DIR}/disco/train.cpp
  ${CMAKE_CURRENT_LIST_DIR}/disco/apply.cpp
  ${CMAKE_CURRENT_LIST_DIR}/disco/eval.cpp
  ${CMAKE_CURRENT_LIST_DIR}/disco/step.cpp
  ${CMAKE_CURRENT_LIST_DIR}/disco/celeba.cpp
  ${CMAKE_CURRENT_LIST_DIR}/disco/demo.cpp)
set_target_properties(disco_tool PROPERTIES OUTPUT_NAME disco)
target_link_libraries(disco_tool PRIVATE disco::disco disco_build_flags)
if(TARGET disco_cuda)
  # `disco train --device cuda`: disco::cuda also defines DISCO_WITH_CUDA
  target_link_libraries(disco_tool PRIVATE disco::cuda)
endif()
install(TARGETS disco_tool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

add_executable(embed_minimal ${CMAKE_CURRENT_LIST_DIR}/embed_minimal.cpp)
target_link_libraries(embed_minimal PRIVATE disco::disco disco_build_flags)
if(DISCO_BUILD_TESTS)
  # the embedding example must keep building and running
  add_test(NAME example.embed_minimal COMMAND embed_minimal)
  set_tests_properties(example.embed_minimal PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive" TIMEOUT 120)
endif()
