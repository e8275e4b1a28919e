// The commands that take more than one question: show, and dispatch --wait.
#include "ctl/commands.h"

#include <algorithm>
#include <map>
#include <thread>

#include "ci/events.h"
#include "ci/replies.h"
#include "ci/validate.h"
#include "ctl/ctl.h"
#include "ctl/show.h"

namespace ci {

namespace {

// `jobs` answers at most this many; enough to find a commit among the recent ones.
constexpr uint64_t kJobsToSearch = 10000;

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  return s;
}

std::optional<JobInfo> ask_job(Session& s, JobId job, int* code) {
  auto reply = s.ask(JobRequest{job}, code);
  if (!reply) return std::nullopt;
  auto info = parse_job_info(trimmed(reply->body));
  if (!info) {
    *code = s.report.fail(1, s.peer + " answered badly: " + info.error());
    return std::nullopt;
  }
  return *info;
}

std::optional<std::vector<TestCase>> ask_cases(Session& s, JobId job, int* code) {
  auto reply = s.ask(TestsRequest{job, 0}, code);
  if (!reply) return std::nullopt;
  auto cases = parse_cases(reply->body);
  if (!cases) {
    *code = s.report.fail(1, s.peer + " answered badly: " + cases.error());
    return std::nullopt;
  }
  return *cases;
}

std::optional<JobsReply> ask_jobs(Session& s, JobsRequest request, int* code) {
  auto reply = s.ask(request, code);
  if (!reply) return std::nullopt;
  auto jobs = parse_jobs_reply(*reply);
  if (!jobs) {
    *code = s.report.fail(1, s.peer + " answered badly: " + jobs.error());
    return std::nullopt;
  }
  return *jobs;
}

// A job id, or the newest job of the commit a prefix names (of repository `repo` if
// given, "-" the default one). A number too short to be a commit prefix is a job id; a
// longer one is looked up as a commit first. A commit with jobs in several repositories
// needs `repo`: without it, it names none of them.
std::optional<JobId> resolve_job(Session& s, const std::string& what,
                                 const std::optional<std::string>& repo, int* code) {
  bool digits = !what.empty() && std::all_of(what.begin(), what.end(), ::isdigit);
  auto id = digits ? parse_u64(what, INT64_MAX) : std::nullopt;
  if (id && *id > 0 && what.size() < kMinCommitPrefix) return id;
  if (!is_commit_prefix(what)) {
    *code = s.report.fail(2, "'" + what + "': neither a job id nor a commit id (" +
                                 std::to_string(kMinCommitPrefix) + " or more hex digits)");
    return std::nullopt;
  }
  JobsRequest request{kJobsToSearch};
  if (repo) request.repo = *repo;
  auto jobs = ask_jobs(s, request, code);
  if (!jobs) return std::nullopt;
  if (!repo) {
    std::vector<std::string> repos = repos_of_commit(*jobs, what);
    if (repos.size() > 1) {
      std::string names;
      for (const std::string& name : repos) names += (names.empty() ? "" : ", ") + name;
      *code = s.report.fail(2, "'" + what + "' has jobs in several repositories (" + names +
                                   "): name one with --repo NAME ('-': the default repository)");
      return std::nullopt;
    }
  }
  auto found = job_of_commit(*jobs, what, repo);
  if (found) return *found;
  if (id && *id > 0) return id;
  *code = s.report.fail(1, found.error());
  return std::nullopt;
}

// The broken-by walk over the branch's earlier finished jobs, newest first.
std::optional<std::vector<BrokenBy>> broken_by(Session& s, const JobInfo& job,
                                               const std::vector<TestCase>& cases, int* code) {
  BrokenByWalk walk(job, cases);
  if (walk.done()) return walk.results();
  auto jobs = ask_jobs(s, JobsRequest{kJobsToSearch, job.branch, "finished"}, code);
  if (!jobs) return std::nullopt;
  size_t taken = 0;
  for (auto it = jobs->jobs.rbegin(); it != jobs->jobs.rend() && taken < kBrokenByDepth; ++it) {
    if (it->id >= job.id) continue;
    ++taken;
    auto past = ask_cases(s, it->id, code);
    if (!past) return std::nullopt;
    if (!walk.add({it->id, it->commit, std::move(*past)})) break;
  }
  std::vector<BrokenBy> found = walk.results();
  std::map<JobId, std::string> authors;
  for (BrokenBy& b : found) {
    if (b.every || b.commits_ago == 0) continue;
    if (!authors.count(b.job)) {
      auto info = ask_job(s, b.job, code);
      if (!info) return std::nullopt;
      authors[b.job] = info->commit_info.author;
    }
    b.author = authors[b.job];
  }
  return found;
}

}  // namespace

