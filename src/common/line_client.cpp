#include <array>
#include <asio.hpp>

#include "ci/auth.h"
#include "ci/net.h"
#include "ci/validate.h"

namespace ci {

using asio::ip::tcp;

struct LineClient::Impl {
  std::string host;
  uint16_t port;
  ClientOptions options;
  asio::io_context io;
  tcp::socket socket{io};
  bool connected = false;
  bool busy = false;  // the server answered "ERR busy": the last call was not served

  // Runs the io_context until the started operations finish or the deadline passes;
  // on the deadline the socket is closed, which completes them with an error.
  bool run_until_done(std::chrono::milliseconds timeout) {
    io.restart();
    io.run_for(timeout);
    if (io.stopped()) return true;
    asio::error_code ignored;
    socket.close(ignored);
    io.restart();
    io.run();
    return false;
  }

  struct Exchange {
    Result<Frame> frame = Error{""};
    bool got_bytes = false;  // any byte of a reply arrived
    bool timed_out = false;
  };

  // Writes `out` (if any) and reads one framed reply, framed by the body rule of
  // `request_verb`.
  Exchange exchange(const std::string& out, const std::string& request_verb,
                    std::chrono::milliseconds timeout) {
    FrameParser parser(options.limits, [&request_verb](const std::vector<std::string>& words) {
      return reply_has_body(request_verb, words);
    });
    std::array<char, 16384> buf;  // not zero-filled: only the bytes read are used
    asio::error_code failure;
    bool done = false;
    Exchange ex;
    std::string parse_error;

    std::function<void()> read_more = [&] {
      socket.async_read_some(asio::buffer(buf), [&](const asio::error_code& ec, size_t n) {
        if (ec) {
          failure = ec;
          return;
        }
        ex.got_bytes = true;
        size_t used = 0;
        auto status = parser.feed(std::string_view(buf.data(), n), &used);
        if (status == FrameParser::Status::Done) {
          done = true;
        } else if (status == FrameParser::Status::Bad) {
          parse_error = parser.error();
        } else {
          read_more();
        }
      });
    };
    if (out.empty()) {
      read_more();
    } else {
      asio::async_write(socket, asio::buffer(out), [&](const asio::error_code& ec, size_t) {
        if (ec) {
          failure = ec;
          return;
        }
        read_more();
      });
    }
    ex.timed_out = !run_until_done(timeout);
    if (done) {
      ex.frame = parser.take();
      // What a server at its connection limit says in place of anything else.
      const auto& w = ex.frame->words;
      if (w.size() == 2 && w[0] == "ERR" && w[1] == "busy") busy = true;
    } else if (!parse_error.empty()) {
      ex.frame = make_error("bad reply from " + address() + ": " + parse_error);
    } else if (ex.timed_out) {
      ex.frame = make_error("no reply from " + address() + " in time");
    } else if (failure == asio::error::eof) {
      ex.frame = make_error(address() + " closed the connection without a reply");
    } else {
      ex.frame = make_error("request to " + address() + " failed: " + failure.message());
    }
    return ex;
  }

  Result<void> connect() {
    asio::error_code ec;
    tcp::resolver resolver(io);
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return make_error("cannot resolve " + host + ": " + ec.message());
    asio::error_code result = asio::error::would_block;
    asio::async_connect(socket, endpoints,
                        [&](const asio::error_code& e, const tcp::endpoint&) { result = e; });
    bool in_time = run_until_done(options.connect_timeout);
    if (!in_time) return make_error("connect to " + address() + " timed out");
    if (result) {
      asio::error_code ignored;
      socket.close(ignored);
      return make_error("cannot connect to " + address() + ": " + result.message());
    }
    socket.set_option(tcp::no_delay(true), ec);
    if (!options.token.empty()) {
      if (auto r = authenticate(); !r) {
        drop();
        return r;
      }
    }
    connected = true;
    return {};
  }

