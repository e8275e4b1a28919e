#include "ci/protocol.h"

#include <sstream>

#include "ci/events.h"
#include "ci/test_cases.h"
#include "ci/validate.h"

namespace ci {

const char* to_string(TestStatus s) {
  switch (s) {
    case TestStatus::Passed:
      return "passed";
    case TestStatus::Failed:
      return "failed";
    case TestStatus::Error:
      return "error";
    case TestStatus::Timeout:
      return "timeout";
    case TestStatus::Cancelled:
      return "cancelled";
  }
  return "error";
}

const char* to_string(RepoScope scope) {
  switch (scope) {
    case RepoScope::Default:
      return "default";
    case RepoScope::Named:
      return "named";
    case RepoScope::All:
      return "all";
  }
  return "default";
}

bool parse_test_status(std::string_view text, TestStatus* out) {
  for (TestStatus s : {TestStatus::Passed, TestStatus::Failed, TestStatus::Error,
                       TestStatus::Timeout, TestStatus::Cancelled}) {
    if (text == to_string(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

namespace {

Error bad(std::string reason) { return Error{std::move(reason)}; }

bool is_status_filter(std::string_view word) {
  TestStatus status;
  if (parse_test_status(word, &status)) return true;
  for (std::string_view state : {"queued", "offered", "running", "finishing", "finished"})
    if (word == state) return true;
  return false;
}

Error wrong_args(const std::string& verb, const char* usage) {
  return bad("usage: " + verb + (usage[0] ? " " : "") + usage);
}

std::string count_word(int64_t n) { return n < 0 ? "-" : std::to_string(n); }

// The <job> <attempt> pair of runtest, results and abandon; "" when both are valid.
std::string parse_job_attempt(const std::string& job_word, const std::string& attempt_word,
                              JobId* job, uint32_t* attempt) {
  auto j = parse_u64(job_word, INT64_MAX);
  auto a = parse_u64(attempt_word, UINT32_MAX);
  if (!j || *j == 0) return "job id must be a positive number";
  if (!a || *a == 0) return "attempt must be a positive number";
  *job = *j;
  *attempt = static_cast<uint32_t>(*a);
  return {};
}

// One parser a verb. Each gets the whole frame (words[0] is the verb) and checks its
// own arguments; the table below is the one place a verb is named.
using RequestParser = Result<Request> (*)(const Frame& f);

template <typename T>
Result<Request> parse_bare(const Frame& f) {
  if (f.words.size() != 1) return wrong_args(f.verb(), "");
  return Request{T{}};
}

// jobs [<limit>] [branch=<b>] [status=<s>]: the limit first, then the filters in any order.
Result<Request> parse_jobs(const Frame& f) {
  const auto& w = f.words;
  if (w.size() > 5) return wrong_args(f.verb(), "[limit] [branch=<b>] [status=<s>] [repo=<r>]");
  JobsRequest r;
  for (size_t i = 1; i < w.size(); ++i) {
    const std::string& word = w[i];
    if (word.rfind("branch=", 0) == 0) {
      if (!r.branch.empty()) return bad("jobs takes one branch=");
      r.branch = word.substr(7);
      if (std::string why = check_branch_name(r.branch); !why.empty()) return bad(why);
    } else if (word.rfind("status=", 0) == 0) {
      if (!r.status.empty()) return bad("jobs takes one status=");
      r.status = word.substr(7);
      if (!is_status_filter(r.status))
        return bad(
            "status= takes passed, failed, error, timeout, cancelled, queued, offered, "
            "running, finishing or finished");
    } else if (word.rfind("repo=", 0) == 0) {
      if (!r.repo.empty()) return bad("jobs takes one repo=");
      r.repo = word.substr(5);
      if (r.repo != "-")
        if (std::string why = check_repo_name(r.repo); !why.empty()) return bad(why);
    } else if (i == 1) {
      auto n = parse_u64(word, 1000000);
      if (!n || *n == 0) return bad("jobs limit must be a number from 1 to 1000000");
      r.limit = *n;
    } else {
      return bad("usage: jobs [limit] [branch=<b>] [status=<s>] [repo=<r>]");
    }
  }
  return Request{r};
}

Result<Request> parse_retry(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 2) return wrong_args(f.verb(), "<job>");
  auto job = parse_u64(w[1], INT64_MAX);
  if (!job || *job == 0) return bad("job id must be a positive number");
  return Request{RetryRequest{*job}};
}

Result<Request> parse_abandon(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 4) return wrong_args(f.verb(), "<job> <attempt> <runner>");
  AbandonRequest r;
  if (auto why = parse_job_attempt(w[1], w[2], &r.job, &r.attempt); !why.empty()) return bad(why);
  std::string why;
  if (!parse_host_port(w[3], &why)) return bad("runner: " + why);
  r.runner = w[3];
  return Request{r};
}

// register and unregister: <host> <port>.
template <typename T>
Result<Request> parse_host_and_port(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 3) return wrong_args(f.verb(), "<host> <port>");
  if (std::string why = check_host(w[1]); !why.empty()) return bad(why);
  auto port = parse_port(w[2]);
  if (!port) return bad("port must be a number from 1 to 65535");
  return Request{T{w[1], *port}};
}

// "key=value" words after the fixed ones: each key at most once, each known.
struct KeyWord {
  std::string_view key;
  std::string value;
};
std::string split_key_words(const std::vector<std::string>& words, size_t first,
                            std::initializer_list<std::string_view> keys,
                            std::vector<KeyWord>* out) {
  for (size_t i = first; i < words.size(); ++i) {
    const std::string& word = words[i];
    size_t eq = word.find('=');
    if (eq == std::string::npos) return "unexpected word '" + escape_for_log(word, 40) + "'";
    std::string_view key(word.data(), eq);
    bool known = false;
    for (std::string_view k : keys) known = known || k == key;
    if (!known) return "unknown option '" + escape_for_log(key, 40) + "'";
    for (const KeyWord& seen : *out)
      if (seen.key == key) return "option '" + std::string(key) + "' given twice";
    for (std::string_view k : keys)
      if (k == key) out->push_back({k, word.substr(eq + 1)});
  }
  return {};
}

Result<Request> parse_register(const Frame& f) {
  const auto& w = f.words;
  constexpr const char* kUsage =
      "<host> <port> [slots=<n>] [labels=<l>,...] [repos=default|named|all]";
  if (w.size() < 3) return wrong_args(f.verb(), kUsage);
  if (std::string why = check_host(w[1]); !why.empty()) return bad(why);
  auto port = parse_port(w[2]);
  if (!port) return bad("port must be a number from 1 to 65535");
  RegisterRequest r{w[1], *port};
  std::vector<KeyWord> options;
  if (auto why = split_key_words(w, 3, {"slots", "labels", "repos"}, &options); !why.empty())
    return bad("register: " + why);
  for (const KeyWord& o : options) {
    if (o.key == "slots") {
      auto n = parse_u64(o.value, kMaxSlots);
      if (!n || *n == 0)
        return bad("slots must be a number from 1 to " + std::to_string(kMaxSlots));
      r.slots = static_cast<uint32_t>(*n);
    } else if (o.key == "labels") {
      std::string why;
      auto labels = parse_label_list(o.value, &why);
      if (!labels) return bad("labels: " + why);
      r.labels = std::move(*labels);
    } else if (o.value == "default" || o.value == "named" || o.value == "all") {
      r.repos = o.value == "default" ? RepoScope::Default
                : o.value == "named" ? RepoScope::Named
                                     : RepoScope::All;
    } else {
      return bad("repos must be default, named or all");
    }
  }
  return Request{std::move(r)};
}

Result<Request> parse_repo(const Frame& f) {
  const auto& w = f.words;
  if (w.size() < 3 || w.size() > 4)
    return wrong_args(f.verb(), "<name> <url> [order=oldest|newest]");
  if (std::string why = check_repo_name(w[1]); !why.empty()) return bad(why);
  if (std::string why = check_repo_url(w[2]); !why.empty()) return bad(why);
  RepoRequest r{w[1], w[2]};
  if (w.size() == 4) {
    if (w[3] == "order=newest") {
      r.newest_first = true;
    } else if (w[3] != "order=oldest") {
      return bad("repo order must be order=oldest or order=newest");
    }
  }
  return Request{std::move(r)};
}

Result<Request> parse_dispatch(const Frame& f) {
  const auto& w = f.words;  // with a body, the framing took its length off the end
  constexpr const char* kUsage =
      "<commit> <branch> [repo=<name>] [require=<label>,...] [<info-length>]";
  if (w.size() < 3) return wrong_args(f.verb(), kUsage);
  if (std::string why = check_commit_id(w[1]); !why.empty()) return bad(why);
  if (std::string why = check_branch_name(w[2]); !why.empty()) return bad(why);
  DispatchRequest r{normalize_commit_id(w[1]), w[2], {}};
  std::vector<KeyWord> options;
  if (auto why = split_key_words(w, 3, {"repo", "require"}, &options); !why.empty())
    return bad("dispatch: " + why);
  for (const KeyWord& o : options) {
    if (o.key == "repo") {
      if (std::string why = check_repo_name(o.value); !why.empty()) return bad(why);
      r.repo = o.value;
    } else {
      std::string why;
      auto labels = parse_label_list(o.value, &why);
      if (!labels) return bad("require: " + why);
      r.required = std::move(*labels);
    }
  }
  if (f.has_body && !f.body.empty()) {
    if (f.body.size() > kMaxCommitInfo) return bad("commit info is too long");
    auto info = parse_commit_info(f.body);
    if (!info) return bad(info.error());
    r.info = serialize_commit_info(*info);  // bounded and in one form
  }
  return Request{std::move(r)};
}

Result<Request> parse_runtest(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 5 && w.size() != 7)
    return wrong_args(f.verb(), "<job> <attempt> <commit> <branch> [repo=<name> url=<url>]");
  RuntestRequest r;
  if (auto why = parse_job_attempt(w[1], w[2], &r.job, &r.attempt); !why.empty()) return bad(why);
  if (std::string why = check_commit_id(w[3]); !why.empty()) return bad(why);
  if (std::string why = check_branch_name(w[4]); !why.empty()) return bad(why);
  r.commit = normalize_commit_id(w[3]);
  r.branch = w[4];
  if (w.size() == 7) {
    if (w[5].rfind("repo=", 0) != 0 || w[6].rfind("url=", 0) != 0)
      return bad("usage: runtest <job> <attempt> <commit> <branch> [repo=<name> url=<url>]");
    r.repo = w[5].substr(5);
    r.url = w[6].substr(4);
    if (std::string why = check_repo_name(r.repo); !why.empty()) return bad(why);
    if (std::string why = check_repo_url(r.url); !why.empty()) return bad(why);
  }
  return Request{r};
}

// results <job> <attempt> <runner> <status> <run> <failed> <ms> [<cases-len>] <len>: the
// body is the output, then <cases-len> bytes of test cases.
Result<Request> parse_results(const Frame& f) {
  const auto& w = f.words;
  if (!f.has_body || (w.size() != 8 && w.size() != 9))
    return wrong_args(f.verb(),
                      "<job> <attempt> <runner> <status> <run> <failed> <ms> [<cases-length>] "
                      "<length>");
  ResultsRequest r;
  if (auto why = parse_job_attempt(w[1], w[2], &r.job, &r.attempt); !why.empty()) return bad(why);
  std::string why;
  if (!parse_host_port(w[3], &why)) return bad("runner: " + why);
  if (!parse_test_status(w[4], &r.status))
    return bad("status must be passed, failed, error, timeout or cancelled");
  auto run = parse_count(w[5]);
  auto failed = parse_count(w[6]);
  auto ms = parse_u64(w[7]);
  if (!run || !failed) return bad("test counts must be numbers or '-'");
  if (!ms) return bad("duration must be a number of milliseconds");
  size_t cases_length = 0;
  if (w.size() == 9) {
    auto n = parse_u64(w[8], f.body.size());
    if (!n) return bad("cases length must be a number no larger than the body");
    cases_length = static_cast<size_t>(*n);
  }
  r.runner = w[3];
  r.tests_run = *run;
  r.tests_failed = *failed;
  r.duration_ms = *ms;
  r.output = f.body.substr(0, f.body.size() - cases_length);
  r.cases = f.body.substr(f.body.size() - cases_length);
  if (!r.cases.empty()) {
    auto cases = parse_cases(r.cases);
    if (!cases) return bad("test cases: " + cases.error());
  }
  return Request{std::move(r)};
}

Result<Request> parse_log(const Frame& f) {
  const auto& w = f.words;
  if (!f.has_body || w.size() != 5)
    return wrong_args(f.verb(), "<job> <attempt> <runner> <offset> <length>");
  LogRequest r;
  if (auto why = parse_job_attempt(w[1], w[2], &r.job, &r.attempt); !why.empty()) return bad(why);
  std::string why;
  if (!parse_host_port(w[3], &why)) return bad("runner: " + why);
  auto offset = parse_u64(w[4], INT64_MAX);
  if (!offset) return bad("log offset must be a number");
  r.runner = w[3];
  r.offset = *offset;
  r.bytes = f.body;
  return Request{std::move(r)};
}

Result<Request> parse_logread(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 5) return wrong_args(f.verb(), "<job> <attempt> <offset> <max>");
  LogReadRequest r;
  auto job = parse_u64(w[1], INT64_MAX);
  auto attempt = parse_u64(w[2], UINT32_MAX);
  auto offset = parse_u64(w[3], INT64_MAX);
  auto max = parse_u64(w[4], kMaxLogRead);
  if (!job || *job == 0) return bad("job id must be a positive number");
  if (!attempt) return bad("attempt must be a number (0: the latest)");
  if (!offset) return bad("log offset must be a number");
  if (!max || *max == 0)
    return bad("logread max must be a number from 1 to " + std::to_string(kMaxLogRead));
  r.job = *job;
  r.attempt = static_cast<uint32_t>(*attempt);
  r.offset = *offset;
  r.max = *max;
  return Request{r};
}

// cancel <job> to the dispatcher; cancel <job> <attempt> to a runner.
Result<Request> parse_cancel(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 2 && w.size() != 3) return wrong_args(f.verb(), "<job> [<attempt>]");
  CancelRequest r;
  auto job = parse_u64(w[1], INT64_MAX);
  if (!job || *job == 0) return bad("job id must be a positive number");
  r.job = *job;
  if (w.size() == 3) {
    auto attempt = parse_u64(w[2], UINT32_MAX);
    if (!attempt || *attempt == 0) return bad("attempt must be a positive number");
    r.attempt = static_cast<uint32_t>(*attempt);
  }
  return Request{r};
}

