#include <algorithm>
#include <array>
#include <asio.hpp>
#include <atomic>
#include <deque>
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

  // Guards the members below, up to io. A session's destructor takes it: a session
  // pointer obtained under it is only released once it is unlocked.
  std::mutex mutex;
  std::list<std::weak_ptr<Session>> sessions;
  std::map<std::string, int> auth_failures;  // by peer address, without the port
  // Connections not authenticated yet, by peer address (with a token only).
  std::map<std::string, size_t> unauthenticated;
  size_t body_bytes = 0;  // of the body budget, held by connections receiving a body
  // Connections waiting, first come first served, for their body to fit in the budget.
  std::deque<std::pair<std::shared_ptr<Session>, size_t>> body_waiting;

  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;

  void accept();
  // Closes a connection to make room for a new one: one not authenticated yet, oldest
  // first, or else the one idle longest. False when there is none.
  bool make_room();
  // Counts a new connection from `ip` that must authenticate; false (and not counted)
  // when that address already has as many as it may.
  bool admit_unauthenticated(const std::string& ip);
  void left_unauthenticated(const std::string& ip);
  size_t body_budget() const { return std::max(options.body_budget, options.limits.max_body); }
  // Takes `n` bytes of the body budget for `session`, or queues it (false): it is then
  // given them later, by Session::body_granted on its own strand.
  bool reserve_body(const std::shared_ptr<Session>& session, size_t n);
  void release_body(size_t n);
  // How long to wait before answering a failed authentication from `ip`: repeated
  // failures are slowed down, doubling up to 5 s.
  std::chrono::milliseconds auth_failed(const std::string& ip);
  void auth_succeeded(const std::string& ip);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `unauthenticated`: counted in the server's connections not authenticated yet.
  Session(tcp::socket socket, std::string ip, std::string peer, LineServer::Impl* server,
          bool unauthenticated)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        server_(server),
        parser_(server_->options.limits, server_->body_rule),
        peer_(std::move(peer)),
        ip_(std::move(ip)),
        authenticated_(server_->options.token.empty()),
        counted_unauthenticated_(unauthenticated),
        opened_at_(Clock::now().time_since_epoch().count()) {
    // Stops before each body, to decide whether and when to read it.
    parser_.pause_before_body(true);
    touch();
  }
  ~Session() {
    if (counted_unauthenticated_) server_->left_unauthenticated(ip_);
    if (reserved_ != 0) server_->release_body(reserved_);
    server_->connections.fetch_sub(1);
  }

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
  bool authenticated() const { return authenticated_.load(); }
  Clock::rep opened_at() const { return opened_at_; }
  // True for the first caller only: a connection is closed to make room once.
  bool mark_evicted() { return !evicted_.exchange(true); }

  // From release_body, on any thread: the body waiting for room has `n` bytes of it.
  void body_granted(size_t n) {
    asio::post(socket_.get_executor(), [self = shared_from_this(), n] {
      self->reserved_ = n;
      if (self->closed_) return;  // the destructor gives the bytes back
      self->arm_deadline();
      self->resume();
    });
  }

  // From another connection's thread: closes this one on its own strand.
  void close_from_outside() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->shutdown(); });
  }

 private:
  void touch() { idle_since_ = Clock::now().time_since_epoch().count(); }

  void arm_deadline() {
    auto timeout = server_->options.idle_timeout;
    if (!authenticated_) timeout = std::min(timeout, server_->options.auth_timeout);
    timer_.expires_after(timeout);
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
  // What is left of `data` waits in rest_ when a handler answers later, when a body
  // waits for room in the body budget, and when the replies not yet written reach
  // max_unsent: reading goes on once they are written.
  void process(std::string_view data) {
    while (!data.empty() && !close_) {
      if (out_.size() >= server_->options.max_unsent) {
        rest_ = std::string(data);
        break;
      }
      size_t used = 0;
      auto status = parser_.feed(data, &used);
      data.remove_prefix(used);
      if (status == FrameParser::Status::NeedMore) break;
      if (status == FrameParser::Status::Bad) {
        out_ += serialize(serialize_reply(Reply::err(parser_.error())));
        close_ = true;
        break;
      }
      if (status == FrameParser::Status::BodyNext) {
        if (!authenticated_) {  // not a byte of it is read
          refuse_unauthenticated();
          break;
        }
        size_t need = parser_.body_length();
        if (!server_->reserve_body(shared_from_this(), need)) {
          // Reads nothing, and no idle deadline runs, until the bodies before it are in.
          rest_ = std::string(data);
          in_message_ = true;
          timer_.cancel();
          return;
        }
        reserved_ = need;
        continue;
      }
      Frame request = parser_.take();
      touch();
      arm_deadline();
      if (!authenticated_ && (request.verb() != "auth" || request.has_body)) {
        refuse_unauthenticated();
        break;
      }
      if (!authenticated_) {
        // "auth <client-nonce> <proof>", the proof bound to this server's service and
        // to both nonces; answered with this server's own proof (ci/auth.h).
        const auto& w = request.words;
        const auto& options = server_->options;
        if (w.size() == 3 && w[0] == "auth" && is_nonce(w[1]) &&
            check_client_proof(options.token, options.service, nonce_, w[1], w[2])) {
          server_->auth_succeeded(ip_);
          now_authenticated();
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
      if (reserved_ != 0) {  // the body is handled: its bytes go back to the budget
        request = Frame{};
        server_->release_body(std::exchange(reserved_, 0));
      }
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
    in_message_ = parser_.in_message() || !rest_.empty();
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
                 self->resume();
               });
  }

  // Goes on with the input left in rest_, then reads more.
  void resume() {
    std::string rest = std::exchange(rest_, std::string());
    process(rest);
  }

  // Before authentication only a short `auth` line is read: anything else is refused
  // and the connection closed, with any body announced left unread.
  void refuse_unauthenticated() {
    out_ += serialize(serialize_reply(Reply::err("auth required")));
    close_ = true;
  }

  void now_authenticated() {
    authenticated_ = true;
    if (counted_unauthenticated_) {
      counted_unauthenticated_ = false;
      server_->left_unauthenticated(ip_);
    }
    arm_deadline();  // the idle timeout from now on, not the authentication deadline
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
                          self->resume();
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
    closed_ = true;
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
  // Set on the connection's strand, read from other connections' threads (make_room).
  std::atomic<bool> authenticated_;
  bool counted_unauthenticated_;
  bool closed_ = false;
  size_t reserved_ = 0;  // bytes of the body budget this connection holds
  size_t messages_ = 0;
  // Read from other connections' threads (make_room).
  std::atomic<bool> in_message_{false};
  std::atomic<Clock::rep> idle_since_{0};
  std::atomic<bool> evicted_{false};
  const Clock::rep opened_at_;
};

}  // namespace

bool LineServer::Impl::make_room() {
  std::vector<std::shared_ptr<Session>> seen;  // released after the lock
  std::shared_ptr<Session> victim;
  {
    std::lock_guard<std::mutex> lock(mutex);
    seen.reserve(sessions.size());
    std::shared_ptr<Session> unauthenticated_oldest, idlest;
    for (auto it = sessions.begin(); it != sessions.end();) {
      auto s = it->lock();
      if (!s) {
        it = sessions.erase(it);
        continue;
      }
      ++it;
      seen.push_back(s);
      if (!s->authenticated()) {
        if (!unauthenticated_oldest || s->opened_at() < unauthenticated_oldest->opened_at())
          unauthenticated_oldest = s;
      } else if (s->idle() && (!idlest || s->idle_since() < idlest->idle_since())) {
        idlest = s;
      }
    }
    victim = unauthenticated_oldest ? unauthenticated_oldest : idlest;
    // Already closing to make room for another: not counted twice.
    if (victim && !victim->mark_evicted()) victim = nullptr;
  }
  if (!victim) return false;
  victim->close_from_outside();
  return true;
}

bool LineServer::Impl::admit_unauthenticated(const std::string& ip) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = unauthenticated.find(ip);
  size_t n = it == unauthenticated.end() ? 0 : it->second;
  if (n >= options.max_unauthenticated_per_address) return false;
  ++unauthenticated[ip];
  return true;
}

