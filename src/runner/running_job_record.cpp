#include "runner/running_job_record.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <vector>

#include "ci/files.h"
#include "ci/validate.h"

namespace ci::runner {
namespace {

struct Record {
  pid_t group = 0;
  RuntestRequest job;
};

std::optional<Record> parse_record(const std::string& text) {
  std::istringstream in(text);
  std::string group, job, attempt, commit;
  if (!(in >> group >> job >> attempt >> commit)) return std::nullopt;
  auto g = parse_u64(group, INT32_MAX);
  auto j = parse_u64(job, INT64_MAX);
  auto a = parse_u64(attempt, UINT32_MAX);
  if (!g || *g < 2 || !j || !a || !check_commit_id(commit).empty()) return std::nullopt;
  Record r;
  r.group = static_cast<pid_t>(*g);
  r.job.job = *j;
  r.job.attempt = static_cast<uint32_t>(*a);
  r.job.commit = commit;
  return r;
}

// The process group of a live process, from /proc/<pid>/stat; nullopt for a zombie or
// a process that is gone.
std::optional<pid_t> live_process_group(const std::string& pid) {
  auto stat = read_file("/proc/" + pid + "/stat");
  if (!stat) return std::nullopt;
  size_t close = stat->rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat->substr(close + 1));
  char state = 0;
  pid_t parent = 0, group = 0;
  if (!(fields >> state >> parent >> group) || state == 'Z' || state == 'X') return std::nullopt;
  return group;
}

bool runs_job(pid_t pid, const RuntestRequest& job) {
  auto environ_text = read_file("/proc/" + std::to_string(pid) + "/environ");
  if (!environ_text) return false;
  std::vector<std::string> wanted{
      "CI_JOB_ID=" + std::to_string(job.job),
      "CI_ATTEMPT=" + std::to_string(job.attempt),
      "CI_COMMIT=" + job.commit,
  };
  size_t matched = 0;
  std::string_view rest(*environ_text);
  while (!rest.empty()) {
    size_t end = rest.find('\0');
    std::string_view entry = rest.substr(0, end);
    if (std::find(wanted.begin(), wanted.end(), entry) != wanted.end()) ++matched;
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return matched == wanted.size();
}

}  // namespace

std::vector<pid_t> processes_in_group(pid_t group) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    auto pid = parse_u64(name, INT32_MAX);
    if (!pid) continue;
    if (live_process_group(name) == group) out.push_back(static_cast<pid_t>(*pid));
  }
  return out;
}

RunningJobRecord::RunningJobRecord(std::string path) : path_(std::move(path)) {}

Result<void> RunningJobRecord::write(pid_t group, const RuntestRequest& job) const {
  // Not flushed: it is read after a crash of the runner; a power loss ends the test's
  // processes anyway. It is written as each test starts, on the path of every job.
  return write_file_atomic(path_,
                           std::to_string(group) + " " + std::to_string(job.job) + " " +
                               std::to_string(job.attempt) + " " + job.commit + "\n",
                           /*flush=*/false);
}

void RunningJobRecord::clear() const { ::unlink(path_.c_str()); }

std::optional<LeftoverJob> RunningJobRecord::kill_leftovers() const {
  auto text = read_file(path_);
  if (!text) return std::nullopt;
  auto record = parse_record(*text);
  std::optional<LeftoverJob> out;
  if (record) {
    std::vector<pid_t> members = processes_in_group(record->group);
    size_t of_job = static_cast<size_t>(std::count_if(
        members.begin(), members.end(), [&](pid_t pid) { return runs_job(pid, record->job); }));
    if (of_job > 0) {
      ::kill(-record->group, SIGKILL);
      out = LeftoverJob{record->group, record->job.job, record->job.attempt, of_job};
    }
  }
  clear();
  return out;
}

}  // namespace ci::runner
