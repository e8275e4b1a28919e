#include "dispatcher/result_writer.h"

#include <chrono>
#include <ctime>

#include "ci/files.h"

namespace ci {

namespace {

std::string count(int64_t n) { return n < 0 ? "unknown" : std::to_string(n); }

std::string utc_now() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Result<void> ResultWriter::prepare() const { return make_dirs(dir_); }

std::string ResultWriter::format(const Job& job, const JobOutcome& outcome,
                                 std::string_view output) {
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.3f s", outcome.duration_ms / 1000.0);
  std::string out;
  out.reserve(output.size() + 512);
  out += "commit: " + normalize_commit_id(job.commit) + "\n";
  out += "branch: " + job.branch + "\n";
  out += std::string("status: ") + to_string(outcome.status) + "\n";
  out += "tests-run: " + count(outcome.tests_run) + "\n";
  out += "tests-failed: " + count(outcome.tests_failed) + "\n";
  out += "runner: " + (outcome.runner.empty() ? std::string("none") : outcome.runner) + "\n";
  out += "job: " + std::to_string(job.id) + "\n";
  out += "attempt: " + std::to_string(outcome.attempt) + "\n";
  out += std::string("duration: ") + duration + "\n";
  out += "finished: " + utc_now() + "\n";
  if (!outcome.reason.empty()) out += "reason: " + outcome.reason + "\n";
  out += "\n";
  out.append(output);
  return out;
}

Result<void> ResultWriter::write(const Job& job, const JobOutcome& outcome,
                                 std::string_view output) const {
  // The commit id was validated as hex when the job was created, the repository's name
  // as a name that is no commit id: safe file names.
  if (!job.repo.empty())
    if (auto made = make_dirs(dir_ + "/" + job.repo); !made) return made;
  return write_file_atomic(path_for(job.commit, job.repo), format(job, outcome, output), flush_);
}

}  // namespace ci
