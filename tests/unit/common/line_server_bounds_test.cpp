// The bounds a LineServer keeps, over real loopback sockets: the connection limit and
// who makes room, authentication first (and its deadline and per-address limit), the
// replies a connection may leave unsent and the budget of bodies being received.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "ci/auth.h"
#include "ci/net.h"
#include "line_server_peers.h"
#include "test_support.h"

namespace ci {
namespace {

using namespace std::chrono_literals;
using test::echo_server;
using test::raw_connect;

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
  options.token = "0123456789abcdef0123456789abcdef-token";
  options.service = "dispatcher";
  auto server = echo_server(options);
  ClientOptions good;
  good.token = options.token;
  good.service = "dispatcher";
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
  bad.token = "a-different-token-entirely-of-some-length";
  bad.service = "dispatcher";
  LineClient wrong("127.0.0.1", server->port(), bad);
  auto denied = wrong.call(PingRequest{});
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(denied.error().find("refused the token"), std::string::npos) << denied.error();
}

TEST(LineServer, AnythingButAuthFirstIsRefused) {
  ServerOptions options;
  options.token = "0123456789abcdef0123456789abcdef-token";
  options.service = "dispatcher";
  auto server = echo_server(options);
  int fd = raw_connect(server->port());
  ASSERT_EQ(::write(fd, "ping\n", 5), 5);
  std::string got;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, n);
  ::close(fd);
  // The greeting, then ERR auth required, then the connection is closed (read returned 0).
  EXPECT_EQ(got.rfind("AUTH ", 0), 0u) << got;
  EXPECT_NE(got.find("\nERR auth required\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("pong"), std::string::npos);
}

constexpr const char* kToken = "0123456789abcdef-token";

void send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << "send failed";
    off += static_cast<size_t>(n);
  }
}

// One line, '\n' included; what came before the peer closed or 5 s passed otherwise.
std::string read_line(int fd) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + 5000ms;
  while (line.empty() || line.back() != '\n') {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char c;
    if (::recv(fd, &c, 1, 0) != 1) break;
    line += c;
  }
  return line;
}

// True once the peer has closed the connection (whatever it said before).
bool closed_by_server(int fd) {
  char buf[256];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

// Answers the server's greeting on a raw connection, as LineClient does.
void raw_authenticate(int fd, const std::string& token = kToken) {
  std::string greeting = read_line(fd);
  ASSERT_EQ(greeting.rfind("AUTH ", 0), 0u) << greeting;
  std::string nonce = greeting.substr(5, greeting.size() - 6);
  std::string mine = make_nonce();
  send_all(fd, "auth " + mine + " " + client_proof(token, "dispatcher", nonce, mine) + "\n");
  ASSERT_EQ(read_line(fd), "OK " + server_proof(token, "dispatcher", nonce, mine) + "\n");
}

// A ping on a raw connection is answered: the connection is still served.
void expect_served(int fd, const std::string& what) {
  send_all(fd, "ping\n");
  EXPECT_EQ(read_line(fd), "pong idle\n") << what;
}

ServerOptions with_token() {
  ServerOptions options;
  options.token = kToken;
  options.service = "dispatcher";
  // Long enough that only the limits under test close connections.
  options.idle_timeout = 60000ms;
  options.auth_timeout = 60000ms;
  return options;
}

ClientOptions client_with_token() {
  ClientOptions co;
  co.token = kToken;
  co.service = "dispatcher";
  return co;
}

TEST(LineServer, BeforeAuthenticationAHeaderAnnouncingABodyIsRefusedUnread) {
  auto server = echo_server(with_token());
  int fd = raw_connect(server->port());
  ASSERT_EQ(read_line(fd).rfind("AUTH ", 0), 0u);
  // The header alone: refused at once, without waiting for the body it announces.
  send_all(fd, "results 1 1 127.0.0.1:9 passed 1 0 5 1048576\n");
  EXPECT_EQ(read_line(fd), "ERR auth required\n");
  EXPECT_TRUE(test::wait_until([&] { return closed_by_server(fd); }, 5000ms));
  ::close(fd);
  // The same for a short line that is not `auth`.
  fd = raw_connect(server->port());
  ASSERT_EQ(read_line(fd).rfind("AUTH ", 0), 0u);
  send_all(fd, "status\n");
  EXPECT_EQ(read_line(fd), "ERR auth required\n");
  EXPECT_TRUE(test::wait_until([&] { return closed_by_server(fd); }, 5000ms));
  ::close(fd);
}

TEST(LineServer, AConnectionThatDoesNotAuthenticateInTimeIsClosedAndAnAuthenticatedOneIsNot) {
  auto options = with_token();
  options.auth_timeout = 50ms;  // the idle timeout stays at a minute
  auto server = echo_server(options);
  int authenticated = raw_connect(server->port());
  raw_authenticate(authenticated);
  // Opened after the authenticated one: its deadline passes after that one's would.
  int silent = raw_connect(server->port());
  ASSERT_EQ(read_line(silent).rfind("AUTH ", 0), 0u);
  EXPECT_TRUE(test::wait_until([&] { return closed_by_server(silent); }, 10000ms));
  // Authenticated, a connection has the idle timeout, not the authentication deadline.
  expect_served(authenticated, "the authenticated connection");
  ::close(silent);
  ::close(authenticated);
}

TEST(LineServer, AtTheLimitAConnectionNotYetAuthenticatedMakesRoomFirst) {
  auto options = with_token();
  options.max_connections = 3;
  auto server = echo_server(options);
  // Authenticated and idle longest: the one that made room before.
  int idle = raw_connect(server->port());
  raw_authenticate(idle);
  expect_served(idle, "the idle connection");
  // Authenticated, half-way through a message.
  int busy = raw_connect(server->port());
  raw_authenticate(busy);
  send_all(busy, "sta");
  // Not authenticated, also half-way through a line: however recent, it goes first.
  int stranger = raw_connect(server->port());
  ASSERT_EQ(read_line(stranger).rfind("AUTH ", 0), 0u);
  send_all(stranger, "au");

  LineClient client("127.0.0.1", server->port(), client_with_token());
  auto r = client.call(PingRequest{});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->kind, Reply::Kind::Pong);
  EXPECT_TRUE(test::wait_until([&] { return closed_by_server(stranger); }, 5000ms));
  expect_served(idle, "the idle authenticated connection");
  send_all(busy, "tus\n");
  EXPECT_EQ(read_line(busy), "OK 7\n");
  for (int fd : {idle, busy, stranger}) ::close(fd);
}

