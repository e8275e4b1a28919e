#include "reporter/api.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "ci/validate.h"
#include "reporter/assets.h"
#include "reporter/badge.h"
#include "reporter/json.h"
#include "reporter/queries.h"

namespace ci::reporter {

namespace {

constexpr uint64_t kMaxPage = 500;
constexpr uint64_t kDefaultLogRead = 256 * 1024;

bool parse_u64(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 19) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool same(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

HttpReply ok_json(const nlohmann::json& body) { return HttpReply::json(200, json_text(body)); }

HttpReply failed(const std::string& what) { return HttpReply::error(500, what); }

// An optional numeric argument: *out keeps its default when absent; false when bad.
bool number_arg(const HttpRequest& request, const std::string& name, uint64_t* out) {
  auto value = request.arg(name);
  return !value || parse_u64(*value, out);
}

// ?repo=: absent, any repository (*out stays empty); "-" (as tables show it) or empty, the
// default repository (""); else a repository's name. False when it is no valid name.
bool repo_arg(const HttpRequest& request, std::optional<std::string>* out) {
  auto value = request.arg("repo");
  if (!value) return true;
  if (*value == "-" || value->empty()) {
    *out = "";
    return true;
  }
  if (!check_repo_name(*value).empty()) return false;
  *out = *value;
  return true;
}

HttpReply bad_repo() {
  return HttpReply::error(400, "repo is a repository's name, or - for the default repository");
}

}  // namespace

bool parse_range(const std::string& header, uint64_t* offset, uint64_t* length) {
  std::string_view text = header;
  if (!starts_with(text, "bytes=")) return false;
  text.remove_prefix(6);
  auto dash = text.find('-');
  if (dash == std::string_view::npos || text.find(',') != std::string_view::npos) return false;
  uint64_t first = 0, last = 0;
  if (!parse_u64(text.substr(0, dash), &first)) return false;
  *offset = first;
  *length = 0;
  if (dash + 1 == text.size()) return true;
  if (!parse_u64(text.substr(dash + 1), &last) || last < first) return false;
  *length = last - first + 1;
  return true;
}

Api::Api(ApiOptions options, QueryPool& queries, LogSource logs,
         std::function<std::string()> metrics)
    : options_(std::move(options)),
      queries_(queries),
      logs_(std::move(logs)),
      metrics_(std::move(metrics)) {}

bool Api::authorized(const HttpRequest& request) const {
  if (options_.token.empty()) return true;
  if (auto h = request.header("authorization"); h && starts_with(*h, "Bearer "))
    return same(std::string_view(*h).substr(7), options_.token);
  // An EventSource cannot set headers: the stream alone takes the token as an argument.
  if (request.path == options_.stream_path)
    if (auto t = request.arg("token")) return same(*t, options_.token);
  return false;
}

HttpReply Api::handle(const HttpRequest& request) {
  const std::string& path = request.path;
  bool guarded = starts_with(path, "/api/") || path == "/metrics" || starts_with(path, "/badge/");
  if (guarded && !authorized(request)) {
    HttpReply reply = HttpReply::error(401, "a token is required");
    reply.headers.emplace_back("WWW-Authenticate", "Bearer");
    return reply;
  }
  HttpReply reply = route(request);
  if (starts_with(path, "/api/")) reply.headers.emplace_back("Cache-Control", "no-store");
  return reply;
}

HttpReply Api::route(const HttpRequest& request) {
  const std::string& path = request.path;
  if (path == options_.stream_path) return HttpReply::json(200, "");
  if (path == "/metrics") {
    HttpReply reply;
    reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
    reply.body = metrics_();
    return reply;
  }
  if (starts_with(path, "/badge/") && path.size() > 11 && path.ends_with(".svg")) {
    std::optional<std::string> repo;
    if (!repo_arg(request, &repo)) return bad_repo();
    return badge(repo.value_or(""), path.substr(7, path.size() - 11));
  }
  if (path == "/api/jobs") return jobs(request);
  if (starts_with(path, "/api/jobs/")) {
    std::string_view rest = std::string_view(path).substr(10);
    auto slash = rest.find('/');
    uint64_t id = 0;
    if (!parse_u64(rest.substr(0, slash), &id)) return HttpReply::error(404, "no such job");
    return job(request, id, slash == std::string_view::npos ? "" : std::string(rest.substr(slash)));
  }
  auto lease = queries_.lease();
  if (!lease) return failed(lease.error());
  auto& q = **lease;
  Result<nlohmann::json> body = Error{""};
  std::optional<std::string> repo;
  if (starts_with(path, "/api/") && !repo_arg(request, &repo)) return bad_repo();
  if (path == "/api/branches") {
    body = q->branches(repo);
  } else if (path == "/api/repos") {
    body = q->repos();
  } else if (path == "/api/runners") {
    body = q->runners();
  } else if (starts_with(path, "/api/commits/") && path.size() > 13) {
    body = q->commit(path.substr(13), repo);
  } else if (path == "/api/tests/history") {
    uint64_t limit = 50;
    auto branch = request.arg("branch"), name = request.arg("name");
    if (!branch || !name || !number_arg(request, "limit", &limit))
      return HttpReply::error(400, "branch and name are required; limit is a number");
    body = q->history(repo.value_or(""), valid_utf8(*branch), valid_utf8(*name),
                      std::clamp<uint64_t>(limit, 1, kMaxPage));
  } else {
    Asset asset = find_asset(path);
    if (asset.body.empty()) return HttpReply::error(404, "not found");
    HttpReply reply;
    reply.content_type = asset.content_type;
    reply.body = asset.body;
    return reply;
  }
  if (!body) return failed(body.error());
  return ok_json(*body);
}

HttpReply Api::jobs(const HttpRequest& request) {
  JobFilter filter;
  filter.branch = valid_utf8(request.arg("branch").value_or(""));
  filter.status = request.arg("status").value_or("");
  if (!repo_arg(request, &filter.repo)) return bad_repo();
  if (!number_arg(request, "limit", &filter.limit) ||
      !number_arg(request, "before", &filter.before))
    return HttpReply::error(400, "limit and before are numbers");
  filter.limit = std::clamp<uint64_t>(filter.limit, 1, kMaxPage);
  auto lease = queries_.lease();
  if (!lease) return failed(lease.error());
  auto body = (**lease)->jobs(filter);
  if (!body) return failed(body.error());
  return ok_json(*body);
}

HttpReply Api::job(const HttpRequest& request, JobId id, const std::string& rest) {
  if (rest == "/log") return log(request, id);
  auto lease = queries_.lease();
  if (!lease) return failed(lease.error());
  auto& q = **lease;
  uint64_t log_size = 0;
  auto job = q->job(id, &log_size);
  if (!job) return failed(job.error());
  if (!*job) return HttpReply::error(404, "no such job");
  if (rest.empty()) return ok_json(job_json(**job, log_size));
  if (rest != "/tests") return HttpReply::error(404, "not found");
  uint64_t attempt = (*job)->attempt;
  if (!number_arg(request, "attempt", &attempt) || attempt > UINT32_MAX)
    return HttpReply::error(400, "attempt is a number");
  auto tests = q->tests(**job, static_cast<uint32_t>(attempt));
  if (!tests) return failed(tests.error());
  return ok_json(*tests);
}

HttpReply Api::log(const HttpRequest& request, JobId id) {
  uint64_t offset = 0, max = kDefaultLogRead, attempt = 0;
  if (!number_arg(request, "offset", &offset) || !number_arg(request, "max", &max) ||
      !number_arg(request, "attempt", &attempt) || attempt > UINT32_MAX)
    return HttpReply::error(400, "offset, max and attempt are numbers");
  auto range = request.header("range");
  if (range) {
    uint64_t length = 0;
    if (!parse_range(*range, &offset, &length))
      return HttpReply::error(416, "one range of bytes, as bytes=<first>-[<last>]");
    if (length) max = length;
  }
  max = std::clamp<uint64_t>(max, 1, kMaxLogRead);
  auto chunk = logs_(id, static_cast<uint32_t>(attempt), offset, max);
  if (!chunk) return HttpReply::error(502, chunk.error());
  HttpReply reply;
  reply.content_type = "text/plain; charset=utf-8";
  reply.headers = {{"X-Log-Start", std::to_string(chunk->start)},
                   {"X-Log-Total", std::to_string(chunk->total)},
                   {"X-Log-Done", chunk->done ? "1" : "0"},
                   {"Accept-Ranges", "bytes"}};
  std::string total = chunk->done ? std::to_string(chunk->total) : "*";
  if (range && offset >= chunk->total && chunk->done) {
    reply.status = 416;
    reply.headers.emplace_back("Content-Range", "bytes */" + total);
    return reply;
  }
  if (range && !chunk->bytes.empty()) {
    reply.status = 206;
    uint64_t last = chunk->start + chunk->bytes.size() - 1;
    reply.headers.emplace_back("Content-Range", "bytes " + std::to_string(chunk->start) + "-" +
                                                    std::to_string(last) + "/" + total);
  }
  reply.body = std::move(chunk->bytes);
  return reply;
}

HttpReply Api::badge(const std::string& repo, const std::string& raw_branch) {
  auto lease = queries_.lease();
  if (!lease) return failed(lease.error());
  // A branch that is not UTF-8 came in the feed's JSON with U+FFFD for its bad bytes.
  std::string branch = valid_utf8(raw_branch);
  auto state = (**lease)->branch_state(repo, branch);
  if (!state) return failed(state.error());
  HttpReply reply;
  reply.content_type = "image/svg+xml";
  reply.headers.emplace_back("Cache-Control", "no-cache");
  // A named repository's badge says whose branch it is.
  reply.body = badge_svg(repo.empty() ? branch : repo + " " + branch, *state);
  return reply;
}

}  // namespace ci::reporter
