// One connection of a LineServer: reads messages, answers them one at a time through
// the server's handler, and applies the server's bounds (authentication first, the
// body budget, unsent replies, idle deadlines). Everything but the few calls marked
// below runs on the connection's own strand.
#pragma once

#include <array>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "ci/mutex.h"
#include "ci/net.h"
#include "line_server_impl.h"

namespace ci::line_server {

// Idle and opening times are on the real clock: they order real sockets.
using SteadyClock = std::chrono::steady_clock;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `unauthenticated`: counted in the server's connections not authenticated yet.
  Connection(asio::ip::tcp::socket socket, std::string ip, std::string peer,
             LineServer::Impl* server, bool unauthenticated);
  ~Connection();

  void start();

  // Called from other connections' threads (make_room, release_body).
  // True when no part of a message is waiting: safe to close to make room.
  bool idle() const { return !in_message_.load(); }
  SteadyClock::rep idle_since() const { return idle_since_.load(); }
  bool authenticated() const { return authenticated_.load(); }
  SteadyClock::rep opened_at() const { return opened_at_; }
  // True for the first caller only: a connection is closed to make room once.
  bool mark_evicted() { return !evicted_.exchange(true); }
  // The body waiting for room has `n` bytes of the budget now.
  void body_granted(size_t n);
  // Closes this connection on its own strand.
  void close_from_outside();

 private:
  void touch() { idle_since_ = SteadyClock::now().time_since_epoch().count(); }
  void arm_deadline();
  void read();
  // Parses every complete message in `data`, queueing the replies, then writes them.
  void process(std::string_view data) EXCLUDES(answer_mutex_);
  // The handler's answer, on whatever thread it came.
  void answered(Response response) EXCLUDES(answer_mutex_);
  // Goes on with the input left in rest_, then reads more.
  void resume();
  void refuse_unauthenticated();
  void now_authenticated();
  void take_answer(Response response);
  void write(std::string text, bool close, std::chrono::milliseconds delay);
  void shutdown();

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  LineServer::Impl* server_;
  FrameParser parser_;
  std::array<char, 16384> buf_{};
  std::string out_;   // replies not written yet
  std::string rest_;  // input not parsed yet, while an answer is awaited
  bool close_ = false;
  std::chrono::milliseconds delay_{0};
  // Whether the handler has answered the message it was given: the answer may come
  // inside the handler's call, on this strand, or later on any thread.
  enum class AnswerState { None, Asked, Answered, Waiting };
  Mutex answer_mutex_;
  AnswerState answer_state_ GUARDED_BY(answer_mutex_) = AnswerState::None;
  Response answer_ GUARDED_BY(answer_mutex_);
  std::string peer_;
  std::string ip_;
  std::string nonce_;
  // Set on the connection's strand, read from other connections' threads (make_room).
  std::atomic<bool> authenticated_;
  bool counted_unauthenticated_;
  bool closed_ = false;
  size_t reserved_ = 0;  // bytes of the body budget this connection holds
  size_t messages_ = 0;
  // Read from other connections' threads (make_room).
  std::atomic<bool> in_message_{false};
  std::atomic<SteadyClock::rep> idle_since_{0};
  std::atomic<bool> evicted_{false};
  const SteadyClock::rep opened_at_;
};

}  // namespace ci::line_server
