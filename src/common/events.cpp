#include "ci/events.h"

#include <nlohmann/json.hpp>

#include "ci/validate.h"

namespace ci {

using json = nlohmann::json;

namespace {

constexpr size_t kMaxAuthor = 256;
constexpr size_t kMaxSubject = 1024;
constexpr size_t kMaxReason = 1024;

Error bad(std::string reason) { return Error{std::move(reason)}; }

// Field readers: a missing field keeps the default; a field of the wrong type is an
// error, reported by name.
struct Reader {
  const json& object;
  std::string error;

  const json* find(const char* key) {
    auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
  }
  void text(const char* key, std::string* out, size_t max) {
    const json* v = find(key);
    if (!v) return;
    if (!v->is_string()) return fail(key);
    *out = bound_case_text(v->get_ref<const std::string&>(), max);
  }
  template <typename T>
  void number(const char* key, T* out) {
    const json* v = find(key);
    if (!v) return;
    if (!v->is_number_integer()) return fail(key);
    if constexpr (std::is_unsigned_v<T>) {
      if (v->is_number_unsigned() || v->get<int64_t>() >= 0) {
        *out = v->get<T>();
        return;
      }
      return fail(key);
    } else {
      *out = v->get<T>();
    }
  }
  void fail(const char* key) {
    if (error.empty()) error = std::string("field '") + key + "' has the wrong type";
  }
};

json commit_info_json(const CommitInfo& info) {
  json j = json::object();
  if (!info.author.empty()) j["author"] = info.author;
  if (!info.email.empty()) j["email"] = info.email;
  if (!info.subject.empty()) j["subject"] = info.subject;
  if (info.time != 0) j["time"] = info.time;
  return j;
}

std::string read_commit_info(const json& j, CommitInfo* info) {
  if (!j.is_object()) return "commit info must be a JSON object";
  Reader r{j, {}};
  r.text("author", &info->author, kMaxAuthor);
  r.text("email", &info->email, kMaxAuthor);
  r.text("subject", &info->subject, kMaxSubject);
  r.number("time", &info->time);
  return r.error;
}

json job_json(const JobInfo& job) {
  json j = {{"id", job.id},
            {"commit", job.commit},
            {"branch", job.branch},
            {"state", job.state},
            {"attempt", job.attempt},
            {"runner", job.runner},
            {"tests_run", job.tests_run},
            {"tests_failed", job.tests_failed},
            {"duration_ms", job.duration_ms},
            {"queued_ms", job.queued_ms},
            {"started_ms", job.started_ms},
            {"finished_ms", job.finished_ms},
            {"seq", job.seq}};
  j["status"] = job.status ? json(to_string(*job.status)) : json(nullptr);
  if (!job.commit_info.empty()) j["commit_info"] = commit_info_json(job.commit_info);
  if (!job.reason.empty()) j["reason"] = job.reason;
  if (!job.repo.empty()) j["repo"] = job.repo;
  if (!job.required.empty()) j["requires"] = job.required;
  if (!job.waiting.empty()) j["waiting"] = job.waiting;
  return j;
}

std::string read_job(const json& j, JobInfo* job) {
  if (!j.is_object()) return "job must be a JSON object";
  Reader r{j, {}};
  r.number("id", &job->id);
  r.text("commit", &job->commit, 64);
  r.text("branch", &job->branch, 256);
  r.text("state", &job->state, 32);
  r.number("attempt", &job->attempt);
  r.text("runner", &job->runner, 300);
  r.number("tests_run", &job->tests_run);
  r.number("tests_failed", &job->tests_failed);
  r.number("duration_ms", &job->duration_ms);
  r.number("queued_ms", &job->queued_ms);
  r.number("started_ms", &job->started_ms);
  r.number("finished_ms", &job->finished_ms);
  r.number("seq", &job->seq);
  r.text("reason", &job->reason, kMaxReason);
  r.text("repo", &job->repo, 64);
  r.text("waiting", &job->waiting, kMaxReason);
  if (!r.error.empty()) return r.error;
  if (!job->repo.empty() && !check_repo_name(job->repo).empty())
    return "job repo is not a repository name";
  if (const json* labels = r.find("requires")) {
    if (!labels->is_array() || labels->size() > kMaxLabels) return "job requires is not a list";
    for (const json& l : *labels) {
      if (!l.is_string() || !check_label(l.get_ref<const std::string&>()).empty())
        return "job requires holds something that is not a label";
      job->required.push_back(l.get<std::string>());
    }
  }
  if (job->id == 0) return "job id must be a positive number";
  if (!job->commit.empty() && !check_commit_id(job->commit).empty())
    return "job commit is not a commit id";
  if (const json* s = r.find("status")) {
    TestStatus status;
    if (!s->is_string() || !parse_test_status(s->get_ref<const std::string&>(), &status))
      return "job status is not a test status";
    job->status = status;
  }
  if (const json* info = r.find("commit_info"))
    if (std::string why = read_commit_info(*info, &job->commit_info); !why.empty()) return why;
  return {};
}

// Parses without exceptions: nullopt for text that is not JSON.
std::optional<json> parse_json(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

}  // namespace

// A branch or an author need not be UTF-8 (git allows any bytes but a few): invalid
// sequences are replaced rather than thrown about, as serialize_event does.
std::string serialize_commit_info(const CommitInfo& info) {
  return commit_info_json(info).dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<CommitInfo> parse_commit_info(std::string_view body) {
  auto j = parse_json(body);
  if (!j) return bad("commit info is not JSON");
  CommitInfo info;
  if (std::string why = read_commit_info(*j, &info); !why.empty()) return bad(why);
  return info;
}

const char* to_string(EventKind kind) {
  switch (kind) {
    case EventKind::JobQueued:
      return "job.queued";
    case EventKind::JobStarted:
      return "job.started";
    case EventKind::JobLog:
      return "job.log";
    case EventKind::JobFinished:
      return "job.finished";
    case EventKind::JobCancelled:
      return "job.cancelled";
    case EventKind::RunnerJoined:
      return "runner.joined";
    case EventKind::RunnerLeft:
      return "runner.left";
  }
  return "job.queued";
}

bool parse_event_kind(std::string_view text, EventKind* out) {
  for (EventKind k :
       {EventKind::JobQueued, EventKind::JobStarted, EventKind::JobLog, EventKind::JobFinished,
        EventKind::JobCancelled, EventKind::RunnerJoined, EventKind::RunnerLeft}) {
    if (text == to_string(k)) {
      *out = k;
      return true;
    }
  }
  return false;
}

std::string serialize_job_info(const JobInfo& job) {
  return job_json(job).dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<JobInfo> parse_job_info(std::string_view text) {
  auto j = parse_json(text);
  if (!j) return bad("job is not JSON");
  JobInfo job;
  if (std::string why = read_job(*j, &job); !why.empty()) return bad(why);
  return job;
}

std::string serialize_event(const FeedEvent& e) {
  json j = {{"seq", e.seq}, {"ms", e.time_ms}, {"kind", to_string(e.kind)}};
  switch (e.kind) {
    case EventKind::RunnerJoined:
    case EventKind::RunnerLeft:
      j["runner"] = e.runner;
      break;
    case EventKind::JobLog:
      j["job"] = {{"id", e.job.id}};
      j["attempt"] = e.log_attempt;
      j["size"] = e.log_size;
      break;
    case EventKind::JobFinished:
      j["job"] = job_json(e.job);
      if (!e.cases.empty()) {
        // The cases' own JSON (ci/test_cases.h), one object a line, as an array here.
        json cases = json::array();
        const std::string lines = serialize_cases(e.cases);
        for (size_t at = 0; at < lines.size();) {
          size_t end = lines.find('\n', at);
          if (end == std::string::npos) end = lines.size();
          if (auto c = parse_json(std::string_view(lines).substr(at, end - at)))
            cases.push_back(*c);
          at = end + 1;
        }
        j["cases"] = std::move(cases);
      }
      break;
    default:
      j["job"] = job_json(e.job);
      break;
  }
  // Invalid UTF-8 cannot reach here (every text is bounded on the way in), but a dump
  // must never throw: replace rather than fail.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<FeedEvent> parse_event(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  auto j = parse_json(line);
  if (!j || !j->is_object()) return bad("event is not a JSON object");
  FeedEvent e;
  Reader r{*j, {}};
  r.number("seq", &e.seq);
  r.number("ms", &e.time_ms);
  std::string kind;
  r.text("kind", &kind, 32);
  if (!r.error.empty()) return bad(r.error);
  if (e.seq == 0) return bad("event seq must be a positive number");
  if (!parse_event_kind(kind, &e.kind)) return bad("unknown event kind");
  if (e.kind == EventKind::RunnerJoined || e.kind == EventKind::RunnerLeft) {
    r.text("runner", &e.runner, 300);
    if (e.runner.empty()) return bad("runner event without a runner");
    return r.error.empty() ? Result<FeedEvent>(e) : bad(r.error);
  }
  const json* job = r.find("job");
  if (!job) return bad("job event without a job");
  if (std::string why = read_job(*job, &e.job); !why.empty()) return bad(why);
  if (e.kind == EventKind::JobLog) {
    r.number("attempt", &e.log_attempt);
    r.number("size", &e.log_size);
  }
  if (const json* cases = r.find("cases")) {
    if (!cases->is_array() || cases->size() > TestCaseLimits::kMaxCases)
      return bad("event cases must be an array of at most " +
                 std::to_string(TestCaseLimits::kMaxCases));
    std::string lines;
    for (const json& c : *cases)
      lines += c.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    auto parsed = parse_cases(lines);
    if (!parsed) return bad("event cases: " + parsed.error());
    e.cases = std::move(*parsed);
  }
  if (!r.error.empty()) return bad(r.error);
  return e;
}

Result<std::vector<FeedEvent>> parse_events(std::string_view body) {
  std::vector<FeedEvent> events;
  while (!body.empty()) {
    size_t end = body.find('\n');
    std::string_view line = body.substr(0, end);
    body.remove_prefix(end == std::string_view::npos ? body.size() : end + 1);
    if (line.empty()) continue;
    auto e = parse_event(line);
    if (!e) return bad("event " + std::to_string(events.size() + 1) + ": " + e.error());
    events.push_back(std::move(*e));
  }
  return events;
}

}  // namespace ci
