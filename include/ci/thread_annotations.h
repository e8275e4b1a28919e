// Clang's thread-safety analysis (-Wthread-safety), as macros that vanish for other
// compilers. Every member a mutex protects says which (GUARDED_BY), and every function
// that must hold or must not hold a lock says so (REQUIRES, EXCLUDES): the clang build
// in scripts/test.sh checks them with -Werror.
#pragma once

#if defined(__clang__)
#define CI_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define CI_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) CI_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY CI_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) CI_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) CI_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) CI_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) CI_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) CI_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) CI_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) CI_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) CI_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) CI_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) CI_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) CI_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS CI_THREAD_ANNOTATION(no_thread_safety_analysis)
