#include "runner/registration_schedule.h"

#include <algorithm>

namespace ci::runner {

RegistrationSchedule::RegistrationSchedule(TimePoint start, std::chrono::milliseconds silence_limit,
                                           Backoff backoff)
    : silence_limit_(silence_limit), backoff_(backoff), retry_at_(start), last_heard_(start) {}

RegistrationSchedule::TimePoint RegistrationSchedule::next_attempt() const {
  return registered_ ? last_heard_ + silence_limit_ : retry_at_;
}

void RegistrationSchedule::heard(TimePoint now) {
  last_heard_ = std::max(last_heard_, now);
  if (!registered_) retry_at_ = std::min(retry_at_, now);
}

void RegistrationSchedule::succeeded(TimePoint now) {
  registered_ = true;
  failing_ = false;
  last_heard_ = std::max(last_heard_, now);
  backoff_.reset();
}

bool RegistrationSchedule::failed(TimePoint now) {
  registered_ = false;
  retry_at_ = now + backoff_.next();
  bool first = !failing_;
  failing_ = true;
  return first;
}

}  // namespace ci::runner
