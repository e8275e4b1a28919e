// The token handshake of ci/auth.h between LineServer and LineClient over loopback,
// and against peers that play it by hand.
#include <gtest/gtest.h>

#include "ci/auth.h"
#include "ci/net.h"
#include "raw_peer.h"
#include "test_support.h"

namespace ci {
namespace {

using namespace std::chrono_literals;
using test::RawServer;
using test::RawSocket;

const std::string kToken = "c2VjcmV0LW9mLWF0LWxlYXN0LTMyLWNoYXJhY3RlcnM=";

std::unique_ptr<LineServer> ping_server(const std::string& service,
                                        const std::string& token = kToken) {
  ServerOptions options;
  options.token = token;
  options.service = service;
  auto server =
      std::make_unique<LineServer>(options, request_has_body, [](const Frame&, const std::string&) {
        return Response{serialize_reply(Reply::pong({"idle"})), false};
      });
  auto started = server->start();
  EXPECT_TRUE(started.ok()) << started.error();
  return server;
}

ClientOptions client_for(const std::string& service, const std::string& token = kToken) {
  ClientOptions options;
  options.token = token;
  options.service = service;
  options.connect_timeout = 5000ms;
  options.io_timeout = 5000ms;
  return options;
}

// Reads the greeting of a real server and answers it with `answer(server_nonce)`;
// returns the server's reply line.
std::string answer_greeting(uint16_t port,
                            const std::function<std::string(const std::string&)>& answer) {
  auto socket = RawSocket::connect(port);
  if (!socket) return "cannot connect";
  auto greeting = socket->read_line(5000ms);
  if (!greeting || greeting->rfind("AUTH ", 0) != 0) return "no greeting";
  std::string server_nonce = greeting->substr(5);
  EXPECT_TRUE(is_nonce(server_nonce)) << server_nonce;
  socket->send(answer(server_nonce) + "\n");
  return socket->read_line(10000ms).value_or("closed");
}

TEST(Handshake, TheServerProvesItselfWithItsOwnProof) {
  auto server = ping_server(kDispatcherService);
  const std::string client_nonce = make_nonce();
  std::string sent_nonce;
  std::string reply = answer_greeting(server->port(), [&](const std::string& server_nonce) {
    sent_nonce = server_nonce;
    return "auth " + client_nonce + " " +
           client_proof(kToken, kDispatcherService, server_nonce, client_nonce);
  });
  EXPECT_EQ(reply, "OK " + server_proof(kToken, kDispatcherService, sent_nonce, client_nonce));

  LineClient client("127.0.0.1", server->port(), client_for(kDispatcherService));
  auto pong = client.call(PingRequest{});
  ASSERT_TRUE(pong.ok()) << pong.error();
  EXPECT_EQ(pong->kind, Reply::Kind::Pong);
}

// Each on a fresh server: a failed attempt slows the next answers to the same address.
TEST(Handshake, AnyProofButTheOneForThisServiceAndBothNoncesIsRefused) {
  const std::string cn = make_nonce();
  const std::vector<std::pair<std::string, std::function<std::string(const std::string&)>>>
      answers = {
          {"made for the observer",
           [&](const std::string& sn) {
             return "auth " + cn + " " + client_proof(kToken, kObserverService, sn, cn);
           }},
          {"made for a runner",
           [&](const std::string& sn) {
             return "auth " + cn + " " + client_proof(kToken, kRunnerService, sn, cn);
           }},
          {"the server's direction",
           [&](const std::string& sn) {
             return "auth " + cn + " " + server_proof(kToken, kDispatcherService, sn, cn);
           }},
          {"another client nonce",
           [&](const std::string& sn) {
             return "auth " + make_nonce() + " " + client_proof(kToken, kDispatcherService, sn, cn);
           }},
          {"another server nonce",
           [&](const std::string&) {
             return "auth " + cn + " " + client_proof(kToken, kDispatcherService, make_nonce(), cn);
           }},
          {"another token",
           [&](const std::string& sn) {
             return "auth " + cn + " " +
                    client_proof("another-secret-of-at-least-32-characters", kDispatcherService, sn,
                                 cn);
           }},
          {"the old one-nonce form",
           [&](const std::string& sn) { return "auth " + hmac_sha256_hex(kToken, sn); }},
          {"a client nonce that is not one",
           [&](const std::string& sn) {
             return "auth x " + client_proof(kToken, kDispatcherService, sn, "x");
           }},
          {"an extra word",
           [&](const std::string& sn) {
             return "auth " + cn + " " + client_proof(kToken, kDispatcherService, sn, cn) + " x";
           }},
      };
  for (const auto& [what, answer] : answers) {
    auto server = ping_server(kDispatcherService);
    EXPECT_EQ(answer_greeting(server->port(), answer), "ERR auth") << what;
  }
}

TEST(Handshake, AClientExpectingAnotherServiceIsRefused) {
  auto server = ping_server(kDispatcherService);
  LineClient client("127.0.0.1", server->port(), client_for(kObserverService));
  auto reply = client.call(PingRequest{});
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().find("refused the token"), std::string::npos) << reply.error();
}

TEST(Handshake, AServerWithATokenMustNameItsService) {
  ServerOptions options;
  options.token = kToken;
  LineServer server(options, request_has_body, [](const Frame&, const std::string&) {
    return Response{serialize_reply(Reply::ok()), false};
  });
  auto started = server.start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().find("service"), std::string::npos) << started.error();
}

