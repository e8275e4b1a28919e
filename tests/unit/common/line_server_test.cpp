// The server and client over real loopback sockets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

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
    return r.ok() && r->kind == Reply::Kind::Err && r->reason() == "busy";
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
