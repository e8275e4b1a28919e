#include "ci/test_cases.h"

#include <nlohmann/json.hpp>

namespace ci {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
// The longest line a bounded case can serialize to: every byte of the name and message
// escaped as \u00XX, plus the keys and the duration.
constexpr size_t kMaxLine = 6 * (TestCaseLimits::kMaxName + TestCaseLimits::kMaxMessage) + 256;

// The length of the valid UTF-8 sequence at the start of `text`, or 0 if it is not one
// (overlong forms, surrogates and code points past U+10FFFF are not).
size_t utf8_sequence_length(std::string_view text) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length = 0;
  uint32_t min = 0;
  uint32_t code = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, min = 0x80, code = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, min = 0x800, code = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, min = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i) & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

bool is_control(unsigned char c) { return (c < 0x20 && c != '\n' && c != '\t') || c == 0x7F; }

// Reads one case line. A SAX reader rather than a DOM: a hostile line of nested arrays
// is refused at its first '[' instead of being built, and duplicate keys are caught.
class CaseReader : public nlohmann::json::json_sax_t {
 public:
  TestCase result;
  std::string error;
  bool has_name = false, has_outcome = false, has_ms = false, has_message = false;

  bool null() override { return fail("null value"); }
  bool boolean(bool) override { return fail("boolean value"); }
  bool number_integer(number_integer_t v) override {
    if (v < 0) return fail("negative number");
    return number(static_cast<uint64_t>(v));
  }
  bool number_unsigned(number_unsigned_t v) override { return number(v); }
  bool number_float(number_float_t, const string_t&) override { return fail("fractional ms"); }
  bool string(string_t& v) override;
  bool binary(binary_t&) override { return fail("binary value"); }
  bool start_object(std::size_t) override {
    if (depth_++ != 0) return fail("nested object");
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override { return fail("array"); }
  bool end_array() override { return fail("array"); }
  bool key(string_t& k) override {
    key_ = k;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::json::exception&) override {
    if (error.empty()) error = "not JSON at byte " + std::to_string(position);
    return false;
  }

 private:
  int depth_ = 0;
  std::string key_;

  bool fail(std::string why) {
    error = std::move(why);
    return false;
  }
  bool once(bool* seen) {
    if (*seen) return fail("duplicate key \"" + key_ + "\"");
    *seen = true;
    return true;
  }
  bool number(uint64_t v) {
    if (key_ != "ms")
      return key_ == "name" || key_ == "outcome" || key_ == "message"
                 ? fail("\"" + key_ + "\" is not a string")
                 : true;
    if (!once(&has_ms)) return false;
    result.duration_ms = v;
    return true;
  }
};

bool CaseReader::string(string_t& v) {
  if (depth_ != 1) return fail("not an object");
  // Text that bounding would change was not written by serialize_cases.
  auto checked = [&](size_t max, std::string* out) {
    if (v.size() > max) return fail("\"" + key_ + "\" longer than " + std::to_string(max));
    if (bound_case_text(v, max) != v) return fail("\"" + key_ + "\" has a control character");
    *out = std::move(v);
    return true;
  };
  if (key_ == "name") {
    if (!once(&has_name)) return false;
    if (v.empty()) return fail("empty name");
    return checked(TestCaseLimits::kMaxName, &result.name);
  }
  if (key_ == "message") {
    if (!once(&has_message)) return false;
    return checked(TestCaseLimits::kMaxMessage, &result.message);
  }
  if (key_ == "outcome") {
    if (!once(&has_outcome)) return false;
    if (!parse_case_outcome(v, &result.outcome)) return fail("unknown outcome");
    return true;
  }
  if (key_ == "ms") return fail("\"ms\" is not a number");
  return true;  // an unknown field, left for a later version
}

Result<TestCase> parse_case_line(std::string_view line) {
  if (line.size() > kMaxLine) return make_error("line longer than " + std::to_string(kMaxLine));
  CaseReader reader;
  bool ok = nlohmann::json::sax_parse(line, &reader);
  if (!ok || !reader.error.empty())
    return make_error(reader.error.empty() ? "not a JSON object" : reader.error);
  if (!reader.has_name) return make_error("no name");
  if (!reader.has_outcome) return make_error("no outcome");
  return std::move(reader.result);
}

}  // namespace

const char* to_string(CaseOutcome outcome) {
  switch (outcome) {
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

bool parse_case_outcome(std::string_view text, CaseOutcome* out) {
  for (CaseOutcome o :
       {CaseOutcome::Passed, CaseOutcome::Failed, CaseOutcome::Error, CaseOutcome::Skipped}) {
    if (text == to_string(o)) {
      *out = o;
      return true;
    }
  }
  return false;
}

std::string bound_case_text(std::string_view text, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  while (!text.empty()) {
    size_t length = utf8_sequence_length(text);
    std::string_view piece;
    if (length == 0 || (length == 1 && is_control(static_cast<unsigned char>(text[0])))) {
      piece = kReplacement;
      length = 1;
    } else {
      piece = text.substr(0, length);
    }
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    text.remove_prefix(length);
  }
  return out;
}

std::string serialize_cases(const std::vector<TestCase>& cases, size_t* dropped) {
  std::string out;
  size_t written = 0;
  for (const TestCase& c : cases) {
    if (written == TestCaseLimits::kMaxCases) break;
    std::string name = bound_case_text(c.name, TestCaseLimits::kMaxName);
    nlohmann::ordered_json line;
    line["name"] = name.empty() ? std::string("(unnamed)") : name;
    line["outcome"] = to_string(c.outcome);
    line["ms"] = c.duration_ms;
    std::string message = bound_case_text(c.message, TestCaseLimits::kMaxMessage);
    if (!message.empty()) line["message"] = std::move(message);
    std::string text = line.dump();
    if (out.size() + text.size() + 1 > TestCaseLimits::kMaxBody) break;
    out += text;
    out += '\n';
    ++written;
  }
  if (dropped) *dropped = cases.size() - written;
  return out;
}

Result<std::vector<TestCase>> parse_cases(std::string_view body) {
  if (body.size() > TestCaseLimits::kMaxBody)
    return make_error("test cases longer than " + std::to_string(TestCaseLimits::kMaxBody) +
                      " bytes");
  std::vector<TestCase> cases;
  size_t number = 0;
  while (!body.empty()) {
    ++number;
    size_t end = body.find('\n');
    if (end == std::string_view::npos)
      return make_error("test case line " + std::to_string(number) + ": no newline at its end");
    std::string_view line = body.substr(0, end);
    body.remove_prefix(end + 1);
    if (cases.size() == TestCaseLimits::kMaxCases)
      return make_error("more than " + std::to_string(TestCaseLimits::kMaxCases) + " test cases");
    auto c = parse_case_line(line);
    if (!c) return make_error("test case line " + std::to_string(number) + ": " + c.error());
    cases.push_back(std::move(*c));
  }
  return cases;
}

}  // namespace ci
