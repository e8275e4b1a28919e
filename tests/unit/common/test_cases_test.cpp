#include "ci/test_cases.h"

#include <gtest/gtest.h>

namespace ci {
namespace {

std::vector<TestCase> sample() {
  return {
      {"tests.test_math.TestMath.test_add", CaseOutcome::Passed, 3, ""},
      {"suite/name with spaces: and colons", CaseOutcome::Failed, 1200,
       "AssertionError: 1 != 2\n\tat line 3 \"quoted\" \\ back"},
      {"Gtest.Errors", CaseOutcome::Error, 0, "segfault"},
      {"t.skip", CaseOutcome::Skipped, 0, "needs network"},
      {"unicode.caf\xC3\xA9_\xE2\x9C\x93", CaseOutcome::Passed, 1, "\xF0\x9F\x98\x80"},
  };
}

TEST(TestCases, OutcomeWords) {
  for (CaseOutcome o :
       {CaseOutcome::Passed, CaseOutcome::Failed, CaseOutcome::Error, CaseOutcome::Skipped}) {
    CaseOutcome back = CaseOutcome::Passed;
    ASSERT_TRUE(parse_case_outcome(to_string(o), &back));
    EXPECT_EQ(back, o);
  }
  CaseOutcome out;
  EXPECT_FALSE(parse_case_outcome("PASSED", &out));
  EXPECT_FALSE(parse_case_outcome("", &out));
}

TEST(TestCases, RoundTrip) {
  auto cases = sample();
  size_t dropped = 99;
  std::string body = serialize_cases(cases, &dropped);
  EXPECT_EQ(dropped, 0u);
  auto back = parse_cases(body);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, cases);
  EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 5);
  // An empty message is left out of its line.
  EXPECT_EQ(body.substr(0, body.find('\n')),
            R"({"name":"tests.test_math.TestMath.test_add","outcome":"passed","ms":3})");
}

TEST(TestCases, EmptyListIsAnEmptyBody) {
  EXPECT_EQ(serialize_cases({}), "");
  auto back = parse_cases("");
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->empty());
}

TEST(TestCases, BoundCutsOnACharacterBoundary) {
  std::string text = "ab\xC3\xA9";  // 4 bytes, the last character two of them
  EXPECT_EQ(bound_case_text(text, 4), text);
  EXPECT_EQ(bound_case_text(text, 3), "ab");
  EXPECT_EQ(bound_case_text(std::string(10000, 'x'), 512).size(), 512u);
}

