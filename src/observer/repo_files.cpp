#include "observer/repo_files.h"

#include <git2.h>

#include <algorithm>
#include <memory>

#include "ci/validate.h"

namespace ci::observer {

namespace {

std::string git_error_text(const std::string& what) {
  const git_error* e = git_error_last();
  return what + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

template <typename T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using Owned = std::unique_ptr<T, Freer<T, Free>>;

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

LabelsFile parse_labels_file(std::string_view text) {
  LabelsFile out;
  size_t line_no = 0;
  size_t start = 0;
  std::vector<std::string> dropped;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    if (std::string why = check_label(line); !why.empty()) {
      out.problems.push_back("line " + std::to_string(line_no) + ": '" + escape_for_log(line, 64) +
                             "': " + why);
      continue;
    }
    std::string label(line);
    if (std::find(out.labels.begin(), out.labels.end(), label) != out.labels.end()) continue;
    if (out.labels.size() == kMaxLabels) {
      dropped.push_back(label);
      continue;
    }
    out.labels.push_back(std::move(label));
  }
  if (!dropped.empty())
    out.problems.push_back("more than " + std::to_string(kMaxLabels) +
                           " labels: " + join_labels(dropped) + " not taken");
  std::sort(out.labels.begin(), out.labels.end());
  return out;
}

std::vector<std::string> merge_labels(const std::vector<std::string>& required,
                                      const std::vector<std::string>& from_file,
                                      std::vector<std::string>* problems) {
  std::vector<std::string> out;
  std::vector<std::string> dropped;
  for (const auto* list : {&required, &from_file})
    for (const std::string& label : *list) {
      if (std::find(out.begin(), out.end(), label) != out.end()) continue;
      if (out.size() == kMaxLabels) {
        dropped.push_back(label);
        continue;
      }
      out.push_back(label);
    }
  if (!dropped.empty() && problems)
    problems->push_back("more than " + std::to_string(kMaxLabels) +
                        " labels with --require: " + join_labels(dropped) + " not taken");
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> repo_name_from_url(std::string_view url) {
  std::string_view rest = url;
  // scheme://host/path: the path alone ("" when there is none).
  if (size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
    rest.remove_prefix(scheme + 3);
    size_t slash = rest.find('/');
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  }
  while (!rest.empty() && (rest.back() == '/' || rest.back() == '\\')) rest.remove_suffix(1);
  size_t cut = rest.find_last_of("/:\\");
  std::string_view last = cut == std::string_view::npos ? rest : rest.substr(cut + 1);
  if (last.size() > 4 && last.substr(last.size() - 4) == ".git") last.remove_suffix(4);
  std::string name(last);
  if (std::string why = check_repo_name(name); !why.empty())
    return make_error("cannot take a repository name from '" + escape_for_log(url) + "' ('" +
                      escape_for_log(name) + "': " + why + ")");
  return name;
}

Result<RepoFiles> RepoFiles::open(const std::string& path) {
  git_libgit2_init();  // counted: each handle holds the library open
  git_repository* repo = nullptr;
  if (git_repository_open(&repo, path.c_str()) != 0) {
    std::string why = git_error_text("cannot open " + path);
    git_libgit2_shutdown();
    return make_error(why);
  }
  return RepoFiles(repo);
}

RepoFiles::~RepoFiles() {
  if (!repo_) return;
  git_repository_free(repo_);
  git_libgit2_shutdown();
}

RepoFiles::RepoFiles(RepoFiles&& other) noexcept : repo_(other.repo_) { other.repo_ = nullptr; }

RepoFiles& RepoFiles::operator=(RepoFiles&& other) noexcept {
  if (this != &other) {
    if (repo_) {
      git_repository_free(repo_);
      git_libgit2_shutdown();
    }
    repo_ = other.repo_;
    other.repo_ = nullptr;
  }
  return *this;
}

Result<LabelsFile> RepoFiles::labels_of(const std::string& commit) const {
  git_oid oid;
  if (commit.size() != GIT_OID_HEXSZ || git_oid_fromstr(&oid, commit.c_str()) != 0)
    return make_error("'" + escape_for_log(commit) + "' is not a commit id");
  git_commit* raw_commit = nullptr;
  if (git_commit_lookup(&raw_commit, repo_, &oid) != 0)
    return make_error(git_error_text("cannot read commit " + commit));
  Owned<git_commit, git_commit_free> c(raw_commit);
  git_tree* raw_tree = nullptr;
  if (git_commit_tree(&raw_tree, c.get()) != 0)
    return make_error(git_error_text("cannot read the tree of " + commit));
  Owned<git_tree, git_tree_free> tree(raw_tree);
  git_tree_entry* raw_entry = nullptr;
  int found = git_tree_entry_bypath(&raw_entry, tree.get(), kLabelsFile);
  if (found == GIT_ENOTFOUND) return LabelsFile{};
  if (found != 0) return make_error(git_error_text(std::string("cannot look up ") + kLabelsFile));
  Owned<git_tree_entry, git_tree_entry_free> entry(raw_entry);
  if (git_tree_entry_type(entry.get()) != GIT_OBJECT_BLOB)
    return make_error(std::string(kLabelsFile) + " is not a file");
  git_blob* raw_blob = nullptr;
  if (git_blob_lookup(&raw_blob, repo_, git_tree_entry_id(entry.get())) != 0)
    return make_error(git_error_text(std::string("cannot read ") + kLabelsFile));
  Owned<git_blob, git_blob_free> blob(raw_blob);
  auto size = static_cast<size_t>(git_blob_rawsize(blob.get()));
  if (size > kMaxLabelsFileBytes)
    return make_error(std::string(kLabelsFile) + " is " + std::to_string(size) +
                      " bytes, larger than " + std::to_string(kMaxLabelsFileBytes));
  return parse_labels_file(
      std::string_view(static_cast<const char*>(git_blob_rawcontent(blob.get())), size));
}

std::string RepoFiles::remote_url(const std::string& remote) const {
  git_remote* raw = nullptr;
  if (git_remote_lookup(&raw, repo_, remote.c_str()) != 0) return {};
  Owned<git_remote, git_remote_free> r(raw);
  const char* url = git_remote_url(r.get());
  return url ? url : "";
}

}  // namespace ci::observer
