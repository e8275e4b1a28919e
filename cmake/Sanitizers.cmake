# CI_SANITIZER=address builds with AddressSanitizer + UndefinedBehaviorSanitizer,
# CI_SANITIZER=thread with ThreadSanitizer. Applied to every target of the build.
# The presets asan and tsan (CMakePresets.json) set them, with warnings as errors.
if(CI_SANITIZER STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
elseif(CI_SANITIZER STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  # g++ 12 warns (-Wtsan) wherever Asio's headers use std::atomic_thread_fence, which
  # ThreadSanitizer does not model: a warning about the tool, not about the code, so it
  # stays a warning when CI_WERROR turns the others into errors.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-error=tsan)
  endif()
elseif(NOT CI_SANITIZER STREQUAL "")
  message(FATAL_ERROR "CI_SANITIZER must be address, thread or empty, not '${CI_SANITIZER}'")
endif()
