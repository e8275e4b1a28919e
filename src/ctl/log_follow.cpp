// `cictl log`: an attempt's log read in chunks with `logread`, and followed while the
// test runs.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "ci/validate.h"
#include "ctl/commands.h"
#include "ctl/ctl.h"

namespace ci {

namespace {

constexpr uint64_t kLogChunk = 64 * 1024;
// Following: the pause after a read that found nothing new grows from the first to the
// last, so that a quiet test costs few calls and a line printed reaches the terminal
// within about the first pause once output flows again.
constexpr std::chrono::milliseconds kFirstPause{50}, kLastPause{250};

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
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kLastPause);
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
