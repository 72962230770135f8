# Install this build into a scratch prefix, then configure, build and run
# examples/consumer against it with find_package(disco).
add_test(NAME install.consumer
  COMMAND ${CMAKE_COMMAND}
    -DBUILD_DIR=${PROJECT_BINARY_DIR}
    -DSOURCE_DIR=${PROJECT_SOURCE_DIR}/examples/consumer
    -DWORK_DIR=${PROJECT_BINARY_DIR}/consumer-test
    -DGENERATOR=${CMAKE_GENERATOR}
    -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer_test.cmake)
