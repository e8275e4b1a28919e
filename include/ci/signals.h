// Graceful stop for the daemons: SIGINT and SIGTERM are blocked in every thread (call
// block_stop_signals before starting any) and taken by the main thread.
#pragma once

namespace ci {

void block_stop_signals();
// Waits for SIGINT or SIGTERM and returns it.
int wait_for_stop_signal();
const char* signal_name(int sig);

// Raises the soft limit on open files to the hard limit: a dispatcher keeps a
// connection to each of its runners, and a thousand runners need more than 1,024.
void raise_open_file_limit();

}  // namespace ci
