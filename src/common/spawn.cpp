#include "spawn.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace ci::spawn {

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  // posix_spawn's arguments are char* const[] for historical reasons only: it does not
  // write to the strings.
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

UniqueFd pidfd_open(pid_t pid) {
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

UniqueFd keep_high(UniqueFd fd) {
  if (!fd.valid() || fd.get() >= 10) return fd;
  return UniqueFd(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 10));  // `fd` closes on return
}

std::string errno_text(int error) {
  const char* text = strerrordesc_np(error);
  return text ? text : "error " + std::to_string(error);
}

SpawnSetup::SpawnSetup() {
  ok_ = ::posix_spawnattr_init(&attr_) == 0;
  if (::posix_spawn_file_actions_init(&actions_) != 0) {
    if (ok_) ::posix_spawnattr_destroy(&attr_);
    ok_ = false;
  }
}

SpawnSetup::~SpawnSetup() {
  if (!ok_) return;
  ::posix_spawn_file_actions_destroy(&actions_);
  ::posix_spawnattr_destroy(&attr_);
}

}  // namespace ci::spawn
