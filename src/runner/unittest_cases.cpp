// read_unittest_output (test_reports.h): the cases in Python unittest's verbose lines.
#include <map>
#include <optional>

#include "runner/test_reports.h"
#include "runner/unittest_summary.h"

namespace ci::runner {
namespace {

constexpr std::string_view kResultSeparator = " ... ";
constexpr std::string_view kBlockStart =
    "======================================================================";
constexpr std::string_view kBlockRule =
    "----------------------------------------------------------------------";

// "test_x (mod.Class.test_x)" (3.11) or "test_x (mod.Class)" (earlier): the test's id,
// mod.Class.test_x. The name may hold spaces and colons (a generated test's); the id is
// in the last parenthesis and has a dot. Not a test description: nullopt.
std::optional<std::string> test_id(std::string_view description) {
  if (!description.ends_with(')')) return std::nullopt;
  size_t open = description.rfind(" (");
  if (open == 0 || open == std::string_view::npos) return std::nullopt;
  std::string_view method = description.substr(0, open);
  std::string_view inside = description.substr(open + 2, description.size() - open - 3);
  if (inside.find('.') == std::string_view::npos) return std::nullopt;
  if (inside == method || inside.ends_with("." + std::string(method))) return std::string(inside);
  return std::string(inside) + "." + std::string(method);
}

// The word unittest prints after " ... ", as an outcome and its message.
std::optional<TestCase> result_word(std::string_view word) {
  TestCase c;
  if (word == "ok") return c;
  if (word == "expected failure") {
    c.message = "expected failure";
    return c;
  }
  if (word == "FAIL") {
    c.outcome = CaseOutcome::Failed;
    return c;
  }
  if (word == "unexpected success") {
    c.outcome = CaseOutcome::Failed;
    c.message = "unexpected success";
    return c;
  }
  if (word == "ERROR") {
    c.outcome = CaseOutcome::Error;
    return c;
  }
  if (word.starts_with("skipped")) {
    c.outcome = CaseOutcome::Skipped;
    std::string_view reason = word.substr(7);
    if (reason.starts_with(' ')) reason.remove_prefix(1);
    if (reason.size() >= 2 && (reason.front() == '\'' || reason.front() == '"') &&
        reason.back() == reason.front())
      reason = reason.substr(1, reason.size() - 2);
    c.message = std::string(reason);
    return c;
  }
  return std::nullopt;
}

// The tracebacks after the run: "=====", "FAIL: test_x (mod.Class.test_x)" (a docstring
// line may follow), "-----", the traceback up to the next "=====" or "-----" line.
// Keyed by test id; the last part of each traceback (where the assertion is).
std::map<std::string, std::string> failure_messages(const std::vector<std::string_view>& lines) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    if (lines[i] != kBlockStart) continue;
    std::string_view head = lines[i + 1];
    size_t colon = head.find(": ");
    if (colon == std::string_view::npos) continue;
    auto id = test_id(head.substr(colon + 2));
    if (!id) continue;
    size_t body = i + 2;
    while (body < lines.size() && lines[body] != kBlockRule && lines[body] != kBlockStart) ++body;
    if (body >= lines.size() || lines[body] != kBlockRule) continue;
    std::string text;
    size_t end = body + 1;
    for (; end < lines.size() && lines[end] != kBlockStart && lines[end] != kBlockRule; ++end) {
      text.append(lines[end]);
      text += '\n';
      if (text.size() > 4 * TestCaseLimits::kMaxMessage)
        text.erase(0, text.size() - TestCaseLimits::kMaxMessage);
    }
    while (!text.empty() && text.back() == '\n') text.pop_back();
    if (text.size() > TestCaseLimits::kMaxMessage)
      text.erase(0, text.size() - TestCaseLimits::kMaxMessage);
    out.emplace(std::move(*id), std::move(text));
    i = end - 1;
  }
  return out;
}

}  // namespace

ReportCases read_unittest_output(std::string_view output) {
  ReportCases out;
  std::vector<std::string_view> lines = unittest_lines(output);
  // A test whose result word has not come yet: its description was on an earlier line,
  // with a docstring line to follow (docstring_next) or what the test printed after
  // " ... ".
  std::optional<std::string> waiting;
  bool docstring_next = false;
  auto record = [&](TestCase c, std::string id) {
    c.name = std::move(id);
    add_case(std::move(c), &out);
    waiting.reset();
  };
  for (std::string_view line : lines) {
    if (line == kBlockStart) break;  // the tracebacks: no verbose lines after them
    size_t sep = line.rfind(kResultSeparator);
    std::string_view word;
    if (sep != std::string_view::npos) {
      word = line.substr(sep + kResultSeparator.size());
    } else if (line.ends_with(" ...")) {
      sep = line.size() - 4;  // " ... " at the end of a line the test printed after
    }
    if (sep != std::string_view::npos) {
      std::optional<std::string> id = docstring_next ? waiting : test_id(line.substr(0, sep));
      docstring_next = false;
      if (!id) continue;
      if (auto c = result_word(word)) {
        record(std::move(*c), std::move(*id));
      } else {
        waiting = std::move(id);
      }
      continue;
    }
    if (auto id = test_id(line)) {
      waiting = std::move(id);
      docstring_next = true;
      continue;
    }
    docstring_next = false;
    if (!waiting) continue;
    if (auto c = result_word(line)) record(std::move(*c), std::move(*waiting));
  }
  auto messages = failure_messages(lines);
  for (TestCase& c : out.cases) {
    if (c.outcome != CaseOutcome::Failed && c.outcome != CaseOutcome::Error) continue;
    auto found = messages.find(c.name);
    if (found != messages.end())
      c.message = bound_case_text(found->second, TestCaseLimits::kMaxMessage);
  }
  return out;
}

}  // namespace ci::runner
