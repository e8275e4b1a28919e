#include "reporter/http.h"

#include <nlohmann/json.hpp>

#include "reporter/json.h"

namespace ci::reporter {

std::optional<std::string> HttpRequest::arg(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> HttpRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

HttpReply HttpReply::json(int status, const std::string& body) {
  HttpReply reply;
  reply.status = status;
  reply.body = body;
  return reply;
}

HttpReply HttpReply::error(int status, const std::string& message) {
  return json(status, json_text(nlohmann::json{{"error", message}}));
}

}  // namespace ci::reporter
