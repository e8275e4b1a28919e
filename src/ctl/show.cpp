// `cictl show`: finding a job by its commit, the broken-by walk, and the job printed.
#include "ctl/show.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "ci/validate.h"
#include "ctl/ctl.h"

namespace ci {

namespace {

using Json = nlohmann::ordered_json;

bool is_failure(CaseOutcome o) { return o == CaseOutcome::Failed || o == CaseOutcome::Error; }

const TestCase* find_case(const std::vector<TestCase>& cases, const std::string& name) {
  for (const TestCase& c : cases)
    if (c.name == name) return &c;
  return nullptr;
}

std::string short_commit(const std::string& commit) { return commit.substr(0, 7); }

std::string first_line(const std::string& text, size_t max) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() > max) line = line.substr(0, max - 3) + "...";
  return line;
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string to_lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), ::tolower);
  return text;
}

std::string repo_text(const std::string& repo) {
  return repo.empty() ? "the default repository" : "repository '" + repo + "'";
}

}  // namespace

bool is_commit_prefix(const std::string& text) {
  return text.size() >= kMinCommitPrefix && text.size() <= 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return std::isxdigit(c) != 0; });
}

Result<JobId> job_of_commit(const JobsReply& jobs, const std::string& prefix,
                            const std::optional<std::string>& repo) {
  std::string lower = to_lower(prefix);
  std::optional<std::string> wanted = repo;
  if (wanted && *wanted == "-") wanted = "";
  std::map<std::string, JobId> newest;  // commit -> its newest job
  for (const JobRow& row : jobs.jobs)
    if (row.commit.rfind(lower, 0) == 0 && (!wanted || row.repo == *wanted))
      newest[row.commit] = std::max(newest[row.commit], row.id);
  if (newest.empty())
    return Error{"no job of a commit starting with '" + prefix + "'" +
                 (wanted ? " in " + repo_text(*wanted) : std::string())};
  if (newest.size() > 1) {
    std::string names;
    for (const auto& [commit, job] : newest) names += " " + short_commit(commit);
    return Error{"'" + prefix + "' fits several commits:" + names};
  }
  return newest.begin()->second;
}

std::vector<std::string> repos_of_commit(const JobsReply& jobs, const std::string& prefix) {
  std::string lower = to_lower(prefix);
  std::set<std::string> commits, repos;
  for (const JobRow& row : jobs.jobs) {
    if (row.commit.rfind(lower, 0) != 0) continue;
    commits.insert(row.commit);
    repos.insert(or_dash(row.repo));
  }
  if (commits.size() != 1) return {};
  return {repos.begin(), repos.end()};
}

BrokenByWalk::BrokenByWalk(const JobInfo& job, const std::vector<TestCase>& cases) {
  for (const TestCase& c : cases)
    if (is_failure(c.outcome)) {
      Walk w;
      w.found = {c.name, job.id, job.commit, job.commit_info.author, 0, false, 1};
      walks_.push_back(std::move(w));
    }
}

bool BrokenByWalk::add(const PastRun& run) {
  ++steps_;
  if (run.cases.empty()) return !done();  // says nothing about any test
  for (Walk& w : walks_) {
    if (w.ended) continue;
    const TestCase* c = find_case(run.cases, w.found.test);
    if (!c || !is_failure(c->outcome)) {
      w.ended = true;
      continue;
    }
    w.found.job = run.job;
    w.found.commit = run.commit;
    w.found.author.clear();
    w.found.commits_ago = steps_;
  }
  for (Walk& w : walks_)
    if (!w.ended) w.found.looked = steps_ + 1;
  return !done();
}

bool BrokenByWalk::done() const {
  return std::all_of(walks_.begin(), walks_.end(), [](const Walk& w) { return w.ended; });
}

std::vector<BrokenBy> BrokenByWalk::results() const {
  std::vector<BrokenBy> out;
  for (const Walk& w : walks_) {
    out.push_back(w.found);
    out.back().every = !w.ended;
    if (!w.ended) out.back().looked = steps_ + 1;
  }
  return out;
}

