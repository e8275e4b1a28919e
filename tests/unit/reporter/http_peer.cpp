#include "http_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <sstream>

namespace ci::reporter::test_peer {

using Steady = std::chrono::steady_clock;

namespace {

int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Appends what arrives before `deadline`; false on end of stream or deadline.
bool read_into(int fd, std::string* out, Steady::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
  if (left.count() <= 0) return false;
  pollfd p{fd, POLLIN, 0};
  int ready = ::poll(&p, 1, static_cast<int>(left.count()));
  if (ready < 0 && errno == EINTR) return true;
  if (ready <= 0) return false;
  char buf[16384];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) return false;
  out->append(buf, static_cast<size_t>(n));
  return true;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The data of the complete chunks of a chunked body.
std::string dechunk(const std::string& body) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    auto eol = body.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t size = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
    if (size == 0 || eol + 2 + size + 2 > body.size()) break;
    out += body.substr(eol + 2, size);
    pos = eol + 2 + size + 2;
  }
  return out;
}

}  // namespace

std::string exchange(uint16_t port, const std::string& raw, std::chrono::milliseconds timeout) {
  int fd = connect_loopback(port);
  if (fd < 0) return "";
  std::string out;
  if (send_all(fd, raw)) {
    auto deadline = Steady::now() + timeout;
    while (read_into(fd, &out, deadline)) {
    }
  } else {
    // The server may have answered and closed while the request was still going out.
    auto deadline = Steady::now() + timeout;
    while (read_into(fd, &out, deadline)) {
    }
  }
  ::close(fd);
  return out;
}

HttpResult parse_http(const std::string& text) {
  HttpResult result;
  auto end = text.find("\r\n\r\n");
  if (end == std::string::npos || text.rfind("HTTP/1.", 0) != 0) return result;
  std::istringstream head(text.substr(0, end));
  std::string line;
  std::getline(head, line);
  result.status = std::stoi(line.substr(9, 3));
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    result.headers[lower(line.substr(0, colon))] = value;
  }
  result.body = text.substr(end + 4);
  return result;
}

HttpResult http_get(uint16_t port, const std::string& target,
                    const std::vector<std::string>& headers) {
  std::string raw = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n";
  for (const auto& h : headers) raw += h + "\r\n";
  raw += "\r\n";
  return parse_http(exchange(port, raw));
}

SseReader::SseReader(uint16_t port, const std::string& target,
                     const std::vector<std::string>& headers, bool http11) {
  fd_ = connect_loopback(port);
  std::string raw = "GET " + target + (http11 ? " HTTP/1.1" : " HTTP/1.0") +
                    "\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n";
  for (const auto& h : headers) raw += h + "\r\n";
  raw += "\r\n";
  if (fd_ >= 0) send_all(fd_, raw);
}

SseReader::~SseReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool SseReader::read_some(Steady::time_point deadline) {
  return fd_ >= 0 && read_into(fd_, &text_, deadline);
}

bool SseReader::wait_open(std::chrono::milliseconds timeout) {
  auto deadline = Steady::now() + timeout;
  while (text_.find("\r\n\r\n") == std::string::npos)
    if (!read_some(deadline)) return false;
  return true;
}

bool SseReader::wait_events(size_t n, std::chrono::milliseconds timeout) {
  auto deadline = Steady::now() + timeout;
  while (events().size() < n)
    if (!read_some(deadline)) return false;
  return true;
}

std::vector<SseEvent> SseReader::events() const {
  std::vector<SseEvent> out;
  auto start = text_.find("\r\n\r\n");
  if (start == std::string::npos) return out;
  std::string body = text_.substr(start + 4);
  if (lower(text_.substr(0, start)).find("transfer-encoding: chunked") != std::string::npos)
    body = dechunk(body);
  size_t pos = 0;
  for (auto end = body.find("\n\n", pos); end != std::string::npos; end = body.find("\n\n", pos)) {
    std::istringstream block(body.substr(pos, end - pos));
    pos = end + 2;
    SseEvent e;
    for (std::string line; std::getline(block, line);) {
      if (line.rfind("id: ", 0) == 0) e.id = line.substr(4);
      if (line.rfind("event: ", 0) == 0) e.event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) e.data = line.substr(6);
    }
    if (!e.event.empty()) out.push_back(std::move(e));
  }
  return out;
}

WebhookReceiver::WebhookReceiver(std::function<int(size_t)> answer) : answer_(std::move(answer)) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(listener_, 64);
  socklen_t len = sizeof addr;
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

WebhookReceiver::~WebhookReceiver() { close(); }

void WebhookReceiver::close() {
  if (closing_.exchange(true)) return;
  ::shutdown(listener_, SHUT_RDWR);
  {
    std::lock_guard lock(mutex_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  acceptor_.join();
  for (auto& t : threads_) t.join();
  for (int fd : fds_) ::close(fd);
  ::close(listener_);
}

size_t WebhookReceiver::requests() {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::vector<std::string> WebhookReceiver::accepted() {
  std::lock_guard lock(mutex_);
  return accepted_;
}

void WebhookReceiver::accept_loop() {
  while (!closing_) {
    int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    std::lock_guard lock(mutex_);
    if (closing_) {
      ::close(fd);
      return;
    }
    fds_.push_back(fd);
    threads_.emplace_back([this, fd] { serve(fd); });
  }
}

void WebhookReceiver::serve(int fd) {
  std::string in;
  auto deadline = Steady::now() + std::chrono::seconds(30);
  size_t head_end;
  while ((head_end = in.find("\r\n\r\n")) == std::string::npos)
    if (!read_into(fd, &in, deadline)) return;
  HttpResult head = parse_http("HTTP/1.1 000 x\r\n" + in.substr(in.find("\r\n") + 2));
  size_t length =
      std::stoul(head.headers.count("content-length") ? head.headers["content-length"] : "0");
  while (in.size() < head_end + 4 + length)
    if (!read_into(fd, &in, deadline)) return;
  std::string body = in.substr(head_end + 4, length);
  int status;
  {
    std::lock_guard lock(mutex_);
    status = answer_(requests_++);
    if (status >= 200 && status < 300) accepted_.push_back(body);
  }
  if (status == 0) {
    // Hangs: holds the connection without a word until close() shuts it.
    std::string ignored;
    while (!closing_ && read_into(fd, &ignored, Steady::now() + std::chrono::seconds(60))) {
    }
    return;
  }
  send_all(fd, "HTTP/1.1 " + std::to_string(status) +
                   " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

}  // namespace ci::reporter::test_peer
