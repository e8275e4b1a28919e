// Repository::share_objects: a clone of a master on this machine reads the master's
// objects in place (objects/info/alternates) instead of copying them on every fetch.
#include <filesystem>
#include <string>
#include <system_error>

#include "ci/files.h"
#include "ci/git.h"
#include "git_internal.h"

namespace ci::git {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The folder a remote URL names on this machine: an absolute path, or a file:// URL
// (percent-escapes decoded). "" for anything else: a network URL, scp-like
// "host:path", or a relative path (which libgit2 would resolve against the process's
// working folder, not the repository's).
std::string local_path_of_url(const std::string& url) {
  if (url.starts_with("/")) return url;
  const std::string scheme = "file://";
  if (!url.starts_with(scheme) || url.size() == scheme.size() || url[scheme.size()] != '/')
    return "";
  std::string path;
  for (size_t i = scheme.size(); i < url.size(); ++i) {
    int hi = 0;
    int lo = 0;
    if (url[i] == '%' && i + 2 < url.size() && (hi = hex_value(url[i + 1])) >= 0 &&
        (lo = hex_value(url[i + 2])) >= 0) {
      path += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      path += url[i];
    }
  }
  return path;
}

// The canonical absolute form of an existing folder, or "" if it cannot be resolved.
std::string canonical_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  auto canonical = std::filesystem::canonical(dir, ec);
  if (ec || !std::filesystem::is_directory(canonical, ec)) return "";
  return canonical.string();
}

// The object folder of a repository: <common dir>/objects.
std::string objects_dir(git_repository* repo) {
  return canonical_dir(std::filesystem::path(git_repository_commondir(repo)) / "objects");
}

Result<bool> share_objects_of(git_repository* repo, const std::string& remote) {
  git_config* config_raw = nullptr;
  if (git_repository_config_snapshot(&config_raw, repo) != 0)
    return make_error(last_error("cannot read the configuration"));
  ConfigPtr config(config_raw);
  int share = 1;
  if (git_config_get_bool(&share, config.get(), Repository::kShareObjectsKey) != 0) share = 1;
  git_error_clear();
  if (!share) return false;

  git_remote* remote_raw = nullptr;
  if (git_remote_lookup(&remote_raw, repo, remote.c_str()) != 0)
    return make_error(last_error("no remote '" + remote + "'"));
  RemotePtr r(remote_raw);
  const char* url = git_remote_url(r.get());
  std::string master_path = local_path_of_url(url ? url : "");
  if (master_path.empty()) return false;

  git_repository* master_raw = nullptr;
  if (git_repository_open_ext(&master_raw, master_path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH,
                              nullptr) != 0)
    return make_error(last_error("cannot open remote '" + remote + "' at " + master_path));
  RepositoryPtr master(master_raw);
  std::string theirs = objects_dir(master.get());
  std::string ours = objects_dir(repo);
  if (theirs.empty() || ours.empty())
    return make_error("cannot find the object folders of " + master_path + " and " +
                      git_repository_path(repo));
  if (theirs == ours) return false;

  namespace fs = std::filesystem;
  fs::path alternates = fs::path(ours) / "info" / "alternates";
  std::string text;
  std::error_code ec;
  if (fs::exists(alternates, ec)) {
    auto read = read_file(alternates.string());
    if (!read) return make_error("cannot read " + alternates.string() + ": " + read.error());
    text = std::move(*read);
  }
  // Lines are absolute or relative to our object folder; '#' starts a comment.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    fs::path listed(line);
    if (listed.is_relative()) listed = fs::path(ours) / listed;
    if (canonical_dir(listed) == theirs) return true;
  }

  if (!text.empty() && text.back() != '\n') text += '\n';
  text += theirs + "\n";
  if (auto made = make_dirs(alternates.parent_path().string()); !made)
    return make_error("cannot share the objects of " + master_path + ": " + made.error());
  if (auto written = write_file_atomic(alternates.string(), text); !written)
    return make_error("cannot share the objects of " + master_path + ": " + written.error());
  // The file is read when the object database opens, which may have happened already.
  git_odb* odb_raw = nullptr;
  if (git_repository_odb(&odb_raw, repo) != 0)
    return make_error(last_error("cannot open the object database"));
  OdbPtr odb(odb_raw);
  if (git_odb_add_disk_alternate(odb.get(), theirs.c_str()) != 0)
    return make_error(last_error("cannot read the objects of " + master_path));
  return true;
}

}  // namespace

Result<bool> Repository::share_objects(const std::string& remote) {
  auto shared = share_objects_of(repo_, remote);
  // An error may pass (the master being moved, say): the next fetch tries again.
  sharing_settled_ = shared.ok();
  return shared;
}

Result<CommitInfo> Repository::commit_info(const std::string& id) const {
  git_oid oid;
  if (!parse_oid(id, &oid)) return make_error("not a commit id: " + id);
  git_commit* raw = nullptr;
  if (git_commit_lookup(&raw, repo_, &oid) != 0) return make_error(last_error("commit " + id));
  CommitPtr commit(raw);
  CommitInfo info;
  if (const git_signature* author = git_commit_author(commit.get())) {
    info.author = bound_case_text(author->name ? author->name : "", 256);
    info.email = bound_case_text(author->email ? author->email : "", 256);
    info.time = author->when.time;
  }
  if (const char* summary = git_commit_summary(commit.get()))
    info.subject = bound_case_text(summary, 1024);
  return info;
}

}  // namespace ci::git
