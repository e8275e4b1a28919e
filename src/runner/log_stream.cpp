#include "runner/log_stream.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ci/validate.h"
#include "runner/runner_internal.h"

namespace ci::runner {

LogBuffer::LogBuffer(size_t cap) : half_(std::max<size_t>(cap / 2, 1)) {}

void LogBuffer::append(std::string_view bytes) {
  if (empty()) head_start_ = total_;
  total_ += bytes.size();
  if (tail_.empty()) {
    size_t room = head_.size() < half_ ? half_ - head_.size() : 0;
    size_t k = std::min(room, bytes.size());
    head_.append(bytes.substr(0, k));
    bytes.remove_prefix(k);
    if (bytes.empty()) return;
    tail_start_ = total_ - bytes.size();
  }
  tail_.append(bytes);
  // Its oldest bytes go once it is half again over its share: each byte is moved about
  // twice at most, however much the test prints.
  if (tail_.size() > half_ + half_ / 2) {
    size_t drop = tail_.size() - half_;
    tail_.erase(0, drop);
    tail_start_ += drop;
  }
}

std::optional<LogBuffer::Chunk> LogBuffer::next(size_t max) const {
  if (!head_.empty()) return Chunk{head_start_, head_.substr(0, max)};
  if (!tail_.empty()) return Chunk{tail_start_, tail_.substr(0, max)};
  return std::nullopt;
}

void LogBuffer::confirmed(uint64_t received) {
  received = std::min(received, total_);
  auto drop_below = [&](std::string& part, uint64_t& start) {
    if (received <= start) return;
    uint64_t k = std::min<uint64_t>(received - start, part.size());
    part.erase(0, k);
    start += k;
  };
  drop_below(head_, head_start_);
  if (head_.empty() && !tail_.empty()) {
    // The head is all sent: the tail is now the oldest part.
    head_ = std::move(tail_);
    head_start_ = tail_start_;
    tail_.clear();
    drop_below(head_, head_start_);
  }
  if (empty()) {
    head_start_ = total_;
    // Caught up: the memory goes back (a test that printed much leaves none held).
    head_ = std::string();
    tail_ = std::string();
  }
}

LogSender::LogSender(LogSenderOptions options)
    : options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : Clock::real()),
      buffer_(options_.cap),
      backoff_(options_.retry_initial, options_.retry_max) {}

LogSender::~LogSender() { stop(); }

void LogSender::start() {
  thread_ = std::thread([this] { run(); });
}

void LogSender::stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LogSender::begin(JobId job, uint32_t attempt) {
  MutexLock lock(mu_);
  job_ = job;
  attempt_ = attempt;
  ++generation_;
  buffer_ = LogBuffer(options_.cap);
  refused_ = false;
  // A new attempt is tried at once; a dispatcher still away fails it quickly.
  retry_at_ = clock_.now();
  changed_.notify_all();
}

void LogSender::append(std::string_view bytes) {
  MutexLock lock(mu_);
  if (job_ == 0 || refused_) return;
  bool was_empty = buffer_.empty();
  buffer_.append(bytes);
  most_held_ = std::max(most_held_, buffer_.held());
  if (was_empty) changed_.notify_all();  // otherwise the sender is on it already
}

bool LogSender::wait_sent(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(mu_);
  while (true) {
    if (refused_ || failing_ || stopping_) return false;
    if (buffer_.empty() && !sending_) return true;
    if (!changed_.wait_until(lock, deadline)) return buffer_.empty() && !sending_;
  }
}

void LogSender::run() {
  LineClient client(options_.dispatcher.host, options_.dispatcher.port, options_.client);
  MutexLock lock(mu_);
  while (!stopping_) {
    if (job_ == 0 || refused_ || buffer_.empty()) {
      changed_.wait(lock);
      continue;
    }
    if (failing_ && clock_.now() < retry_at_) {
      clock_.wait_until(changed_, lock, retry_at_);
      continue;
    }
    send_next(client);
  }
}

void LogSender::send_next(LineClient& client) {
  auto chunk = buffer_.next(options_.max_chunk);
  if (!chunk) return;
  const uint64_t generation = generation_;
  const uint64_t offset = chunk->offset;
  LogRequest request{job_, attempt_, options_.runner, offset, std::move(chunk->bytes)};
  sending_ = true;
  Result<Reply> reply = run_unlocked(mu_, [&] { return client.call(Request{std::move(request)}); });
  sending_ = false;
  changed_.notify_all();
  if (generation != generation_) return;  // a new attempt began meanwhile
  std::optional<uint64_t> received;
  std::string why;
  if (!reply) {
    why = reply.error();
  } else if (reply->kind == Reply::Kind::Err) {
    spdlog::warn("job {} attempt {}: the dispatcher refused its live log ({}); not sending it",
                 job_, attempt_, reply->reason());
    refused_ = true;
    buffer_ = LogBuffer(options_.cap);
    return;
  } else if (reply->kind == Reply::Kind::Ok && reply->args.size() == 1) {
    received = parse_u64(reply->args[0]);
    // It must take the chunk, even past a gap: a reply that takes none of it would have
    // the sender send it again and again.
    if (received && *received <= offset) {
      received.reset();
      why = "the dispatcher took none of the chunk at offset " + std::to_string(offset);
    }
  }
  if (!received) {
    if (why.empty()) why = "unexpected reply to log";
    client.close();
    if (!failing_)
      spdlog::warn("job {} attempt {}: cannot send its live log ({}); retrying", job_, attempt_,
                   why);
    failing_ = true;
    retry_at_ = clock_.now() + backoff_.next();
    return;
  }
  if (failing_) spdlog::info("job {} attempt {}: sending its live log again", job_, attempt_);
  failing_ = false;
  backoff_.reset();
  buffer_.confirmed(*received);
  if (buffer_.empty()) {
    // Caught up after a backlog: its memory goes back to the system, not only to malloc.
    release_memory(most_held_, mu_);
    most_held_ = 0;
  }
}

}  // namespace ci::runner
