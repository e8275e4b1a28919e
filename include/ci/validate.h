// Validation of identifiers taken from peers, before any use: commit ids, branch
// names, job ids, host names and ports. Each returns an empty string when the value
// is valid, otherwise the reason it is not (for an ERR reply).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ci {

// 40 (SHA-1) or 64 (SHA-256) lowercase or uppercase hex digits.
std::string check_commit_id(std::string_view id);
// The one spelling of a commit id used for jobs and file names: lower case. The same
// commit spelt in capitals is the same job and the same result file.
std::string normalize_commit_id(std::string_view id);
// A branch name as git's check-ref-format allows for refs/heads/<name>.
std::string check_branch_name(std::string_view name);
// A host name or IPv4/IPv6 literal: 1-253 chars of [A-Za-z0-9.-:], no leading '-'.
std::string check_host(std::string_view host);

// A repository's name: 1-64 of [A-Za-z0-9._-], starting with a letter or digit, and
// not a commit id (a default-repository result file is test_results/<commit>, a named
// repository's results are under test_results/<name>/).
std::string check_repo_name(std::string_view name);
// Where runners fetch a repository from: 1-1024 printable bytes, no space or control
// byte, not starting with '-'.
std::string check_repo_url(std::string_view url);
// A runner label: 1-64 of [A-Za-z0-9._+-], starting with a letter or digit.
std::string check_label(std::string_view label);
inline constexpr size_t kMaxLabels = 32;
// "a,b,c": labels separated by commas, each checked; at most kMaxLabels. Sorted, each
// once.
std::optional<std::vector<std::string>> parse_label_list(std::string_view text,
                                                         std::string* why = nullptr);
std::string join_labels(const std::vector<std::string>& labels);  // "a,b"; "" for none

// Decimal numbers, strictly: digits only, no sign, no leading '+', within range.
std::optional<uint64_t> parse_u64(std::string_view text, uint64_t max = UINT64_MAX);
std::optional<int64_t> parse_count(std::string_view text);  // "-" means unknown: -1
std::optional<uint16_t> parse_port(std::string_view text);  // 1..65535

// "host:port" with the port in 1..65535; [v6]:port accepted.
struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string str() const;
};
std::optional<HostPort> parse_host_port(std::string_view text, std::string* why = nullptr);

// True only for a loopback address: an IPv4 literal in 127.0.0.0/8, ::1, an IPv4-mapped
// ::ffff:127.x.y.z, or the name "localhost". Any other name is false, even one that
// starts like a loopback address ("127.0.0.1.example.com" resolves wherever its owner
// wants).
bool is_loopback(std::string_view host);

// Escapes a peer-supplied string for a log line: printable ASCII kept, anything else
// as \xNN, cut to max_len with "..." after it.
std::string escape_for_log(std::string_view text, size_t max_len = 200);

}  // namespace ci
