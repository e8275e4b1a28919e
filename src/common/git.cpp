#include "ci/git.h"

#include <git2.h>

#include <algorithm>
#include <memory>

namespace ci::git {
namespace {

struct Library {
  Library() { git_libgit2_init(); }
  ~Library() { git_libgit2_shutdown(); }
};

void ensure_init() { static Library library; }

std::string last_error(const std::string& what) {
  const git_error* e = git_error_last();
  return what + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
using RemotePtr = std::unique_ptr<git_remote, Deleter<git_remote, git_remote_free>>;
using ObjectPtr = std::unique_ptr<git_object, Deleter<git_object, git_object_free>>;
using RevwalkPtr = std::unique_ptr<git_revwalk, Deleter<git_revwalk, git_revwalk_free>>;
using IteratorPtr = std::unique_ptr<git_reference_iterator,
                                    Deleter<git_reference_iterator, git_reference_iterator_free>>;
using ReferencePtr = std::unique_ptr<git_reference, Deleter<git_reference, git_reference_free>>;

std::string oid_str(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, oid);
  return buf;
}

bool parse_oid(const std::string& id, git_oid* out) {
  return id.size() == GIT_OID_HEXSZ && git_oid_fromstr(out, id.c_str()) == 0;
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

Repository::Repository(Repository&& other) noexcept : repo_(other.repo_) { other.repo_ = nullptr; }

Repository& Repository::operator=(Repository&& other) noexcept {
  if (this != &other) {
    if (repo_) git_repository_free(repo_);
    repo_ = other.repo_;
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

Result<void> Repository::fetch(const std::string& remote) {
  git_remote* raw = nullptr;
  if (git_remote_lookup(&raw, repo_, remote.c_str()) != 0)
    return make_error(last_error("no remote '" + remote + "'"));
  RemotePtr r(raw);
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.prune = GIT_FETCH_PRUNE;
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

Result<void> Repository::checkout_detached(const std::string& id) {
  git_oid oid;
  if (!parse_oid(id, &oid)) return make_error("bad commit id '" + id + "'");
  git_object* raw = nullptr;
  if (git_object_lookup(&raw, repo_, &oid, GIT_OBJECT_COMMIT) != 0)
    return make_error(last_error("commit " + id + " not found"));
  ObjectPtr commit(raw);
  git_checkout_options opts = GIT_CHECKOUT_OPTIONS_INIT;
  opts.checkout_strategy =
      GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
  if (git_checkout_tree(repo_, commit.get(), &opts) != 0)
    return make_error(last_error("checkout of " + id + " failed"));
  if (git_repository_set_head_detached(repo_, &oid) != 0)
    return make_error(last_error("cannot move HEAD to " + id));
  return {};
}

Result<std::vector<std::string>> Repository::commits_since(
    const std::string& tip, const std::vector<std::string>& hide) const {
  git_oid tip_oid;
  if (!parse_oid(tip, &tip_oid)) return make_error("bad commit id '" + tip + "'");
  git_revwalk* raw = nullptr;
  if (git_revwalk_new(&raw, repo_) != 0) return make_error(last_error("revwalk"));
  RevwalkPtr walk(raw);
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
  if (git_revwalk_push(walk.get(), &tip_oid) != 0)
    return make_error(last_error("commit " + tip + " not found"));
  std::vector<git_oid> hidden;
  for (const auto& h : hide) {
    git_oid oid;
    if (parse_oid(h, &oid) && has_commit(h)) {
      git_revwalk_hide(walk.get(), &oid);
      hidden.push_back(oid);
    }
  }
  std::vector<std::string> out;
  git_oid oid;
  int rc;
  while ((rc = git_revwalk_next(&oid, walk.get())) == 0) {
    // libgit2's revwalk can let a hidden commit through when commits share a
    // timestamp (its date-based cut-off stops marking ancestors too early), so each
    // commit is checked again with the merge-base machinery, which does not.
    if (!hidden.empty()) {
      int reachable = git_graph_reachable_from_any(repo_, &oid, hidden.data(), hidden.size());
      if (reachable < 0) return make_error(last_error("walking history failed"));
      if (reachable == 1) continue;
    }
    out.push_back(oid_str(&oid));
  }
  if (rc != GIT_ITEROVER) return make_error(last_error("walking history failed"));
  return out;
}

}  // namespace ci::git