Result<Request> parse_tests(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 2 && w.size() != 3) return wrong_args(f.verb(), "<job> [<attempt>]");
  TestsRequest r;
  auto job = parse_u64(w[1], INT64_MAX);
  if (!job || *job == 0) return bad("job id must be a positive number");
  r.job = *job;
  if (w.size() == 3) {
    auto attempt = parse_u64(w[2], UINT32_MAX);
    if (!attempt) return bad("attempt must be a number (0: the latest)");
    r.attempt = static_cast<uint32_t>(*attempt);
  }
  return Request{r};
}

Result<Request> parse_job(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 2) return wrong_args(f.verb(), "<job>");
  auto job = parse_u64(w[1], INT64_MAX);
  if (!job || *job == 0) return bad("job id must be a positive number");
  return Request{JobRequest{*job}};
}

Result<Request> parse_events(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 4) return wrong_args(f.verb(), "<from> <max> <wait-ms>");
  auto from = parse_u64(w[1], INT64_MAX);
  auto max = parse_u64(w[2], kMaxEventsPerRead);
  auto wait = parse_u64(w[3], kMaxEventsWaitMs);
  if (!from) return bad("events from must be a sequence number");
  if (!max || *max == 0)
    return bad("events max must be a number from 1 to " + std::to_string(kMaxEventsPerRead));
  if (!wait) return bad("events wait must be at most " + std::to_string(kMaxEventsWaitMs) + " ms");
  return Request{EventsRequest{*from, *max, *wait}};
}

