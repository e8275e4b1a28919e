#include "test_support.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "ci/validate.h"

namespace ci::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "ci-test-XXXXXX").string();
  char* p = ::mkdtemp(tmpl.data());
  if (!p) throw std::runtime_error("mkdtemp failed");
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

HeldPort::HeldPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bool held = fd_ >= 0 && ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
              ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
              ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  EXPECT_TRUE(held) << "cannot hold a loopback port";
  if (held) port_ = ntohs(addr.sin_port);
}

HeldPort::~HeldPort() {
  if (fd_ >= 0) ::close(fd_);
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = 1ms;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::milliseconds>(pause * 2, 50ms);
  }
}

std::string run(const std::vector<std::string>& argv, const std::string& cwd) {
  CommandSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  spec.env = current_environment();
  spec.env.push_back("GIT_AUTHOR_NAME=Test");
  spec.env.push_back("GIT_AUTHOR_EMAIL=test@example.com");
  spec.env.push_back("GIT_COMMITTER_NAME=Test");
  spec.env.push_back("GIT_COMMITTER_EMAIL=test@example.com");
  spec.timeout = 60s;
  auto r = run_command(spec);
  std::string cmd;
  for (const auto& a : argv) cmd += a + " ";
  if (!r) {
    ADD_FAILURE() << "cannot run " << cmd << ": " << r.error();
    return {};
  }
  if (r->exit_code != 0) ADD_FAILURE() << cmd << "exited " << r->exit_code << ":\n" << r->output;
  return r->output;
}

std::string git(const std::string& repo, const std::vector<std::string>& args) {
  std::vector<std::string> argv{
      "git", "-C", repo, "-c", "init.defaultBranch=master", "-c", "commit.gpgsign=false"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

std::string make_master_repo(const std::string& dir) {
  fs::create_directories(dir);
  git(dir, {"init", "-q", "-b", "master"});
  fs::copy(std::string(CI_SOURCE_DIR) + "/example_tests", dir + "/tests",
           fs::copy_options::recursive);
  git(dir, {"add", "tests"});
  git(dir, {"commit", "-q", "-m", "add tests"});
  return head_commit(dir);
}

std::string clone_repo(const std::string& from, const std::string& to) {
  run({"git", "clone", "-q", from, to});
  return to;
}

std::string commit_file(const std::string& repo, const std::string& name,
                        const std::string& content, const std::string& message) {
  fs::path p = fs::path(repo) / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
  git(repo, {"add", name});
  git(repo, {"commit", "-q", "-m", message});
  return head_commit(repo);
}

std::string head_commit(const std::string& repo) {
  std::string out = git(repo, {"rev-parse", "HEAD"});
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string import_commits(const std::string& repo, const std::string& branch,
                           const std::string& from, int count, int64_t first_date) {
  std::string stream;
  stream.reserve(static_cast<size_t>(count) * 160);
  auto data = [&](const std::string& text) {
    stream += "data " + std::to_string(text.size()) + "\n" + text + "\n";
  };
  for (int i = 0; i < count; ++i) {
    stream += "commit refs/heads/" + branch + "\n";
    stream += "committer Test <test@example.com> " + std::to_string(first_date + i) + " +0000\n";
    data(branch + " " + std::to_string(i));
    if (i == 0 && !from.empty()) stream += "from " + from + "\n";
    stream += "\n";
  }
  TempDir tmp;
  std::string file = tmp / "stream";
  std::ofstream(file, std::ios::binary) << stream;
  run({"sh", "-c", "git -C \"$0\" fast-import --quiet < \"$1\"", repo, file});
  std::string out = git(repo, {"rev-parse", "refs/heads/" + branch});
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) { return fs::exists(path); }

void write_token_file(const std::string& path, const std::string& token) {
  std::ofstream(path, std::ios::trunc).close();  // private before the secret goes in
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  std::ofstream(path, std::ios::trunc) << token << "\n";
  EXPECT_EQ(read_text(path), token + "\n") << path;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string bin(const std::string& name) { return std::string(CI_BIN_DIR) + "/" + name; }

Daemon::Daemon(std::string name, std::vector<std::string> args, std::string log_file,
               const std::string& cwd, const std::vector<std::string>& prefix)
    : name_(std::move(name)), log_file_(std::move(log_file)) {
  std::vector<std::string> argv;
  if (!cwd.empty()) argv = {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd};
  argv.insert(argv.end(), prefix.begin(), prefix.end());
  argv.push_back(bin(name_));
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::spawn(argv, log_file_);
  if (!child) throw std::runtime_error("cannot start " + name_ + ": " + child.error());
  child_ = std::move(child.value());
}

Daemon::~Daemon() {
  if (child_.pid() > 0) child_.stop(3000ms);
}

uint16_t Daemon::wait_listening(std::chrono::milliseconds timeout) {
  static const std::regex re("listening on \\S+:([0-9]+)");
  uint16_t port = 0;
  wait_until(
      [&] {
        std::smatch m;
        std::string text = log();
        if (std::regex_search(text, m, re)) {
          port = parse_port(m[1].str()).value_or(0);
          return true;
        }
        return !child_.running();
      },
      timeout);
  if (port == 0) ADD_FAILURE() << name_ << " did not start listening; its log:\n" << log();
  return port;
}

bool Daemon::log_contains(const std::string& text) const {
  return log().find(text) != std::string::npos;
}

std::string Daemon::log() const { return read_text(log_file_); }

void Daemon::kill(int sig) { child_.signal(sig); }

int Daemon::stop() { return child_.stop(5000ms); }

}  // namespace ci::test