TEST(Handshake, AClientWithATokenMustNameTheServiceItExpects) {
  auto server = ping_server(kDispatcherService);
  LineClient client("127.0.0.1", server->port(), client_for(""));
  auto reply = client.call(PingRequest{});
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().find("names no service"), std::string::npos) << reply.error();
}

TEST(Handshake, TheClientRefusesAServerThatDoesNotProveItHoldsTheToken) {
  const std::vector<
      std::pair<std::string, std::function<std::string(const std::string&, const std::string&)>>>
      replies = {
          {"OK with garbage", [](auto&, auto&) { return "OK " + std::string(64, '0') + "\n"; }},
          {"plain OK", [](auto&, auto&) { return std::string("OK\n"); }},
          {"the client's own proof sent back",
           [](const std::string& sn, const std::string& cn) {
             return "OK " + client_proof(kToken, kDispatcherService, sn, cn) + "\n";
           }},
          {"the proof of another service",
           [](const std::string& sn, const std::string& cn) {
             return "OK " + server_proof(kToken, kObserverService, sn, cn) + "\n";
           }},
          {"the proof under another token",
           [](const std::string& sn, const std::string& cn) {
             return "OK " +
                    server_proof("another-secret-of-at-least-32-characters", kDispatcherService, sn,
                                 cn) +
                    "\n";
           }},
      };
  for (const auto& [what, reply] : replies) {
    test::HandshakeFake fake(reply);
    LineClient client("127.0.0.1", fake.port(), client_for(kDispatcherService));
    auto pong = client.call(PingRequest{});
    ASSERT_FALSE(pong.ok()) << what;
    EXPECT_NE(pong.error().find("the server at 127.0.0.1:" + std::to_string(fake.port()) +
                                " failed to prove it holds the token"),
              std::string::npos)
        << what << ": " << pong.error();
    // It closed the connection without sending its request.
    ASSERT_TRUE(test::wait_until([&] { return fake.closed_quietly() == 1; }, 10000ms)) << what;
    EXPECT_EQ(fake.sent_after_reply(), "") << what;
  }

  // The same fake with the right proof: the request follows.
  test::HandshakeFake honest([](const std::string& sn, const std::string& cn) {
    return "OK " + server_proof(kToken, kDispatcherService, sn, cn) + "\n";
  });
  ClientOptions options = client_for(kDispatcherService);
  options.io_timeout = 500ms;  // the fake never answers the ping
  LineClient client("127.0.0.1", honest.port(), options);
  auto pong = client.call(PingRequest{});
  EXPECT_FALSE(pong.ok());
  ASSERT_TRUE(test::wait_until([&] { return honest.sent_after_reply() == "ping\n"; }, 10000ms))
      << honest.sent_after_reply();
}

// What a client says when the greeting is not one it can answer.
TEST(Handshake, AGreetingTheClientCannotAnswerIsAClearError) {
  const std::vector<std::pair<std::string, std::string>> greetings = {
      {"ERR busy\n", "is busy (too many connections)"},
      {"AUTH 1234\n", "sent a malformed authentication greeting"},
      {"AUTH " + std::string(64, 'A') + "\n", "sent a malformed authentication greeting"},
      {"OK\n", "did not ask for authentication"},
  };
  for (const auto& [greeting, error] : greetings) {
    RawServer server([greeting = greeting](RawSocket& socket) {
      socket.send(greeting);
      std::string sent;
      (void)socket.closes_without_sending(10000ms, &sent);
    });
    LineClient client("127.0.0.1", server.port(), client_for(kDispatcherService));
    auto reply = client.call(PingRequest{});
    ASSERT_FALSE(reply.ok()) << greeting;
    EXPECT_NE(reply.error().find(error), std::string::npos) << greeting << ": " << reply.error();
  }
}

}  // namespace
}  // namespace ci