Result<Request> parse_snapshot(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 3) return wrong_args(f.verb(), "<after-job> <limit>");
  auto after = parse_u64(w[1], INT64_MAX);
  auto limit = parse_u64(w[2], kMaxSnapshotJobs);
  if (!after) return bad("snapshot after must be a job id (0: from the first)");
  if (!limit || *limit == 0)
    return bad("snapshot limit must be a number from 1 to " + std::to_string(kMaxSnapshotJobs));
  return Request{SnapshotRequest{*after, *limit}};
}

struct VerbParser {
  std::string_view verb;
  RequestParser parse;
};
constexpr VerbParser kRequestParsers[] = {
    {"status", parse_bare<StatusRequest>},
    {"ping", parse_bare<PingRequest>},
    {"poll", parse_bare<PollRequest>},
    {"runners", parse_bare<RunnersRequest>},
    {"jobs", parse_jobs},
    {"retry", parse_retry},
    {"abandon", parse_abandon},
    {"register", parse_register},
    {"repo", parse_repo},
    {"repos", parse_bare<ReposRequest>},
    {"unregister", parse_host_and_port<UnregisterRequest>},
    {"dispatch", parse_dispatch},
    {"runtest", parse_runtest},
    {"results", parse_results},
    {"log", parse_log},
    {"logread", parse_logread},
    {"cancel", parse_cancel},
    {"tests", parse_tests},
    {"job", parse_job},
    {"events", parse_events},
    {"snapshot", parse_snapshot},
};

}  // namespace