  // The handshake of ci/auth.h: answers the greeting with a fresh nonce and a proof
  // bound to the service this client means to call, then checks the server's proof.
  Result<void> authenticate() {
    if (options.service.empty())
      return make_error("cannot authenticate with " + address() +
                        ": the client names no service to expect there");
    auto greeting = exchange("", "", options.connect_timeout);
    if (!greeting.frame)
      return make_error("no authentication greeting from " + address() +
                        " (is it started with the same token?): " + greeting.frame.error());
    const auto& w = greeting.frame->words;
    if (!w.empty() && w[0] == "ERR")  // "ERR busy", say: it answered before any greeting
      return make_error(address() + " answered " +
                        escape_for_log(w.size() > 1 ? "ERR " + w[1] : "ERR"));
    if (w.size() != 2 || w[0] != "AUTH")
      return make_error(address() +
                        " did not ask for authentication (is it started with a token?)");
    const std::string& server_nonce = w[1];
    if (!is_nonce(server_nonce))
      return make_error(address() + " sent a malformed authentication greeting");
    const std::string client_nonce = make_nonce();
    auto answer = exchange(
        "auth " + client_nonce + " " +
            client_proof(options.token, options.service, server_nonce, client_nonce) + "\n",
        "auth", options.io_timeout);
    if (!answer.frame)
      return make_error("authentication with " + address() + " failed: " + answer.frame.error());
    const auto& reply = answer.frame->words;
    if (answer.frame->verb() == "ERR") {
      if (reply.size() == 2 && reply[1] == "auth")
        return make_error(address() + " refused the token (ERR auth)");
      std::string said;
      for (const auto& word : reply) said += (said.empty() ? "" : " ") + word;
      return make_error("authentication with " + address() + " failed: " + escape_for_log(said));
    }
    if (answer.frame->verb() != "OK" || reply.size() != 2 ||
        !check_server_proof(options.token, options.service, server_nonce, client_nonce, reply[1]))
      return make_error("the server at " + address() +
                        " failed to prove it holds the token (is it the " + options.service +
                        ", started with the same token?)");
    return {};
  }

  std::string address() const { return host + ":" + std::to_string(port); }

  void drop() {
    asio::error_code ignored;
    socket.close(ignored);
    connected = false;
  }
};

LineClient::LineClient(std::string host, uint16_t port, ClientOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->options = std::move(options);
}

LineClient::~LineClient() = default;

std::string LineClient::address() const { return impl_->address(); }

void LineClient::close() { impl_->drop(); }

bool LineClient::busy() const { return impl_->busy; }

Result<Frame> LineClient::call_frame(const Frame& request) {
  Impl& c = *impl_;
  c.busy = false;
  auto refused_busy = [&c] {
    c.drop();
    return make_error(c.address() + " is busy (too many connections); try again");
  };
  // A kept connection may have been closed by the server since (idle timeout): one
  // retry on a fresh connection when the failure came before any reply byte.
  for (int round = 0; round < 2; ++round) {
    bool reused = c.connected;
    if (!c.connected) {
      if (auto r = c.connect(); !r) return c.busy ? refused_busy() : Error{r.error()};
    }
    auto ex = c.exchange(serialize(request), request.verb(), c.options.io_timeout);
    if (c.busy) return refused_busy();
    if (ex.frame && ex.frame->verb() == "AUTH") {
      // The server's greeting: it wants a token this client was not given.
      c.drop();
      return make_error(c.address() +
                        " requires authentication: give --token-file or set CI_TOKEN_FILE");
    }
    if (ex.frame) return std::move(ex.frame);
    c.drop();
    if (reused && !ex.got_bytes && !ex.timed_out) continue;
    return ex.frame;
  }
  return make_error("request to " + c.address() + " failed");
}

Result<Reply> LineClient::call(const Request& request) {
  auto frame = call_frame(serialize_request(request));
  if (!frame) return Error{frame.error()};
  return parse_reply(*frame);
}

}  // namespace ci
