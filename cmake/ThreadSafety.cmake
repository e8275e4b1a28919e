# CI_THREAD_SAFETY=ON checks the lock annotations of ci/thread_annotations.h with
# clang's thread-safety analysis, as errors: a member read without the mutex that
# guards it, a function called without a lock it REQUIRES or holding one it EXCLUDES.
# It applies to the project's own targets (through ci_warnings). Other compilers have
# no such analysis: the option is refused there rather than silently doing nothing.
# scripts/test.sh builds the libraries and daemons this way, in build/thread-safety.
option(CI_THREAD_SAFETY "Check lock annotations with clang's -Wthread-safety, as errors" OFF)
if(CI_THREAD_SAFETY)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "CI_THREAD_SAFETY needs clang (-DCMAKE_CXX_COMPILER=clang++), "
                        "not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  # -Wthread-safety-beta is left out: it is clean on this code but found nothing the
  # stable checks miss, and its rules change from one clang release to the next, which
  # would fail CI on a compiler upgrade rather than on a lock error.
  # -Wthread-safety-precise is left out: the dispatcher's parts share one mutex through
  # a reference to the same GuardedScheduler, and clang cannot tell that
  # `committer_.state_.mutex` and `state_.mutex` name one mutex. A call made holding
  # no such lock at all is still an error (-Wthread-safety-analysis).
  target_compile_options(ci_warnings INTERFACE -Wthread-safety -Werror=thread-safety
                                               -Wno-thread-safety-precise)
endif()