void LineServer::Impl::left_unauthenticated(const std::string& ip) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = unauthenticated.find(ip);
  if (it == unauthenticated.end()) return;
  if (--it->second == 0) unauthenticated.erase(it);
}

bool LineServer::Impl::reserve_body(const std::shared_ptr<Session>& session, size_t n) {
  std::lock_guard<std::mutex> lock(mutex);
  if (body_waiting.empty() && body_bytes + n <= body_budget()) {
    body_bytes += n;
    return true;
  }
  body_waiting.emplace_back(session, n);
  return false;
}

void LineServer::Impl::release_body(size_t n) {
  std::vector<std::pair<std::shared_ptr<Session>, size_t>> granted;  // released after the lock
  {
    std::lock_guard<std::mutex> lock(mutex);
    body_bytes -= n;
    if (stopped) return;
    while (!body_waiting.empty() && body_bytes + body_waiting.front().second <= body_budget()) {
      body_bytes += body_waiting.front().second;
      granted.push_back(std::move(body_waiting.front()));
      body_waiting.pop_front();
    }
  }
  for (auto& [session, bytes] : granted) session->body_granted(bytes);
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
            auto session = std::make_shared<Session>(std::move(socket), std::move(ip),
                                                     std::move(peer), self, must_authenticate);
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

LineServer::Stats LineServer::stats() const {
  Stats stats;
  stats.connections = impl_->connections.load();
  std::lock_guard<std::mutex> lock(impl_->mutex);
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
  std::deque<std::pair<std::shared_ptr<Session>, size_t>> waiting;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    waiting.swap(impl_->body_waiting);
  }
}

}  // namespace ci
