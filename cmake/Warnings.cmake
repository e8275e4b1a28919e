# Warnings for the project's own targets (third-party headers are SYSTEM includes).
add_library(ci_warnings INTERFACE)
target_compile_options(ci_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow)
if(CI_WERROR)
  target_compile_options(ci_warnings INTERFACE -Werror)
endif()
