// Placeholder until the real one lands (not committed).
#include "ci/test_cases.h"

#include <nlohmann/json.hpp>

namespace ci {
const char* to_string(CaseOutcome o) {
  switch (o) {
    case CaseOutcome::Passed:
      return "passed";
    case CaseOutcome::Failed:
      return "failed";
    case CaseOutcome::Error:
      return "error";
    case CaseOutcome::Skipped:
      return "skipped";
  }
  return "error";
}
bool parse_case_outcome(std::string_view t, CaseOutcome* out) {
  for (auto o :
       {CaseOutcome::Passed, CaseOutcome::Failed, CaseOutcome::Error, CaseOutcome::Skipped})
    if (t == to_string(o)) {
      *out = o;
      return true;
    }
  return false;
}
std::string bound_case_text(std::string_view text, size_t max) {
  return std::string(text.substr(0, max));
}
std::string serialize_cases(const std::vector<TestCase>& cases, size_t* dropped) {
  std::string out;
  for (auto& c : cases) {
    nlohmann::json j = {{"name", c.name}, {"outcome", to_string(c.outcome)}, {"ms", c.duration_ms}};
    if (!c.message.empty()) j["message"] = c.message;
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  if (dropped) *dropped = 0;
  return out;
}
Result<std::vector<TestCase>> parse_cases(std::string_view body) {
  std::vector<TestCase> v;
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find('\n', at);
    if (end == std::string_view::npos) end = body.size();
    auto j = nlohmann::json::parse(body.substr(at, end - at), nullptr, false);
    at = end + 1;
    if (j.is_discarded() || !j.is_object()) return Error{"bad case"};
    TestCase c;
    c.name = j.value("name", "");
    if (!parse_case_outcome(j.value("outcome", ""), &c.outcome)) return Error{"bad outcome"};
    c.duration_ms = j.value("ms", 0u);
    c.message = j.value("message", "");
    v.push_back(c);
  }
  return v;
}
}  // namespace ci
