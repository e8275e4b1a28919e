// A real ci_reporter (read model, HTTP server, follower, notifier) on a temporary
// SQLite file and a free loopback port, following a FakeFeed.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "fake_feed.h"
#include "http_peer.h"
#include "reporter/reporter.h"
#include "test_support.h"

namespace ci::reporter::test_peer {

class ReporterTest : public ::testing::Test {
 protected:
  void TearDown() override {
    reporter.reset();
    feed.stop();
  }

  ReporterOptions options(const std::string& token = "") {
    ReporterOptions o;
    o.db_path = dir / "reporter.db";
    o.feed.host = "127.0.0.1";
    o.feed.port = feed.port();
    o.feed.token = token;
    o.feed.wait = std::chrono::milliseconds(300);
    o.feed.retry_initial = std::chrono::milliseconds(20);
    o.feed.retry_max = std::chrono::milliseconds(200);
    o.http.host = "127.0.0.1";
    o.http.port = 0;
    o.http_token = token;
    return o;
  }

  void start_reporter(ReporterOptions o) {
    reporter = std::make_unique<Reporter>(std::move(o));
    auto r = reporter->start();
    ASSERT_TRUE(r.ok()) << r.error();
    port = reporter->http_port();
    ASSERT_NE(port, 0);
  }

  void start(const std::string& token = "") {
    feed.start(0, token);
    start_reporter(options(token));
  }

  HttpResult get(const std::string& target, const std::vector<std::string>& headers = {}) {
    return http_get(port, target, headers);
  }

  nlohmann::json get_json(const std::string& target, const std::vector<std::string>& headers = {}) {
    HttpResult r = get(target, headers);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    auto body = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_FALSE(body.is_discarded()) << r.body;
    return body;
  }

  // Waits until /api/jobs lists `n` jobs.
  bool jobs_listed(size_t n, const std::vector<std::string>& headers = {}) {
    HttpResult last;
    bool listed = test::wait_until(
        [&] {
          last = get("/api/jobs?limit=500", headers);
          auto body = nlohmann::json::parse(last.body, nullptr, false);
          return last.status == 200 && !body.is_discarded() && body["jobs"].size() == n;
        },
        std::chrono::milliseconds(10000));
    if (!listed) ADD_FAILURE() << "last /api/jobs: " << last.status << " " << last.body;
    return listed;
  }

  test::TempDir dir;
  FakeFeed feed;
  std::unique_ptr<Reporter> reporter;
  uint16_t port = 0;
};

}  // namespace ci::reporter::test_peer
