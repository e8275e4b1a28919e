#include <array>
#include <asio.hpp>

#include "ci/net.h"

namespace ci {

using asio::ip::tcp;

struct LineClient::Impl {
  std::string host;
  uint16_t port;
  ClientOptions options;
  asio::io_context io;
  tcp::socket socket{io};
  bool connected = false;

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
    connected = true;
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
  impl_->options = options;
}

LineClient::~LineClient() = default;

std::string LineClient::address() const { return impl_->address(); }

void LineClient::close() { impl_->drop(); }

Result<Frame> LineClient::call_frame(const Frame& request) {
  Impl& c = *impl_;
  // A kept connection may have been closed by the server since (idle timeout): one
  // retry on a fresh connection when the failure came before any reply byte.
  for (int round = 0; round < 2; ++round) {
    bool reused = c.connected;
    if (!c.connected) {
      if (auto r = c.connect(); !r) return Error{r.error()};
    }
    const std::string verb = request.verb();
    FrameParser parser(c.options.limits, [verb](const std::vector<std::string>& words) {
      return reply_has_body(verb, words);
    });
    std::string out = serialize(request);
    std::array<char, 16384> buf{};
    asio::error_code failure;
    bool done = false;
    bool got_bytes = false;
    std::string parse_error;

    std::function<void()> read_more = [&] {
      c.socket.async_read_some(asio::buffer(buf), [&](const asio::error_code& ec, size_t n) {
        if (ec) {
          failure = ec;
          return;
        }
        got_bytes = true;
        std::string_view data(buf.data(), n);
        size_t used = 0;
        auto status = parser.feed(data, &used);
        if (status == FrameParser::Status::Done) {
          done = true;
        } else if (status == FrameParser::Status::Bad) {
          parse_error = parser.error();
        } else {
          read_more();
        }
      });
    };
    asio::async_write(c.socket, asio::buffer(out), [&](const asio::error_code& ec, size_t) {
      if (ec) {
        failure = ec;
        return;
      }
      read_more();
    });
    bool in_time = c.run_until_done(c.options.io_timeout);
    if (done) return parser.take();
    c.drop();
    if (!parse_error.empty())
      return make_error("bad reply from " + c.address() + ": " + parse_error);
    if (!in_time) return make_error("no reply from " + c.address() + " in time");
    if (reused && !got_bytes) continue;
    if (failure == asio::error::eof)
      return make_error(c.address() + " closed the connection without a reply");
    return make_error("request to " + c.address() + " failed: " + failure.message());
  }
  return make_error("request to " + c.address() + " failed");
}

Result<Reply> LineClient::call(const Request& request) {
  auto frame = call_frame(serialize_request(request));
  if (!frame) return Error{frame.error()};
  return parse_reply(*frame);
}

}  // namespace ci