std::vector<TestCase> cases_for_display(std::vector<TestCase> cases) {
  auto rank = [](CaseOutcome o) {
    switch (o) {
      case CaseOutcome::Failed:
        return 0;
      case CaseOutcome::Error:
        return 1;
      case CaseOutcome::Skipped:
        return 2;
      case CaseOutcome::Passed:
        break;
    }
    return 3;
  };
  std::stable_sort(cases.begin(), cases.end(), [&](const TestCase& a, const TestCase& b) {
    return std::pair(rank(a.outcome), a.name) < std::pair(rank(b.outcome), b.name);
  });
  return cases;
}

std::string broken_by_text(const BrokenBy& b) {
  if (b.every)
    return "failing in every one of the last " + std::to_string(b.looked) + " jobs of the branch";
  if (b.commits_ago == 0) return "broken here (it did not fail before this commit)";
  std::string by = b.author.empty() ? "" : " by " + b.author;
  return "failing since " + short_commit(b.commit) + by + ", " + std::to_string(b.commits_ago) +
         (b.commits_ago == 1 ? " commit ago" : " commits ago") + " (job " + std::to_string(b.job) +
         ")";
}

std::string show_text(const JobInfo& job, const std::vector<TestCase>& cases,
                      const std::vector<BrokenBy>& broken) {
  const CommitInfo& ci = job.commit_info;
  std::string state =
      job.state + (job.status ? std::string(" (") + to_string(*job.status) + ")" : std::string());
  std::vector<std::vector<std::string>> head = {
      {"job", std::to_string(job.id)},
      {"commit", job.commit},
      {"branch", job.branch},
      {"repo", or_dash(job.repo)},
      {"author",
       ci.author.empty() ? "-" : ci.author + (ci.email.empty() ? "" : " <" + ci.email + ">")},
      {"subject", or_dash(ci.subject)},
      {"state", state},
      {"attempt", job.attempt == 0 ? "-" : std::to_string(job.attempt)},
      {"runner", or_dash(job.runner)},
      {"duration", job.finished_ms == 0 ? "-" : format_duration_ms(job.duration_ms)},
      {"queued", format_time_ms(job.queued_ms)},
      {"started", format_time_ms(job.started_ms)},
      {"finished", format_time_ms(job.finished_ms)}};
  if (!job.required.empty()) head.push_back({"requires", join_labels(job.required)});
  if (!job.waiting.empty()) head.push_back({"waiting", job.waiting});
  if (!job.reason.empty()) head.push_back({"reason", job.reason});
  std::string out = align_rows(head);
  if (cases.empty()) return out + "\nno test cases reported\n";
  std::vector<std::vector<std::string>> table = {{"outcome", "test", "duration", "message"}};
  for (const TestCase& c : cases_for_display(cases))
    table.push_back({to_string(c.outcome), c.name, format_duration_ms(c.duration_ms),
                     first_line(c.message, 120)});
  out += "\n" + align_rows(table);
  if (broken.empty()) return out;
  std::vector<std::vector<std::string>> since;
  for (const BrokenBy& b : broken) since.push_back({b.test, broken_by_text(b)});
  return out + "\nbroken by\n" + align_rows(since, "  ");
}

std::string show_json(const JobInfo& job, const std::vector<TestCase>& cases,
                      const std::vector<BrokenBy>& broken) {
  Json j;
  j["job"] = Json::parse(serialize_job_info(job));
  Json list = Json::array();
  for (const TestCase& c : cases_for_display(cases))
    list.push_back({{"name", c.name},
                    {"outcome", to_string(c.outcome)},
                    {"ms", c.duration_ms},
                    {"message", c.message}});
  j["tests"] = std::move(list);
  Json since = Json::array();
  for (const BrokenBy& b : broken) {
    Json s;
    s["test"] = b.test;
    s["every"] = b.every;
    s["looked"] = b.looked;
    s["job"] = b.every ? Json(nullptr) : Json(b.job);
    s["commit"] = b.every ? Json(nullptr) : Json(b.commit);
    s["author"] = b.every || b.author.empty() ? Json(nullptr) : Json(b.author);
    s["commits_ago"] = b.every ? Json(nullptr) : Json(b.commits_ago);
    since.push_back(std::move(s));
  }
  j["broken_by"] = std::move(since);
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace ci
