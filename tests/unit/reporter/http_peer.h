// HTTP by hand for the reporter's tests, over loopback sockets with deadlines: a
// client (HTTP/1.0, so that every reply ends with the connection), a reader of an
// event stream, and a webhook receiver that answers as a test tells it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ci::reporter::test_peer {

struct HttpResult {
  int status = 0;                              // 0: no reply (refused or closed)
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

// Sends `raw` as it is and reads until the server closes or `timeout` passes.
std::string exchange(uint16_t port, const std::string& raw,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
HttpResult parse_http(const std::string& text);
HttpResult http_get(uint16_t port, const std::string& target,
                    const std::vector<std::string>& headers = {});

struct SseEvent {
  std::string id, event, data;
};

// An open event stream.
class SseReader {
 public:
  // HTTP/1.0 by default; `http11`: HTTP/1.1, as browsers ask, which the server answers
  // with a chunked body.
  SseReader(uint16_t port, const std::string& target, const std::vector<std::string>& headers = {},
            bool http11 = false);
  ~SseReader();
  SseReader(const SseReader&) = delete;
  SseReader& operator=(const SseReader&) = delete;

  // Reads until at least `n` events (comments aside) have come, or `timeout` passes.
  bool wait_events(size_t n, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  // Reads until the response header is in.
  bool wait_open(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  std::vector<SseEvent> events() const;
  const std::string& text() const { return text_; }

 private:
  bool read_some(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string text_;
};

// Receives webhook POSTs; answers the n-th request (from 0) with the status
// `answer(n)` returns, or, for 0, never (until close()).
class WebhookReceiver {
 public:
  explicit WebhookReceiver(std::function<int(size_t n)> answer);
  ~WebhookReceiver();
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  size_t requests();
  // The bodies of the requests answered with a 2xx status.
  std::vector<std::string> accepted();
  // Closes every connection (hanging ones included) and stops.
  void close();

 private:
  void accept_loop();
  void serve(int fd);

  std::function<int(size_t)> answer_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> closing_{false};
  std::mutex mutex_;
  std::vector<int> fds_;
  size_t requests_ = 0;
  std::vector<std::string> accepted_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace ci::reporter::test_peer
