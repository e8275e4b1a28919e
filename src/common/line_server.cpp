#include <array>
#include <asio.hpp>
#include <atomic>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "ci/auth.h"
#include "ci/net.h"

namespace ci {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {
class Session;
}

// Sessions point at Impl, which outlives them: destroying `io` destroys every pending
// handler and so every session, and the members they touch are declared before it.
struct LineServer::Impl {
  ServerOptions options;
  BodyRule body_rule;
  AsyncFrameHandler handler;
  std::atomic<size_t> connections{0};
  std::atomic<bool> stopped{false};
  uint16_t bound_port = 0;

  std::mutex mutex;  // guards sessions and auth_failures
  std::list<std::weak_ptr<Session>> sessions;
  std::map<std::string, int> auth_failures;  // by peer address, without the port

  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;

  void accept();
  bool evict_idlest();
  // How long to wait before answering a failed authentication from `ip`: repeated
  // failures are slowed down, doubling up to 5 s.
  std::chrono::milliseconds auth_failed(const std::string& ip);
  void auth_succeeded(const std::string& ip);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, LineServer::Impl* server)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        server_(server),
        parser_(server_->options.limits, server_->body_rule),
        authenticated_(server_->options.token.empty()) {
    asio::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      ip_ = ep.address().to_string();
      peer_ = ip_ + ":" + std::to_string(ep.port());
    }
    touch();
  }
  ~Session() { server_->connections.fetch_sub(1); }

  void start() {
    arm_deadline();
    if (!authenticated_) {
      nonce_ = make_nonce();
      write("AUTH " + nonce_ + "\n", false, std::chrono::milliseconds(0));
    } else {
      read();
    }
  }

  // True when no part of a message is waiting: safe to close to make room.
  bool idle() const { return !in_message_.load(); }
  Clock::rep idle_since() const { return idle_since_.load(); }

  // From another connection's thread: closes this one on its own strand.
  void close_from_outside() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->shutdown(); });
  }

 private:
  void touch() { idle_since_ = Clock::now().time_since_epoch().count(); }

  void arm_deadline() {
    timer_.expires_after(server_->options.idle_timeout);
    timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (ec) return;  // re-armed or cancelled
      self->shutdown();
    });
  }

  void read() {
    socket_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              if (ec) {
                                self->shutdown();
                                return;
                              }
                              self->process(std::string_view(self->buf_.data(), n));
                            });
  }

  // Parses every complete message in `data`, queueing the replies, then writes them.
  // When a handler answers later, what is left of `data` waits in rest_ until then.
  void process(std::string_view data) {
    while (!data.empty() && !close_) {
      size_t used = 0;
      auto status = parser_.feed(data, &used);
      data.remove_prefix(used);
      if (status == FrameParser::Status::NeedMore) break;
      if (status == FrameParser::Status::Bad) {
        out_ += serialize(serialize_reply(Reply::err(parser_.error())));
        close_ = true;
        break;
      }
      Frame request = parser_.take();
      touch();
      arm_deadline();
      if (!authenticated_) {
        // "auth <client-nonce> <proof>", the proof bound to this server's service and
        // to both nonces; answered with this server's own proof (ci/auth.h).
        const auto& w = request.words;
        const auto& options = server_->options;
        if (w.size() == 3 && w[0] == "auth" && is_nonce(w[1]) &&
            check_client_proof(options.token, options.service, nonce_, w[1], w[2])) {
          authenticated_ = true;
          server_->auth_succeeded(ip_);
          out_ += "OK " + server_proof(options.token, options.service, nonce_, w[1]) + "\n";
          continue;
        }
        delay_ = server_->auth_failed(ip_);
        out_ += serialize(serialize_reply(Reply::err("auth")));
        close_ = true;
        break;
      }
      {
        std::lock_guard<std::mutex> lock(answer_mutex_);
        answer_state_ = AnswerState::Asked;
      }
      server_->handler(request, peer_, [self = shared_from_this()](Response response) {
        self->answered(std::move(response));
      });
      {
        std::lock_guard<std::mutex> lock(answer_mutex_);
        if (answer_state_ == AnswerState::Asked) {
          // Later: no reading, and no idle deadline, until the answer comes.
          answer_state_ = AnswerState::Waiting;
          rest_ = std::string(data);
          in_message_ = true;
          timer_.cancel();
          return;
        }
        answer_state_ = AnswerState::None;
      }
      take_answer(std::move(answer_));
    }
    in_message_ = parser_.in_message();
    if (out_.empty()) {
      if (close_) {
        shutdown();
      } else {
        read();
      }
      return;
    }
    auto delay = delay_;
    delay_ = std::chrono::milliseconds(0);
    write(std::exchange(out_, std::string()), close_, delay);
  }

  // The handler's answer, on whatever thread it came.
  void answered(Response response) {
    std::unique_lock<std::mutex> lock(answer_mutex_);
    if (answer_state_ == AnswerState::Asked) {  // still inside the handler: taken there
      answer_ = std::move(response);
      answer_state_ = AnswerState::Answered;
      return;
    }
    answer_state_ = AnswerState::None;
    lock.unlock();
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), response = std::move(response)]() mutable {
                 self->take_answer(std::move(response));
                 self->arm_deadline();
                 std::string rest = std::exchange(self->rest_, std::string());
                 self->process(rest);
               });
  }

  void take_answer(Response response) {
    out_ += serialize(response.frame);
    close_ = response.close || ++messages_ >= server_->options.max_messages;
  }

  void write(std::string text, bool close, std::chrono::milliseconds delay) {
    auto buffer = std::make_shared<std::string>(std::move(text));
    auto send = [self = shared_from_this(), buffer, close] {
      asio::async_write(self->socket_, asio::buffer(*buffer),
                        [self, buffer, close](const asio::error_code& ec, size_t) {
                          if (ec || close) {
                            self->shutdown();
                            return;
                          }
                          self->read();
                        });
    };
    if (delay.count() == 0) {
      send();
      return;
    }
    // Slows down guessing without holding a thread: the answer waits on a timer.
    timer_.expires_after(delay);
    timer_.async_wait([send](const asio::error_code&) { send(); });
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
  std::string out_;   // replies not written yet
  std::string rest_;  // input not parsed yet, while an answer is awaited
  bool close_ = false;
  std::chrono::milliseconds delay_{0};
  enum class AnswerState { None, Asked, Answered, Waiting };
  std::mutex answer_mutex_;
  AnswerState answer_state_ = AnswerState::None;
  Response answer_;
  std::string peer_;
  std::string ip_;
  std::string nonce_;
  bool authenticated_;
  size_t messages_ = 0;
  std::atomic<bool> in_message_{false};
  std::atomic<Clock::rep> idle_since_{0};
};

}  // namespace

