#include "reporter/json.h"

namespace ci::reporter {

std::string json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string valid_utf8(const std::string& text) {
  auto repaired = nlohmann::json::parse(json_text(text), nullptr, false);
  return repaired.is_string() ? repaired.get<std::string>() : std::string();
}

nlohmann::json job_json(const JobInfo& job, uint64_t log_size) {
  nlohmann::json status = nullptr;
  if (job.status) status = to_string(*job.status);
  return {{"id", job.id},
          {"repo", job.repo},
          {"commit", job.commit},
          {"branch", job.branch},
          {"author", job.commit_info.author},
          {"email", job.commit_info.email},
          {"subject", job.commit_info.subject},
          {"commit_time", job.commit_info.time},
          {"state", job.state},
          {"status", status},
          {"attempt", job.attempt},
          {"runner", job.runner},
          {"tests_run", job.tests_run},
          {"tests_failed", job.tests_failed},
          {"duration_ms", job.duration_ms},
          {"queued_ms", job.queued_ms},
          {"started_ms", job.started_ms},
          {"finished_ms", job.finished_ms},
          {"reason", job.reason},
          {"required", job.required},
          {"waiting", job.waiting},
          {"seq", job.seq},
          {"log_size", log_size}};
}

nlohmann::json case_json(const TestCase& test_case) {
  return {{"name", test_case.name},
          {"outcome", to_string(test_case.outcome)},
          {"ms", test_case.duration_ms},
          {"message", test_case.message}};
}

std::string branch_state_of(const std::optional<TestStatus>& status) {
  if (!status || *status == TestStatus::Cancelled) return "";
  return *status == TestStatus::Passed ? "passing" : "failing";
}

bool is_failure(CaseOutcome outcome) {
  return outcome == CaseOutcome::Failed || outcome == CaseOutcome::Error;
}

}  // namespace ci::reporter

namespace ci::reporter {

nlohmann::json event_json(const FeedEvent& event) {
  nlohmann::json out = {{"seq", event.seq}, {"ms", event.time_ms}, {"kind", to_string(event.kind)}};
  switch (event.kind) {
    case EventKind::RunnerJoined:
    case EventKind::RunnerLeft:
      out["runner"] = event.runner;
      break;
    case EventKind::JobLog:
      out["job"] = {{"id", event.job.id}};
      out["attempt"] = event.log_attempt;
      out["size"] = event.log_size;
      break;
    default:
      out["job"] = job_json(event.job);
  }
  return out;
}

}  // namespace ci::reporter
