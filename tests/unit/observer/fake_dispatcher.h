// A dispatcher reduced to what the observer needs, on a real TCP port: it answers
// `status` with OK and a body, `dispatch` with `OK <job>`, `repo` with OK, and records
// the dispatches and the announcements. A dispatch of a named repository that was not
// announced is refused, as the real one refuses it.
// As the real one, it makes one job of a (commit, branch) however often it is
// dispatched, and answers a repeat with that job.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ci/mutex.h"
#include "ci/net.h"
#include "ci/protocol.h"

namespace ci::observer::test {

class FakeDispatcher {
 public:
  struct Dispatch {
    std::string commit;
    std::string branch;
    std::string repo = {};                   // "": the default repository
    std::vector<std::string> required = {};  // labels
  };

  ~FakeDispatcher() {
    release_held(false);
    stop();
  }

  // port 0: an ephemeral port; otherwise the port of an earlier start.
  bool start(uint16_t port = 0) {
    ServerOptions options;
    options.port = port;
    server_ = std::make_unique<LineServer>(
        options, request_has_body,
        [this](const Frame& frame, const std::string&) { return answer(frame); });
    auto r = server_->start();
    if (!r) return false;
    port_ = server_->port();
    return true;
  }

  void stop() {
    release_held(false);
    if (server_) server_->stop();
  }

  uint16_t port() const { return port_; }

  std::vector<Dispatch> dispatches() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return dispatches_;
  }
  std::vector<std::string> commits() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    std::vector<std::string> out;
    for (const auto& d : dispatches_) out.push_back(d.commit);
    return out;
  }
  // The commits of the jobs made, in order: each (commit, branch) once.
  std::vector<std::string> job_commits() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return job_commits_;
  }

  // The n-th dispatch (counting from 1, repeats included) waits, before it is
  // recorded, until release_held(): as a dispatcher slow to answer, with the
  // observer in the middle of a round.
  void hold_dispatch(size_t n) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    hold_at_ = n;
  }
  bool holding() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return holding_;
  }
  // Lets the held dispatch go: `accept` records and answers it as usual; otherwise
  // it is answered ERR and not recorded.
  void release_held(bool accept) EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      hold_at_ = 0;
      accept_held_ = accept;
      released_ = true;
    }
    released_cv_.notify_all();
  }
  // The `repo` announcements accepted, in order.
  std::vector<RepoRequest> announcements() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return announcements_;
  }
  size_t announcements_refused() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return announcements_refused_;
  }
  // While set, `repo` is answered ERR, as by a dispatcher that serves only the default
  // repository.
  void set_refuse_repos(bool refuse) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    refuse_repos_ = refuse;
  }
  // Forgets the announced repositories, as a dispatcher that lost its store.
  void forget_repos() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    known_repos_.clear();
  }
  size_t status_calls() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return status_calls_;
  }
  // While set, `status` is answered ERR, as by a dispatcher that is not ready.
  void set_not_ready(bool not_ready) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    not_ready_ = not_ready;
  }

 private:
  Response answer(const Frame& frame) EXCLUDES(mu_) {
    auto request = parse_request(frame);
    if (!request) return {serialize_reply(Reply::err(request.error())), true};
    MutexLock lock(mu_);
    if (std::holds_alternative<StatusRequest>(*request)) {
      ++status_calls_;
      if (not_ready_) return {serialize_reply(Reply::err("not ready")), false};
      return {serialize_reply(Reply::ok_with_body("runners 0\nqueued 0\n")), false};
    }
    if (auto* r = std::get_if<RepoRequest>(&*request)) {
      if (refuse_repos_) {
        ++announcements_refused_;
        return {serialize_reply(Reply::err("this dispatcher serves only the default repository")),
                true};
      }
      announcements_.push_back(*r);
      known_repos_.insert(r->name);
      return {serialize_reply(Reply::ok()), false};
    }
    if (auto* d = std::get_if<DispatchRequest>(&*request)) {
      if (!d->repo.empty() && !known_repos_.contains(d->repo))
        return {serialize_reply(Reply::err("unknown repository '" + d->repo +
                                           "' (announce it with: repo " + d->repo + " <url>)")),
                true};
      if (++dispatch_requests_ == hold_at_) {
        holding_ = true;
        released_ = false;
        while (!released_) released_cv_.wait(lock);
        holding_ = false;
        if (!accept_held_) return {serialize_reply(Reply::err("dispatcher going away")), true};
      }
      dispatches_.push_back({d->commit, d->branch, d->repo, d->required});
      auto key = std::make_pair(d->commit, d->branch + " " + d->repo);
      auto job = jobs_.find(key);
      if (job == jobs_.end()) {
        job = jobs_.emplace(key, jobs_.size() + 1).first;
        job_commits_.push_back(d->commit);
      }
      return {serialize_reply(Reply::ok({std::to_string(job->second)})), false};
    }
    return {serialize_reply(Reply::err("unexpected request")), true};
  }

  std::unique_ptr<LineServer> server_;
  uint16_t port_ = 0;
  mutable Mutex mu_;
  std::vector<Dispatch> dispatches_ GUARDED_BY(mu_);
  // (commit, branch) -> job
  std::map<std::pair<std::string, std::string>, size_t> jobs_ GUARDED_BY(mu_);
  std::vector<std::string> job_commits_ GUARDED_BY(mu_);
  size_t status_calls_ GUARDED_BY(mu_) = 0;
  std::vector<RepoRequest> announcements_ GUARDED_BY(mu_);
  std::set<std::string> known_repos_ GUARDED_BY(mu_);
  size_t announcements_refused_ GUARDED_BY(mu_) = 0;
  bool refuse_repos_ GUARDED_BY(mu_) = false;
  bool not_ready_ GUARDED_BY(mu_) = false;
  size_t dispatch_requests_ GUARDED_BY(mu_) = 0;
  size_t hold_at_ GUARDED_BY(mu_) = 0;  // 0: hold none
  bool holding_ GUARDED_BY(mu_) = false;
  bool released_ GUARDED_BY(mu_) = true;
  bool accept_held_ GUARDED_BY(mu_) = true;
  CondVar released_cv_;
};

}  // namespace ci::observer::test
