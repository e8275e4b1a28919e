# CI_SANITIZER=address builds with AddressSanitizer + UndefinedBehaviorSanitizer,
# CI_SANITIZER=thread with ThreadSanitizer. Applied to every target of the build.
if(CI_SANITIZER STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
elseif(CI_SANITIZER STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT CI_SANITIZER STREQUAL "")
  message(FATAL_ERROR "CI_SANITIZER must be address, thread or empty, not '${CI_SANITIZER}'")
endif()
