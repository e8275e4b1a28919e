#include <array>
#include <asio.hpp>
#include <atomic>
#include <deque>
#include <thread>
#include <vector>

#include "ci/net.h"

namespace ci {

using asio::ip::tcp;

// Sessions point at Impl, which outlives them: destroying `io` destroys every pending
// handler and so every session, and the members they touch are declared before it.
struct LineServer::Impl {
  ServerOptions options;
  BodyRule body_rule;
  FrameHandler handler;
  std::atomic<size_t> connections{0};
  std::atomic<bool> stopped{false};
  uint16_t bound_port = 0;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;

  void accept();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, LineServer::Impl* server)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        server_(server),
        parser_(server_->options.limits, server_->body_rule) {
    asio::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  ~Session() { server_->connections.fetch_sub(1); }

  void start() {
    arm_deadline();
    read();
  }

 private:
  void arm_deadline() {
    timer_.expires_after(server_->options.idle_timeout);
    timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (ec) return;  // re-armed or cancelled
      asio::error_code ignored;
      self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
      self->socket_.close(ignored);
    });
  }

  void read() {
    socket_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              if (ec) {
                                self->timer_.cancel();
                                return;
                              }
                              self->process(std::string_view(self->buf_.data(), n));
                            });
  }

  // Parses every complete message in `data`, queueing the replies, then writes them.
  void process(std::string_view data) {
    bool close = false;
    while (!data.empty() && !close) {
      size_t used = 0;
      auto status = parser_.feed(data, &used);
      data.remove_prefix(used);
      if (status == FrameParser::Status::NeedMore) break;
      if (status == FrameParser::Status::Bad) {
        out_ += serialize(serialize_reply(Reply::err(parser_.error())));
        close = true;
        break;
      }
      Frame request = parser_.take();
      Response response = server_->handler(request, peer_);
      out_ += serialize(response.frame);
      close = response.close;
      arm_deadline();
    }
    if (out_.empty()) {
      if (close) {
        shutdown();
      } else {
        read();
      }
      return;
    }
    std::string pending = std::move(out_);
    out_.clear();
    auto buffer = std::make_shared<std::string>(std::move(pending));
    asio::async_write(
        socket_, asio::buffer(*buffer),
        [self = shared_from_this(), buffer, close](const asio::error_code& ec, size_t) {
          if (ec || close) {
            self->shutdown();
            return;
          }
          self->read();
        });
  }

  void shutdown() {
    timer_.cancel();
    asio::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  LineServer::Impl* server_;
  FrameParser parser_;
  std::array<char, 16384> buf_{};
  std::string out_;
  std::string peer_;
};

}  // namespace

void LineServer::Impl::accept() {
  acceptor.async_accept(asio::make_strand(io),
                        [self = this](const asio::error_code& ec, tcp::socket socket) {
                          if (self->stopped) return;
                          if (!ec) {
                            size_t n = self->connections.fetch_add(1) + 1;
                            if (n > self->options.max_connections) {
                              self->connections.fetch_sub(1);
                              static const std::string busy = "ERR busy\n";
                              asio::error_code ignored;
                              socket.non_blocking(true, ignored);
                              socket.write_some(asio::buffer(busy), ignored);
                              socket.close(ignored);
                            } else {
                              std::make_shared<Session>(std::move(socket), self)->start();
                            }
                          }
                          if (ec != asio::error::operation_aborted) self->accept();
                        });
}

LineServer::LineServer(ServerOptions options, BodyRule body_rule, FrameHandler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->body_rule = std::move(body_rule);
  impl_->handler = std::move(handler);
}

LineServer::~LineServer() { stop(); }

Result<void> LineServer::start() {
  asio::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) {
    tcp::resolver resolver(impl_->io);
    auto results = resolver.resolve(impl_->options.host, "", ec);
    if (ec || results.empty())
      return make_error("cannot resolve host '" + impl_->options.host + "'");
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(address, impl_->options.port);
  auto& acc = impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    asio::error_code ignored;
    acc.close(ignored);
    return make_error("cannot listen on " + impl_->options.host + ":" +
                      std::to_string(impl_->options.port) + ": " + ec.message());
  }
  impl_->bound_port = acc.local_endpoint().port();
  impl_->accept();
  size_t n = std::max<size_t>(1, impl_->options.threads);
  for (size_t i = 0; i < n; ++i)
    impl_->threads.emplace_back([impl = impl_.get()] { impl->io.run(); });
  return {};
}

uint16_t LineServer::port() const { return impl_->bound_port; }

void LineServer::stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->io.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
  asio::error_code ignored;
  impl_->acceptor.close(ignored);
}

}  // namespace ci
