#include "process_probe.h"

#include <sstream>
#include <string>

#include "test_support.h"

namespace ci::runner::test_probe {
namespace {

// The state letter and process group of a process, from /proc/<pid>/stat.
bool process_stat(const std::string& pid, char* state, pid_t* group) {
  std::string stat = test::read_text("/proc/" + pid + "/stat");
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(stat.substr(close + 1));
  pid_t parent = 0;
  return static_cast<bool>(fields >> *state >> parent >> *group);
}

}  // namespace

bool process_gone(pid_t pid) {
  char state = 0;
  pid_t group = 0;
  return !process_stat(std::to_string(pid), &state, &group) || state == 'Z';
}

pid_t process_group(pid_t pid) {
  char state = 0;
  pid_t group = 0;
  if (!process_stat(std::to_string(pid), &state, &group) || state == 'Z') return 0;
  return group;
}

bool group_gone(pid_t group) {
  for (const auto& name : test::list_dir("/proc")) {
    char state = 0;
    pid_t member_of = 0;
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (process_stat(name, &state, &member_of) && member_of == group && state != 'Z') return false;
  }
  return true;
}

}  // namespace ci::runner::test_probe