TEST(LineServer, EachAddressHasOnlySoManyConnectionsNotYetAuthenticated) {
  auto options = with_token();
  options.max_unauthenticated_per_address = 2;
  auto server = echo_server(options);
  // Authenticated connections do not count: three from the same address.
  std::vector<int> authenticated;
  for (int i = 0; i < 3; ++i) {
    authenticated.push_back(raw_connect(server->port()));
    raw_authenticate(authenticated.back());
  }
  // Two that do not authenticate fill the address's share...
  std::vector<int> strangers;
  for (int i = 0; i < 2; ++i) {
    strangers.push_back(raw_connect(server->port()));
    ASSERT_EQ(read_line(strangers.back()).rfind("AUTH ", 0), 0u);
  }
  // ... so the next is answered ERR busy and closed,
  int refused = raw_connect(server->port());
  EXPECT_EQ(read_line(refused), "ERR busy\n");
  EXPECT_TRUE(test::wait_until([&] { return closed_by_server(refused); }, 5000ms));
  ::close(refused);
  // which a client reports as busy, not as a refusal of its request.
  LineClient client("127.0.0.1", server->port(), client_with_token());
  auto r = client.call(PingRequest{});
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(client.busy()) << (r.ok() ? "served" : r.error());
  for (int fd : authenticated) expect_served(fd, "an authenticated connection");
  // Once one of the two has gone, the address may authenticate again.
  ::close(strangers[0]);
  EXPECT_TRUE(test::wait_until([&] {
    auto again = client.call(PingRequest{});
    return again.ok() && again->kind == Reply::Kind::Pong;
  }));
  for (int fd : authenticated) ::close(fd);
  ::close(strangers[1]);
}

