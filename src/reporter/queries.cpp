#include "reporter/queries.h"

#include <algorithm>
#include <set>

#include "ci/validate.h"
#include "reporter/json.h"
#include "reporter/schema.h"

namespace ci::reporter {

namespace {

constexpr char kJobColumns[] =
    "id, seq, commit_id, branch, author, email, subject, commit_time, state, status, attempt, "
    "runner, tests_run, tests_failed, duration_ms, queued_ms, started_ms, finished_ms, reason, "
    "log_size, repo, required, waiting";

JobInfo read_job(const sql::Statement& s, uint64_t* log_size) {
  JobInfo job;
  job.id = static_cast<JobId>(s.column_int(0));
  job.seq = static_cast<uint64_t>(s.column_int(1));
  job.commit = s.column_text(2);
  job.branch = s.column_text(3);
  job.commit_info = {s.column_text(4), s.column_text(5), s.column_text(6), s.column_int(7)};
  job.state = s.column_text(8);
  TestStatus status;
  if (!s.column_is_null(9) && parse_test_status(s.column_text(9), &status)) job.status = status;
  job.attempt = static_cast<uint32_t>(s.column_int(10));
  job.runner = s.column_text(11);
  job.tests_run = s.column_int(12);
  job.tests_failed = s.column_int(13);
  job.duration_ms = static_cast<uint64_t>(s.column_int(14));
  job.queued_ms = s.column_int(15);
  job.started_ms = s.column_int(16);
  job.finished_ms = s.column_int(17);
  job.reason = s.column_text(18);
  if (log_size) *log_size = static_cast<uint64_t>(s.column_int(19));
  job.repo = s.column_text(20);
  if (auto labels = parse_label_list(s.column_text(21))) job.required = std::move(*labels);
  job.waiting = s.column_text(22);
  return job;
}

nlohmann::json row_json(const sql::Statement& s) {
  uint64_t log_size = 0;
  JobInfo job = read_job(s, &log_size);
  return job_json(job, log_size);
}

int64_t to_i64(uint64_t v) { return static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX)); }

// Runs `s` to its end, handing each row to `row`.
template <typename F>
Result<void> each_row(sql::Statement& s, F&& row) {
  for (;;) {
    auto more = s.step();
    if (!more) return Error{more.error()};
    if (!*more) return {};
    row(s);
  }
}

}  // namespace

struct Queries::Impl {
  sql::Database db;

  Result<sql::Statement> prepare(const std::string& text) { return db.prepare(text); }

  // The test's run of failures on the branch ending at `job`: the earliest failing
  // job of it, and how many failing jobs came after that one.
  Result<nlohmann::json> broken_by(const JobInfo& job, const std::string& name) {
    auto s = prepare(
        "SELECT c.job, c.outcome, j.commit_id, j.author, j.subject FROM cases c "
        "JOIN jobs j ON j.id = c.job AND j.attempt = c.attempt "
        "WHERE c.repo = ?4 AND c.branch = ?1 AND c.name = ?2 AND c.job <= ?3 "
        "ORDER BY c.job DESC");
    if (!s) return Error{s.error()};
    s->bind(1, job.branch).bind(2, name).bind(3, to_i64(job.id)).bind(4, job.repo);
    nlohmann::json earliest = nullptr;
    int64_t failing = 0;
    for (;;) {
      auto more = s->step();
      if (!more) return Error{more.error()};
      if (!*more) break;
      CaseOutcome outcome;
      if (!parse_case_outcome(s->column_text(1), &outcome) || !is_failure(outcome)) break;
      earliest = {{"job", s->column_int(0)},
                  {"commit", s->column_text(2)},
                  {"author", s->column_text(3)},
                  {"subject", s->column_text(4)}};
      ++failing;
    }
    if (!earliest.is_null()) earliest["commits_ago"] = failing - 1;
    return earliest;
  }

