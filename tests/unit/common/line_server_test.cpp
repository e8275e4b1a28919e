// The server and client over real loopback sockets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "ci/net.h"
#include "test_support.h"

namespace ci {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<LineServer> echo_server(ServerOptions options = {}) {
  auto server = std::make_unique<LineServer>(
      options, request_has_body, [](const Frame& f, const std::string&) {
        if (f.verb() == "ping") return Response{serialize_reply(Reply::pong({"idle"})), false};
        if (f.verb() == "status")
          return Response{
              serialize_reply(Reply::ok_with_body("words " + std::to_string(f.words.size()))),
              false};
        return Response{serialize_reply(Reply::err("unknown verb")), true};
      });
  EXPECT_TRUE(server->start().ok());
  return server;
}

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

int raw_connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

TEST(LineServer, AtTheLimitTheIdlestConnectionMakesRoom) {
  ServerOptions options;
  options.max_connections = 2;
  auto server = echo_server(options);
  LineClient a("127.0.0.1", server->port()), b("127.0.0.1", server->port());
  ASSERT_TRUE(a.call(PingRequest{}).ok());
  ASSERT_TRUE(b.call(PingRequest{}).ok());
  // A third client is served at once: idle connections never lock anyone out.
  LineClient c("127.0.0.1", server->port());
  auto r = c.call(PingRequest{});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->kind, Reply::Kind::Pong);
  // The one closed to make room reconnects transparently on its next call.
  auto again = a.call(PingRequest{});
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again->kind, Reply::Kind::Pong);
}

TEST(LineServer, AtTheLimitWithNoIdleConnectionTheNewOneGetsErrBusy) {
  ServerOptions options;
  options.max_connections = 2;
  auto server = echo_server(options);
  // Two connections each half-way through a message.
  int fds[2];
  for (int& fd : fds) {
    fd = raw_connect(server->port());
    ASSERT_EQ(::write(fd, "sta", 3), 3);
  }
  LineClient probe("127.0.0.1", server->port());
  ASSERT_TRUE(test::wait_until([&] {
    auto r = probe.call(PingRequest{});
    probe.close();
    // Not served: the client says so, as a failure to retry rather than an answer.
    return !r.ok() && probe.busy() && r.error().find("busy") != std::string::npos;
  }));
  for (int fd : fds) ::close(fd);
  EXPECT_TRUE(test::wait_until([&] {
    auto r = probe.call(PingRequest{});
    return r.ok() && r->kind == Reply::Kind::Pong;
  }));
}

TEST(LineServer, TokenGuardsEveryVerb) {
  ServerOptions options;
  options.token = "0123456789abcdef-token";
  auto server = echo_server(options);
  ClientOptions good;
  good.token = options.token;
  LineClient with_token("127.0.0.1", server->port(), good);
  auto ok = with_token.call(PingRequest{});
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->kind, Reply::Kind::Pong);

  // Without authenticating first, nothing works.
  LineClient without("127.0.0.1", server->port());
  auto refused = without.call(PingRequest{});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("requires authentication"), std::string::npos) << refused.error();

  ClientOptions bad;
  bad.token = "a-different-token-entirely";
  LineClient wrong("127.0.0.1", server->port(), bad);
  auto denied = wrong.call(PingRequest{});
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(denied.error().find("refused the token"), std::string::npos) << denied.error();
}

TEST(LineServer, AnythingButAuthFirstIsRefused) {
  ServerOptions options;
  options.token = "0123456789abcdef-token";
  auto server = echo_server(options);
  int fd = raw_connect(server->port());
  ASSERT_EQ(::write(fd, "ping\n", 5), 5);
  std::string got;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, n);
  ::close(fd);
  // The greeting, then ERR auth, then the connection is closed (read returned 0).
  EXPECT_EQ(got.rfind("AUTH ", 0), 0u) << got;
  EXPECT_NE(got.find("\nERR auth\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("pong"), std::string::npos);
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
  uint16_t port;
  {
    auto server = echo_server();
    port = server->port();
  }
  LineClient client("127.0.0.1", port);
  auto r = client.call(PingRequest{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("cannot connect"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace ci