bool request_has_body(const std::vector<std::string>& words) {
  if (words.empty()) return false;
  const std::string& verb = words.front();
  // dispatch: a body when its last word past the fixed three is a length, not key=value.
  return verb == "results" || verb == "log" ||
         (verb == "dispatch" && words.size() >= 4 && words.back().find('=') == std::string::npos);
}

Result<Request> parse_request(const Frame& f) {
  const std::string& verb = f.verb();
  for (const VerbParser& p : kRequestParsers)
    if (verb == p.verb) return p.parse(f);
  return bad("unknown verb '" + escape_for_log(verb, 40) + "'");
}

Frame serialize_request(const Request& request) {
  struct Visitor {
    Frame operator()(const StatusRequest&) const { return make_frame({"status"}); }
    Frame operator()(const PingRequest&) const { return make_frame({"ping"}); }
    Frame operator()(const RunnersRequest&) const { return make_frame({"runners"}); }
    Frame operator()(const PollRequest&) const { return make_frame({"poll"}); }
    Frame operator()(const JobsRequest& r) const {
      std::vector<std::string> words{"jobs", std::to_string(r.limit)};
      if (!r.branch.empty()) words.push_back("branch=" + r.branch);
      if (!r.status.empty()) words.push_back("status=" + r.status);
      if (!r.repo.empty()) words.push_back("repo=" + r.repo);
      return make_frame(std::move(words));
    }
    Frame operator()(const LogRequest& r) const {
      return make_frame_with_body({"log", std::to_string(r.job), std::to_string(r.attempt),
                                   r.runner, std::to_string(r.offset)},
                                  r.bytes);
    }
    Frame operator()(const LogReadRequest& r) const {
      return make_frame({"logread", std::to_string(r.job), std::to_string(r.attempt),
                         std::to_string(r.offset), std::to_string(r.max)});
    }
    Frame operator()(const CancelRequest& r) const {
      if (r.attempt == 0) return make_frame({"cancel", std::to_string(r.job)});
      return make_frame({"cancel", std::to_string(r.job), std::to_string(r.attempt)});
    }
    Frame operator()(const TestsRequest& r) const {
      if (r.attempt == 0) return make_frame({"tests", std::to_string(r.job)});
      return make_frame({"tests", std::to_string(r.job), std::to_string(r.attempt)});
    }
    Frame operator()(const JobRequest& r) const {
      return make_frame({"job", std::to_string(r.job)});
    }
    Frame operator()(const EventsRequest& r) const {
      return make_frame(
          {"events", std::to_string(r.from), std::to_string(r.max), std::to_string(r.wait_ms)});
    }
    Frame operator()(const SnapshotRequest& r) const {
      return make_frame({"snapshot", std::to_string(r.after), std::to_string(r.limit)});
    }
    Frame operator()(const RegisterRequest& r) const {
      std::vector<std::string> words{"register", r.host, std::to_string(r.port)};
      // A runner of the seed's kind says only where it is.
      if (r.slots != 1) words.push_back("slots=" + std::to_string(r.slots));
      if (!r.labels.empty()) words.push_back("labels=" + join_labels(r.labels));
      if (r.repos != RepoScope::Default)
        words.push_back(std::string("repos=") + to_string(r.repos));
      return make_frame(std::move(words));
    }
    Frame operator()(const RepoRequest& r) const {
      return make_frame({"repo", r.name, r.url, r.newest_first ? "order=newest" : "order=oldest"});
    }
    Frame operator()(const ReposRequest&) const { return make_frame({"repos"}); }
    Frame operator()(const UnregisterRequest& r) const {
      return make_frame({"unregister", r.host, std::to_string(r.port)});
    }
    Frame operator()(const RetryRequest& r) const {
      return make_frame({"retry", std::to_string(r.job)});
    }
    Frame operator()(const AbandonRequest& r) const {
      return make_frame({"abandon", std::to_string(r.job), std::to_string(r.attempt), r.runner});
    }
    Frame operator()(const DispatchRequest& r) const {
      std::vector<std::string> words{"dispatch", r.commit, r.branch};
      if (!r.repo.empty()) words.push_back("repo=" + r.repo);
      if (!r.required.empty()) words.push_back("require=" + join_labels(r.required));
      if (r.info.empty()) return make_frame(std::move(words));
      return make_frame_with_body(std::move(words), r.info);
    }
    Frame operator()(const RuntestRequest& r) const {
      std::vector<std::string> words{"runtest", std::to_string(r.job), std::to_string(r.attempt),
                                     r.commit, r.branch};
      if (!r.repo.empty()) {
        words.push_back("repo=" + r.repo);
        words.push_back("url=" + r.url);
      }
      return make_frame(std::move(words));
    }
    Frame operator()(const ResultsRequest& r) const {
      std::vector<std::string> words{"results",
                                     std::to_string(r.job),
                                     std::to_string(r.attempt),
                                     r.runner,
                                     to_string(r.status),
                                     count_word(r.tests_run),
                                     count_word(r.tests_failed),
                                     std::to_string(r.duration_ms)};
      // Without cases, the seed's eight words: a result spooled by an older runner and
      // one sent to an older dispatcher read the same.
      if (r.cases.empty()) return make_frame_with_body(std::move(words), r.output);
      words.push_back(std::to_string(r.cases.size()));
      return make_frame_with_body(std::move(words), r.output + r.cases);
    }
  };
  return std::visit(Visitor{}, request);
}

