// Fuzz target for the line protocol: FrameParser, parse_request and parse_reply.
//
// Whatever the bytes, nothing may crash, leak or reach undefined behaviour, and:
//  - framing does not depend on how the bytes arrive: the input fed in one piece and
//    split in two at a point derived from the input gives the same frames and end;
//  - a frame serialized and framed again is the same frame;
//  - a request that parses survives a round trip: serialize_request, framed and parsed
//    again, serializes to the same bytes;
//  - a reply that parses serializes back to the bytes of its frame;
//  - a reply that parses as a typed one (status, runners, jobs, pong) survives a round
//    trip: to_reply, serialized, framed and parsed again, is the same value;
//  - the ERR reply answering a bad frame or request is itself one well-formed ERR frame;
//  - a reply body of feed events or test cases (JSON lines) that parses is written the
//    same way again after one round trip.
// A broken invariant prints what broke and aborts, which the fuzzer reports as a crash.
//
// The input is read as requests (request_has_body) and as replies to a query verb and
// to a plain one (reply_has_body). Built with libFuzzer by scripts/fuzz.sh; the normal
// builds link it with replay_main.cpp to replay the seed corpus as a test.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ci/events.h"
#include "ci/framing.h"
#include "ci/protocol.h"
#include "ci/replies.h"
#include "ci/test_cases.h"
#include "ci/validate.h"

namespace {

using ci::Frame;
using ci::FrameParser;

[[noreturn]] void violated(const char* what, std::string_view first, std::string_view second) {
  std::fprintf(stderr, "protocol_fuzzer: %s\n  first:  %s\n  second: %s\n", what,
               ci::escape_for_log(first, 2000).c_str(), ci::escape_for_log(second, 2000).c_str());
  std::abort();
}

void check(bool ok, const char* what, std::string_view first = {}, std::string_view second = {}) {
  if (!ok) violated(what, first, second);
}

// How a parser split a byte stream: the frames (each serialized), then how it ended.
struct Outcome {
  std::vector<Frame> frames;
  std::string serialized;
  bool bad = false;
  std::string error;
  bool in_message = false;