TEST(TestCases, BoundReplacesInvalidUtf8AndControlBytes) {
  EXPECT_EQ(bound_case_text("a\xFF"
                            "b",
                            100),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(bound_case_text("\xC0\xAF", 100), "\xEF\xBF\xBD\xEF\xBF\xBD");          // overlong '/'
  EXPECT_EQ(bound_case_text("\xED\xA0\x80", 100).find("\xED"), std::string::npos);  // surrogate
  EXPECT_EQ(bound_case_text("\xE2\x9C", 100), "\xEF\xBF\xBD\xEF\xBF\xBD");          // cut short
  EXPECT_EQ(bound_case_text(std::string("a\0b\x1b[31m\n\t", 10), 100),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD[31m\n\t");
}

TEST(TestCases, SerializeBoundsFieldsAndCountsWhatItLeavesOut) {
  std::vector<TestCase> cases(TestCaseLimits::kMaxCases + 5,
                              TestCase{"t", CaseOutcome::Passed, 0, ""});
  cases[0].name = std::string(5000, 'n');
  cases[0].message = std::string(100000, 'm') + "\xFF";
  size_t dropped = 0;
  std::string body = serialize_cases(cases, &dropped);
  EXPECT_EQ(dropped, 5u);
  auto back = parse_cases(body);
  ASSERT_TRUE(back) << back.error();
  ASSERT_EQ(back->size(), TestCaseLimits::kMaxCases);
  EXPECT_EQ((*back)[0].name.size(), TestCaseLimits::kMaxName);
  EXPECT_EQ((*back)[0].message.size(), TestCaseLimits::kMaxMessage);
}

TEST(TestCases, SerializeStaysWithinTheBodyLimit) {
  // Messages of escaped control-free text, large enough that the body limit binds first.
  std::vector<TestCase> cases(
      5000, TestCase{"t", CaseOutcome::Failed, 0, std::string(TestCaseLimits::kMaxMessage, '"')});
  size_t dropped = 0;
  std::string body = serialize_cases(cases, &dropped);
  EXPECT_LE(body.size(), TestCaseLimits::kMaxBody);
  EXPECT_GT(dropped, 0u);
  auto back = parse_cases(body);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->size() + dropped, cases.size());
}

TEST(TestCases, UnnamedCaseGetsAName) {
  auto back = parse_cases(serialize_cases({TestCase{"", CaseOutcome::Passed, 0, ""}}));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ((*back)[0].name, "(unnamed)");
}

void expect_rejected(std::string_view body, std::string_view why) {
  auto r = parse_cases(body);
  ASSERT_FALSE(r) << body;
  EXPECT_NE(r.error().find(why), std::string::npos) << r.error();
}

TEST(TestCases, HostileInputIsRejectedWithAReason) {
  expect_rejected("not json\n", "line 1: not JSON");
  expect_rejected(R"({"name":"a","outcome":"passed"})", "no newline");
  expect_rejected("{\"name\":\"a\",\"outcome\":\"passed\"}\n[]\n", "line 2: array");
  expect_rejected("{\"outcome\":\"passed\"}\n", "no name");
  expect_rejected("{\"name\":\"a\"}\n", "no outcome");
  expect_rejected("{\"name\":\"a\",\"outcome\":\"green\"}\n", "unknown outcome");
  expect_rejected("{\"name\":\"\",\"outcome\":\"passed\"}\n", "empty name");
  expect_rejected("{\"name\":\"a\",\"name\":\"b\",\"outcome\":\"passed\"}\n", "duplicate");
  expect_rejected("{\"name\":\"a\",\"outcome\":\"passed\",\"ms\":-1}\n", "negative");
  expect_rejected("{\"name\":\"a\",\"outcome\":\"passed\",\"ms\":1.5}\n", "fractional");
  expect_rejected("{\"name\":\"a\",\"outcome\":\"passed\",\"ms\":\"1\"}\n", "not a number");
  expect_rejected("{\"name\":1,\"outcome\":\"passed\"}\n", "not a string");
  expect_rejected("{\"name\":\"a\\u0000b\",\"outcome\":\"passed\"}\n", "control");
  expect_rejected("{\"name\":\"a\xFF\",\"outcome\":\"passed\"}\n", "not JSON");
  expect_rejected("{\"name\":\"a\",\"outcome\":\"passed\",\"x\":{\"y\":1}}\n", "nested");
  expect_rejected("{\"name\":\"" + std::string(TestCaseLimits::kMaxName + 1, 'n') +
                      "\",\"outcome\":\"passed\"}\n",
                  "longer than");
  // Deep nesting is refused at its first bracket, without building anything.
  expect_rejected(std::string(20000, '[') + "\n", "array");
  expect_rejected(std::string(TestCaseLimits::kMaxBody + 1, ' '), "longer than");
  std::string many;
  for (size_t i = 0; i <= TestCaseLimits::kMaxCases; ++i)
    many += "{\"name\":\"a\",\"outcome\":\"passed\"}\n";
  expect_rejected(many, "more than");
}

TEST(TestCases, UnknownScalarFieldsAreIgnored) {
  auto r = parse_cases("{\"name\":\"a\",\"outcome\":\"skipped\",\"file\":\"x.py\",\"line\":3}\n");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ((*r)[0].outcome, CaseOutcome::Skipped);
}

}  // namespace
}  // namespace ci
