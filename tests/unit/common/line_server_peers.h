// For the LineServer tests: a server that answers `ping` with "pong idle", `status` with
// OK and a body counting the words of the request, and anything else with ERR, closing;
// and a raw connection, to send what LineClient never would.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "ci/net.h"

namespace ci::test {

inline std::unique_ptr<LineServer> echo_server(ServerOptions options = {}) {
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

// A blocking TCP socket connected to `port` on the loopback address.
inline int raw_connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

}  // namespace ci::test
