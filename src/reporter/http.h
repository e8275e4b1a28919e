// A request and a reply of the reporter's HTTP server, free of libmicrohttpd so that the
// API's handlers are plain functions of one to the other.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ci::reporter {

struct HttpRequest {
  std::string method;  // GET or HEAD (others are refused before routing)
  std::string path;    // decoded, without the query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names in lower case

  std::optional<std::string> arg(const std::string& name) const;
  std::optional<std::string> header(const std::string& lower_name) const;
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpReply json(int status, const std::string& body);
  // {"error": message}
  static HttpReply error(int status, const std::string& message);
};

}  // namespace ci::reporter
