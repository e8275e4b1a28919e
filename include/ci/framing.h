// Framing of the line protocol: a header line of space-separated words ending in
// '\n', then, for messages that carry data, a body whose byte length is the
// header's last word. FrameParser is a pure state machine (no sockets): feed it bytes,
// it answers need-more, done or bad with a reason.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace ci {

struct Frame {
  std::vector<std::string> words;  // the header line, split on spaces
  std::string body;                // present when has_body
  bool has_body = false;

  const std::string& verb() const;  // first word, or "" for none
};

struct FrameLimits {
  size_t max_header = 4096;     // bytes of the header line, '\n' included
  size_t max_body = 16u << 20;  // bytes of a body
};

// Says whether a header's last word is the length of a body that follows.
using BodyRule = std::function<bool(const std::vector<std::string>& words)>;

class FrameParser {
 public:
  // BodyNext: only with pause_before_body(), see there.
  enum class Status { NeedMore, Done, Bad, BodyNext };

  FrameParser(FrameLimits limits, BodyRule body_rule);

  // Consumes bytes from `data` up to the end of one message. Returns the status and
  // sets *used to the number of bytes consumed. After Done, take() the frame; the
  // parser is then ready for the next message. After Bad, error() says why.
  Status feed(std::string_view data, size_t* used);
  Frame take();
  const std::string& error() const { return error_; }
  // True while part of a message has been received.
  bool in_message() const { return !header_.empty() || state_ == State::Body; }

  // When on, feed() stops right after a header that announces a non-empty body and
  // returns BodyNext, before taking a byte of the body: the caller may then look at
  // the header (words()) and its length (body_length()) and decide whether to read
  // the body at all. The next feed() goes on with the body.
  void pause_before_body(bool on) { pause_before_body_ = on; }
  const std::vector<std::string>& words() const { return frame_.words; }
  size_t body_length() const { return body_length_; }

 private:
  enum class State { Header, Body, Done, Bad };
  Status finish_header();

  FrameLimits limits_;
  BodyRule body_rule_;
  State state_ = State::Header;
  std::string header_;
  Frame frame_;
  size_t body_left_ = 0;
  size_t body_length_ = 0;
  bool pause_before_body_ = false;
  std::string error_;
};

// The header line with its trailing '\n', then the body. A frame with has_body gets
// the body length appended as the last word.
std::string serialize(const Frame& frame);
Frame make_frame(std::vector<std::string> words);
Frame make_frame_with_body(std::vector<std::string> words, std::string body);

}  // namespace ci
