#include "ci/protocol.h"

#include <sstream>

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
  }
  return "error";
}

bool parse_test_status(std::string_view text, TestStatus* out) {
  for (TestStatus s :
       {TestStatus::Passed, TestStatus::Failed, TestStatus::Error, TestStatus::Timeout}) {
    if (text == to_string(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

namespace {

Error bad(std::string reason) { return Error{std::move(reason)}; }

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

Result<Request> parse_jobs(const Frame& f) {
  const auto& w = f.words;
  if (w.size() > 2) return wrong_args(f.verb(), "[limit]");
  JobsRequest r;
  if (w.size() == 2) {
    auto n = parse_u64(w[1], 1000000);
    if (!n || *n == 0) return bad("jobs limit must be a number from 1 to 1000000");
    r.limit = *n;
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

Result<Request> parse_dispatch(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 3) return wrong_args(f.verb(), "<commit> <branch>");
  if (std::string why = check_commit_id(w[1]); !why.empty()) return bad(why);
  if (std::string why = check_branch_name(w[2]); !why.empty()) return bad(why);
  return Request{DispatchRequest{normalize_commit_id(w[1]), w[2]}};
}

Result<Request> parse_runtest(const Frame& f) {
  const auto& w = f.words;
  if (w.size() != 5) return wrong_args(f.verb(), "<job> <attempt> <commit> <branch>");
  RuntestRequest r;
  if (auto why = parse_job_attempt(w[1], w[2], &r.job, &r.attempt); !why.empty()) return bad(why);
  if (std::string why = check_commit_id(w[3]); !why.empty()) return bad(why);
  if (std::string why = check_branch_name(w[4]); !why.empty()) return bad(why);
  r.commit = normalize_commit_id(w[3]);
  r.branch = w[4];
  return Request{r};
}

Result<Request> parse_results(const Frame& f) {
  const auto& w = f.words;
  if (!f.has_body || w.size() != 8)
    return wrong_args(f.verb(), "<job> <attempt> <runner> <status> <run> <failed> <ms> <length>");
  ResultsRequest r;
  if (auto why = parse_job_attempt(w[1], w[2], &r.job, &r.attempt); !why.empty()) return bad(why);
  std::string why;
  if (!parse_host_port(w[3], &why)) return bad("runner: " + why);
  if (!parse_test_status(w[4], &r.status))
    return bad("status must be passed, failed, error or timeout");
  auto run = parse_count(w[5]);
  auto failed = parse_count(w[6]);
  auto ms = parse_u64(w[7]);
  if (!run || !failed) return bad("test counts must be numbers or '-'");
  if (!ms) return bad("duration must be a number of milliseconds");
  r.runner = w[3];
  r.tests_run = *run;
  r.tests_failed = *failed;
  r.duration_ms = *ms;
  r.output = f.body;
  return Request{std::move(r)};
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
    {"register", parse_host_and_port<RegisterRequest>},
    {"unregister", parse_host_and_port<UnregisterRequest>},
    {"dispatch", parse_dispatch},
    {"runtest", parse_runtest},
    {"results", parse_results},
};

}  // namespace

bool request_has_body(const std::vector<std::string>& words) {
  return !words.empty() && words.front() == "results";
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
      return make_frame({"jobs", std::to_string(r.limit)});
    }
    Frame operator()(const RegisterRequest& r) const {
      return make_frame({"register", r.host, std::to_string(r.port)});
    }
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
      return make_frame({"dispatch", r.commit, r.branch});
    }
    Frame operator()(const RuntestRequest& r) const {
      return make_frame(
          {"runtest", std::to_string(r.job), std::to_string(r.attempt), r.commit, r.branch});
    }
    Frame operator()(const ResultsRequest& r) const {
      return make_frame_with_body({"results", std::to_string(r.job), std::to_string(r.attempt),
                                   r.runner, to_string(r.status), count_word(r.tests_run),
                                   count_word(r.tests_failed), std::to_string(r.duration_ms)},
                                  r.output);
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
  return request_verb == "status" || request_verb == "runners" || request_verb == "jobs";
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
