// Lets a git hook poke the observer: a `poll` message on --listen makes it fetch and
// look at once, instead of at its next interval. Polling stays the fallback, so a lost
// poke delays nothing beyond one interval.
#pragma once

#include <functional>
#include <memory>

#include "ci/net.h"

namespace ci::observer {

class PokeListener {
 public:
  // `poke` is called on the listener's thread for every `poll`; it must not block.
  PokeListener(ServerOptions options, std::function<void()> poke);
  Result<void> start();
  uint16_t port() const { return server_.port(); }
  void stop() { server_.stop(); }

 private:
  Response handle(const Frame& frame);
  std::function<void()> poke_;
  LineServer server_;
};

}  // namespace ci::observer
