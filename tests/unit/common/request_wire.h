// Requests through the wire as the protocol tests see them: serialized, framed and
// parsed back.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "ci/framing.h"
#include "ci/protocol.h"

namespace ci::test {

inline std::string wire(const Request& request) { return serialize(serialize_request(request)); }

inline Result<Request> parse_bytes(const std::string& bytes) {
  FrameParser parser({}, request_has_body);
  size_t used = 0;
  EXPECT_EQ(parser.feed(bytes, &used), FrameParser::Status::Done) << bytes;
  return parse_request(parser.take());
}

template <typename T>
T round_trip(const T& request) {
  auto parsed = parse_bytes(wire(Request{request}));
  EXPECT_TRUE(parsed.ok()) << parsed.error();
  return parsed.ok() ? std::get<T>(*parsed) : T{};
}

// "accepted", or the reason the request is refused.
inline std::string reason(const std::string& bytes) {
  auto r = parse_bytes(bytes);
  return r.ok() ? std::string("accepted") : r.error();
}

}  // namespace ci::test
