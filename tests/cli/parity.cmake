# Parity with the official PyTorch code (python3-torch needed; the tests report "skipped",
# exit code 77, without it). Included from tests/CMakeLists.txt.
#
#   cli.parity_pytorch               one `disco step` of a small model (64 px, sep 8, code 64,
#                                    base 16, batch 2) against the official step in PyTorch
#                                    (tools/parity_check.py; the default 128 px model is a manual
#                                    run: python3 tools/parity_check.py --disco <build>/examples/disco)
#   cli.convert_checkpoint_selftest  tools/convert_official_checkpoint.py --self-test
#   cli.ncu_summary_selftest         tools/ncu_summary.py --self-test (no torch needed)
#   cli.gpu_report_selftest          tools/gpu_report.py --self-test (no torch needed)
#   cli.gpu_check_dry_run            tools/gpu_check.sh --dry-run: its options, step order, budget,
#                                    summary and report, without a GPU (tests/cli/gpu_check_dry_run.sh)
#
# The scripts re-run themselves under another python3 on the machine that has torch when
# the first python3 on PATH lacks it (e.g. a pyenv shim in front of Debian's python3-torch).
find_program(DISCO_PYTHON3 NAMES python3)
set(_disco_tools_dir ${CMAKE_CURRENT_LIST_DIR}/../../tools)
if(DISCO_PYTHON3)
  if(TARGET disco_tool)
    add_test(NAME cli.parity_pytorch
             COMMAND ${DISCO_PYTHON3} ${_disco_tools_dir}/parity_check.py --disco $<TARGET_FILE:disco_tool>
                     --resolution 64 --sep 8 --code-channels 64 --base-channels 16 --batch 2)
    set_tests_properties(cli.parity_pytorch PROPERTIES
                         SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 300 LABELS "cli;pytorch")
  endif()
  add_test(NAME cli.convert_checkpoint_selftest
           COMMAND ${DISCO_PYTHON3} ${_disco_tools_dir}/convert_official_checkpoint.py --self-test)
  set_tests_properties(cli.convert_checkpoint_selftest PROPERTIES
                       SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 300 LABELS "cli;pytorch")
  # gpu_check's Nsight Compute summary: its CSV parsing on a built-in sample report
  add_test(NAME cli.ncu_summary_selftest COMMAND ${DISCO_PYTHON3} ${_disco_tools_dir}/ncu_summary.py --self-test)
  set_tests_properties(cli.ncu_summary_selftest PROPERTIES TIMEOUT 60 LABELS cli)
  # gpu_check's report for docs/benchmarks.md: its parsers on sample output folders (full, partial, garbled)
  add_test(NAME cli.gpu_report_selftest COMMAND ${DISCO_PYTHON3} ${_disco_tools_dir}/gpu_report.py --self-test)
  set_tests_properties(cli.gpu_report_selftest PROPERTIES TIMEOUT 60 LABELS cli)
  # gpu_check.sh itself (bash; it calls gpu_report.py for the report)
  add_test(NAME cli.gpu_check_dry_run COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/gpu_check_dry_run.sh)
  set_tests_properties(cli.gpu_check_dry_run PROPERTIES TIMEOUT 120 LABELS cli)
else()
  message(STATUS "disco: no python3 found; cli.parity_pytorch, cli.convert_checkpoint_selftest, "
                 "cli.ncu_summary_selftest, cli.gpu_report_selftest and cli.gpu_check_dry_run not added")
endif()