int Report::fail(int code, const std::string& reason, const std::string& hint) const {
  err << "cictl: " << reason << "\n" << hint;
  if (json) out << error_json(reason);
  return code;
}

std::optional<Reply> Session::ask(const Request& request, int* code) {
  auto reply = client.call(request);
  if (!reply && client.busy()) {
    *code = report.fail(3, peer + " is busy (too many connections); try again");
    return std::nullopt;
  }
  if (!reply) {
    *code = report.fail(1, reply.error());
    return std::nullopt;
  }
  if (reply->kind != Reply::Kind::Ok) {
    *code = report.fail(1, peer + " answered: " + (reply->kind == Reply::Kind::Err ? "ERR " : "") +
                               reply->reason());
    return std::nullopt;
  }
  return std::move(*reply);
}

int exit_code_of(TestStatus status) {
  switch (status) {
    case TestStatus::Passed:
      return 0;
    case TestStatus::Failed:
      return 1;
    case TestStatus::Error:
    case TestStatus::Timeout:
      return 2;
    case TestStatus::Cancelled:
      break;
  }
  return 3;
}

int run_show(Session& s, const std::string& what, const std::optional<std::string>& repo) {
  int code = 0;
  auto id = resolve_job(s, what, repo, &code);
  if (!id) return code;
  auto job = ask_job(s, *id, &code);
  if (!job) return code;
  if (repo && job->repo != (*repo == "-" ? "" : *repo))
    return s.report.fail(
        2, "job " + std::to_string(*id) + " is not of " +
               (*repo == "-" ? "the default repository" : "repository '" + *repo + "'") +
               " (its repository: " + (job->repo.empty() ? "-" : job->repo) + ")");
  auto cases = ask_cases(s, *id, &code);
  if (!cases) return code;
  auto broken = broken_by(s, *job, *cases, &code);
  if (!broken) return code;
  s.report.out << (s.report.json ? show_json(*job, *cases, *broken)
                                 : show_text(*job, *cases, *broken));
  return 0;
}

int wait_for_job(Session& s, JobId id) {
  using std::chrono::milliseconds;
  // A long poll that ends well within the time a call may take.
  milliseconds wait = s.io_timeout > milliseconds(4000)
                          ? std::min(s.io_timeout - milliseconds(2000), milliseconds(30000))
                          : s.io_timeout / 2;
  int code = 0;
  auto job = ask_job(s, id, &code);
  if (!job) return code;
  uint64_t from = job->seq;
  while (job->state != "finished" || !job->status) {
    auto started = std::chrono::steady_clock::now();
    auto reply = s.ask(EventsRequest{from, 1000, static_cast<uint64_t>(wait.count())}, &code);
    if (!reply) return code;
    auto events = parse_events(reply->body);
    auto last = reply->args.size() == 2 ? parse_u64(reply->args[1]) : std::nullopt;
    if (!events || !last) return s.report.fail(1, s.peer + " answered events badly");
    for (const FeedEvent& e : *events) {
      from = std::max(from, e.seq);
      bool of_job = e.kind != EventKind::RunnerJoined && e.kind != EventKind::RunnerLeft &&
                    e.kind != EventKind::JobLog && e.job.id == id;
      if (of_job && e.job.seq > job->seq) *job = e.job;
    }
    if (events->empty() && *last > from) {
      // Fell behind the feed's retention: the job as it is now, and on from the end.
      job = ask_job(s, id, &code);
      if (!job) return code;
      from = std::max(job->seq, *last);
    }
    // A feed that answers at once with nothing (a tiny --timeout) is not asked in a loop.
    if (events->empty() && std::chrono::steady_clock::now() - started < milliseconds(50))
      std::this_thread::sleep_for(milliseconds(50));
  }
  s.report.out << (s.report.json ? job_result_json(id, *job->status, job->reason)
                                 : "job " + std::to_string(id) + " " + to_string(*job->status) +
                                       (job->reason.empty() ? "" : ": " + job->reason) + "\n");
  return exit_code_of(*job->status);
}

}  // namespace ci
