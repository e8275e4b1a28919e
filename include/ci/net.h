// TCP server and client for the line protocol, over standalone Asio (kept out of
// this header). Every read and write is bounded in size and time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ci/framing.h"
#include "ci/protocol.h"
#include "ci/result.h"

namespace ci {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: an ephemeral port
  FrameLimits limits;
  // A connection that has not completed a message within this long is closed.
  std::chrono::milliseconds idle_timeout{10000};
  // At the limit, a connection that has not authenticated yet (oldest first) is closed
  // to make room; failing that, the connection idle longest (with no message half-sent).
  // When there is none, the new one is answered "ERR busy".
  size_t max_connections = 256;
  size_t max_messages = 100000;  // per connection; then it is closed after the reply
  size_t threads = 1;
  std::string token;  // non-empty: every connection must authenticate first (ci/auth.h)
  // The name this server proves itself under and checks clients' proofs against:
  // kDispatcherService, kRunnerService or kObserverService (ci/auth.h). Required with a
  // token: start() refuses a server with a token and no service.
  std::string service;
  // With a token: how long a new connection has to authenticate (never longer than
  // idle_timeout). Before it has, the only message read is a short `auth` line with
  // no body; anything else is answered "ERR auth required" and the connection closed.
  std::chrono::milliseconds auth_timeout{5000};
  // With a token: connections from one address that have not authenticated yet; a new
  // one over this is answered "ERR busy". Authenticated connections do not count.
  size_t max_unauthenticated_per_address = 64;
  // A connection reads no further message while this many bytes of its replies are
  // unsent, and goes on once they are written: a peer that never reads holds this much.
  size_t max_unsent = 4u << 20;
  // Bytes of message bodies being received at once, across all connections (never less
  // than limits.max_body). A body that does not fit waits, unread and without counting
  // against idle_timeout, until the bodies before it are in; first come, first served.
  size_t body_budget = 64u << 20;
};

struct Response {
  Frame frame;
  bool close = false;  // close the connection once the frame is written
};

// Called on a server thread for each complete message; `peer` is "ip:port".
using FrameHandler = std::function<Response(const Frame& request, const std::string& peer)>;

// Answers one message; may be called from any thread, exactly once.
using Responder = std::function<void(Response)>;
// Like FrameHandler, but the answer may come later (after a disk write, say): the
// connection reads no further message until `respond` has been called. The handler
// must not block: a slow answer holds only its own connection.
using AsyncFrameHandler =
    std::function<void(const Frame& request, const std::string& peer, Responder respond)>;

// A server answering one message at a time per connection, many connections at
// once. Malformed framing is answered "ERR <reason>" and the connection closed.
class LineServer {
 public:
  LineServer(ServerOptions options, BodyRule body_rule, FrameHandler handler);
  LineServer(ServerOptions options, BodyRule body_rule, AsyncFrameHandler handler);
  ~LineServer();
  LineServer(const LineServer&) = delete;
  LineServer& operator=(const LineServer&) = delete;

  // Binds (with address reuse, so a restart binds at once), listens and starts the
  // server threads.
  Result<void> start();
  uint16_t port() const;

  struct Stats {
    size_t connections = 0;
    size_t body_bytes = 0;      // of the body budget, held by bodies being received
    size_t bodies_waiting = 0;  // connections waiting for room in the body budget
  };
  Stats stats() const;

  // Closes the listener and every connection and joins the threads. Idempotent.
  void stop();

  struct Impl;  // public only so that the connections it owns can name it

 private:
  std::unique_ptr<Impl> impl_;
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds io_timeout{10000};  // for a whole request and its reply
  FrameLimits limits;
  std::string token;  // non-empty: answer the server's AUTH greeting on connect
  // The service the client means to call (ci/auth.h): its proof is bound to it, and the
  // server must prove it is that service. Required with a token.
  std::string service;
};

// A blocking client: one request, one reply; the connection is kept for the next
// call and reopened after any error. Not thread-safe: one per thread.
class LineClient {
 public:
  LineClient(std::string host, uint16_t port, ClientOptions options = {});
  ~LineClient();
  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;

  Result<Reply> call(const Request& request);
  // Sends a raw frame; the reply is framed by reply_has_body for its verb.
  Result<Frame> call_frame(const Frame& request);
  // True when the last call failed because the server was at a connection limit (it
  // answered "ERR busy"): the request was not served, and may be sent again later.
  bool busy() const;
  void close();
  std::string address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ci
