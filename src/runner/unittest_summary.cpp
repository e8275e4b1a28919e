#include "runner/unittest_summary.h"

#include <optional>
#include <vector>

#include "ci/validate.h"

namespace ci::runner {
namespace {

bool consume(std::string_view* text, std::string_view prefix) {
  if (!text->starts_with(prefix)) return false;
  text->remove_prefix(prefix.size());
  return true;
}

std::optional<int64_t> take_number(std::string_view* text) {
  size_t n = 0;
  while (n < text->size() && (*text)[n] >= '0' && (*text)[n] <= '9') ++n;
  auto value = parse_u64(text->substr(0, n), INT64_MAX);
  if (!value) return std::nullopt;
  text->remove_prefix(n);
  return static_cast<int64_t>(*value);
}

// "Ran 1 test in 0.001s" / "Ran 12 tests in 3.5s"
std::optional<int64_t> ran_line(std::string_view line) {
  if (!consume(&line, "Ran ")) return std::nullopt;
  auto count = take_number(&line);
  if (!count || !consume(&line, " test")) return std::nullopt;
  consume(&line, "s");
  if (!line.starts_with(" in ")) return std::nullopt;
  return count;
}

// The words inside "(failures=1, errors=2, expected failures=1)": failures, errors
// and unexpected successes each made the run fail; skips and expected failures did not.
std::optional<int64_t> failures_in(std::string_view details) {
  if (details.empty()) return 0;
  if (!consume(&details, " (") || !details.ends_with(')')) return std::nullopt;
  details.remove_suffix(1);
  int64_t failed = 0;
  while (!details.empty()) {
    size_t comma = details.find(", ");
    std::string_view item = details.substr(0, comma);
    details = comma == std::string_view::npos ? std::string_view() : details.substr(comma + 2);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view key = item.substr(0, eq);
    std::string_view number = item.substr(eq + 1);
    auto value = take_number(&number);
    if (!value || !number.empty()) return std::nullopt;
    if (key == "failures" || key == "errors" || key == "unexpected successes") failed += *value;
  }
  return failed;
}

// "OK", "OK (skipped=1)", "FAILED (failures=1)", "NO TESTS RAN"
std::optional<int64_t> verdict_line(std::string_view line) {
  if (line == "NO TESTS RAN") return 0;
  if (consume(&line, "OK") || consume(&line, "FAILED")) return failures_in(line);
  return std::nullopt;
}

}  // namespace

std::vector<std::string_view> unittest_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

TestCounts parse_unittest_summary(std::string_view output) {
  auto lines = unittest_lines(output);
  for (size_t i = lines.size(); i-- > 0;) {
    auto run = ran_line(lines[i]);
    if (!run) continue;
    TestCounts counts;
    counts.run = *run;
    // The verdict follows after a blank line.
    for (size_t j = i + 1; j < lines.size(); ++j) {
      if (lines[j].empty()) continue;
      if (auto failed = verdict_line(lines[j])) counts.failed = *failed;
      break;
    }
    return counts;
  }
  return {};
}

}  // namespace ci::runner
