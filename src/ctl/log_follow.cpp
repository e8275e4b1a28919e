// `cictl log`: an attempt's log read in chunks with `logread`, and followed while the
// test runs.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "ci/events.h"
#include "ci/validate.h"
#include "ctl/commands.h"
#include "ctl/ctl.h"

namespace ci {

namespace {

constexpr uint64_t kLogChunk = 64 * 1024;
// Following, after a read that found nothing new: the event feed is long-polled until
// the job's log grows or it ends, so that a line printed reaches the terminal at once
// and a quiet test costs one call a second. Where the feed cannot be asked, a pause
// that grows from the first to the last stands in for it.
constexpr std::chrono::milliseconds kFirstPause{50}, kLastPause{250};
constexpr std::chrono::milliseconds kLongPoll{1000};

// Waits, on the event feed, for a change of one job (its log grown, its end).
class FeedWaiter {
 public:
  FeedWaiter(Session& s, JobId job) : s_(s), job_(job) {}

  // False when the feed could not be asked: the caller pauses instead.
  bool wait() {
    if (!started_) {
      auto reply = s_.client.call(JobRequest{job_});
      if (!reply || reply->kind != Reply::Kind::Ok) return false;
      auto body = std::string_view(reply->body);
      while (!body.empty() && body.back() == '\n') body.remove_suffix(1);
      auto info = parse_job_info(body);
      if (!info) return false;
      from_ = info->seq;
      started_ = true;
    }
    auto wait = std::min(kLongPoll, s_.io_timeout / 2);
    auto reply = s_.client.call(EventsRequest{from_, 1000, static_cast<uint64_t>(wait.count())});
    if (!reply || reply->kind != Reply::Kind::Ok || reply->args.size() != 2) return false;
    auto events = parse_events(reply->body);
    auto last = parse_u64(reply->args[1]);
    if (!events || !last) return false;
    // Events of other jobs only move the position on; the caller reads the log again
    // either way, which costs one call.
    if (events->empty()) {
      from_ = std::max(from_, *last);  // nothing new, or fell behind the retention
    } else {
      from_ = events->back().seq;
    }
    return true;
  }

 private:
  Session& s_;
  JobId job_;
  bool started_ = false;  // from_ is known
  uint64_t from_ = 0;     // the last event seen
};

struct Chunk {
  uint64_t start = 0, total = 0;
  bool done = false;
  std::string bytes;
};

std::optional<Chunk> read_chunk(Session& s, JobId job, uint32_t attempt, uint64_t offset,
                                int* code) {
  auto reply = s.ask(LogReadRequest{job, attempt, offset, kLogChunk}, code);
  if (!reply) return std::nullopt;
  const auto& a = reply->args;
  auto start = a.size() == 3 ? parse_u64(a[0]) : std::nullopt;
  auto total = a.size() == 3 ? parse_u64(a[1]) : std::nullopt;
  if (!start || !total || (a[2] != "0" && a[2] != "1") || *start < offset) {
    *code = s.report.fail(1, s.peer + " answered logread badly");
    return std::nullopt;
  }
  return Chunk{*start, *total, a[2] == "1", std::move(reply->body)};
}

}  // namespace

std::string omitted_line(uint64_t bytes) {
  return "[... " + std::to_string(bytes) + " bytes omitted ...]\n";
}

int run_log(Session& s, JobId job, uint32_t attempt, bool follow) {
  // With --json the log is gathered into one object; without, it goes out as it comes.
  std::string gathered;
  uint64_t omitted = 0;
  auto emit = [&](const std::string& bytes) {
    if (s.report.json) {
      gathered += bytes;
    } else {
      s.report.out << bytes;
      s.report.out.flush();
    }
  };
  uint64_t offset = 0;
  auto pause = kFirstPause;
  FeedWaiter feed(s, job);
  int code = 0;
  bool done = false;
  while (true) {
    auto chunk = read_chunk(s, job, attempt, offset, &code);
    if (!chunk) return code;
    if (chunk->start > offset) {
      omitted += chunk->start - offset;
      emit(omitted_line(chunk->start - offset));
    }
    offset = chunk->start + chunk->bytes.size();
    done = chunk->done;
    if (!chunk->bytes.empty()) {
      emit(chunk->bytes);
      pause = kFirstPause;
      continue;
    }
    if (done || !follow) break;
    if (!feed.wait()) {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, kLastPause);
    }
  }
  if (s.report.json) {
    nlohmann::ordered_json j;
    j["job"] = job;
    j["attempt"] = attempt == 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(attempt);
    j["log"] = gathered;
    j["bytes"] = offset;
    j["omitted"] = omitted;
    j["done"] = done;
    s.report.out << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
                 << "\n";
  }
  return 0;
}

}  // namespace ci
