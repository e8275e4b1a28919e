// Repository: opening, fetching, branches, checkout and export. The walk of the history
// is git_history.cpp; sharing a master's objects, git_objects.cpp.
#include "ci/git.h"

#include <git2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "git_internal.h"

namespace ci::git {
namespace {

struct Library {
  Library() { git_libgit2_init(); }
  ~Library() { git_libgit2_shutdown(); }
};

}  // namespace

void ensure_init() { static Library library; }

std::string last_error(const std::string& what) {
  const git_error* e = git_error_last();
  return what + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

std::string oid_str(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, oid);
  return buf;
}

bool parse_oid(const std::string& id, git_oid* out) {
  return id.size() == GIT_OID_HEXSZ && git_oid_fromstr(out, id.c_str()) == 0;
}

namespace {

// False when HEAD names a commit whose tree cannot be read (an unborn HEAD counts as
// readable: there is nothing to read).
bool head_tree_readable(git_repository* repo) {
  git_reference* head_raw = nullptr;
  int rc = git_repository_head(&head_raw, repo);
  if (rc == GIT_EUNBORNBRANCH) return true;
  if (rc != 0) return false;
  ReferencePtr head(head_raw);
  git_object* tree_raw = nullptr;
  rc = git_reference_peel(&tree_raw, head.get(), GIT_OBJECT_TREE);
  ObjectPtr tree(tree_raw);
  return rc == 0;
}

}  // namespace

Result<Repository> Repository::open(const std::string& path) {
  ensure_init();
  git_repository* repo = nullptr;
  if (git_repository_open_ext(&repo, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0)
    return make_error(last_error("no git repository at '" + path + "'"));
  return Repository(repo);
}

Repository::~Repository() {
  if (repo_) git_repository_free(repo_);
}

Repository::Repository(Repository&& other) noexcept
    : repo_(other.repo_),
      sharing_settled_(other.sharing_settled_),
      sharing_warned_(other.sharing_warned_) {
  other.repo_ = nullptr;
}

Repository& Repository::operator=(Repository&& other) noexcept {
  if (this != &other) {
    if (repo_) git_repository_free(repo_);
    repo_ = other.repo_;
    sharing_settled_ = other.sharing_settled_;
    sharing_warned_ = other.sharing_warned_;
    other.repo_ = nullptr;
  }
  return *this;
}

std::string Repository::workdir() const {
  const char* w = git_repository_workdir(repo_);
  return w ? w : git_repository_path(repo_);
}

bool Repository::has_remote(const std::string& name) const {
  git_remote* r = nullptr;
  if (git_remote_lookup(&r, repo_, name.c_str()) != 0) return false;
  git_remote_free(r);
  return true;
}

std::vector<std::string> Repository::remove_stale_locks() {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code ec;
  fs::path git_dir = git_repository_path(repo_);
  auto remove = [&](const fs::path& path) {
    std::error_code err;
    if (fs::remove(path, err)) removed.push_back(path.string());
  };
  for (const char* name : {"index.lock", "HEAD.lock", "ORIG_HEAD.lock", "FETCH_HEAD.lock",
                           "packed-refs.lock", "config.lock", "shallow.lock"})
    remove(git_dir / name);
  for (auto it = fs::recursive_directory_iterator(git_dir / "refs", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().extension() == ".lock" && it->is_regular_file(ec)) remove(it->path());
  }
  return removed;
}

Result<void> Repository::fetch(const std::string& remote) {
  // Best effort: without sharing, the fetch copies the objects as it always did.
  if (!sharing_settled_) {
    auto shared = share_objects(remote);
    if (!shared && !sharing_warned_) {
      spdlog::warn("objects of '{}' not shared; fetches copy them: {}", remote, shared.error());
      sharing_warned_ = true;
    }
  }
  git_remote* raw = nullptr;
  if (git_remote_lookup(&raw, repo_, remote.c_str()) != 0)
    return make_error(last_error("no remote '" + remote + "'"));
  RemotePtr r(raw);
  // The init functions rather than the _INIT macros, whose partial initialisers
  // clang's -Wextra reports (the clang build of scripts/test.sh).
  git_fetch_options opts;
  git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
  opts.prune = GIT_FETCH_PRUNE;
  // Nothing reads FETCH_HEAD, and writing it costs two file creations per fetch.
  opts.update_fetchhead = 0;
  if (git_remote_fetch(r.get(), nullptr, &opts, nullptr) != 0)
    return make_error(last_error("fetch from '" + remote + "' failed"));
  return {};
}

Result<std::vector<BranchTip>> Repository::branch_tips(const std::string& remote) const {
  std::string prefix = remote.empty() ? "refs/heads/" : "refs/remotes/" + remote + "/";
  git_reference_iterator* raw = nullptr;
  std::string glob = prefix + "*";
  if (git_reference_iterator_glob_new(&raw, repo_, glob.c_str()) != 0)
    return make_error(last_error("cannot list branches"));
  IteratorPtr it(raw);
  std::vector<BranchTip> tips;
  git_reference* ref_raw = nullptr;
  while (git_reference_next(&ref_raw, it.get()) == 0) {
    ReferencePtr ref(ref_raw);
    std::string name = git_reference_name(ref.get());
    std::string branch = name.substr(prefix.size());
    if (branch == "HEAD" || git_reference_type(ref.get()) != GIT_REFERENCE_DIRECT) continue;
    git_object* obj = nullptr;
    if (git_reference_peel(&obj, ref.get(), GIT_OBJECT_COMMIT) != 0) continue;
    ObjectPtr commit(obj);
    tips.push_back({branch, oid_str(git_object_id(commit.get()))});
  }
  std::sort(tips.begin(), tips.end(),
            [](const BranchTip& a, const BranchTip& b) { return a.branch < b.branch; });
  return tips;
}

bool Repository::has_commit(const std::string& id) const {
  git_oid oid;
  if (!parse_oid(id, &oid)) return false;
  git_object* obj = nullptr;
  if (git_object_lookup(&obj, repo_, &oid, GIT_OBJECT_COMMIT) != 0) return false;
  git_object_free(obj);
  return true;
}

namespace {

// The commit `id` of `repo`, or why not.
Result<ObjectPtr> lookup_commit(git_repository* repo, const std::string& id, git_oid* oid) {
  if (!parse_oid(id, oid)) return make_error("bad commit id '" + id + "'");
  git_object* raw = nullptr;
  if (git_object_lookup(&raw, repo, oid, GIT_OBJECT_COMMIT) != 0)
    return make_error(last_error("commit " + id + " not found"));
  return ObjectPtr(raw);
}

}  // namespace

Result<void> Repository::checkout_detached(const std::string& id) {
  git_oid oid;
  auto found = lookup_commit(repo_, id, &oid);
  if (!found) return Error{found.error()};
  ObjectPtr commit = std::move(*found);
  git_checkout_options opts;
  git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
  opts.checkout_strategy =
      GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
  if (git_checkout_tree(repo_, commit.get(), &opts) != 0) {
    // The checkout compares against HEAD's tree. In a clone that shares a master's
    // objects, HEAD may name a commit the master has since pruned (a deleted branch);
    // then compare against nothing: the forced checkout still ends clean.
    std::string failure = last_error("checkout of " + id + " failed");
    if (head_tree_readable(repo_)) return make_error(failure);
    git_index* empty_raw = nullptr;
    if (git_index_new(&empty_raw) != 0) return make_error(last_error("checkout of " + id));
    IndexPtr empty(empty_raw);
    opts.baseline_index = empty.get();
    if (git_checkout_tree(repo_, commit.get(), &opts) != 0)
      return make_error(last_error("checkout of " + id + " failed"));
  }
  if (git_repository_set_head_detached(repo_, &oid) != 0)
    return make_error(last_error("cannot move HEAD to " + id));
  return {};
}

Result<void> Repository::export_commit(const std::string& id, const std::string& dir) const {
  git_oid oid;
  auto found = lookup_commit(repo_, id, &oid);
  if (!found) return Error{found.error()};
  ObjectPtr commit = std::move(*found);
  // Compared against an empty index rather than HEAD and the clone's own index: no
  // cached stat data of any file is trusted, every file of the commit is written.
  git_index* empty_raw = nullptr;
  if (git_index_new(&empty_raw) != 0) return make_error(last_error("export of " + id));
  IndexPtr empty(empty_raw);
  git_checkout_options opts;
  git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
  opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
  opts.baseline_index = empty.get();
  opts.target_directory = dir.c_str();
  if (git_checkout_tree(repo_, commit.get(), &opts) != 0)
    return make_error(last_error("export of " + id + " to " + dir + " failed"));
  return {};
}

}  // namespace ci::git
