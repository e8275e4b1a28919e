#include "ci/validate.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>

namespace ci {

std::string check_commit_id(std::string_view id) {
  if (id.size() != 40 && id.size() != 64) return "commit id must be 40 or 64 hex digits";
  for (char c : id) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return "commit id must be 40 or 64 hex digits";
  }
  return {};
}

std::string normalize_commit_id(std::string_view id) {
  std::string out(id);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string check_branch_name(std::string_view name) {
  if (name.empty()) return "branch name is empty";
  if (name.size() > 255) return "branch name longer than 255 bytes";
  if (name.front() == '-') return "branch name starts with '-'";
  if (name == "@") return "branch name is '@'";
  if (name.front() == '/' || name.back() == '/' || name.back() == '.')
    return "branch name starts or ends with '/' or ends with '.'";
  if (name.find("..") != std::string_view::npos || name.find("//") != std::string_view::npos ||
      name.find("@{") != std::string_view::npos)
    return "branch name contains '..', '//' or '@{'";
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' ||
        c == '*' || c == '[' || c == '\\')
      return "branch name contains a character git does not allow";
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part.empty() || part.front() == '.') return "branch name has a component starting with '.'";
    if (part.size() >= 5 && part.substr(part.size() - 5) == ".lock")
      return "branch name has a component ending in '.lock'";
    start = end + 1;
  }
  return {};
}

std::string check_repo_name(std::string_view name) {
  if (name.empty()) return "repository name is empty";
  if (name.size() > 64) return "repository name longer than 64 bytes";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_';
    if (!ok) return "repository name may hold only letters, digits, '.', '-' and '_'";
  }
  char first = name.front();
  if (first == '.' || first == '-' || first == '_')
    return "repository name must start with a letter or digit";
  if (check_commit_id(name).empty()) return "repository name must not be a commit id";
  return {};
}

std::string check_repo_url(std::string_view url) {
  if (url.empty()) return "repository url is empty";
  if (url.size() > 1024) return "repository url longer than 1024 bytes";
  if (url.front() == '-') return "repository url starts with '-'";
  for (unsigned char c : url)
    if (c <= 0x20 || c == 0x7f) return "repository url contains a space or control byte";
  return {};
}

std::string check_label(std::string_view label) {
  if (label.empty()) return "label is empty";
  if (label.size() > 64) return "label longer than 64 bytes";
  for (char c : label) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == '+';
    if (!ok) return "label may hold only letters, digits, '.', '-', '_' and '+'";
  }
  char first = label.front();
  bool alnum = (first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') ||
               (first >= '0' && first <= '9');
  if (!alnum) return "label must start with a letter or digit";
  return {};
}

std::optional<std::vector<std::string>> parse_label_list(std::string_view text, std::string* why) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view label = text.substr(start, end - start);
    if (std::string reason = check_label(label); !reason.empty()) {
      if (why) *why = reason;
      return std::nullopt;
    }
    out.emplace_back(label);
    start = end + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.size() > kMaxLabels) {
    if (why) *why = "more than " + std::to_string(kMaxLabels) + " labels";
    return std::nullopt;
  }
  return out;
}

std::string join_labels(const std::vector<std::string>& labels) {
  std::string out;
  for (const auto& l : labels) {
    if (!out.empty()) out += ',';
    out += l;
  }
  return out;
}

std::string check_host(std::string_view host) {
  if (host.empty()) return "host is empty";
  if (host.size() > 253) return "host longer than 253 characters";
  if (host.front() == '-') return "host starts with '-'";
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '_';
    if (!ok) return "host contains a character not allowed in a host name";
  }
  return {};
}

std::optional<uint64_t> parse_u64(std::string_view text, uint64_t max) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  for (char c : text)
    if (c < '0' || c > '9') return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v > max) return std::nullopt;
  return v;
}

std::optional<int64_t> parse_count(std::string_view text) {
  if (text == "-") return -1;
  auto v = parse_u64(text, INT64_MAX);
  if (!v) return std::nullopt;
  return static_cast<int64_t>(*v);
}

std::optional<uint16_t> parse_port(std::string_view text) {
  auto v = parse_u64(text, 65535);
  if (!v || *v == 0) return std::nullopt;
  return static_cast<uint16_t>(*v);
}

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<HostPort> parse_host_port(std::string_view text, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<HostPort> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail("address must be host:port");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("address must be host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (std::string bad = check_host(host); !bad.empty()) return fail(bad);
  auto p = parse_port(port);
  if (!p) return fail("port must be a number from 1 to 65535");
  return HostPort{std::string(host), *p};
}

bool is_loopback(std::string_view host) {
  std::string text(host);
  std::string lower = text;
  for (char& c : lower)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  if (lower == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

std::string escape_for_log(std::string_view text, size_t max_len) {
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace ci
