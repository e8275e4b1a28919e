#include "line_connection.h"

#include <algorithm>
#include <utility>

#include "ci/auth.h"

namespace ci::line_server {

using asio::ip::tcp;

Connection::Connection(tcp::socket socket, std::string ip, std::string peer,
                       LineServer::Impl* server, bool unauthenticated)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      server_(server),
      parser_(server_->options.limits, server_->body_rule),
      peer_(std::move(peer)),
      ip_(std::move(ip)),
      authenticated_(server_->options.token.empty()),
      counted_unauthenticated_(unauthenticated),
      opened_at_(SteadyClock::now().time_since_epoch().count()) {
  // Stops before each body, to decide whether and when to read it.
  parser_.pause_before_body(true);
  touch();
}

Connection::~Connection() {
  if (counted_unauthenticated_) server_->left_unauthenticated(ip_);
  if (reserved_ != 0) server_->release_body(reserved_);
  server_->connections.fetch_sub(1);
}

void Connection::start() {
  arm_deadline();
  if (!authenticated_) {
    nonce_ = make_nonce();
    write("AUTH " + nonce_ + "\n", false, std::chrono::milliseconds(0));
  } else {
    read();
  }
}

void Connection::body_granted(size_t n) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), n] {
    self->reserved_ = n;
    if (self->closed_) return;  // the destructor gives the bytes back
    self->arm_deadline();
    self->resume();
  });
}

void Connection::close_from_outside() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->shutdown(); });
}

void Connection::arm_deadline() {
  auto timeout = server_->options.idle_timeout;
  if (!authenticated_) timeout = std::min(timeout, server_->options.auth_timeout);
  timer_.expires_after(timeout);
  timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
    if (ec) return;  // re-armed or cancelled
    self->shutdown();
  });
}

void Connection::read() {
  socket_.async_read_some(asio::buffer(buf_),
                          [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                            if (ec) {
                              self->shutdown();
                              return;
                            }
                            self->process(std::string_view(self->buf_.data(), n));
                          });
}

// What is left of `data` waits in rest_ when a handler answers later, when a body
// waits for room in the body budget, and when the replies not yet written reach
// max_unsent: reading goes on once they are written.
void Connection::process(std::string_view data) {
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
      MutexLock lock(answer_mutex_);
      answer_state_ = AnswerState::Asked;
    }
    server_->handler(request, peer_, [self = shared_from_this()](Response response) {
      self->answered(std::move(response));
    });
    if (reserved_ != 0) {  // the body is handled: its bytes go back to the budget
      request = Frame{};
      server_->release_body(std::exchange(reserved_, 0));
    }
    Response answer;
    {
      MutexLock lock(answer_mutex_);
      if (answer_state_ == AnswerState::Asked) {
        // Later: no reading, and no idle deadline, until the answer comes.
        answer_state_ = AnswerState::Waiting;
        rest_ = std::string(data);
        in_message_ = true;
        timer_.cancel();
        return;
      }
      answer_state_ = AnswerState::None;
      answer = std::move(answer_);
    }
    take_answer(std::move(answer));
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

void Connection::answered(Response response) {
  MutexLock lock(answer_mutex_);
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

void Connection::resume() {
  std::string rest = std::exchange(rest_, std::string());
  process(rest);
}

// Before authentication only a short `auth` line is read: anything else is refused
// and the connection closed, with any body announced left unread.
void Connection::refuse_unauthenticated() {
  out_ += serialize(serialize_reply(Reply::err("auth required")));
  close_ = true;
}

void Connection::now_authenticated() {
  authenticated_ = true;
  if (counted_unauthenticated_) {
    counted_unauthenticated_ = false;
    server_->left_unauthenticated(ip_);
  }
  arm_deadline();  // the idle timeout from now on, not the authentication deadline
}

void Connection::take_answer(Response response) {
  out_ += serialize(response.frame);
  close_ = response.close || ++messages_ >= server_->options.max_messages;
}

void Connection::write(std::string text, bool close, std::chrono::milliseconds delay) {
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

void Connection::shutdown() {
  closed_ = true;
  timer_.cancel();
  asio::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

}  // namespace ci::line_server
