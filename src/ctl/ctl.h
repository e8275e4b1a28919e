// cictl: the command line for people and scripts, over the same protocol.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "ci/replies.h"

namespace ci {

// Runs cictl with its arguments (without the program name), printing to out and err.
// Returns the process exit code: 0 success, 1 failure, 2 bad usage, 3 the server is
// busy (at its connection limit; nothing was done, and trying again later may work).
// dispatch --wait ends with the job's result: 0 passed, 1 failed, 2 error or timeout,
// 3 cancelled (the --help footer lists them).
// With --json, stdout gets one JSON object whatever happens: the answer, {"job":N},
// {"ok":true}, or {"error":"<reason>"} with the same exit code as without.
int run_ctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Lines of space-separated columns, padded so the columns line up.
std::string align_columns(const std::string& text);
// Rows of cells (a cell may hold spaces), padded so the columns line up; each line
// starts with `indent`.
std::string align_rows(const std::vector<std::vector<std::string>>& rows,
                       const std::string& indent = "");
// "2026-12-03 01:24:17Z" from unix ms; "-" for 0 (not yet).
std::string format_time_ms(int64_t unix_ms);
// "850ms", "12.3s", "4m05s".
std::string format_duration_ms(uint64_t ms);

// The tables people read (output.cpp).
std::string status_table(const StatusReply& status);
std::string runners_table(const RunnersReply& runners);
// The jobs table: the wire columns aligned, a waiting reason one cell at the end.
std::string jobs_table(const JobsReply& jobs);
std::string repos_table(const ReposReply& repos);

// --json: one object and a newline each. Unknowns ("-" in the tables) are null.
std::string status_json(const StatusReply& status);
std::string runners_json(const RunnersReply& runners);
std::string jobs_json(const JobsReply& jobs);
std::string repos_json(const ReposReply& repos);
std::string job_json(JobId job);
// dispatch --wait: {"job":N,"status":"failed","reason":...} (reason null when none).
std::string job_result_json(JobId job, TestStatus status, const std::string& reason);
std::string ok_json();
std::string error_json(const std::string& reason);

// `log`: the line that stands for bytes the log does not hold (log_follow.cpp).
std::string omitted_line(uint64_t bytes);

}  // namespace ci
