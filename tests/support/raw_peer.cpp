#include "raw_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include "ci/auth.h"

namespace ci::test {

using Clock = std::chrono::steady_clock;

namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

// Waits until `fd` is readable or the deadline passes; true if readable.
bool wait_readable(int fd, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

}  // namespace

RawSocket::~RawSocket() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<RawSocket> RawSocket::connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  sockaddr_in addr = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return nullptr;
  }
  return std::make_unique<RawSocket>(fd);
}

bool RawSocket::send(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::optional<std::string> RawSocket::read_line(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    size_t end = buffer_.find('\n');
    if (end != std::string::npos) {
      std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      return line;
    }
    if (!wait_readable(fd_, deadline)) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

bool RawSocket::closes_without_sending(std::chrono::milliseconds timeout, std::string* sent) {
  auto deadline = Clock::now() + timeout;
  *sent += buffer_;
  bool quiet = buffer_.empty();
  buffer_.clear();
  while (true) {
    if (!wait_readable(fd_, deadline)) return false;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return quiet;  // closed (or reset)
    sent->append(buf, static_cast<size_t>(n));
    quiet = false;
  }
}

RawServer::RawServer(std::function<void(RawSocket&)> serve) : serve_(std::move(serve)) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = loopback(0);
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd_, 64) != 0)
    throw std::runtime_error("RawServer: cannot listen on 127.0.0.1");
  socklen_t size = sizeof addr;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

RawServer::~RawServer() {
  stopping_ = true;
  ::shutdown(fd_, SHUT_RDWR);  // wakes the acceptor's poll
  acceptor_.join();
  ::close(fd_);
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& t : connections_) t.join();
}

void RawServer::accept_loop() {
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, -1);
    if (stopping_) return;
    if (ready <= 0) continue;
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++accepted_;
    std::lock_guard<std::mutex> lock(mutex_);
    connections_.emplace_back([this, fd] {
      RawSocket socket(fd);
      serve_(socket);
    });
  }
}

HandshakeFake::HandshakeFake(Reply reply)
    : reply_(std::move(reply)), server_([this](RawSocket& socket) { serve(socket); }) {}

std::string HandshakeFake::sent_after_reply() {
  std::lock_guard<std::mutex> lock(mutex_);
  return sent_after_reply_;
}

void HandshakeFake::serve(RawSocket& socket) {
  using namespace std::chrono_literals;
  const std::string server_nonce = make_nonce();
  if (!socket.send("AUTH " + server_nonce + "\n")) return;
  auto answer = socket.read_line(10000ms);
  if (!answer || answer->rfind("auth ", 0) != 0) return;
  std::string client_nonce = answer->substr(5, answer->find(' ', 5) - 5);
  if (!socket.send(reply_(server_nonce, client_nonce))) return;
  ++answered_;
  std::string sent;
  bool quiet = socket.closes_without_sending(10000ms, &sent);
  if (quiet) ++closed_quietly_;
  std::lock_guard<std::mutex> lock(mutex_);
  sent_after_reply_ += sent;
}

}  // namespace ci::test
