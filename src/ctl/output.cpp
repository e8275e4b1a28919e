// What cictl prints: the tables people read, and one JSON object a line for scripts.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ctl/ctl.h"

namespace ci {

namespace {

// ordered_json: the keys come out in the order they are set, the order of the tables.
using Json = nlohmann::ordered_json;

std::string dump(const Json& j) {
  // Peer-supplied strings (a results folder, a reason) need not be UTF-8: replaced, not
  // thrown on.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

Json id_or_null(uint64_t n) { return n == 0 ? Json(nullptr) : Json(n); }
Json count_or_null(int64_t n) { return n < 0 ? Json(nullptr) : Json(n); }

}  // namespace

std::string align_columns(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::vector<std::string> row;
    for (std::string w; words >> w;) row.push_back(w);
    rows.push_back(std::move(row));
  }
  return align_rows(rows);
}

std::string align_rows(const std::vector<std::vector<std::string>>& rows,
                       const std::string& indent) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line = row.empty() ? "" : indent;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string format_time_ms(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  time_t t = static_cast<time_t>(unix_ms / 1000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

std::string format_duration_ms(uint64_t ms) {
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms < 60000) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000);
    return buf;
  }
  uint64_t s = ms / 1000;
  char buf[48];
  snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
           static_cast<unsigned long long>(s % 60));
  return buf;
}

// The tables are the wire format aligned: what cictl has always printed.
std::string status_table(const StatusReply& s) { return align_columns(to_reply(s).body); }
std::string runners_table(const RunnersReply& r) { return align_columns(to_reply(r).body); }
std::string repos_table(const ReposReply& r) { return align_columns(to_reply(r).body); }

std::string jobs_table(const JobsReply& j) {
  // Eleven words, then the waiting reason (it holds spaces): one cell.
  constexpr size_t kWords = 11;
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(to_reply(j).body);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> row;
    size_t start = 0;
    while (row.size() < kWords) {
      size_t space = line.find(' ', start);
      if (space == std::string::npos) break;
      row.push_back(line.substr(start, space - start));
      start = space + 1;
    }
    row.push_back(line.substr(start));
    rows.push_back(std::move(row));
  }
  return align_rows(rows);
}

std::string status_json(const StatusReply& s) {
  Json j;
  j["runners"] = s.runners;
  j["runners_idle"] = s.runners_idle;
  j["runners_busy"] = s.runners_busy;
  j["runners_unreachable"] = s.runners_unreachable;
  j["jobs_queued"] = s.jobs_queued;
  j["jobs_running"] = s.jobs_running;
  j["jobs_finished"] = s.jobs_finished;
  j["jobs_passed"] = s.jobs_passed;
  j["jobs_failed"] = s.jobs_failed;
  j["jobs_error"] = s.jobs_error;
  j["jobs_timeout"] = s.jobs_timeout;
  j["jobs_cancelled"] = s.jobs_cancelled;
  j["jobs_waiting"] = s.jobs_waiting;
  j["repos"] = s.repos;
  j["results_dir"] = s.results_dir;
  return dump(j);
}

std::string runners_json(const RunnersReply& r) {
  Json list = Json::array();
  for (const RunnerRow& row : r.runners) {
    Json j;
    j["address"] = row.address;
    j["state"] = row.state;
    j["job"] = id_or_null(row.job);
    j["attempt"] = id_or_null(row.attempt);
    j["jobs_done"] = row.jobs_done;
    j["last_seen_ms"] = row.last_seen_ms;
    j["slots"] = row.slots;
    j["busy"] = row.busy;
    j["labels"] = row.labels;
    j["repos"] = to_string(row.repos);
    list.push_back(std::move(j));
  }
  Json out;
  out["runners"] = std::move(list);
  return dump(out);
}

std::string jobs_json(const JobsReply& r) {
  Json list = Json::array();
  for (const JobRow& row : r.jobs) {
    Json j;
    j["id"] = row.id;
    j["commit"] = row.commit;
    j["branch"] = row.branch;
    j["state"] = row.state;
    j["status"] = row.status ? Json(to_string(*row.status)) : Json(nullptr);
    j["attempt"] = id_or_null(row.attempt);
    j["runner"] = row.runner.empty() ? Json(nullptr) : Json(row.runner);
    j["tests_run"] = count_or_null(row.tests_run);
    j["tests_failed"] = count_or_null(row.tests_failed);
    j["duration_ms"] = row.duration_ms ? Json(*row.duration_ms) : Json(nullptr);
    j["repo"] = row.repo;  // "": the default repository
    j["waiting"] = row.waiting.empty() ? Json(nullptr) : Json(row.waiting);
    list.push_back(std::move(j));
  }
  Json out;
  out["jobs"] = std::move(list);
  return dump(out);
}

std::string repos_json(const ReposReply& r) {
  Json list = Json::array();
  for (const RepoRow& row : r.repos) {
    Json j;
    j["name"] = row.name;
    j["url"] = row.url;
    j["order"] = row.newest_first ? "newest" : "oldest";
    j["jobs_queued"] = row.jobs_queued;
    j["jobs_running"] = row.jobs_running;
    j["jobs_finished"] = row.jobs_finished;
    list.push_back(std::move(j));
  }
  Json out;
  out["repos"] = std::move(list);
  return dump(out);
}

std::string job_json(JobId job) {
  Json j;
  j["job"] = job;
  return dump(j);
}

std::string job_result_json(JobId job, TestStatus status, const std::string& reason) {
  Json j;
  j["job"] = job;
  j["status"] = to_string(status);
  j["reason"] = reason.empty() ? Json(nullptr) : Json(reason);
  return dump(j);
}

std::string ok_json() {
  Json j;
  j["ok"] = true;
  return dump(j);
}

std::string error_json(const std::string& reason) {
  Json j;
  j["error"] = reason;
  return dump(j);
}

}  // namespace ci
