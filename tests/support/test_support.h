// Helpers for tests: temporary folders, real git repositories made with the git
// command, waiting on a condition with a deadline, and the project's daemons started
// as real processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ci/process.h"

namespace ci::test {

using namespace std::chrono_literals;

// A fresh folder, removed with everything in it when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A loopback port bound but not listening, held until the object goes: a connection to
// it is refused, as to a server that is down, and no other socket of the machine can
// take the port meanwhile; a server that binds with SO_REUSEADDR (LineServer does)
// can listen on it while it is held. For a server started after its clients.
class HeldPort {
 public:
  HeldPort();
  ~HeldPort();
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// Polls `condition` until it holds or `timeout` passes; true if it held.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = 30000ms);

// Runs a command; fails the current test (and returns its output) if it exits non-zero.
std::string run(const std::vector<std::string>& argv, const std::string& cwd = "");
std::string git(const std::string& repo, const std::vector<std::string>& args);

// A master repository with one commit holding example_tests/ as tests/.
std::string make_master_repo(const std::string& dir);
std::string clone_repo(const std::string& from, const std::string& to);
// Writes a file, commits it and returns the commit id.
std::string commit_file(const std::string& repo, const std::string& name,
                        const std::string& content, const std::string& message = "change");
std::string head_commit(const std::string& repo);
// Makes `count` commits on `branch` at once with git fast-import (thousands a second),
// each with its parent's files and a message of its own: the first on top of `from` (a commit id),
// or with no parent when `from` is empty; commit i (from 0) is dated `first_date` + i seconds.
// Returns the id of the last.
std::string import_commits(const std::string& repo, const std::string& branch,
                           const std::string& from, int count, int64_t first_date);

std::string read_text(const std::string& path);  // "" when missing
bool file_exists(const std::string& path);
std::vector<std::string> list_dir(const std::string& dir);  // file names, sorted

std::string bin(const std::string& name);  // build/bin/<name>

// A token as strong as the daemons require (base64 of 32 random bytes: 44 characters).
inline constexpr char kTestToken[] = "Q2+5xWbl7kN3fS0tV9pH1rJ4yL6uE8aZcD2gM5nB7qo=";
// Writes `token` to `path` with mode 0600, as a token file must be; fails the current
// test if it cannot.
void write_token_file(const std::string& path, const std::string& token = kTestToken);

// A daemon of the project started as a real process, its output in a log file.
class Daemon {
 public:
  // `cwd`: the folder it runs in ("" for the test's own). `prefix`: a command that runs
  // the daemon (e.g. setpriv to run it as another user), or nothing.
  Daemon(std::string name, std::vector<std::string> args, std::string log_file,
         const std::string& cwd = "", const std::vector<std::string>& prefix = {});
  ~Daemon();
  Daemon(Daemon&&) = default;
  Daemon& operator=(Daemon&&) = default;

  // Waits for its "listening on HOST:PORT" log line; returns the port or 0.
  uint16_t wait_listening(std::chrono::milliseconds timeout = 20000ms);
  bool log_contains(const std::string& text) const;
  std::string log() const;
  pid_t pid() const { return child_.pid(); }
  bool running() { return child_.running(); }
  void kill(int sig);
  int stop();  // SIGTERM, then SIGKILL after a grace period; returns the wait status

 private:
  std::string name_;
  std::string log_file_;
  ChildProcess child_;
};

}  // namespace ci::test
