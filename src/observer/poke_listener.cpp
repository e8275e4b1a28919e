#include "observer/poke_listener.h"

namespace ci::observer {

PokeListener::PokeListener(ServerOptions options, std::function<void()> poke)
    : poke_(std::move(poke)),
      server_(std::move(options), request_has_body,
              [this](const Frame& frame, const std::string&) { return handle(frame); }) {}

Result<void> PokeListener::start() { return server_.start(); }

Response PokeListener::handle(const Frame& frame) {
  auto request = parse_request(frame);
  if (!request) return {serialize_reply(Reply::err(request.error())), true};
  if (std::holds_alternative<PollRequest>(*request)) {
    poke_();
    return {serialize_reply(Reply::ok()), false};
  }
  if (std::holds_alternative<PingRequest>(*request)) return {serialize_reply(Reply::pong()), false};
  return {serialize_reply(Reply::err("the observer answers only poll and ping")), true};
}

}  // namespace ci::observer
