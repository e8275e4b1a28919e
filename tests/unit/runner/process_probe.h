// Whether the processes a test command started are still alive, read from /proc.
#pragma once

#include <sys/types.h>

namespace ci::runner::test_probe {

// A zombie counts as gone: it has ended, and reaping it is up to whoever inherits it.
bool process_gone(pid_t pid);
// True when no live process is left in the process group.
bool group_gone(pid_t group);
// The process group of a live process; 0 when it is gone or a zombie.
pid_t process_group(pid_t pid);

}  // namespace ci::runner::test_probe
