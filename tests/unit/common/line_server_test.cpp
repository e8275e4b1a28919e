// The server and client over real loopback sockets: requests and replies, answers that
// come later, the client's timeouts. The server's bounds are line_server_bounds_test.cpp.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "ci/net.h"
#include "line_server_peers.h"
#include "test_support.h"

namespace ci {
namespace {

using namespace std::chrono_literals;
using test::echo_server;
using test::raw_connect;

TEST(LineServer, ManyRequestsOnOneConnection) {
  auto server = echo_server();
  LineClient client("127.0.0.1", server->port());
  for (int i = 0; i < 100; ++i) {
    auto r = client.call(PingRequest{});
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r->kind, Reply::Kind::Pong);
  }
  auto s = client.call(StatusRequest{});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->body, "words 1");
}

TEST(LineServer, ClientReconnectsAfterTheServerClosedAnIdleConnection) {
  ServerOptions options;
  options.idle_timeout = 50ms;
  auto server = echo_server(options);
  LineClient client("127.0.0.1", server->port());
  ASSERT_TRUE(client.call(PingRequest{}).ok());
  // The server drops the idle connection; the next call still succeeds.
  ASSERT_TRUE(test::wait_until([&] { return client.call(PingRequest{}).ok(); }, 5000ms));
}

// A server whose answers to `status` come later, from another thread, when the test
// releases them; `ping` is answered at once.
class DeferredServer {
 public:
  explicit DeferredServer(ServerOptions options = {}) {
    server_ = std::make_unique<LineServer>(
        options, request_has_body, [this](const Frame& f, const std::string&, Responder respond) {
          if (f.verb() == "ping") return respond({serialize_reply(Reply::pong()), false});
          std::lock_guard<std::mutex> lock(mutex_);
          ++asked_;
          held_.push_back({std::move(respond), f.words.size() > 1 ? f.words[1] : ""});
          cv_.notify_all();
        });
    EXPECT_TRUE(server_->start().ok());
  }
  ~DeferredServer() {
    release_all();
    server_->stop();
  }
  uint16_t port() const { return server_->port(); }
  size_t held() {
    std::lock_guard<std::mutex> lock(mutex_);
    return held_.size();
  }
  // Deferred requests the handler has been given in all.
  size_t asked() {
    std::lock_guard<std::mutex> lock(mutex_);
    return asked_;
  }
  // Answers every held request, from a thread of its own.
  void release_all() {
    std::deque<Held> taken;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      taken.swap(held_);
    }
    std::thread([taken = std::move(taken)]() mutable {
      // A bare `status` gets the body its reply has; `status x` gets "OK x".
      for (auto& h : taken)
        h.respond(
            {serialize_reply(h.arg.empty() ? Reply::ok_with_body("later") : Reply::ok({h.arg})),
             false});
    }).join();
  }

 private:
  struct Held {
    Responder respond;
    std::string arg;
  };
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Held> held_;
  size_t asked_ = 0;
  std::unique_ptr<LineServer> server_;
};

TEST(LineServerAsync, AWaitingAnswerHoldsOnlyItsOwnConnection) {
  DeferredServer server;
  std::atomic<bool> answered{false};
  std::thread waiting([&] {
    LineClient slow("127.0.0.1", server.port());
    auto r = slow.call(StatusRequest{});
    EXPECT_TRUE(r.ok()) << r.error();
    if (r.ok()) {
      EXPECT_EQ(r->body, "later");
    }
    answered = true;
  });
  ASSERT_TRUE(test::wait_until([&] { return server.held() == 1; }, 5000ms));
  // Another connection is served while the first waits.
  LineClient other("127.0.0.1", server.port());
  auto pong = other.call(PingRequest{});
  ASSERT_TRUE(pong.ok()) << pong.error();
  EXPECT_EQ(pong->kind, Reply::Kind::Pong);
  EXPECT_FALSE(answered);
  server.release_all();
  waiting.join();
  EXPECT_TRUE(answered);
}

TEST(LineServerAsync, PipelinedMessagesAreAnsweredInOrderOneAtATime) {
  DeferredServer server;
  int fd = raw_connect(server.port());
  std::string burst = "status a\nstatus b\nping\nstatus c\n";
  ASSERT_EQ(::write(fd, burst.data(), burst.size()), static_cast<ssize_t>(burst.size()));
  // One message at a time: b is not read before a is answered.
  ASSERT_TRUE(test::wait_until([&] { return server.held() == 1; }, 5000ms));
  std::string got;
  for (size_t round = 1; round <= 3; ++round) {
    ASSERT_TRUE(test::wait_until([&] { return server.held() == 1; }, 5000ms));
    // The next message is not handed over before this one is answered.
    EXPECT_EQ(server.asked(), round);
    server.release_all();
  }
  while (got.size() < std::string("OK a\nOK b\npong\nOK c\n").size()) {
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, "OK a\nOK b\npong\nOK c\n");
  ::close(fd);
}

TEST(LineServerAsync, AnAwaitedAnswerIsNotCutByTheIdleTimeout) {
  ServerOptions options;
  options.idle_timeout = 50ms;
  DeferredServer server(options);
  std::thread waiting([&] {
    ClientOptions co;
    co.io_timeout = 10000ms;
    LineClient slow("127.0.0.1", server.port(), co);
    auto r = slow.call(StatusRequest{});
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r->kind, Reply::Kind::Ok);
  });
  ASSERT_TRUE(test::wait_until([&] { return server.held() == 1; }, 5000ms));
  // An idle connection opened after the waiting one is closed by the idle timeout:
  // the waiting one's deadline has passed too.
  int idle = raw_connect(server.port());
  ASSERT_TRUE(test::wait_until(
      [&] {
        char c;
        return ::recv(idle, &c, 1, MSG_DONTWAIT) == 0;
      },
      5000ms));
  ::close(idle);
  server.release_all();
  waiting.join();
}

TEST(LineClient, TimesOutOnAPeerThatNeverAnswers) {
  // A listening socket that nobody serves: the kernel completes the connection, and
  // no reply ever comes.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ClientOptions co;
  co.io_timeout = 200ms;
  LineClient client("127.0.0.1", ntohs(addr.sin_port), co);
  auto r = client.call(PingRequest{});
  ::close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("no reply"), std::string::npos) << r.error();
}

TEST(LineClient, ConnectionRefusedIsAnError) {
  // A port bound and held but not listening: a connection to it is refused, and no
  // other socket of the machine can start listening on it meanwhile (as one could on
  // the port of a server that has gone).
  test::HeldPort held;
  ASSERT_NE(held.port(), 0);
  LineClient client("127.0.0.1", held.port());
  auto r = client.call(PingRequest{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("cannot connect"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace ci
