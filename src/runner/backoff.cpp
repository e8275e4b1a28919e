#include "runner/backoff.h"

#include <algorithm>

namespace ci::runner {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(std::max(initial, std::chrono::milliseconds(1))),
      max_(std::max(max, initial_)),
      current_(initial_) {}

std::chrono::milliseconds Backoff::next() {
  auto delay = current_;
  current_ = std::min(current_ * 2, max_);
  return delay;
}

void Backoff::reset() { current_ = initial_; }

}  // namespace ci::runner
