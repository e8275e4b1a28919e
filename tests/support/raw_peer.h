// Plain loopback sockets for tests that play a peer by hand, byte for byte: a fake
// server that answers a handshake wrongly, or one that relays it to a real daemon.
// Every wait has a deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ci::test {

// One TCP connection.
class RawSocket {
 public:
  explicit RawSocket(int fd) : fd_(fd) {}
  ~RawSocket();
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  // Connects to 127.0.0.1:port; nullptr if that fails.
  static std::unique_ptr<RawSocket> connect(uint16_t port);

  bool send(const std::string& bytes);
  // The next line without its '\n'; nullopt when the peer closes first or `timeout`
  // passes.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // True when the peer closes the connection within `timeout` without sending another
  // byte; what it sent instead, if anything, is appended to *sent.
  bool closes_without_sending(std::chrono::milliseconds timeout, std::string* sent);

 private:
  int fd_;
  std::string buffer_;  // bytes read past the last line
};

// A listener on 127.0.0.1 and an ephemeral port, serving each connection it accepts
// with `serve` on its own thread, until destroyed.
class RawServer {
 public:
  explicit RawServer(std::function<void(RawSocket&)> serve);
  ~RawServer();
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  size_t accepted() const { return accepted_.load(); }

 private:
  void accept_loop();

  std::function<void(RawSocket&)> serve_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> accepted_{0};
  std::mutex mutex_;
  std::vector<std::thread> connections_;
  std::thread acceptor_;
};

// A server that greets like a real one with a token ("AUTH <nonce>"), reads the
// client's "auth <client-nonce> <proof>" and answers it with
// `reply(server_nonce, client_nonce)` (a line, '\n' included) whatever the proof; then
// notes what the client sends before it closes the connection. For checking that
// clients refuse a server that cannot prove it holds the token.
class HandshakeFake {
 public:
  using Reply =
      std::function<std::string(const std::string& server_nonce, const std::string& client_nonce)>;
  explicit HandshakeFake(Reply reply);

  uint16_t port() const { return server_.port(); }
  std::string address() const { return server_.address(); }
  // Clients that were sent the reply, and those of them that then closed the connection
  // without sending anything more.
  size_t answered() const { return answered_.load(); }
  size_t closed_quietly() const { return closed_quietly_.load(); }
  // What clients sent after the reply, all connections together.
  std::string sent_after_reply();

 private:
  void serve(RawSocket& socket);

  Reply reply_;
  std::atomic<size_t> answered_{0};
  std::atomic<size_t> closed_quietly_{0};
  std::mutex mutex_;
  std::string sent_after_reply_;
  RawServer server_;  // last: its threads use the members above
};

}  // namespace ci::test