Reply Reply::ok(std::vector<std::string> args) {
  return Reply{Kind::Ok, std::move(args), {}, false};
}
Reply Reply::ok_with_body(std::string body) { return Reply{Kind::Ok, {}, std::move(body), true}; }
Reply Reply::busy() { return Reply{Kind::Busy, {}, {}, false}; }
Reply Reply::pong(std::vector<std::string> args) {
  return Reply{Kind::Pong, std::move(args), {}, false};
}
Reply Reply::err(std::string_view reason) {
  Reply r{Kind::Err, {}, {}, false};
  // One line, no control bytes: the reason is words of the header.
  std::string clean = escape_for_log(reason, 300);
  std::istringstream in(clean);
  for (std::string word; in >> word;) r.args.push_back(word);
  if (r.args.empty()) r.args.push_back("error");
  return r;
}

std::string Reply::reason() const {
  std::string out;
  for (const auto& a : args) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

bool reply_has_body(const std::string& request_verb, const std::vector<std::string>& words) {
  if (words.empty() || words.front() != "OK") return false;
  for (std::string_view verb :
       {"status", "runners", "jobs", "logread", "tests", "job", "events", "snapshot", "repos"})
    if (request_verb == verb) return true;
  return false;
}

Result<Reply> parse_reply(const Frame& f) {
  const std::string& verb = f.verb();
  Reply r;
  if (verb == "OK") {
    r.kind = Reply::Kind::Ok;
  } else if (verb == "BUSY") {
    r.kind = Reply::Kind::Busy;
  } else if (verb == "pong") {
    r.kind = Reply::Kind::Pong;
  } else if (verb == "ERR") {
    r.kind = Reply::Kind::Err;
  } else {
    return bad("unexpected reply '" + escape_for_log(verb, 40) + "'");
  }
  r.args.assign(f.words.begin() + 1, f.words.end());
  r.body = f.body;
  r.has_body = f.has_body;
  return r;
}

Frame serialize_reply(const Reply& reply) {
  Frame f;
  switch (reply.kind) {
    case Reply::Kind::Ok:
      f.words.push_back("OK");
      break;
    case Reply::Kind::Busy:
      f.words.push_back("BUSY");
      break;
    case Reply::Kind::Pong:
      f.words.push_back("pong");
      break;
    case Reply::Kind::Err:
      f.words.push_back("ERR");
      break;
  }
  f.words.insert(f.words.end(), reply.args.begin(), reply.args.end());
  f.body = reply.body;
  f.has_body = reply.has_body;
  return f;
}

}  // namespace ci
