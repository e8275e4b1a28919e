// The server's life: binding, accepting (with the admission checks of
// line_server_admission.cpp) and stopping. A connection is line_connection.cpp.
#include <algorithm>
#include <asio.hpp>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "ci/net.h"
#include "line_connection.h"
#include "line_server_impl.h"

namespace ci {

using asio::ip::tcp;
using line_server::Connection;

void LineServer::Impl::accept() {
  acceptor.async_accept(
      asio::make_strand(io), [self = this](const asio::error_code& ec, tcp::socket socket) {
        if (self->stopped) return;
        if (!ec) {
          std::string ip, peer;
          asio::error_code ignored;
          auto ep = socket.remote_endpoint(ignored);
          if (!ignored) {
            ip = ep.address().to_string();
            peer = ip + ":" + std::to_string(ep.port());
          }
          // With a token, an address may have only so many connections authenticating at
          // once; past the connection limit, one of those is the first to go.
          bool must_authenticate = !self->options.token.empty();
          bool admitted = !must_authenticate || self->admit_unauthenticated(ip);
          size_t n = self->connections.fetch_add(1) + 1;
          if (!admitted || (n > self->options.max_connections && !self->make_room())) {
            self->connections.fetch_sub(1);
            if (admitted && must_authenticate) self->left_unauthenticated(ip);
            static const std::string busy = "ERR busy\n";
            socket.non_blocking(true, ignored);
            socket.write_some(asio::buffer(busy), ignored);
            socket.close(ignored);
          } else {
            auto connection = std::make_shared<Connection>(
                std::move(socket), std::move(ip), std::move(peer), self, must_authenticate);
            {
              MutexLock lock(self->mutex);
              self->sessions.push_back(connection);
            }
            connection->start();
          }
        }
        if (ec != asio::error::operation_aborted) self->accept();
      });
}

LineServer::LineServer(ServerOptions options, BodyRule body_rule, FrameHandler handler)
    : LineServer(
          std::move(options), std::move(body_rule),
          [handler = std::move(handler)](const Frame& request, const std::string& peer,
                                         Responder respond) { respond(handler(request, peer)); }) {}

LineServer::LineServer(ServerOptions options, BodyRule body_rule, AsyncFrameHandler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->body_rule = std::move(body_rule);
  impl_->handler = std::move(handler);
}

LineServer::~LineServer() { stop(); }

Result<void> LineServer::start() {
  if (!impl_->options.token.empty() && impl_->options.service.empty())
    return make_error("a server with a token must name its service (ServerOptions::service)");
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

LineServer::Stats LineServer::stats() const {
  Stats stats;
  stats.connections = impl_->connections.load();
  MutexLock lock(impl_->mutex);
  stats.body_bytes = impl_->body_bytes;
  stats.bodies_waiting = impl_->body_waiting.size();
  return stats;
}

void LineServer::stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->io.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
  asio::error_code ignored;
  impl_->acceptor.close(ignored);
  // Connections waiting for room for a body go while the io_context they use is here.
  std::deque<std::pair<std::shared_ptr<Connection>, size_t>> waiting;
  {
    MutexLock lock(impl_->mutex);
    waiting.swap(impl_->body_waiting);
  }
}

}  // namespace ci
