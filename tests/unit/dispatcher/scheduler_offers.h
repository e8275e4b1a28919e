// What the scheduler tests do again and again: take the next offer and have its runner
// accept it.
#pragma once

#include <gtest/gtest.h>

#include "dispatcher/scheduler.h"

namespace ci {

// The offer the scheduler makes next, accepted by its runner; a failure (and an empty
// offer) when it makes none.
inline Offer offer_and_accept(Scheduler& sched, TimePoint now) {
  auto offer = sched.next_offer(now);
  EXPECT_TRUE(offer.has_value());
  if (!offer) return {};
  sched.offer_accepted(*offer, now);
  return *offer;
}

}  // namespace ci
