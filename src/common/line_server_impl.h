// The inside of a LineServer, shared by its files: line_server.cpp (start, accept,
// stop), line_server_admission.cpp (the bounds: connections, authentication attempts,
// the body budget) and line_connection.cpp (one connection).
#pragma once

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ci/mutex.h"
#include "ci/net.h"

namespace ci {

namespace line_server {
class Connection;
}

// Connections point at Impl, which outlives them: destroying `io` destroys every
// pending handler and so every connection, and the members they touch are declared
// before it.
struct LineServer::Impl {
  using Connection = line_server::Connection;

  ServerOptions options;
  BodyRule body_rule;
  AsyncFrameHandler handler;
  std::atomic<size_t> connections{0};
  std::atomic<bool> stopped{false};
  uint16_t bound_port = 0;

  // Guards the members below. A connection's destructor takes it: a connection pointer
  // obtained under it is only released once it is unlocked (hence the EXCLUDES below,
  // and the copies released after the lock).
  Mutex mutex;
  std::list<std::weak_ptr<Connection>> sessions GUARDED_BY(mutex);
  std::map<std::string, int> auth_failures GUARDED_BY(mutex);  // by address, no port
  // Connections not authenticated yet, by peer address (with a token only).
  std::map<std::string, size_t> unauthenticated GUARDED_BY(mutex);
  // Of the body budget, held by connections receiving a body.
  size_t body_bytes GUARDED_BY(mutex) = 0;
  // Connections waiting, first come first served, for their body to fit in the budget.
  std::deque<std::pair<std::shared_ptr<Connection>, size_t>> body_waiting GUARDED_BY(mutex);

  asio::io_context io;
  asio::ip::tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;

  void accept() EXCLUDES(mutex);
  // Closes a connection to make room for a new one: one not authenticated yet, oldest
  // first, or else the one idle longest. False when there is none.
  bool make_room() EXCLUDES(mutex);
  // Counts a new connection from `ip` that must authenticate; false (and not counted)
  // when that address already has as many as it may.
  bool admit_unauthenticated(const std::string& ip) EXCLUDES(mutex);
  void left_unauthenticated(const std::string& ip) EXCLUDES(mutex);
  size_t body_budget() const { return std::max(options.body_budget, options.limits.max_body); }
  // Takes `n` bytes of the body budget for `connection`, or queues it (false): it is
  // then given them later, by Connection::body_granted on its own strand.
  bool reserve_body(const std::shared_ptr<Connection>& connection, size_t n) EXCLUDES(mutex);
  void release_body(size_t n) EXCLUDES(mutex);
  // How long to wait before answering a failed authentication from `ip`: repeated
  // failures are slowed down, doubling up to 5 s.
  std::chrono::milliseconds auth_failed(const std::string& ip) EXCLUDES(mutex);
  void auth_succeeded(const std::string& ip) EXCLUDES(mutex);
};

}  // namespace ci
