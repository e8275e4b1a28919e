// The commands of cictl that take more than one question to the dispatcher: show, log,
// and dispatch --wait. ctl.cpp parses the command line and hands them a session.
#pragma once

#include <chrono>
#include <optional>
#include <ostream>
#include <string>

#include "ci/net.h"
#include "ci/protocol.h"

namespace ci {

// Where a failure goes: a line on stderr, and with --json also {"error": ...} on stdout,
// so that a script reading stdout always gets one object.
struct Report {
  std::ostream& out;
  std::ostream& err;
  bool json = false;

  int fail(int code, const std::string& reason, const std::string& hint = {}) const;
};

// One peer asked over one connection; every failure reported once, with its exit code.
struct Session {
  LineClient& client;
  const Report& report;
  std::string peer;                      // "the dispatcher", "the observer"
  std::chrono::milliseconds io_timeout;  // of one call

  // The OK reply, or nothing with *code set to the exit code of the failure reported.
  std::optional<Reply> ask(const Request& request, int* code);
};

// The exit code of a finished job waited for: 0 passed, 1 failed, 2 error or timeout,
// 3 cancelled.
int exit_code_of(TestStatus status);

// `repo`: the repository a commit's job is looked for in ("-": the default one); needed
// when the commit has jobs in several.
int run_show(Session& session, const std::string& job_or_commit,
             const std::optional<std::string>& repo = std::nullopt);
// Prints the log of an attempt (0: the latest) raw on stdout; with `follow`, until the
// attempt has ended.
int run_log(Session& session, JobId job, uint32_t attempt, bool follow);
// Waits for a job to finish, following the event feed, and prints its result.
int wait_for_job(Session& session, JobId job);

}  // namespace ci
