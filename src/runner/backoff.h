// Capped exponential backoff for retrying a peer that does not answer.
#pragma once

#include <chrono>

namespace ci::runner {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max);

  // The delay before the next retry; each call doubles the following one, up to max.
  std::chrono::milliseconds next();
  // Back to the initial delay, after a success.
  void reset();

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::chrono::milliseconds current_;
};

}  // namespace ci::runner
