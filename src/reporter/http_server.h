// The reporter's HTTP server, on libmicrohttpd: one internal polling thread (epoll
// where the library has it) or a small pool of them, answering each request from the
// API's handler and keeping event streams (SseHub) suspended between events, so that
// a thousand open dashboards pin no thread.
//
// Bounds: a connection's memory (request line and headers beyond it are refused), the
// number of connections in all and from one address, and a timeout that closes a
// connection idle (or sending too slowly) for that long. Only GET and HEAD are served;
// nothing is read from disk, so no path reaches a file.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ci/result.h"
#include "reporter/http.h"

namespace ci::reporter {

class SseHub;

struct HttpOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port
  size_t threads = 1;
  size_t max_connections = 1000;
  size_t max_connections_per_address = 200;
  std::chrono::seconds timeout{30};
  size_t connection_memory = 32 * 1024;  // bytes: the request line and headers fit in it
};

// Answers a request; `is_stream` set: the request is for the event stream (answered
// by the hub after `handler` said yes with a 200 and an empty body).
using HttpHandler = std::function<HttpReply(const HttpRequest& request)>;

class HttpServer {
 public:
  // `stream_path`: the path served by `hub` (after `handler` authorized it).
  HttpServer(HttpOptions options, HttpHandler handler, SseHub& hub, std::string stream_path);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  Result<void> start();
  uint16_t port() const;
  // Ends the event streams and stops the threads. Idempotent.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ci::reporter
