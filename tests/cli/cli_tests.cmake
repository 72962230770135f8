# Command-line tests of the `disco` tool (included from tests/CMakeLists.txt).
#
# Each case of tests/cli/cli_cases.sh is one ctest entry cli.<case>. The failure cases
# (cli.bad_*) check that bad input ends with a non-zero status and exactly one clear
# "disco: error: ..." line on stderr naming the file / option / expected value; the
# others check that train / resume / transfer / remove / eval / split-celeba / step work
# and leave no half-written files. cli.setup (a ctest fixture) trains a 1-step model of a
# small config and writes a PNG data set that the other cases share. Cases that need the
# real photos in ${PROJECT_SOURCE_DIR}/../shared/data/facemask, or python3 (cli.step_runs),
# report "skipped" (exit 77) without them. Small configs and one OpenMP thread (the cases test
# the tool, not the kernels): every case takes seconds.
if(TARGET disco_tool)
  find_program(DISCO_BASH NAMES bash)
  if(NOT DISCO_BASH)
    message(STATUS "disco: no bash found; the cli.* tests are not added")
    return()
  endif()
  set(_disco_cli_script ${CMAKE_CURRENT_LIST_DIR}/cli_cases.sh)
  set(_disco_cli_scratch ${CMAKE_CURRENT_BINARY_DIR}/cli-scratch)
  set(_disco_cli_shared ${PROJECT_SOURCE_DIR}/../shared)
  set(_disco_cli_cases
      bad_missing_folder bad_empty_domain bad_corrupt_image bad_truncated_image bad_truncated_jpeg
      bad_resolution bad_resume_config bad_step_config bad_truncated_checkpoint bad_model_file
      bad_output_folder bad_options bad_celeba_attribute bad_celeba_malformed
      celeba_split_train transfer_real remove_real resume resume_after_failure sigint eval_synthetic
      step_runs)
  add_test(NAME cli.setup
           COMMAND ${DISCO_BASH} ${_disco_cli_script} $<TARGET_FILE:disco_tool> setup ${_disco_cli_scratch}
                   ${_disco_cli_shared})
  set_tests_properties(cli.setup PROPERTIES FIXTURES_SETUP disco_cli ENVIRONMENT "OMP_NUM_THREADS=1"
                       TIMEOUT 300 LABELS "cli")
  foreach(_case ${_disco_cli_cases})
    add_test(NAME cli.${_case}
             COMMAND ${DISCO_BASH} ${_disco_cli_script} $<TARGET_FILE:disco_tool> ${_case} ${_disco_cli_scratch}
                     ${_disco_cli_shared})
    set_tests_properties(cli.${_case} PROPERTIES FIXTURES_REQUIRED disco_cli SKIP_RETURN_CODE 77
                         ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300 LABELS "cli")
  endforeach()
endif()
