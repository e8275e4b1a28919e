#include "reporter/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>

namespace ci::reporter {

namespace {

// Seconds, from 10 ms to 1 hour.
prometheus::Histogram::BucketBoundaries seconds_buckets() {
  return {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600};
}

}  // namespace

struct Metrics::Impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Gauge>& jobs_by_state =
      prometheus::BuildGauge()
          .Name("tinyci_jobs")
          .Help("Jobs in the read model by state")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& jobs_by_status =
      prometheus::BuildGauge()
          .Name("tinyci_jobs_finished")
          .Help("Finished jobs in the read model by status")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& runners_by_state =
      prometheus::BuildGauge()
          .Name("tinyci_runners")
          .Help("Runners the feed named, by state")
          .Register(registry);
  prometheus::Gauge& queue = prometheus::BuildGauge()
                                 .Name("tinyci_queue_length")
                                 .Help("Jobs queued and not yet started")
                                 .Register(registry)
                                 .Add({});
  prometheus::Family<prometheus::Gauge>& queue_by_repo =
      prometheus::BuildGauge()
          .Name("tinyci_queue_length_by_repo")
          .Help("Jobs queued and not yet started, by repository (-: the default one)")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& waiting_by_repo =
      prometheus::BuildGauge()
          .Name("tinyci_jobs_waiting")
          .Help("Queued jobs no registered runner can take, by repository (-: the default one)")
          .Register(registry);
  prometheus::Histogram& start_wait = prometheus::BuildHistogram()
                                          .Name("tinyci_dispatch_to_start_seconds")
                                          .Help("Time from a job queued to its start on a runner")
                                          .Register(registry)
                                          .Add({}, seconds_buckets());
  prometheus::Histogram& duration = prometheus::BuildHistogram()
                                        .Name("tinyci_job_duration_seconds")
                                        .Help("How long finished jobs' tests ran")
                                        .Register(registry)
                                        .Add({}, seconds_buckets());
  prometheus::Gauge& lag_events = prometheus::BuildGauge()
                                      .Name("tinyci_reporter_lag_events")
                                      .Help("Feed events not yet applied to the read model")
                                      .Register(registry)
                                      .Add({});
  prometheus::Gauge& lag_seconds =
      prometheus::BuildGauge()
          .Name("tinyci_reporter_lag_seconds")
          .Help("Age of the oldest feed event not yet applied (0: none)")
          .Register(registry)
          .Add({});
  prometheus::Gauge& applied = prometheus::BuildGauge()
                                   .Name("tinyci_reporter_last_seq")
                                   .Help("The last feed event applied to the read model")
                                   .Register(registry)
                                   .Add({});
  uint64_t feed_last_seq = 0;
  int64_t oldest_pending_ms = 0;
  std::map<std::pair<void*, std::string>, prometheus::Gauge*> labelled;

  // Sets the gauges of `family` to `values`, and those it had before and lacks now to 0.
  void set_all(prometheus::Family<prometheus::Gauge>& family, const char* label,
               const std::map<std::string, int64_t>& values) {
    for (auto& [key, gauge] : labelled)
      if (key.first == &family) gauge->Set(0);
    for (const auto& [value, count] : values) {
      auto& gauge = labelled[{&family, value}];
      if (!gauge) gauge = &family.Add({{label, value}});
      gauge->Set(static_cast<double>(count));
    }
  }
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::observe_start(int64_t wait_ms) {
  MutexLock lock(mutex_);
  impl_->start_wait.Observe(static_cast<double>(std::max<int64_t>(wait_ms, 0)) / 1000.0);
}

void Metrics::observe_duration(uint64_t duration_ms) {
  MutexLock lock(mutex_);
  impl_->duration.Observe(static_cast<double>(duration_ms) / 1000.0);
}

void Metrics::feed_position(uint64_t feed_last_seq, int64_t oldest_pending_ms) {
  MutexLock lock(mutex_);
  impl_->feed_last_seq = feed_last_seq;
  impl_->oldest_pending_ms = oldest_pending_ms;
}

std::string Metrics::scrape(const Counts& counts, int64_t now_ms) {
  MutexLock lock(mutex_);
  Impl& m = *impl_;
  m.set_all(m.jobs_by_state, "state", counts.jobs_by_state);
  m.set_all(m.jobs_by_status, "status", counts.jobs_by_status);
  m.set_all(m.runners_by_state, "state", counts.runners_by_state);
  auto by_repo = [](const std::map<std::string, int64_t>& values) {
    std::map<std::string, int64_t> out;
    for (const auto& [repo, n] : values) out[repo.empty() ? "-" : repo] = n;
    return out;
  };
  m.set_all(m.queue_by_repo, "repo", by_repo(counts.queued_by_repo));
  m.set_all(m.waiting_by_repo, "repo", by_repo(counts.waiting_by_repo));
  auto queued = counts.jobs_by_state.find("queued");
  m.queue.Set(queued == counts.jobs_by_state.end() ? 0 : static_cast<double>(queued->second));
  m.applied.Set(static_cast<double>(counts.last_seq));
  uint64_t behind = m.feed_last_seq > counts.last_seq ? m.feed_last_seq - counts.last_seq : 0;
  m.lag_events.Set(static_cast<double>(behind));
  double age =
      behind && m.oldest_pending_ms ? static_cast<double>(now_ms - m.oldest_pending_ms) : 0;
  m.lag_seconds.Set(std::max(age, 0.0) / 1000.0);
  return prometheus::TextSerializer().Serialize(m.registry.Collect());
}

}  // namespace ci::reporter
