// The JSON shapes of the reporter's API and notifications (docs/API.md), made with
// nlohmann-json only.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ci/events.h"

namespace ci::reporter {

// The text of `value`: invalid UTF-8 in a string (a commit subject, a test message) is
// replaced, never thrown about.
std::string json_text(const nlohmann::json& value);
// `text` with each invalid UTF-8 sequence replaced by U+FFFD, as json_text and the feed's
// JSON replace it: a name given in a URL then matches the name the feed gave.
std::string valid_utf8(const std::string& text);

// A job as /api/jobs shows it. `log_size`: bytes of its log known from job.log events.
nlohmann::json job_json(const JobInfo& job, uint64_t log_size = 0);
nlohmann::json case_json(const TestCase& test_case);
// "passing", "failing" or "" (cancelled and unfinished jobs say nothing of a branch).
std::string branch_state_of(const std::optional<TestStatus>& status);
bool is_failure(CaseOutcome outcome);

}  // namespace ci::reporter

namespace ci::reporter {

// A feed event as the event stream sends it: {"seq", "ms", "kind", "job" (job events),
// "runner" (runner events), "attempt" and "size" (job.log)}; test cases left out.
nlohmann::json event_json(const FeedEvent& event);

}  // namespace ci::reporter