bool LineServer::Impl::evict_idlest() {
  std::shared_ptr<Session> victim;
  {
    std::lock_guard<std::mutex> lock(mutex);
    Clock::rep oldest = 0;
    for (auto it = sessions.begin(); it != sessions.end();) {
      auto s = it->lock();
      if (!s) {
        it = sessions.erase(it);
        continue;
      }
      if (s->idle() && (!victim || s->idle_since() < oldest)) {
        victim = s;
        oldest = s->idle_since();
      }
      ++it;
    }
  }
  if (!victim) return false;
  victim->close_from_outside();
  return true;
}

std::chrono::milliseconds LineServer::Impl::auth_failed(const std::string& ip) {
  std::lock_guard<std::mutex> lock(mutex);
  int n = ++auth_failures[ip];
  if (auth_failures.size() > 10000) auth_failures.clear();  // bounded memory
  int64_t ms = 100LL << std::min(n - 1, 6);
  return std::chrono::milliseconds(std::min<int64_t>(ms, 5000));
}

void LineServer::Impl::auth_succeeded(const std::string& ip) {
  std::lock_guard<std::mutex> lock(mutex);
  auth_failures.erase(ip);
}

void LineServer::Impl::accept() {
  acceptor.async_accept(asio::make_strand(io),
                        [self = this](const asio::error_code& ec, tcp::socket socket) {
                          if (self->stopped) return;
                          if (!ec) {
                            size_t n = self->connections.fetch_add(1) + 1;
                            if (n > self->options.max_connections && !self->evict_idlest()) {
                              self->connections.fetch_sub(1);
                              static const std::string busy = "ERR busy\n";
                              asio::error_code ignored;
                              socket.non_blocking(true, ignored);
                              socket.write_some(asio::buffer(busy), ignored);
                              socket.close(ignored);
                            } else {
                              auto session = std::make_shared<Session>(std::move(socket), self);
                              {
                                std::lock_guard<std::mutex> lock(self->mutex);
                                self->sessions.push_back(session);
                              }
                              session->start();
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