TEST(LineServer, AConnectionIsNotReadFurtherWhileItsRepliesAreUnsent) {
  constexpr size_t kReply = 64u << 10;
  ServerOptions options;
  options.max_unsent = 256u << 10;
  std::atomic<size_t> handled{0};
  LineServer server(options, request_has_body, [&](const Frame&, const std::string&) {
    handled++;
    return Response{serialize_reply(Reply::ok_with_body(std::string(kReply, 'r'))), false};
  });
  ASSERT_TRUE(server.start().ok());
  // A small receive buffer, so that the kernel holds few replies for the client.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int small = 64 << 10;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(server.port());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  // The server is never more replies ahead of the client than the cap and the kernel's
  // buffers hold (its send buffer grows up to tcp_wmem's largest size): not the 1,000
  // or more asked for at once.
  size_t send_buffer = 4u << 20;
  {
    std::ifstream wmem("/proc/sys/net/ipv4/tcp_wmem");
    size_t least = 0, initial = 0, largest = 0;
    if (wmem >> least >> initial >> largest) send_buffer = largest;
  }
  const size_t most_ahead = (options.max_unsent + send_buffer + (2u << 20)) / kReply + 2;
  // Many more requests than that.
  const size_t requests = std::max<size_t>(1000, 4 * most_ahead);
  std::string burst;
  for (size_t i = 0; i < requests; ++i) burst += "status\n";
  send_all(fd, burst);
  ASSERT_TRUE(test::wait_until([&] { return handled.load() > 0; }, 5000ms));

  FrameParser parser({},
                     [](const std::vector<std::string>& w) { return reply_has_body("status", w); });
  size_t received = 0, most_seen_ahead = 0;
  char buf[65536];
  while (received < requests) {
    most_seen_ahead = std::max(most_seen_ahead, handled.load() - received);
    pollfd p{fd, POLLIN, 0};
    ASSERT_GT(::poll(&p, 1, 10000), 0) << "no reply after " << received;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    std::string_view data(buf, static_cast<size_t>(n));
    while (!data.empty()) {
      size_t used = 0;
      auto status = parser.feed(data, &used);
      data.remove_prefix(used);
      ASSERT_NE(status, FrameParser::Status::Bad) << parser.error();
      if (status == FrameParser::Status::Done) {
        EXPECT_EQ(parser.take().body.size(), kReply);
        ++received;
      }
    }
  }
  EXPECT_LE(most_seen_ahead, most_ahead);
  // And every message was answered once the client read.
  EXPECT_EQ(handled.load(), requests);
  ::close(fd);
}

TEST(LineServer, ABodyThatDoesNotFitInTheBudgetWaitsUnreadForTheOneBefore) {
  constexpr size_t kBody = 64u << 10;
  ServerOptions options;
  options.limits.max_body = kBody;
  options.body_budget = kBody;  // one body at a time
  std::mutex mutex;
  std::vector<char> order;  // the first byte of each body handled
  std::unique_ptr<LineServer> server = std::make_unique<LineServer>(
      options, request_has_body, [&](const Frame& f, const std::string&) {
        if (f.verb() == "ping") return Response{serialize_reply(Reply::pong({"idle"})), false};
        std::lock_guard<std::mutex> lock(mutex);
        order.push_back(f.body.empty() ? '?' : f.body[0]);
        return Response{serialize_reply(Reply::ok()), false};
      });
  ASSERT_TRUE(server->start().ok());
  auto handled = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    return std::string(order.begin(), order.end());
  };
  std::string header = "results 1 1 127.0.0.1:9 passed 1 0 5 " + std::to_string(kBody) + "\n";
  // The first connection takes the whole budget and sends half its body; the ping
  // before the header is answered once the header has been read.
  int first = raw_connect(server->port());
  send_all(first, "ping\n" + header + std::string(kBody / 2, 'a'));
  ASSERT_EQ(read_line(first), "pong idle\n");
  EXPECT_EQ(server->stats().body_bytes, kBody);
  // The second sends all of its body: it waits, unread.
  int second = raw_connect(server->port());
  send_all(second, header + std::string(kBody, 'b'));
  ASSERT_TRUE(test::wait_until([&] { return server->stats().bodies_waiting == 1; }, 5000ms));
  EXPECT_EQ(handled(), "");
  // The first body ends: then the second is read and handled, and nothing is lost.
  send_all(first, std::string(kBody / 2, 'a'));
  EXPECT_EQ(read_line(first), "OK\n");
  EXPECT_EQ(read_line(second), "OK\n");
  EXPECT_EQ(handled(), "ab");
  EXPECT_EQ(server->stats().body_bytes, 0u);
  EXPECT_EQ(server->stats().bodies_waiting, 0u);
  ::close(first);
  ::close(second);
}

}  // namespace
}  // namespace ci
