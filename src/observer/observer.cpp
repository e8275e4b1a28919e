#include "observer/observer.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <filesystem>
#include <system_error>

#include "ci/files.h"
#include "ci/protocol.h"

namespace ci::observer {

namespace fs = std::filesystem;

namespace {

const char* mode_name(DispatchMode mode) {
  return mode == DispatchMode::LatestOnly ? "latest-only" : "per-commit";
}

std::string join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

std::string default_state_file(const std::string& repo) {
  std::error_code ec;
  fs::path dot_git = fs::path(repo) / ".git";
  if (fs::is_directory(dot_git, ec)) return (dot_git / "ci-observer.state").string();
  return (fs::path(repo) / "ci-observer.state").string();
}

void Observer::FailureStreak::failed(const std::string& message) {
  if (failing_) {
    spdlog::debug("{}", message);
    return;
  }
  failing_ = true;
  spdlog::error("{} (retrying; repeats are logged at debug level)", message);
}

void Observer::FailureStreak::succeeded() {
  if (!failing_) return;
  failing_ = false;
  spdlog::info("{}", recovered_);
}

Observer::Observer(ObserverOptions options)
    : options_(std::move(options)), watched_(options_.branches.begin(), options_.branches.end()) {}

Observer::~Observer() { stop(); }

Result<void> Observer::start() {
  MutexLock join_lock(join_mu_);
  if (stopping() || thread_.joinable()) return make_error("observer already started or stopped");
  if (options_.clock == nullptr) return make_error("the observer's options name no clock");
  std::error_code ec;
  if (!fs::exists(options_.repo, ec))
    return make_error("repository " + options_.repo + " does not exist");
  auto repo = git::Repository::open(options_.repo);
  if (!repo) return make_error(options_.repo + " is not a git repository");
  // The clone is this observer's alone: a lock file in it is from one that was killed.
  for (const auto& lock : repo->remove_stale_locks())
    spdlog::warn("removed {}, left by a process killed while writing", lock);
  if (repo->has_remote("origin")) remote_ = "origin";
  auto files = RepoFiles::open(options_.repo);
  if (!files) return Error{files.error()};
  for (const std::string& label : options_.required)
    if (std::string why = check_label(label); !why.empty())
      return make_error("--require '" + escape_for_log(label) + "': " + why);
  named_ = !options_.repo_name.empty() || !options_.repo_url.empty();
  if (!options_.repo_name.empty()) {
    if (std::string why = check_repo_name(options_.repo_name); !why.empty())
      return make_error("--name '" + escape_for_log(options_.repo_name) + "': " + why);
  }
  if (!options_.repo_url.empty()) {
    if (std::string why = check_repo_url(options_.repo_url); !why.empty())
      return make_error("--url '" + escape_for_log(options_.repo_url) + "': " + why);
  }
  if (named_ && options_.repo_url.empty()) {
    std::string origin = remote_ ? files->remote_url(*remote_) : "";
    options_.repo_url =
        origin.empty() ? fs::absolute(options_.repo).lexically_normal().string() : origin;
    if (std::string why = check_repo_url(options_.repo_url); !why.empty())
      return make_error("no --url given, and the " +
                        std::string(origin.empty() ? "repository's path '" : "origin URL '") +
                        escape_for_log(options_.repo_url) + "' cannot be one: " + why +
                        " (give --url)");
  }
  if (named_ && options_.repo_name.empty()) {
    auto name = repo_name_from_url(options_.repo_url);
    if (!name) return make_error("no --name given, and " + name.error() + " (give --name)");
    options_.repo_name = *name;
  }

  state_file_ =
      options_.state_file.empty() ? default_state_file(options_.repo) : options_.state_file;
  std::string state_dir = fs::path(state_file_).parent_path().string();
  if (!state_dir.empty()) {
    if (auto r = make_dirs(state_dir); !r) return Error{r.error()};
  }
  auto tracker = CommitTracker::load(state_file_, options_.mode, options_.max_new_commits);
  if (!tracker) return Error{tracker.error()};

  spdlog::info(
      "watching repository {} ({}), {}, {} mode, dispatcher {}, every {:g}s", options_.repo,
      remote_ ? "fetching origin" : "its local branches, no remote to fetch",
      watched_.empty() ? "all branches" : "branches " + join(watched_), mode_name(options_.mode),
      options_.dispatcher.str(), std::chrono::duration<double>(options_.interval).count());
  if (remote_) {
    // fetch() would do it too; done here to say so once.
    if (auto shared = repo->share_objects(*remote_); !shared) {
      spdlog::warn("cannot read the objects of {} in place, so fetching copies them: {}", *remote_,
                   shared.error());
    } else if (*shared) {
      spdlog::info("the clone reads the objects of {} in place (objects/info/alternates)",
                   *remote_);
    }
  }
  if (tracker->has_state()) {
    spdlog::info("state file {}: {} branch(es) remembered", state_file_, tracker->state().size());
  } else {
    spdlog::info("state file {}: none yet; the current branch tips count as already seen",
                 state_file_);
  }

  if (named_) {
    spdlog::info("serving repository {} at {}, {} commit of a branch first", options_.repo_name,
                 options_.repo_url, options_.newest_first ? "newest" : "oldest");
  }
  if (!options_.required.empty())
    spdlog::info("every job requires the labels {}", join_labels(options_.required));

  repo_ = std::move(*repo);
  files_ = std::move(*files);
  {
    MutexLock lock(state_mu_);
    tracker_ = std::move(*tracker);
  }
  thread_ = std::thread([this] { run(); });
  return {};
}

void Observer::stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  MutexLock join_lock(join_mu_);
  if (thread_.joinable()) thread_.join();
}

void Observer::poll_now() {
  {
    MutexLock lock(mu_);
    poked_ = true;
  }
  wake_.notify_all();
}

CommitTracker::State Observer::handed_over() const {
  MutexLock lock(state_mu_);
  return tracker_ ? tracker_->state() : CommitTracker::State{};
}

bool Observer::stopping() const {
  MutexLock lock(mu_);
  return stopping_;
}

void Observer::run() {
  Clock& clock = *options_.clock;
  MutexLock lock(mu_);
  while (!stopping_) {
    poked_ = false;
    lock.unlock();
    try {
      round();
    } catch (const std::exception& e) {
      // The loop must outlive a surprise: the next round starts from the saved state.
      spdlog::error("round failed: {}", e.what());
    }
    rounds_.fetch_add(1);
    lock.lock();
    auto deadline = clock.now() + options_.interval;
    while (!stopping_ && !poked_ && clock.now() < deadline) clock.wait_until(wake_, lock, deadline);
  }
}

void Observer::round() {
  if (remote_) {
    if (auto r = repo_->fetch(*remote_); !r) {
      fetch_streak_.failed("cannot fetch " + *remote_ + " into " + options_.repo + ": " +
                           escape_for_log(r.error(), 500));
      return;
    }
    fetch_streak_.succeeded();
  }
  auto tips = watched_tips();
  if (!tips) return;

  // What could not be handed over in earlier rounds (the dispatcher being down) is
  // still pending: this round's plan only adds what is new since.
  std::vector<HandOver> plan;
  {
    MutexLock lock(state_mu_);
    bool first_look = !tracker_->has_state();
    auto planned = tracker_->plan(*tips, *repo_);
    if (!planned) {
      git_streak_.failed("cannot walk the history of " + options_.repo + ": " +
                         escape_for_log(planned.error(), 500));
      return;
    }
    git_streak_.succeeded();
    commits_read_.fetch_add(planned->commits_read);
    if (planned->commits_read > 0)
      spdlog::debug("planned {} new commit(s), reading {} commit(s) of history",
                    planned->added.size(), planned->commits_read);
    report_skipped(planned->skipped);
    plan = tracker_->pending();
    if (first_look)
      spdlog::info("first look: the tips of {} branch(es) count as already seen", tips->size());
  }
  // A named repository is announced before anything is dispatched, even with nothing
  // to dispatch yet, so that it is listed at once.
  if (!plan.empty() || (named_ && !announced_)) hand_over_all(plan);
  // Once a round, not once a commit: a crash before this line loses only the record
  // of hand-overs the dispatcher already has, and handing those over again after a
  // restart is answered with the same job, so nothing is missed or run twice.
  save_state();
}

void Observer::report_skipped(const std::vector<Skipped>& skipped) {
  for (const auto& s : skipped) {
    spdlog::warn(
        "branch '{}' has more new commits than --max-new-commits {}: handing over the newest "
        "{} (its tip among them), skipping the {} older ones, {} (oldest) to {} (newest)",
        s.branch, options_.max_new_commits, options_.max_new_commits, s.count, s.oldest, s.newest);
  }
}

void Observer::hand_over_all(const std::vector<HandOver>& plan) {
  spdlog::debug("{} commit(s) to hand over", plan.size());
  // A connection a round: none is left idle between rounds for the dispatcher to
  // time out.
  LineClient client(options_.dispatcher.host, options_.dispatcher.port, options_.client);
  if (!dispatcher_ready(client)) return;
  if (named_ && !announced_ && !announce(client)) return;
  for (const auto& item : plan) {
    if (stopping() || !hand_over(client, item)) break;
  }
}

std::optional<std::vector<git::BranchTip>> Observer::watched_tips() {
  auto tips = repo_->branch_tips(remote_.value_or(""));
  if (!tips) {
    git_streak_.failed("cannot list the branches of " + options_.repo + ": " +
                       escape_for_log(tips.error(), 500));
    return std::nullopt;
  }
  std::vector<git::BranchTip> out;
  for (auto& tip : *tips) {
    if (!watched_.empty() && !watched_.contains(tip.branch)) continue;
    // The dispatcher would refuse it for ever; better to say so once and go on.
    if (auto why = check_branch_name(tip.branch); !why.empty()) {
      if (skipped_branches_.insert(tip.branch).second)
        spdlog::warn("ignoring branch '{}': {}", escape_for_log(tip.branch), why);
      continue;
    }
    out.push_back(std::move(tip));
  }
  return out;
}

bool Observer::dispatcher_ready(LineClient& client) {
  auto reply = client.call(StatusRequest{});
  if (!reply) {
    // Back from an outage, it may have lost what it was told: announced again.
    announced_ = false;
    dispatcher_streak_.failed("dispatcher " + client.address() + " unreachable: " + reply.error());
    return false;
  }
  if (reply->kind != Reply::Kind::Ok) {
    announced_ = false;
    dispatcher_streak_.failed(
        "dispatcher " + client.address() + " is not ready: status answered " +
        (reply->kind == Reply::Kind::Err ? "ERR " + reply->reason() : "something other than OK"));
    return false;
  }
  dispatcher_streak_.succeeded();
  return true;
}

bool Observer::announce(LineClient& client) {
  RepoRequest request{options_.repo_name, options_.repo_url, options_.newest_first};
  auto reply = client.call(request);
  std::string what =
      "the announcement of repository " + options_.repo_name + " (" + options_.repo_url + ")";
  if (!reply) {
    dispatcher_streak_.failed("cannot send " + what + ": " + reply.error());
    return false;
  }
  if (reply->kind != Reply::Kind::Ok) {
    // Its commits are not dispatched until it is accepted: retried as a refused dispatch.
    announce_streak_.failed(
        "dispatcher " + client.address() + " refused " + what + ": " +
        (reply->kind == Reply::Kind::Err ? reply->reason() : "unexpected reply"));
    return false;
  }
  announced_ = true;
  announce_streak_.succeeded();
  spdlog::info("announced repository {} at {} to dispatcher {}", options_.repo_name,
               options_.repo_url, client.address());
  return true;
}

std::vector<std::string> Observer::labels_for(const std::string& commit) {
  std::vector<std::string> problems;
  std::vector<std::string> from_file;
  if (auto file = files_->labels_of(commit); !file) {
    problems.push_back(file.error() + ": its labels are not taken");
  } else {
    from_file = std::move(file->labels);
    problems = std::move(file->problems);
  }
  auto labels = merge_labels(options_.required, from_file, &problems);
  for (const std::string& p : problems) spdlog::warn("commit {}: {}: {}", commit, kLabelsFile, p);
  return labels;
}

bool Observer::hand_over(LineClient& client, const HandOver& item) {
  // Who wrote it and its subject travel with it, for the people reading the results;
  // a commit that cannot be read is still handed over, without them.
  DispatchRequest request{item.commit, item.branch};
  if (named_) request.repo = options_.repo_name;
  request.required = labels_for(item.commit);
  if (auto info = repo_->commit_info(item.commit)) request.info = serialize_commit_info(*info);
  auto reply = client.call(request);
  // Branch names reach the log as they are: every log line is escaped (ci/log.h).
  std::string what = "commit " + item.commit + " on branch " + item.branch;
  if (!reply) {
    announced_ = false;
    dispatcher_streak_.failed("cannot dispatch " + what + ": " + reply.error());
    return false;
  }
  if (reply->kind != Reply::Kind::Ok) {
    // A dispatcher that lost the repository says it is unknown: announced again.
    announced_ = false;
    dispatcher_streak_.failed(
        "dispatcher " + client.address() + " refused " + what + ": " +
        (reply->kind == Reply::Kind::Err ? reply->reason() : "unexpected reply"));
    return false;
  }
  {
    MutexLock lock(state_mu_);
    tracker_->mark_handed_over(item.branch, item.commit);
  }
  std::string job = reply->args.empty() ? "?" : escape_for_log(reply->args.front(), 40);
  spdlog::info(
      "dispatched commit {} on branch {}{}{}: job {}", item.commit, item.branch,
      named_ ? " of repository " + options_.repo_name : std::string(),
      request.required.empty() ? std::string() : ", requiring " + join_labels(request.required),
      job);
  return true;
}

void Observer::save_state() {
  MutexLock lock(state_mu_);
  if (!tracker_->dirty()) return;
  if (auto r = tracker_->save(state_file_); !r) {
    save_streak_.failed(r.error());
    return;
  }
  save_streak_.succeeded();
}

}  // namespace ci::observer