  // Names of the tests that both passed and failed on `commit` of `repo`.
  Result<std::set<std::string>> flaky(const std::string& repo, const std::string& commit) {
    auto s = prepare(
        "SELECT c.name FROM cases c JOIN jobs j ON j.id = c.job WHERE j.commit_id = ?1 "
        "AND j.repo = ?2 GROUP BY c.name HAVING MAX(c.outcome = 'passed') AND "
        "MAX(c.outcome IN ('failed', 'error'))");
    if (!s) return Error{s.error()};
    s->bind(1, commit).bind(2, repo);
    std::set<std::string> names;
    auto r = each_row(*s, [&](sql::Statement& row) { names.insert(row.column_text(0)); });
    if (!r) return Error{r.error()};
    return names;
  }
};

Queries::Queries(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Queries::~Queries() = default;

Result<std::unique_ptr<Queries>> Queries::open(const std::string& path) {
  auto db = open_read_model(path);
  if (!db) return Error{db.error()};
  return std::unique_ptr<Queries>(new Queries(std::make_unique<Impl>(Impl{std::move(*db)})));
}

Result<nlohmann::json> Queries::jobs(const JobFilter& filter) {
  std::string text = std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id < ?1";
  if (!filter.branch.empty()) text += " AND branch = ?2";
  if (!filter.status.empty()) text += " AND (status = ?3 OR state = ?3)";
  if (filter.repo) text += " AND repo = ?5";
  text += " ORDER BY id DESC LIMIT ?4";
  auto s = impl_->prepare(text);
  if (!s) return Error{s.error()};
  s->bind(1, filter.before ? to_i64(filter.before) : INT64_MAX);
  if (!filter.branch.empty()) s->bind(2, filter.branch);
  if (!filter.status.empty()) s->bind(3, filter.status);
  s->bind(4, to_i64(filter.limit));
  if (filter.repo) s->bind(5, *filter.repo);
  nlohmann::json list = nlohmann::json::array();
  auto r = each_row(*s, [&](sql::Statement& row) { list.push_back(row_json(row)); });
  if (!r) return Error{r.error()};
  nlohmann::json next = nullptr;
  if (list.size() == filter.limit && !list.empty()) next = list.back()["id"];
  return nlohmann::json{{"jobs", std::move(list)}, {"next_before", next}};
}

Result<std::optional<JobInfo>> Queries::job(JobId id, uint64_t* log_size) {
  auto s = impl_->prepare(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?1");
  if (!s) return Error{s.error()};
  s->bind(1, to_i64(id));
  auto row = s->step();
  if (!row) return Error{row.error()};
  if (!*row) return std::optional<JobInfo>();
  return std::optional<JobInfo>(read_job(*s, log_size));
}

Result<nlohmann::json> Queries::tests(const JobInfo& job, uint32_t attempt) {
  auto s = impl_->prepare(
      "SELECT name, outcome, ms, message FROM cases WHERE job = ?1 AND attempt = ?2 "
      "ORDER BY name");
  if (!s) return Error{s.error()};
  s->bind(1, to_i64(job.id)).bind(2, int64_t{attempt});
  std::vector<TestCase> cases;
  auto r = each_row(*s, [&](sql::Statement& row) {
    TestCase c;
    c.name = row.column_text(0);
    (void)parse_case_outcome(row.column_text(1), &c.outcome);
    c.duration_ms = static_cast<uint64_t>(row.column_int(2));
    c.message = row.column_text(3);
    cases.push_back(std::move(c));
  });
  if (!r) return Error{r.error()};
  std::stable_partition(cases.begin(), cases.end(),
                        [](const TestCase& c) { return is_failure(c.outcome); });
  auto flaky = impl_->flaky(job.repo, job.commit);
  if (!flaky) return Error{flaky.error()};
  nlohmann::json list = nlohmann::json::array();
  bool latest = attempt == job.attempt;
  for (const auto& c : cases) {
    nlohmann::json item = case_json(c);
    item["flaky"] = flaky->count(c.name) > 0;
    // Broken-by follows the branch's history of latest attempts: only for those.
    if (is_failure(c.outcome) && latest) {
      auto by = impl_->broken_by(job, c.name);
      if (!by) return Error{by.error()};
      item["broken_by"] = std::move(*by);
    }
    list.push_back(std::move(item));
  }
  return nlohmann::json{{"job", job.id}, {"attempt", attempt}, {"cases", std::move(list)}};
}

Result<nlohmann::json> Queries::commit(const std::string& sha,
                                       const std::optional<std::string>& repo) {
  auto s = impl_->prepare(std::string("SELECT ") + kJobColumns +
                          " FROM jobs WHERE (commit_id = ?1 OR (length(?1) >= 4 AND "
                          "substr(commit_id, 1, length(?1)) = ?1)) AND (?2 IS NULL OR repo = ?2) "
                          "ORDER BY id DESC LIMIT 200");
  if (!s) return Error{s.error()};
  s->bind(1, sha);
  if (repo)
    s->bind(2, *repo);
  else
    s->bind_null(2);
  nlohmann::json list = nlohmann::json::array();
  auto r = each_row(*s, [&](sql::Statement& row) { list.push_back(row_json(row)); });
  if (!r) return Error{r.error()};
  return nlohmann::json{{"commit", sha}, {"jobs", std::move(list)}};
}

Result<nlohmann::json> Queries::branches(const std::optional<std::string>& repo) {
  // Every (repository, branch) with a job, its newest job, and its state since when, if
  // finished.
  auto s = impl_->prepare(
      std::string("SELECT ") + kJobColumns +
      ", (SELECT state FROM branches b WHERE b.repo = j.repo AND b.name = j.branch), "
      "(SELECT since_job FROM branches b WHERE b.repo = j.repo AND b.name = j.branch) "
      "FROM jobs j WHERE id IN (SELECT MAX(id) FROM jobs WHERE ?1 IS NULL OR repo = ?1 "
      "GROUP BY repo, branch) ORDER BY repo, branch");
  if (!s) return Error{s.error()};
  if (repo)
    s->bind(1, *repo);
  else
    s->bind_null(1);
  nlohmann::json list = nlohmann::json::array();
  std::vector<std::pair<size_t, JobId>> since;
  auto r = each_row(*s, [&](sql::Statement& row) {
    nlohmann::json latest = row_json(row);
    std::string state = row.column_is_null(23) ? "unknown" : row.column_text(23);
    if (!row.column_is_null(24)) since.emplace_back(list.size(), row.column_int(24));
    list.push_back({{"repo", latest["repo"]},
                    {"name", latest["branch"]},
                    {"state", state},
                    {"since", nullptr},
                    {"latest", std::move(latest)}});
  });
  if (!r) return Error{r.error()};
  for (auto [index, id] : since) {
    auto job = this->job(id);
    if (!job) return Error{job.error()};
    if (*job)
      list[index]["since"] = {
          {"job", id}, {"commit", (*job)->commit}, {"author", (*job)->commit_info.author}};
  }
  return list;
}

Result<nlohmann::json> Queries::repos() {
  auto s = impl_->prepare(
      "SELECT repo, COUNT(*), SUM(state = 'queued'), SUM(state = 'queued' AND waiting != ''), "
      "SUM(state IN ('offered', 'running', 'finishing')), SUM(state = 'finished'), "
      "SUM(status = 'passed'), SUM(status IN ('failed', 'error', 'timeout')), "
      "SUM(status = 'cancelled'), MAX(id) FROM jobs GROUP BY repo ORDER BY repo");
  if (!s) return Error{s.error()};
  nlohmann::json list = nlohmann::json::array();
  auto r = each_row(*s, [&](sql::Statement& row) {
    list.push_back({{"name", row.column_text(0)},
                    {"jobs", row.column_int(1)},
                    {"queued", row.column_int(2)},
                    {"waiting", row.column_int(3)},
                    {"running", row.column_int(4)},
                    {"finished", row.column_int(5)},
                    {"passed", row.column_int(6)},
                    {"failed", row.column_int(7)},
                    {"cancelled", row.column_int(8)},
                    {"latest_job", row.column_int(9)},
                    {"branches", nlohmann::json::array()}});
  });
  if (!r) return Error{r.error()};
  auto branches = this->branches(std::nullopt);
  if (!branches) return Error{branches.error()};
  // Both lists are ordered by repository.
  size_t at = 0;
  for (auto& branch : *branches) {
    while (at < list.size() && list[at]["name"] != branch["repo"]) ++at;
    if (at == list.size()) break;
    branch.erase("repo");
    list[at]["branches"].push_back(std::move(branch));
  }
  return list;
}

Result<nlohmann::json> Queries::runners() {
  auto s = impl_->prepare(
      "SELECT address, state, job, joined_ms, left_ms FROM runners ORDER BY address");
  if (!s) return Error{s.error()};
  nlohmann::json list = nlohmann::json::array();
  auto r = each_row(*s, [&](sql::Statement& row) {
    nlohmann::json job = nullptr;
    if (row.column_int(2) > 0) job = row.column_int(2);
    list.push_back({{"address", row.column_text(0)},
                    {"state", row.column_text(1)},
                    {"job", job},
                    {"joined_ms", row.column_int(3)},
                    {"left_ms", row.column_int(4)}});
  });
  if (!r) return Error{r.error()};
  return list;
}

Result<nlohmann::json> Queries::history(const std::string& repo, const std::string& branch,
                                        const std::string& name, uint64_t limit) {
  auto s = impl_->prepare(
      "SELECT c.job, j.commit_id, c.outcome, c.ms FROM cases c "
      "JOIN jobs j ON j.id = c.job AND j.attempt = c.attempt "
      "WHERE c.repo = ?4 AND c.branch = ?1 AND c.name = ?2 ORDER BY c.job DESC LIMIT ?3");
  if (!s) return Error{s.error()};
  s->bind(1, branch).bind(2, name).bind(3, to_i64(limit)).bind(4, repo);
  nlohmann::json list = nlohmann::json::array();
  auto r = each_row(*s, [&](sql::Statement& row) {
    list.push_back({{"job", row.column_int(0)},
                    {"commit", row.column_text(1)},
                    {"outcome", row.column_text(2)},
                    {"ms", row.column_int(3)}});
  });
  if (!r) return Error{r.error()};
  return nlohmann::json{
      {"repo", repo}, {"branch", branch}, {"name", name}, {"runs", std::move(list)}};
}

Result<std::string> Queries::branch_state(const std::string& repo, const std::string& branch) {
  auto s = impl_->prepare("SELECT state FROM branches WHERE repo = ?2 AND name = ?1");
  if (!s) return Error{s.error()};
  s->bind(1, branch).bind(2, repo);
  auto row = s->step();
  if (!row) return Error{row.error()};
  return *row ? s->column_text(0) : std::string("unknown");
}

Result<Counts> Queries::counts() {
  Counts counts;
  struct Item {
    const char* text;
    std::map<std::string, int64_t>* into;
  };
  const Item items[] = {
      {"SELECT state, COUNT(*) FROM jobs GROUP BY state", &counts.jobs_by_state},
      {"SELECT status, COUNT(*) FROM jobs WHERE status IS NOT NULL GROUP BY status",
       &counts.jobs_by_status},
      {"SELECT state, COUNT(*) FROM runners GROUP BY state", &counts.runners_by_state},
      {"SELECT repo, COUNT(*) FROM jobs WHERE state = 'queued' GROUP BY repo",
       &counts.queued_by_repo},
      {"SELECT repo, COUNT(*) FROM jobs WHERE state = 'queued' AND waiting != '' GROUP BY repo",
       &counts.waiting_by_repo},
  };
  for (const auto& item : items) {
    auto s = impl_->prepare(item.text);
    if (!s) return Error{s.error()};
    auto r = each_row(
        *s, [&](sql::Statement& row) { (*item.into)[row.column_text(0)] = row.column_int(1); });
    if (!r) return Error{r.error()};
  }
  auto s = impl_->prepare("SELECT value FROM meta WHERE key = 'last_seq'");
  if (!s) return Error{s.error()};
  auto row = s->step();
  if (!row) return Error{row.error()};
  if (*row) counts.last_seq = static_cast<uint64_t>(s->column_int(0));
  return counts;
}

Result<std::unique_ptr<QueryPool::Lease>> QueryPool::lease() {
  std::unique_ptr<Queries> q;
  {
    MutexLock lock(mutex_);
    if (!free_.empty()) {
      q = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (!q) {
    auto opened = Queries::open(path_);
    if (!opened) return Error{opened.error()};
    q = std::move(*opened);
  }
  return std::make_unique<Lease>(*this, std::move(q));
}

void QueryPool::give_back(std::unique_ptr<Queries> q) {
  MutexLock lock(mutex_);
  if (free_.size() < 8) free_.push_back(std::move(q));
}

}  // namespace ci::reporter
