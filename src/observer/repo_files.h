// What the observer reads from its repository beyond the history: the labels a commit
// asks for in its `.ci/labels` file (read from the commit's tree, without a checkout),
// and the URL of the clone's origin (where runners can fetch the repository from).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ci/result.h"

struct git_repository;

namespace ci::observer {

// The file in a commit that names the labels its tests need: one label a line, '#'
// starts a comment, blank lines skipped.
inline constexpr const char* kLabelsFile = ".ci/labels";
// A larger file is not read: its labels are ignored (and that is logged).
inline constexpr size_t kMaxLabelsFileBytes = 64 * 1024;

struct LabelsFile {
  std::vector<std::string> labels;  // sorted, each once, at most kMaxLabels
  // "line 3: label may hold only ...", one for each line skipped, and one for labels
  // past kMaxLabels.
  std::vector<std::string> problems;
};
LabelsFile parse_labels_file(std::string_view text);

// The labels the observer's --require gives, then those of the file, together: sorted,
// each once, at most kMaxLabels (the ones from --require first). Labels cut are named
// in *problems.
std::vector<std::string> merge_labels(const std::vector<std::string>& required,
                                      const std::vector<std::string>& from_file,
                                      std::vector<std::string>* problems);

// A repository's name taken from its URL: the last path component without ".git"
// ("https://example.com/team/tools.git" -> "tools"). An error when that is no valid
// repository name.
Result<std::string> repo_name_from_url(std::string_view url);

// A second handle on the observer's repository, for reading files of commits.
class RepoFiles {
 public:
  static Result<RepoFiles> open(const std::string& path);
  ~RepoFiles();
  RepoFiles(RepoFiles&& other) noexcept;
  RepoFiles& operator=(RepoFiles&& other) noexcept;
  RepoFiles(const RepoFiles&) = delete;
  RepoFiles& operator=(const RepoFiles&) = delete;

  // The labels file of `commit`: absent is no labels; a file larger than
  // kMaxLabelsFileBytes, or something other than a file at that path, is an error.
  Result<LabelsFile> labels_of(const std::string& commit) const;
  // The URL of a remote; "" when there is no such remote.
  std::string remote_url(const std::string& remote) const;

 private:
  explicit RepoFiles(git_repository* repo) : repo_(repo) {}
  git_repository* repo_ = nullptr;
};

}  // namespace ci::observer
