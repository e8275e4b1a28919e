#include "runner/repo_store.h"

#include <fcntl.h>
#include <git2.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ci/files.h"
#include "ci/git.h"

namespace ci::runner {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPartialSuffix = ".git.partial";

// libgit2's last error, or `fallback`.
std::string git_error_text(const std::string& fallback) {
  const git_error* e = git_error_last();
  return e && e->message ? e->message : fallback;
}

// The URL of the store's remote origin; nullopt when the store does not open or has
// no origin.
std::optional<std::string> origin_url(const std::string& path) {
  git_libgit2_init();
  git_repository* repo = nullptr;
  if (git_repository_open_ext(&repo, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0) {
    git_libgit2_shutdown();
    return std::nullopt;
  }
  std::optional<std::string> url;
  git_remote* remote = nullptr;
  if (git_remote_lookup(&remote, repo, "origin") == 0) {
    if (const char* u = git_remote_url(remote)) url = u;
    git_remote_free(remote);
  }
  git_repository_free(repo);
  git_libgit2_shutdown();
  return url;
}

// Waits `pause`, or less when `cancel` fires; false when it did.
bool pause_unless_cancelled(std::chrono::milliseconds pause, const CancelToken* cancel) {
  if (!cancel) {
    ::pollfd none{};
    ::poll(&none, 0, static_cast<int>(pause.count()));
    return true;
  }
  ::pollfd fd{cancel->fd(), POLLIN, 0};
  ::poll(&fd, 1, static_cast<int>(pause.count()));
  return !cancel->cancelled();
}

}  // namespace

RepoStores::RepoStores(std::string workdir)
    : workdir_(fs::absolute(workdir).lexically_normal().string()) {}

std::string RepoStores::repos_dir() const { return (fs::path(workdir_) / "repos").string(); }

std::string RepoStores::store_path(const std::string& name) const {
  return (fs::path(repos_dir()) / (name + ".git")).string();
}

std::string RepoStores::partial_path(const std::string& name) const {
  return (fs::path(repos_dir()) / (name + std::string(kPartialSuffix))).string();
}

unsigned RepoStores::clones() const {
  MutexLock lock(mu_);
  return clones_;
}

Result<void> RepoStores::open() {
  if (auto made = make_dirs(repos_dir()); !made) return make_error("--workdir: " + made.error());
  std::string lock_path = (fs::path(workdir_) / "lock").string();
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock.valid()) return make_error("cannot open " + lock_path + ": " + std::strerror(errno));
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0)
    return make_error("another ci-runner uses the work folder " + workdir_ +
                      " (give each runner its own --workdir)");
  lock_ = std::move(lock);
  std::error_code ec;
  for (fs::directory_iterator it(repos_dir(), ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.ends_with(kPartialSuffix)) continue;
    if (auto removed = remove_tree(it->path().string()); removed)
      spdlog::warn("removed {}, a clone left unfinished by an earlier run", it->path().string());
  }
  return {};
}

RepoStores::Store& RepoStores::store(const std::string& name) {
  MutexLock lock(mu_);
  auto& slot = stores_[name];
  if (!slot) slot = std::make_unique<Store>();
  return *slot;
}

Result<void> RepoStores::make_clone(const std::string& name, const std::string& url) {
  std::string partial = partial_path(name);
  if (auto removed = remove_tree(partial); !removed) return removed;
  git_libgit2_init();
  struct Shutdown {
    ~Shutdown() { git_libgit2_shutdown(); }
  } shutdown;
  {
    git_repository* repo = nullptr;
    if (git_repository_init(&repo, partial.c_str(), 1) != 0)
      return make_error("cannot make " + partial + ": " + git_error_text("git init failed"));
    git_remote* remote = nullptr;
    int rc = git_remote_create(&remote, repo, "origin", url.c_str());
    std::string why = rc != 0 ? git_error_text("cannot add the remote") : "";
    if (remote) git_remote_free(remote);
    git_repository_free(repo);
    if (rc != 0) {
      (void)remove_tree(partial);
      return make_error("cannot add the remote origin " + url + ": " + why);
    }
  }
  auto repo = git::Repository::open(partial);
  if (!repo) {
    (void)remove_tree(partial);
    return Error{repo.error()};
  }
  if (auto fetched = repo->fetch("origin"); !fetched) {
    (void)remove_tree(partial);
    return make_error("clone failed: " + fetched.error());
  }
  std::string final_path = store_path(name);
  if (auto removed = remove_tree(final_path); !removed) return removed;
  std::error_code ec;
  fs::rename(partial, final_path, ec);
  if (ec) {
    (void)remove_tree(partial);
    return make_error("cannot move " + partial + " to " + final_path + ": " + ec.message());
  }
  MutexLock lock(mu_);
  ++clones_;
  return {};
}

Result<void> RepoStores::provision(Store& store, const std::string& name, const std::string& url) {
  std::string path = store_path(name);
  if (store.clone) return {};
  std::error_code ec;
  if (fs::exists(path, ec)) {
    std::optional<std::string> origin = origin_url(path);
    if (origin && *origin == url) {
      // The store is this runner's alone: a lock file in it is from a fetch that was
      // killed, and would fail every later one.
      if (auto repo = git::Repository::open(path))
        for (const auto& lock : repo->remove_stale_locks())
          spdlog::warn("removed {}, left by a process killed while writing", lock);
      store.clone.emplace(path);
      store.url = url;
      return {};
    }
    spdlog::warn("repository {}: {} {}; cloning it again", name, path,
                 origin ? "fetches from " + *origin + ", not " + url : "is not a usable store");
    if (auto removed = remove_tree(path); !removed) return removed;
  }
  // A clone left unfinished by this runner: never reused.
  if (fs::exists(partial_path(name), ec)) {
    spdlog::warn("removing {}, a clone left unfinished", partial_path(name));
    if (auto removed = remove_tree(partial_path(name)); !removed) return removed;
  }
  spdlog::info("repository {}: cloning {} into {}", name, url, path);
  auto start = std::chrono::steady_clock::now();
  if (auto cloned = make_clone(name, url); !cloned) return cloned;
  spdlog::info("repository {}: cloned in {} ms", name,
               std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count());
  store.clone.emplace(path);
  store.url = url;
  return {};
}

Result<void> RepoStores::export_to(const std::string& name, const std::string& url,
                                   const std::string& commit, const std::string& dir,
                                   const CancelToken* cancel) {
  Store& s = store(name);
  MutexLock lock(s.mu);
  // A store found for another URL (the repository was announced again elsewhere) is
  // made again: its objects are not the job's.
  if (s.clone && s.url != url) s.clone.reset();
  std::string why;
  auto pause = kFirstPause;
  for (int attempt = 1; attempt <= kTries; ++attempt) {
    // A runner being stopped gives the job back rather than try again.
    if (cancel && cancel->cancelled()) {
      if (why.empty()) why = "the runner is stopping";
      break;
    }
    Result<void> done = provision(s, name, url);
    if (done) done = s.clone->export_to(commit, dir);
    if (done) return {};
    why = done.error();
    // The store may be what failed: it is checked again at the next try.
    s.clone.reset();
    spdlog::warn("repository {} at {}: try {} of {} failed: {}", name, url, attempt, kTries, why);
    if (attempt == kTries || !pause_unless_cancelled(pause, cancel)) break;
    pause *= 2;
  }
  return make_error("repository " + name + " at " + url + ": " + why);
}

}  // namespace ci::runner
