# CPU convolution benchmark (fprop / dgrad / wgrad at the model's layer shapes).
add_executable(disco_bench_ops_cpu ${CMAKE_CURRENT_LIST_DIR}/ops_cpu.cpp)
target_link_libraries(disco_bench_ops_cpu PRIVATE disco::disco disco_build_flags)
if(DISCO_BUILD_TESTS)
  # smoke run (< 2 s) so the benchmark keeps building and running
  add_test(NAME bench.ops_cpu_quick COMMAND disco_bench_ops_cpu --quick)
  set_tests_properties(bench.ops_cpu_quick PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive" TIMEOUT 60)
endif()