  std::string describe() const {
    return serialized + (bad ? "| bad: " + error : in_message ? "| in a message" : "| idle");
  }
};

// Feeds `input` as two reads, cut at `split`, taking every complete frame.
Outcome frame_stream(std::string_view input, size_t split, const ci::BodyRule& rule) {
  FrameParser parser(ci::FrameLimits{}, rule);
  Outcome out;
  for (std::string_view part : {input.substr(0, split), input.substr(split)}) {
    while (!part.empty()) {
      size_t used = 0;
      FrameParser::Status status = parser.feed(part, &used);
      check(used <= part.size(), "feed consumed more bytes than it was given");
      if (status == FrameParser::Status::NeedMore) {
        check(used == part.size(), "feed wants more but left bytes unread");
        break;
      }
      if (status == FrameParser::Status::Bad) {
        check(!parser.error().empty(), "a bad frame without a reason");
        size_t again = 0;
        check(parser.feed("status\n", &again) == FrameParser::Status::Bad && again == 0,
              "the parser goes on after a bad frame");
        out.bad = true;
        out.error = parser.error();
        return out;
      }
      check(used > 0, "a frame out of no bytes");
      part.remove_prefix(used);
      out.frames.push_back(parser.take());
      out.serialized += ci::serialize(out.frames.back());
    }
  }
  out.in_message = parser.in_message();
  return out;
}

// Frames bytes that must hold exactly one message.
Frame frame_one(const std::string& bytes, const ci::BodyRule& rule) {
  FrameParser parser(ci::FrameLimits{}, rule);
  size_t used = 0;
  FrameParser::Status status = parser.feed(bytes, &used);
  check(status == FrameParser::Status::Done, "serialized bytes are not one frame", bytes,
        parser.error());
  check(used == bytes.size(), "serialized bytes are more than one frame", bytes);
  return parser.take();
}

bool reply_body_after_ping(const std::vector<std::string>& words) {
  return ci::reply_has_body("ping", words);
}

// The answer to a protocol error must reach the peer as one ERR frame, whatever the reason.
void check_err_reply(const std::string& reason) {
  ci::Reply err = ci::Reply::err(reason);
  std::string bytes = ci::serialize(ci::serialize_reply(err));
  auto back = ci::parse_reply(frame_one(bytes, reply_body_after_ping));
  check(back.ok(), "an ERR reply does not parse", bytes, back.ok() ? "" : back.error());
  check(back->kind == ci::Reply::Kind::Err && back->args == err.args,
        "an ERR reply changes on the way", bytes, back->reason());
}

void check_request(const Frame& frame) {
  auto parsed = ci::parse_request(frame);
  if (!parsed) {
    check(!parsed.error().empty(), "a request rejected without a reason");
    check_err_reply(parsed.error());
    return;
  }
  std::string once = ci::serialize(ci::serialize_request(*parsed));
  auto reparsed = ci::parse_request(frame_one(once, ci::request_has_body));
  check(reparsed.ok(), "a serialized request does not parse", once,
        reparsed.ok() ? "" : reparsed.error());
  std::string twice = ci::serialize(ci::serialize_request(*reparsed));
  check(once == twice, "a request changes on a round trip", once, twice);
}

// A typed reply that parses is written by to_reply, framed as the answer to `verb` and
// parsed again: the same value.
template <typename T>
void check_typed_reply(const ci::Reply& reply, ci::Result<T> (*parse)(const ci::Reply&),
                       const char* verb) {
  auto typed = parse(reply);
  if (!typed) {
    check(!typed.error().empty(), "a typed reply rejected without a reason");
    return;
  }
  std::string bytes = ci::serialize(ci::serialize_reply(ci::to_reply(*typed)));
  Frame frame = frame_one(
      bytes, [verb](const std::vector<std::string>& w) { return ci::reply_has_body(verb, w); });
  auto back = ci::parse_reply(frame);
  check(back.ok(), "a typed reply's frame does not parse", bytes, back.ok() ? "" : back.error());
  auto again = parse(*back);
  check(again.ok(), "a typed reply does not parse after a round trip", bytes,
        again.ok() ? "" : again.error());
  check(*again == *typed, "a typed reply changes on a round trip", bytes,
        ci::serialize(ci::serialize_reply(ci::to_reply(*again))));
}

// A body of feed events or of test cases that parses is written again the same way
// once it has been through one round: serializing is a fixed point.
void check_feed_body(std::string_view body) {
  if (auto events = ci::parse_events(body)) {
    for (const ci::FeedEvent& e : *events) {
      std::string once = ci::serialize_event(e);
      auto back = ci::parse_event(once);
      check(back.ok(), "a serialized event does not parse", once, back.ok() ? "" : back.error());
      std::string twice = ci::serialize_event(*back);
      check(once == twice, "an event changes on a round trip", once, twice);
    }
  }
  if (auto cases = ci::parse_cases(body)) {
    std::string once = ci::serialize_cases(*cases);
    auto back = ci::parse_cases(once);
    check(back.ok(), "serialized test cases do not parse", once, back.ok() ? "" : back.error());
    check(*back == *cases, "test cases change on a round trip", once, ci::serialize_cases(*back));
  }
}

void check_reply(const Frame& frame) {
  auto parsed = ci::parse_reply(frame);
  if (!parsed) {
    check(!parsed.error().empty(), "a reply rejected without a reason");
    return;
  }
  std::string bytes = ci::serialize(ci::serialize_reply(*parsed));
  check(bytes == ci::serialize(frame), "a reply does not serialize back to its frame",
        ci::serialize(frame), bytes);
  (void)parsed->reason();
  check_typed_reply(*parsed, ci::parse_status_reply, "status");
  check_typed_reply(*parsed, ci::parse_runners_reply, "runners");
  check_typed_reply(*parsed, ci::parse_jobs_reply, "jobs");
  check_typed_reply(*parsed, ci::parse_pong_reply, "ping");
  check_feed_body(parsed->body);
}

void run(std::string_view input, size_t split, const ci::BodyRule& rule,
         void (*check_frame)(const Frame&)) {
  Outcome whole = frame_stream(input, input.size(), rule);
  Outcome halves = frame_stream(input, split, rule);
  check(whole.describe() == halves.describe(), "framing depends on where the input is cut",
        whole.describe(), halves.describe());
  for (const Frame& frame : whole.frames) {
    std::string bytes = ci::serialize(frame);
    std::string again = ci::serialize(frame_one(bytes, rule));
    check(bytes == again, "a frame changes when framed again", bytes, again);
    check_frame(frame);
  }
  if (whole.bad) check_err_reply(whole.error);
}

// Where to cut the input: a hash of it, so every input length gets cut everywhere.
size_t split_point(std::string_view input) {
  uint32_t h = 2166136261u;
  for (unsigned char c : input) h = (h ^ c) * 16777619u;
  return h % (input.size() + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t split = split_point(input);
  run(input, split, ci::request_has_body, check_request);
  // A query verb's OK reply carries a body; a plain verb's never does.
  run(
      input, split,
      [](const std::vector<std::string>& words) { return ci::reply_has_body("status", words); },
      check_reply);
  run(input, split, reply_body_after_ping, check_reply);
  return 0;
}
