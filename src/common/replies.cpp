#include "ci/replies.h"

#include <array>
#include <string_view>

#include "ci/framing.h"
#include "ci/validate.h"

namespace ci {

namespace {

constexpr const char* kRunnersHeader =
    "address state job attempt jobs-done last-seen-ms slots busy labels repos";
constexpr const char* kJobsHeader =
    "id commit branch state status attempt runner tests-run tests-failed duration-ms repo "
    "waiting";
constexpr const char* kReposHeader = "name url order jobs-queued jobs-running jobs-finished";

constexpr std::array<std::string_view, 5> kRunnerStates = {"idle", "offered", "running", "busy",
                                                           "unreachable"};
constexpr std::array<std::string_view, 5> kJobStates = {"queued", "offered", "running", "finishing",
                                                        "finished"};

std::string id_word(uint64_t n) { return n == 0 ? "-" : std::to_string(n); }
std::string count_word(int64_t n) { return n < 0 ? "-" : std::to_string(n); }

// Checks what every query reply shares, and cuts its body into lines. A body is whole
// lines, each ended by '\n'; a hostile one is bounded by the frame limit and kMaxReplyRows.
Result<std::vector<std::string_view>> body_lines(const char* what, const Reply& reply,
                                                 size_t max_lines) {
  if (reply.kind == Reply::Kind::Err)
    return make_error(std::string(what) + " reply: ERR " + reply.reason());
  if (reply.kind != Reply::Kind::Ok || !reply.has_body || !reply.args.empty())
    return make_error(std::string(what) + " reply: expected OK with a body");
  if (reply.body.size() > FrameLimits{}.max_body)
    return make_error(std::string(what) + " reply: body larger than a frame may be");
  std::string_view body = reply.body;
  if (!body.empty() && body.back() != '\n')
    return make_error(std::string(what) + " reply: the body does not end with a newline");
  std::vector<std::string_view> lines;
  while (!body.empty()) {
    if (lines.size() == max_lines)
      return make_error(std::string(what) + " reply: more than " + std::to_string(max_lines) +
                        " lines");
    size_t end = body.find('\n');
    lines.push_back(body.substr(0, end));
    body.remove_prefix(end + 1);
  }
  return lines;
}

// The words of a table line, split on single spaces: an empty word is an error.
std::optional<std::vector<std::string_view>> split_words(std::string_view line, size_t want) {
  std::vector<std::string_view> words;
  while (words.size() <= want) {
    size_t end = line.find(' ');
    std::string_view word = line.substr(0, end);
    if (word.empty()) return std::nullopt;
    words.push_back(word);
    if (end == std::string_view::npos) break;
    line.remove_prefix(end + 1);
  }
  if (words.size() != want) return std::nullopt;
  return words;
}

Error line_error(const char* what, size_t line, const std::string& why) {
  return make_error(std::string(what) + " reply, line " + std::to_string(line) + ": " + why);
}

std::string quoted(std::string_view word) { return "'" + escape_for_log(word, 60) + "'"; }

// "-" (0) or a positive number up to max.
std::optional<uint64_t> parse_optional_id(std::string_view word, uint64_t max) {
  if (word == "-") return 0;
  auto n = parse_u64(word, max);
  if (!n || *n == 0) return std::nullopt;
  return n;
}

bool has_control_bytes(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

struct StatusKey {
  const char* name;
  uint64_t StatusReply::*field;
};
constexpr std::array<StatusKey, 14> kStatusKeys = {{
    {"runners", &StatusReply::runners},
    {"runners-idle", &StatusReply::runners_idle},
    {"runners-busy", &StatusReply::runners_busy},
    {"runners-unreachable", &StatusReply::runners_unreachable},
    {"jobs-queued", &StatusReply::jobs_queued},
    {"jobs-running", &StatusReply::jobs_running},
    {"jobs-finished", &StatusReply::jobs_finished},
    {"jobs-passed", &StatusReply::jobs_passed},
    {"jobs-failed", &StatusReply::jobs_failed},
    {"jobs-error", &StatusReply::jobs_error},
    {"jobs-timeout", &StatusReply::jobs_timeout},
    {"jobs-cancelled", &StatusReply::jobs_cancelled},
    {"jobs-waiting", &StatusReply::jobs_waiting},
    {"repos", &StatusReply::repos},
}};
constexpr std::string_view kResultsDirKey = "results-dir";

}  // namespace

bool is_runner_state(std::string_view word) {
  for (auto s : kRunnerStates)
    if (word == s) return true;
  return false;
}

bool is_job_state(std::string_view word) {
  for (auto s : kJobStates)
    if (word == s) return true;
  return false;
}

Reply to_reply(const StatusReply& s) {
  std::string body;
  for (const auto& key : kStatusKeys)
    body += std::string(key.name) + " " + std::to_string(s.*key.field) + "\n";
  body += std::string(kResultsDirKey) + " " + s.results_dir + "\n";
  return Reply::ok_with_body(std::move(body));
}

namespace {

constexpr size_t kMaxUnknownStatusKeys = 64;

// A key as the dispatcher writes them: lower-case letters, digits and '-'.
bool is_status_key(std::string_view key) {
  if (key.empty() || key.size() > 64) return false;
  for (char c : key)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

}  // namespace

Result<StatusReply> parse_status_reply(const Reply& reply) {
  constexpr const char* what = "status";
  // Room for counters a newer dispatcher may add: an unknown key is skipped, so an
  // older cictl keeps working against it.
  auto lines = body_lines(what, reply, kStatusKeys.size() + 1 + kMaxUnknownStatusKeys);
  if (!lines) return Error{lines.error()};
  StatusReply out;
  std::array<bool, kStatusKeys.size() + 1> seen{};
  for (size_t i = 0; i < lines->size(); ++i) {
    std::string_view line = (*lines)[i];
    size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0)
      return line_error(what, i + 1, "expected '<key> <value>'");
    std::string_view key = line.substr(0, space), value = line.substr(space + 1);
    size_t index = 0;
    while (index < kStatusKeys.size() && key != kStatusKeys[index].name) ++index;
    if (index == kStatusKeys.size() && key != kResultsDirKey) {
      if (!is_status_key(key)) return line_error(what, i + 1, "malformed key " + quoted(key));
      continue;
    }
    if (seen[index]) return line_error(what, i + 1, "key " + quoted(key) + " given twice");
    seen[index] = true;
    if (index == kStatusKeys.size()) {
      if (has_control_bytes(value))
        return line_error(what, i + 1, "results-dir holds control characters");
      out.results_dir = std::string(value);
      continue;
    }
    auto n = parse_u64(value);
    if (!n) return line_error(what, i + 1, quoted(key) + " is not a number: " + quoted(value));
    out.*kStatusKeys[index].field = *n;
  }
  for (size_t index = 0; index < seen.size(); ++index)
    if (!seen[index])
      return make_error(
          std::string(what) + " reply: no '" +
          std::string(index < kStatusKeys.size() ? kStatusKeys[index].name : kResultsDirKey) +
          "' line");
  return out;
}

Reply to_reply(const RunnersReply& r) {
  std::string body = std::string(kRunnersHeader) + "\n";
  for (const RunnerRow& row : r.runners) {
    body += row.address + " " + row.state + " " + id_word(row.job) + " " + id_word(row.attempt) +
            " " + std::to_string(row.jobs_done) + " " + std::to_string(row.last_seen_ms) + " " +
            std::to_string(row.slots) + " " + std::to_string(row.busy) + " " +
            (row.labels.empty() ? "-" : join_labels(row.labels)) + " " + to_string(row.repos) +
            "\n";
  }
  return Reply::ok_with_body(std::move(body));
}

Result<RunnersReply> parse_runners_reply(const Reply& reply) {
  constexpr const char* what = "runners";
  auto lines = body_lines(what, reply, kMaxReplyRows + 1);
  if (!lines) return Error{lines.error()};
  if (lines->empty() || (*lines)[0] != kRunnersHeader)
    return line_error(what, 1, std::string("expected the header '") + kRunnersHeader + "'");
  RunnersReply out;
  out.runners.reserve(lines->size() - 1);
  for (size_t i = 1; i < lines->size(); ++i) {
    auto w = split_words((*lines)[i], 10);
    if (!w) return line_error(what, i + 1, "expected 10 words separated by single spaces");
    RunnerRow row;
    std::string why;
    if (!parse_host_port((*w)[0], &why)) return line_error(what, i + 1, "address: " + why);
    if (!is_runner_state((*w)[1]))
      return line_error(what, i + 1, "unknown runner state " + quoted((*w)[1]));
    auto job = parse_optional_id((*w)[2], INT64_MAX);
    auto attempt = parse_optional_id((*w)[3], UINT32_MAX);
    auto done = parse_u64((*w)[4]);
    auto seen = parse_u64((*w)[5]);
    if (!job) return line_error(what, i + 1, "job must be '-' or a positive number");
    if (!attempt) return line_error(what, i + 1, "attempt must be '-' or a positive number");
    if ((*job == 0) != (*attempt == 0))
      return line_error(what, i + 1, "job and attempt must both be given or both be '-'");
    if (!done) return line_error(what, i + 1, "jobs-done is not a number");
    if (!seen) return line_error(what, i + 1, "last-seen-ms is not a number");
    row.address = std::string((*w)[0]);
    row.state = std::string((*w)[1]);
    row.job = *job;
    row.attempt = static_cast<uint32_t>(*attempt);
    row.jobs_done = *done;
    row.last_seen_ms = *seen;
    auto slots = parse_u64((*w)[6], kMaxSlots);
    auto busy = parse_u64((*w)[7], kMaxSlots);
    if (!slots || *slots == 0) return line_error(what, i + 1, "slots is not a number of slots");
    if (!busy || *busy > *slots) return line_error(what, i + 1, "busy is not 0 to slots");
    row.slots = static_cast<uint32_t>(*slots);
    row.busy = static_cast<uint32_t>(*busy);
    if ((*w)[8] != "-") {
      auto labels = parse_label_list((*w)[8], &why);
      if (!labels) return line_error(what, i + 1, "labels: " + why);
      row.labels = std::move(*labels);
    }
    std::string_view scope = (*w)[9];
    if (scope == "default") {
      row.repos = RepoScope::Default;
    } else if (scope == "named") {
      row.repos = RepoScope::Named;
    } else if (scope == "all") {
      row.repos = RepoScope::All;
    } else {
      return line_error(what, i + 1, "repos must be default, named or all");
    }
    out.runners.push_back(std::move(row));
  }
  return out;
}

Reply to_reply(const JobsReply& r) {
  std::string body = std::string(kJobsHeader) + "\n";
  for (const JobRow& j : r.jobs) {
    body += std::to_string(j.id) + " " + j.commit + " " + j.branch + " " + j.state + " " +
            (j.status ? to_string(*j.status) : "-") + " " + id_word(j.attempt) + " " +
            (j.runner.empty() ? "-" : j.runner) + " " + count_word(j.tests_run) + " " +
            count_word(j.tests_failed) + " " +
            (j.duration_ms ? std::to_string(*j.duration_ms) : "-") + " " +
            (j.repo.empty() ? "-" : j.repo) + " " +
            (j.waiting.empty() ? "-" : escape_for_log(j.waiting, 200)) + "\n";
  }
  return Reply::ok_with_body(std::move(body));
}

Result<JobsReply> parse_jobs_reply(const Reply& reply) {
  constexpr const char* what = "jobs";
  auto lines = body_lines(what, reply, kMaxReplyRows + 1);
  if (!lines) return Error{lines.error()};
  if (lines->empty() || (*lines)[0] != kJobsHeader)
    return line_error(what, 1, std::string("expected the header '") + kJobsHeader + "'");
  JobsReply out;
  out.jobs.reserve(lines->size() - 1);
  for (size_t i = 1; i < lines->size(); ++i) {
    // Eleven words, then the waiting reason: the rest of the line.
    std::string_view line = (*lines)[i];
    size_t cut = 0;
    for (int k = 0; k < 11 && cut != std::string_view::npos; ++k) {
      cut = line.find(' ', cut);
      if (cut != std::string_view::npos) ++cut;
    }
    if (cut == std::string_view::npos || cut >= line.size())
      return line_error(what, i + 1, "expected 12 fields separated by single spaces");
    std::string_view waiting = line.substr(cut);
    auto w = split_words(line.substr(0, cut - 1), 11);
    if (!w) return line_error(what, i + 1, "expected 12 fields separated by single spaces");
    if (has_control_bytes(waiting))
      return line_error(what, i + 1, "the waiting reason holds control characters");
    JobRow j;
    auto id = parse_u64((*w)[0], INT64_MAX);
    if (!id || *id == 0) return line_error(what, i + 1, "id must be a positive number");
    j.id = *id;
    if (std::string why = check_commit_id((*w)[1]); !why.empty())
      return line_error(what, i + 1, "commit: " + why);
    if (std::string why = check_branch_name((*w)[2]); !why.empty())
      return line_error(what, i + 1, "branch: " + why);
    j.commit = std::string((*w)[1]);
    j.branch = std::string((*w)[2]);
    if (!is_job_state((*w)[3]))
      return line_error(what, i + 1, "unknown job state " + quoted((*w)[3]));
    j.state = std::string((*w)[3]);
    if ((*w)[4] != "-") {
      TestStatus status;
      if (!parse_test_status((*w)[4], &status))
        return line_error(what, i + 1, "unknown status " + quoted((*w)[4]));
      if (j.state != "finished")
        return line_error(what, i + 1, "a status on a job that has not finished");
      j.status = status;
    }
    auto attempt = parse_optional_id((*w)[5], UINT32_MAX);
    if (!attempt) return line_error(what, i + 1, "attempt must be '-' or a positive number");
    j.attempt = static_cast<uint32_t>(*attempt);
    if ((*w)[6] != "-") {
      std::string why;
      if (!parse_host_port((*w)[6], &why)) return line_error(what, i + 1, "runner: " + why);
      j.runner = std::string((*w)[6]);
    }
    auto run = parse_count((*w)[7]);
    auto failed = parse_count((*w)[8]);
    if (!run || !failed) return line_error(what, i + 1, "test counts must be numbers or '-'");
    j.tests_run = *run;
    j.tests_failed = *failed;
    if ((*w)[9] != "-") {
      auto ms = parse_u64((*w)[9]);
      if (!ms) return line_error(what, i + 1, "duration-ms must be '-' or a number");
      j.duration_ms = *ms;
    }
    // Counts and a duration come with a status, from the finished job's outcome.
    if (!j.status && (j.tests_run >= 0 || j.tests_failed >= 0 || j.duration_ms))
      return line_error(what, i + 1, "test counts or a duration on a job without a status");
    if (j.status && !j.duration_ms)
      return line_error(what, i + 1, "a finished job without a duration");
    if ((*w)[10] != "-") {
      if (std::string why = check_repo_name((*w)[10]); !why.empty())
        return line_error(what, i + 1, "repo: " + why);
      j.repo = std::string((*w)[10]);
    }
    if (waiting != "-") j.waiting = std::string(waiting);
    out.jobs.push_back(std::move(j));
  }
  return out;
}

Reply to_reply(const ReposReply& r) {
  std::string body = std::string(kReposHeader) + "\n";
  for (const RepoRow& row : r.repos) {
    body += row.name + " " + row.url + " " + (row.newest_first ? "newest" : "oldest") + " " +
            std::to_string(row.jobs_queued) + " " + std::to_string(row.jobs_running) + " " +
            std::to_string(row.jobs_finished) + "\n";
  }
  return Reply::ok_with_body(std::move(body));
}

Result<ReposReply> parse_repos_reply(const Reply& reply) {
  constexpr const char* what = "repos";
  auto lines = body_lines(what, reply, kMaxReplyRows + 1);
  if (!lines) return Error{lines.error()};
  if (lines->empty() || (*lines)[0] != kReposHeader)
    return line_error(what, 1, std::string("expected the header '") + kReposHeader + "'");
  ReposReply out;
  for (size_t i = 1; i < lines->size(); ++i) {
    auto w = split_words((*lines)[i], 6);
    if (!w) return line_error(what, i + 1, "expected 6 words separated by single spaces");
    RepoRow row;
    if (std::string why = check_repo_name((*w)[0]); !why.empty())
      return line_error(what, i + 1, "name: " + why);
    if (std::string why = check_repo_url((*w)[1]); !why.empty())
      return line_error(what, i + 1, "url: " + why);
    if ((*w)[2] != "oldest" && (*w)[2] != "newest")
      return line_error(what, i + 1, "order must be oldest or newest");
    auto queued = parse_u64((*w)[3]);
    auto running = parse_u64((*w)[4]);
    auto finished = parse_u64((*w)[5]);
    if (!queued || !running || !finished)
      return line_error(what, i + 1, "job counts must be numbers");
    row.name = std::string((*w)[0]);
    row.url = std::string((*w)[1]);
    row.newest_first = (*w)[2] == "newest";
    row.jobs_queued = *queued;
    row.jobs_running = *running;
    row.jobs_finished = *finished;
    out.repos.push_back(std::move(row));
  }
  return out;
}

Reply to_reply(const PongReply& p) {
  switch (p.state) {
    case PongReply::State::Alive:
      return Reply::pong();
    case PongReply::State::Idle:
      return Reply::pong({"idle"});
    case PongReply::State::Busy:
      return Reply::pong({"busy", std::to_string(p.job), std::to_string(p.attempt)});
    case PongReply::State::Slots: {
      std::vector<std::string> words{"slots"};
      for (const SlotJob& slot : p.slots)
        words.push_back(
            slot.job == 0 ? "-" : std::to_string(slot.job) + "/" + std::to_string(slot.attempt));
      return Reply::pong(std::move(words));
    }
  }
  return Reply::pong();
}

Result<PongReply> parse_pong_reply(const Reply& reply) {
  if (reply.kind == Reply::Kind::Err) return make_error("pong reply: ERR " + reply.reason());
  if (reply.kind != Reply::Kind::Pong || reply.has_body)
    return make_error("pong reply: expected 'pong'");
  const auto& a = reply.args;
  PongReply out;
  if (a.empty()) return out;
  if (a[0] == "idle" && a.size() == 1) {
    out.state = PongReply::State::Idle;
    return out;
  }
  if (a[0] == "busy" && a.size() == 3) {
    auto job = parse_u64(a[1], INT64_MAX);
    auto attempt = parse_u64(a[2], UINT32_MAX);
    if (!job || *job == 0) return make_error("pong reply: job id must be a positive number");
    if (!attempt || *attempt == 0)
      return make_error("pong reply: attempt must be a positive number");
    out.state = PongReply::State::Busy;
    out.job = *job;
    out.attempt = static_cast<uint32_t>(*attempt);
    return out;
  }
  if (a[0] == "slots" && a.size() >= 2 && a.size() <= kMaxSlots + 1) {
    out.state = PongReply::State::Slots;
    for (size_t i = 1; i < a.size(); ++i) {
      if (a[i] == "-") {
        out.slots.push_back({});
        continue;
      }
      size_t slash = a[i].find('/');
      if (slash == std::string::npos)
        return make_error("pong reply: a slot must be '-' or '<job>/<attempt>'");
      auto job = parse_u64(std::string_view(a[i]).substr(0, slash), INT64_MAX);
      auto attempt = parse_u64(std::string_view(a[i]).substr(slash + 1), UINT32_MAX);
      if (!job || *job == 0 || !attempt || *attempt == 0)
        return make_error("pong reply: a slot must be '-' or '<job>/<attempt>'");
      out.slots.push_back({*job, static_cast<uint32_t>(*attempt)});
    }
    return out;
  }
  return make_error(
      "pong reply: expected 'pong', 'pong idle', 'pong busy <job> <attempt>' or 'pong slots "
      "<slot>...'");
}

}  // namespace ci
