#include "reporter/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdarg>
#include <cstring>
#include <vector>

#include "reporter/sse_hub.h"

namespace ci::reporter {

namespace {

// Headers every reply carries: the pages load only their own scripts and styles.
const std::pair<const char*, const char*> kSecurityHeaders[] = {
    {"X-Content-Type-Options", "nosniff"},
    {"Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"},
    {"Referrer-Policy", "no-referrer"},
};

MHD_Result collect(void* cls, MHD_ValueKind kind, const char* key, const char* value) {
  auto* into = static_cast<std::map<std::string, std::string>*>(cls);
  std::string name = key ? key : "";
  if (kind == MHD_HEADER_KIND)
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  into->emplace(std::move(name), value ? value : "");
  return MHD_YES;
}

void add_headers(MHD_Response* response, const HttpReply& reply) {
  for (const auto& [name, value] : kSecurityHeaders) MHD_add_response_header(response, name, value);
  MHD_add_response_header(response, "Content-Type", reply.content_type.c_str());
  for (const auto& [name, value] : reply.headers)
    MHD_add_response_header(response, name.c_str(), value.c_str());
}

MHD_Result send(MHD_Connection* connection, const HttpReply& reply) {
  MHD_Response* response = MHD_create_response_from_buffer(
      reply.body.size(), const_cast<char*>(reply.body.data()), MHD_RESPMEM_MUST_COPY);
  if (!response) return MHD_NO;
  add_headers(response, reply);
  MHD_Result r = MHD_queue_response(connection, static_cast<unsigned>(reply.status), response);
  MHD_destroy_response(response);
  return r;
}

void log_error(void*, const char* format, va_list args) {
  char line[512];
  std::vsnprintf(line, sizeof line, format, args);
  std::string text = line;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  spdlog::debug("http: {}", text);
}

// The socket address of `host`:`port` (numeric or a name resolved once).
Result<sockaddr_storage> resolve(const std::string& host, uint16_t port, socklen_t* len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return make_error("cannot resolve " + host + ": " + gai_strerror(rc));
  sockaddr_storage addr{};
  std::memcpy(&addr, found->ai_addr, found->ai_addrlen);
  *len = found->ai_addrlen;
  freeaddrinfo(found);
  return addr;
}

}  // namespace

struct HttpServer::Impl {
  HttpOptions options;
  HttpHandler handler;
  SseHub& hub;
  std::string stream_path;
  MHD_Daemon* daemon = nullptr;
  uint16_t port = 0;

  static MHD_Result access(void* cls, MHD_Connection* connection, const char* url,
                           const char* method, const char*, const char*, size_t* upload_size,
                           void** state) {
    auto* self = static_cast<Impl*>(cls);
    // Answered at the first call, when the headers are in: nothing served has a body.
    (void)state;
    (void)upload_size;
    HttpRequest request;
    request.method = method ? method : "";
    request.path = url ? url : "";
    if (request.method != "GET" && request.method != "HEAD") {
      HttpReply reply = HttpReply::error(405, "only GET and HEAD");
      reply.headers.emplace_back("Allow", "GET, HEAD");
      return send(connection, reply);
    }
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &collect, &request.query);
    MHD_get_connection_values(connection, MHD_HEADER_KIND, &collect, &request.headers);
    HttpReply reply;
    try {
      reply = self->handler(request);
    } catch (const std::exception& e) {
      // Never through the library's C frames: a failed request, not a dead server.
      spdlog::error("http {}: {}", request.path, e.what());
      reply = HttpReply::error(500, "internal error");
    }
    if (request.path != self->stream_path || reply.status != 200) return send(connection, reply);
    return self->open_stream(connection, request);
  }

  MHD_Result open_stream(MHD_Connection* connection, const HttpRequest& request) {
    auto last = request.header("last-event-id");
    if (!last) last = request.arg("last_event_id");
    uint64_t last_id = 0;
    bool has_last = false;
    if (last && !last->empty() && last->size() <= 19 &&
        std::all_of(last->begin(), last->end(), [](char c) { return c >= '0' && c <= '9'; })) {
      last_id = std::stoull(*last);
      has_last = true;
    }
    MHD_Response* response = hub.open(connection, has_last, last_id);
    if (!response) return send(connection, HttpReply::error(503, "stopping"));
    HttpReply head;
    head.content_type = "text/event-stream";
    head.headers = {{"Cache-Control", "no-store"}, {"X-Accel-Buffering", "no"}};
    add_headers(response, head);
    MHD_Result r = MHD_queue_response(connection, MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return r;
  }
};

HttpServer::HttpServer(HttpOptions options, HttpHandler handler, SseHub& hub,
                       std::string stream_path)
    : impl_(std::make_unique<Impl>(
          Impl{std::move(options), std::move(handler), hub, std::move(stream_path)})) {}

HttpServer::~HttpServer() { stop(); }

Result<void> HttpServer::start() {
  const HttpOptions& o = impl_->options;
  socklen_t len = 0;
  auto addr = resolve(o.host, o.port, &len);
  if (!addr) return Error{addr.error()};
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES) flags |= MHD_USE_EPOLL;
  if (addr->ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  std::vector<MHD_OptionItem> items = {
      {MHD_OPTION_SOCK_ADDR, 0, &*addr},
      {MHD_OPTION_CONNECTION_LIMIT, static_cast<intptr_t>(o.max_connections), nullptr},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<intptr_t>(o.max_connections_per_address),
       nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, static_cast<intptr_t>(o.timeout.count()), nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<intptr_t>(o.connection_memory), nullptr},
      {MHD_OPTION_EXTERNAL_LOGGER, reinterpret_cast<intptr_t>(&log_error), nullptr},
  };
  // A pool only when asked for: one thread is the library's default, without a pool.
  if (o.threads > 1)
    items.push_back({MHD_OPTION_THREAD_POOL_SIZE, static_cast<intptr_t>(o.threads), nullptr});
  items.push_back({MHD_OPTION_END, 0, nullptr});
  impl_->daemon = MHD_start_daemon(flags, o.port, nullptr, nullptr, &Impl::access, impl_.get(),
                                   MHD_OPTION_ARRAY, items.data(), MHD_OPTION_END);
  if (!impl_->daemon)
    return make_error("cannot listen on " + o.host + ":" + std::to_string(o.port));
  const MHD_DaemonInfo* info = MHD_get_daemon_info(impl_->daemon, MHD_DAEMON_INFO_BIND_PORT);
  impl_->port = info ? info->port : o.port;
  return {};
}

uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop() {
  if (!impl_->daemon) return;
  // No connection may be suspended when the daemon stops: end the streams first.
  impl_->hub.close();
  MHD_stop_daemon(impl_->daemon);
  impl_->daemon = nullptr;
}

}  // namespace ci::reporter
