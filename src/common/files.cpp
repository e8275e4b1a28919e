#include "ci/files.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ci/fd.h"

namespace ci {

namespace {

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

// Creates a new file beside `path` for writing, named <path>.tmp.<pid>.<count>.<random>:
// never one that exists, nor through a symbolic link (O_EXCL | O_NOFOLLOW). A name
// taken (a temporary file a killed process left, with a pid since reused, or anything
// planted there) is passed over for another.
UniqueFd create_temp_file(const std::string& path, std::string* tmp) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t seed = [] {
    uint64_t value = 0;
    if (::getrandom(&value, sizeof value, GRND_NONBLOCK) != sizeof value)
      value = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    return value;
  }();
  for (int tries = 0; tries < 100; ++tries) {
    uint64_t n = counter.fetch_add(1);
    // Different for each name, and from one process to the next with the same pid.
    uint64_t tag = (seed ^ (n * 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(tag));
    *tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(n) + "." + suffix;
    UniqueFd fd(::open(tmp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (fd.valid() || (errno != EEXIST && errno != ELOOP)) return fd;
  }
  errno = EEXIST;
  return UniqueFd();
}

}  // namespace

Result<void> write_file_atomic(const std::string& path, const std::string& data, bool flush) {
  std::string tmp;
  UniqueFd fd = create_temp_file(path, &tmp);
  if (!fd.valid()) return make_error(sys_error("cannot create " + tmp));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto err = sys_error("cannot write " + tmp);
      fd.reset();
      ::unlink(tmp.c_str());
      return make_error(err);
    }
    off += static_cast<size_t>(n);
  }
  if (flush && ::fsync(fd.get()) != 0) {
    auto err = sys_error("cannot flush " + tmp);
    fd.reset();
    ::unlink(tmp.c_str());
    return make_error(err);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = sys_error("cannot rename " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    return make_error(err);
  }
  if (!flush) return {};
  std::string dir = std::filesystem::path(path).parent_path().string();
  UniqueFd dir_fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.valid()) ::fsync(dir_fd.get());
  return {};
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(sys_error("cannot read " + path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<void> make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return make_error("cannot create folder " + path + ": " + ec.message());
  return {};
}

}  // namespace ci
