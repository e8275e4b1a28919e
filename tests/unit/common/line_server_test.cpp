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

TEST(LineServer, ConnectionsOverTheLimitGetErrBusy) {
  ServerOptions options;
  options.max_connections = 2;
  auto server = echo_server(options);
  LineClient a("127.0.0.1", server->port()), b("127.0.0.1", server->port());
  ASSERT_TRUE(a.call(PingRequest{}).ok());
  ASSERT_TRUE(b.call(PingRequest{}).ok());
  LineClient c("127.0.0.1", server->port());
  auto r = c.call(PingRequest{});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->kind, Reply::Kind::Err);
  EXPECT_EQ(r->reason(), "busy");
  a.close();
  EXPECT_TRUE(test::wait_until([&] {
    auto again = c.call(PingRequest{});
    return again.ok() && again->kind == Reply::Kind::Pong;
  }));
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
