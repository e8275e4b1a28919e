// What the files of ci::git share (git.cpp, git_history.cpp, git_objects.cpp): the
// library's start-up, its errors, owning pointers for its objects and commit ids.
#pragma once

#include <git2.h>

#include <memory>
#include <string>

namespace ci::git {

// Starts libgit2 once, on first use, and shuts it down at exit.
void ensure_init();

// `what`, then libgit2's last error message.
std::string last_error(const std::string& what);

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
using RemotePtr = std::unique_ptr<git_remote, Deleter<git_remote, git_remote_free>>;
using ObjectPtr = std::unique_ptr<git_object, Deleter<git_object, git_object_free>>;
using CommitPtr = std::unique_ptr<git_commit, Deleter<git_commit, git_commit_free>>;
using IteratorPtr = std::unique_ptr<git_reference_iterator,
                                    Deleter<git_reference_iterator, git_reference_iterator_free>>;
using ReferencePtr = std::unique_ptr<git_reference, Deleter<git_reference, git_reference_free>>;
using RepositoryPtr = std::unique_ptr<git_repository, Deleter<git_repository, git_repository_free>>;
using ConfigPtr = std::unique_ptr<git_config, Deleter<git_config, git_config_free>>;
using OdbPtr = std::unique_ptr<git_odb, Deleter<git_odb, git_odb_free>>;
using IndexPtr = std::unique_ptr<git_index, Deleter<git_index, git_index_free>>;

std::string oid_str(const git_oid* oid);
// False unless `id` is a full hex commit id.
bool parse_oid(const std::string& id, git_oid* out);

}  // namespace ci::git
