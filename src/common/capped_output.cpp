// CappedOutput (ci/process.h): the output of a command, kept within its cap.
#include <algorithm>
#include <cstring>

#include "ci/process.h"

namespace ci {

namespace {

// The room kept between the head and the tail's ring for the note on the cut.
constexpr size_t kNoteRoom = 64;

std::string cut_note(uint64_t cut) {
  return "\n[... " + std::to_string(cut) + " bytes of output cut here ...]\n";
}

}  // namespace

CappedOutput::CappedOutput(size_t cap) : head_cap_(cap / 2), tail_cap_(cap - cap / 2) {}

void CappedOutput::append(const char* data, size_t n) {
  total_ += n;
  if (buf_.size() < head_cap_) {
    size_t k = std::min(n, head_cap_ - buf_.size());
    buf_.append(data, k);
    data += k;
    n -= k;
  }
  if (n == 0 || tail_cap_ == 0) return;
  const size_t ring = head_cap_ + kNoteRoom;
  if (buf_.size() == head_cap_) {
    // The first byte past the head: room for the note and the whole ring, once.
    buf_.reserve(ring + tail_cap_);
    buf_.append(kNoteRoom, '\0');
  }
  if (n >= tail_cap_) {
    // Only the last tail_cap_ bytes stay: the ring starts over with them.
    data += n - tail_cap_;
    n = tail_cap_;
    buf_.resize(ring);
    ring_len_ = 0;
    ring_pos_ = 0;
  }
  if (ring_len_ < tail_cap_) {
    // Not yet full: the ring grows at its end.
    size_t k = std::min(n, tail_cap_ - ring_len_);
    buf_.append(data, k);
    data += k;
    n -= k;
    ring_len_ += k;
    ring_pos_ = ring_len_ % tail_cap_;
  }
  // Full: round the ring, over the oldest bytes.
  while (n > 0) {
    size_t k = std::min(n, tail_cap_ - ring_pos_);
    std::memcpy(buf_.data() + ring + ring_pos_, data, k);
    data += k;
    n -= k;
    ring_pos_ = (ring_pos_ + k) % tail_cap_;
  }
}

std::string CappedOutput::finish() {
  size_t head = std::min(buf_.size(), head_cap_);
  uint64_t cut = total_ - head - ring_len_;
  std::string note = cut > 0 ? cut_note(cut) : std::string();
  if (buf_.size() > head_cap_) {
    // In place: the ring turned so that its oldest byte comes first, then moved up to
    // follow the note.
    char* ring = buf_.data() + head_cap_ + kNoteRoom;
    if (ring_len_ == tail_cap_ && ring_pos_ != 0)
      std::rotate(ring, ring + ring_pos_, ring + tail_cap_);
    char* at = buf_.data() + head_cap_;
    std::memcpy(at, note.data(), note.size());  // note.size() < kNoteRoom
    std::memmove(at + note.size(), ring, ring_len_);
    buf_.resize(head_cap_ + note.size() + ring_len_);
  } else {
    buf_ += note;  // no tail at all (a cap of 0)
  }
  std::string out = std::move(buf_);
  buf_ = std::string();
  ring_pos_ = ring_len_ = 0;
  total_ = 0;
  return out;
}

}  // namespace ci
