# Whether the C compiler has libFuzzer (clang with libclang-rt-19-dev):
# then SC_FUZZ_ENGINE is ON and everything is built with the coverage
# instrumentation libFuzzer needs. Included by the top-level CMakeLists
# before any target, so the libraries are instrumented too.
set(SC_FUZZ AUTO CACHE STRING "libFuzzer fuzz targets: AUTO (when the compiler has libFuzzer), ON or OFF")
set(SC_FUZZ_ENGINE OFF)
if(NOT SC_FUZZ STREQUAL "OFF")
  include(CheckCSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
  check_c_source_compiles("#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }" SC_HAVE_LIBFUZZER)
  unset(CMAKE_REQUIRED_FLAGS)
  if(SC_HAVE_LIBFUZZER)
    set(SC_FUZZ_ENGINE ON)
    add_compile_options(-fsanitize=fuzzer-no-link)
  elseif(SC_FUZZ STREQUAL "ON")
    message(FATAL_ERROR "SC_FUZZ=ON but ${CMAKE_C_COMPILER} has no libFuzzer (use clang-19 with libclang-rt-19-dev)")
  endif()
endif()
