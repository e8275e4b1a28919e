#include "ci/framing.h"

#include <utility>

#include "ci/validate.h"

namespace ci {

const std::string& Frame::verb() const {
  static const std::string empty;
  return words.empty() ? empty : words.front();
}

FrameParser::FrameParser(FrameLimits limits, BodyRule body_rule)
    : limits_(limits), body_rule_(std::move(body_rule)) {}

FrameParser::Status FrameParser::feed(std::string_view data, size_t* used) {
  *used = 0;
  if (state_ == State::Bad) return Status::Bad;
  if (state_ == State::Done) return Status::Done;
  while (*used < data.size()) {
    if (state_ == State::Header) {
      std::string_view rest = data.substr(*used);
      size_t nl = rest.find('\n');
      size_t take = nl == std::string_view::npos ? rest.size() : nl + 1;
      if (header_.size() + take > limits_.max_header) {
        state_ = State::Bad;
        error_ = "header line longer than " + std::to_string(limits_.max_header) + " bytes";
        return Status::Bad;
      }
      header_.append(rest.substr(0, take));
      *used += take;
      if (nl == std::string_view::npos) return Status::NeedMore;
      Status s = finish_header();
      if (s != Status::NeedMore) return s;
      if (pause_before_body_) return Status::BodyNext;
    } else if (state_ == State::Body) {
      size_t take = std::min(body_left_, data.size() - *used);
      frame_.body.append(data.substr(*used, take));
      *used += take;
      body_left_ -= take;
      if (body_left_ == 0) {
        state_ = State::Done;
        return Status::Done;
      }
    }
  }
  return state_ == State::Done ? Status::Done : Status::NeedMore;
}

FrameParser::Status FrameParser::finish_header() {
  std::string_view line(header_);
  line.remove_suffix(1);  // '\n'
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  for (unsigned char c : line) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      state_ = State::Bad;
      error_ = "header line contains a control byte";
      return Status::Bad;
    }
  }
  frame_ = Frame{};
  body_length_ = 0;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) frame_.words.emplace_back(line.substr(start, i - start));
  }
  header_.clear();
  if (frame_.words.empty()) {
    state_ = State::Bad;
    error_ = "empty message";
    return Status::Bad;
  }
  if (body_rule_ && body_rule_(frame_.words)) {
    if (frame_.words.size() < 2) {
      state_ = State::Bad;
      error_ = "missing body length";
      return Status::Bad;
    }
    auto len = parse_u64(frame_.words.back());
    if (!len) {
      state_ = State::Bad;
      error_ = "body length is not a number";
      return Status::Bad;
    }
    if (*len > limits_.max_body) {
      state_ = State::Bad;
      error_ = "body too long (" + std::to_string(*len) + " > " + std::to_string(limits_.max_body) +
               " bytes)";
      return Status::Bad;
    }
    frame_.words.pop_back();
    frame_.has_body = true;
    body_left_ = *len;
    body_length_ = *len;
    // Grows as bytes arrive: a header alone must not make the server reserve the
    // declared size (a connection could claim --max-body and send nothing).
    frame_.body.reserve(std::min<size_t>(body_left_, 64u << 10));
    if (body_left_ > 0) {
      state_ = State::Body;
      return Status::NeedMore;
    }
  }
  state_ = State::Done;
  return Status::Done;
}

Frame FrameParser::take() {
  Frame out = std::move(frame_);
  frame_ = Frame{};
  state_ = State::Header;
  body_left_ = 0;
  body_length_ = 0;
  return out;
}

std::string serialize(const Frame& frame) {
  std::string out;
  size_t size = frame.body.size() + 24;
  for (const auto& w : frame.words) size += w.size() + 1;
  out.reserve(size);
  for (size_t i = 0; i < frame.words.size(); ++i) {
    if (i) out += ' ';
    out += frame.words[i];
  }
  if (frame.has_body) {
    if (!frame.words.empty()) out += ' ';
    out += std::to_string(frame.body.size());
  }
  out += '\n';
  if (frame.has_body) out += frame.body;
  return out;
}

Frame make_frame(std::vector<std::string> words) {
  Frame f;
  f.words = std::move(words);
  return f;
}

Frame make_frame_with_body(std::vector<std::string> words, std::string body) {
  Frame f;
  f.words = std::move(words);
  f.body = std::move(body);
  f.has_body = true;
  return f;
}

}  // namespace ci
