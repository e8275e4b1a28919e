// The reporter's routes: the pages and their assets, the JSON API, badges and metrics
// (docs/API.md). Plain functions of a request to a reply; the HTTP server and the
// event stream are elsewhere.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "ci/protocol.h"
#include "ci/result.h"
#include "reporter/http.h"

namespace ci::reporter {

class QueryPool;

// A piece of a job's log, as the dispatcher's `logread` answers it.
struct LogChunk {
  uint64_t start = 0;  // the offset of bytes[0] (past the asked one if bytes were omitted)
  uint64_t total = 0;  // bytes of the log so far
  bool done = false;   // the attempt has ended: total is final
  std::string bytes;
};
using LogSource =
    std::function<Result<LogChunk>(JobId job, uint32_t attempt, uint64_t offset, uint64_t max)>;

struct ApiOptions {
  std::string token;  // non-empty: /api, /metrics and /badge need it
  std::string stream_path = "/api/events";
};

class Api {
 public:
  // `metrics`: the Prometheus text of /metrics.
  Api(ApiOptions options, QueryPool& queries, LogSource logs, std::function<std::string()> metrics);

  HttpReply handle(const HttpRequest& request);

 private:
  bool authorized(const HttpRequest& request) const;
  HttpReply route(const HttpRequest& request);
  HttpReply jobs(const HttpRequest& request);
  HttpReply job(const HttpRequest& request, JobId id, const std::string& rest);
  HttpReply log(const HttpRequest& request, JobId id);
  // The branch of `repo` ("": the default repository).
  HttpReply badge(const std::string& repo, const std::string& branch);

  ApiOptions options_;
  QueryPool& queries_;
  LogSource logs_;
  std::function<std::string()> metrics_;
};

// "bytes=<first>-[<last>]" into an offset and a length (0: to the end); false when
// malformed or not a single range.
bool parse_range(const std::string& header, uint64_t* offset, uint64_t* length);

}  // namespace ci::reporter
