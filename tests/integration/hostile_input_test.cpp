// Contract 3 against the real daemons: every bad byte gets a clear error or a closed
// connection, the daemon keeps serving everyone else, and nothing a peer sends
// reaches a file path.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "cluster.h"

namespace ci::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class RawConnection {
 public:
  explicit RawConnection(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads until the peer closes or `timeout` passes; `closed` says which.
  std::string read_all(std::chrono::milliseconds timeout, bool* closed) {
    std::string out;
    auto deadline = Clock::now() + timeout;
    *closed = false;
    char buf[4096];
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return out;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        *closed = true;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
  }
  // Closes with a TCP reset instead of an orderly close.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  bool connected_ = false;
};

// Best of three: a daemon held up by a bad client fails all three.
std::chrono::milliseconds status_latency(uint16_t port) {
  auto best = std::chrono::milliseconds::max();
  for (int i = 0; i < 3; ++i) {
    auto start = Clock::now();
    ClientOptions co;
    co.connect_timeout = co.io_timeout = std::chrono::milliseconds(2000);
    LineClient client("127.0.0.1", port, co);
    auto reply = client.call(StatusRequest{});
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    if (reply.ok() && reply->kind == Reply::Kind::Ok) best = std::min(best, took);
  }
  return best;
}

// Every file under `dir`, relative to it.
std::set<std::string> tree(const std::string& dir) {
  std::set<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir))
    out.insert(fs::relative(e.path(), dir).string());
  return out;
}

struct Case {
  std::string name;
  std::string bytes;
  std::string reply;  // expected start of the reply; "" means closed without a word
};

std::vector<Case> dispatcher_cases() {
  std::string commit(40, 'a');
  return {
      {"garbage bytes", "\x8f\x01\xfe garbage\n", "ERR header line contains a control byte"},
      {"empty line", "\n", "ERR empty message"},
      {"non-UTF-8 verb", "\xc3\x28\xa0\xa1 x\n", "ERR unknown verb"},
      {"NUL byte", std::string("status\0\n", 8), "ERR header line contains a control byte"},
      {"path in a commit id", "dispatch ../../etc/passwd master\n", "ERR commit id"},
      {"path in a branch", "dispatch " + commit + " ../../../tmp/x\n", "ERR branch name"},
      {"body over the limit", "results 1 1 127.0.0.1:9 passed 1 0 5 999999999\n",
       "ERR body too long"},
      {"results for an unknown job", "results 77 1 127.0.0.1:9 passed 1 0 5 2\nok",
       "ERR unknown job 77"},
      {"register port 0", "register 127.0.0.1 0\n", "ERR port must be"},
      {"register port 70000", "register 127.0.0.1 70000\n", "ERR port must be"},
      {"register a 300-character host", "register " + std::string(300, 'h') + " 8900\n",
       "ERR host longer than"},
      {"runtest to the dispatcher", "runtest 1 1 " + commit + " master\n", "ERR runtest"},
      {"unknown verb", "DROP TABLE jobs;\n", "ERR unknown verb"},
      {"log for an unknown job", "log 77 1 127.0.0.1:9 0 2\nok", "ERR unknown job 77"},
      {"log at a path", "log 1 1 ../../x:9 0 2\nok", "ERR runner"},
      {"logread of a megabyte and more", "logread 1 0 0 99999999\n", "ERR logread max"},
      {"logread of an unknown job", "logread 77 0 0 100\n", "ERR unknown job 77"},
      {"events waiting an hour", "events 0 10 3600000\n", "ERR events wait"},
      {"cancel of an unknown job", "cancel 77\n", "ERR unknown job 77"},
      {"jobs filtered by a path", "jobs 10 branch=../../etc\n", "ERR branch name"},
      {"commit info that is not JSON", "dispatch " + commit + " master 3\n{{{", "ERR commit info"},
  };
}

class HostileInput : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = dir_ / "work";
    fs::create_directories(work_);
    dispatcher_ = std::make_unique<Daemon>(
        "ci-dispatcher",
        std::vector<std::string>{"--port", "0", "--idle-timeout", "1", "--max-body", "1048576"},
        dir_ / "dispatcher.log", work_);
    port_ = dispatcher_->wait_listening();
    ASSERT_NE(port_, 0);
  }

  // A daemon held up by a bad client answers no sooner than that client's idle timeout
  // (1 s); a free one at once. The bound sits between the two: at once is a few
  // milliseconds here, but up to a few hundred on a busy machine under a sanitizer.
  void expect_healthy(const std::string& after) {
    auto took = status_latency(port_);
    EXPECT_LT(took.count(), 500) << "status after " << after;
    EXPECT_TRUE(dispatcher_->running()) << after;
  }

  TempDir dir_;
  std::string work_;
  std::unique_ptr<Daemon> dispatcher_;
  uint16_t port_ = 0;
};

TEST_F(HostileInput, EachBadMessageGetsAClearErrorAndTheConnectionCloses) {
  for (const auto& c : dispatcher_cases()) {
    RawConnection conn(port_);
    ASSERT_TRUE(conn.connected());
    conn.send(c.bytes);
    bool closed = false;
    std::string reply = conn.read_all(std::chrono::milliseconds(5000), &closed);
    EXPECT_EQ(reply.rfind(c.reply, 0), 0u) << c.name << ": got '" << reply << "'";
    EXPECT_EQ(std::count(reply.begin(), reply.end(), '\n'), 1) << c.name << ": one line";
    EXPECT_TRUE(closed) << c.name;
    expect_healthy(c.name);
  }
  // Nothing a peer sent reached a file name: only the daemon's own folders exist.
  EXPECT_EQ(tree(work_), (std::set<std::string>{".ci-state", ".ci-state/logs", ".ci-state/state.db",
                                                ".ci-state/state.db-shm", ".ci-state/state.db-wal",
                                                "test_results"}));
}

TEST_F(HostileInput, ResultsFromTheWrongRunnerAreRefused) {
  LineClient client("127.0.0.1", port_);
  ASSERT_TRUE(client.call(RegisterRequest{"127.0.0.1", 9}).ok());
  auto queued = client.call(DispatchRequest{std::string(40, 'b'), "master"});
  ASSERT_TRUE(queued.ok() && queued->kind == Reply::Kind::Ok);
  ResultsRequest forged;
  forged.job = 1;
  forged.attempt = 1;
  forged.runner = "127.0.0.1:6666";
  forged.status = TestStatus::Passed;
  forged.output = "all good, trust me";
  auto reply = client.call(forged);
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->kind, Reply::Kind::Err);
  EXPECT_NE(reply->reason().find("was not given to 127.0.0.1:6666"), std::string::npos);
  EXPECT_TRUE(wait_until([&] { return dispatcher_->log_contains("which was not given it"); }));
  EXPECT_TRUE(tree(work_ + "/test_results").empty());
}

TEST_F(HostileInput, TenMebibyteLineWithoutNewlineIsCutOff) {
  RawConnection conn(port_);
  conn.send(std::string(10 << 20, 'x'));  // may fail part-way: the server hangs up
  bool closed = false;
  std::string reply = conn.read_all(std::chrono::milliseconds(5000), &closed);
  EXPECT_EQ(reply.rfind("ERR header line longer than 4096 bytes", 0), 0u) << reply.substr(0, 80);
  EXPECT_TRUE(closed);
  expect_healthy("a 10 MiB line");
}

TEST_F(HostileInput, BodyShorterThanDeclaredThenSilenceIsClosedAtTheIdleTimeout) {
  RawConnection conn(port_);
  conn.send("results 1 1 127.0.0.1:9 passed 1 0 5 100\nonly a few bytes");
  expect_healthy("a half-sent body");
  bool closed = false;
  conn.read_all(std::chrono::milliseconds(10000), &closed);
  EXPECT_TRUE(closed);  // by the 1 s idle timeout
}

TEST_F(HostileInput, TrickleOfOneByteASecondIsClosedAtTheIdleTimeout) {
  RawConnection conn(port_);
  auto start = Clock::now();
  bool closed = false;
  for (int i = 0; i < 10 && !closed; ++i) {
    conn.send("s");
    expect_healthy("a trickling client");
    conn.read_all(std::chrono::milliseconds(400), &closed);
  }
  EXPECT_TRUE(closed);
  // The idle timeout counts from the start of a message, not from the last byte.
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(4));
}

TEST_F(HostileInput, ConnectAndResetLeavesNothingBehind) {
  for (int i = 0; i < 50; ++i) {
    RawConnection conn(port_);
    if (i % 2) conn.send("sta");
    conn.reset();
  }
  expect_healthy("50 resets");
}

TEST_F(HostileInput, ThousandIdleConnectionsDoNotLockOthersOut) {
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = std::max<rlim_t>(files.rlim_cur, std::min<rlim_t>(files.rlim_max, 4096));
  ::setrlimit(RLIMIT_NOFILE, &files);
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 1000; ++i) idle.push_back(std::make_unique<RawConnection>(port_));
  expect_healthy("1000 idle connections");
  // The dispatcher still works for real work too.
  LineClient client("127.0.0.1", port_);
  auto reply = client.call(DispatchRequest{std::string(40, 'c'), "master"});
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply->kind, Reply::Kind::Ok);
}

TEST(HostileInputRunner, RunnerAnswersBadMessagesWithErrAndStaysFree) {
  TempDir dir;
  std::string master = dir / "master";
  make_master_repo(master);
  std::string clone = clone_repo(master, dir / "clone");
  // Nobody listens at the dispatcher address: the runner only needs to serve.
  Daemon runner(
      "ci-runner",
      {"--port", "0", "--dispatcher-server", "127.0.0.1:9", "--test-command", "true", clone},
      dir / "runner.log");
  uint16_t port = runner.wait_listening();
  ASSERT_NE(port, 0);
  std::string commit(40, 'a');
  std::vector<Case> cases = {
      {"garbage", "\xff\xfe\x01\n", "ERR header line contains a control byte"},
      {"empty line", "\n", "ERR empty message"},
      {"path in a commit", "runtest 1 1 ../../etc/passwd master\n", "ERR commit id"},
      {"bad job id", "runtest 0 1 " + commit + " master\n", "ERR job id"},
      {"bad branch", "runtest 1 1 " + commit + " -x\n", "ERR branch name"},
      {"dispatcher verb", "dispatch " + commit + " master\n", "ERR"},
      {"huge line", std::string(100000, 'y'), "ERR header line longer than"},
  };
  for (const auto& c : cases) {
    RawConnection conn(port);
    conn.send(c.bytes);
    bool closed = false;
    std::string reply = conn.read_all(std::chrono::milliseconds(5000), &closed);
    EXPECT_EQ(reply.rfind(c.reply, 0), 0u) << c.name << ": got '" << reply << "'";
    EXPECT_TRUE(closed) << c.name;
  }
  // Still free: a ping says idle, so no bad message wedged it as busy.
  LineClient client("127.0.0.1", port);
  auto pong = client.call(PingRequest{});
  ASSERT_TRUE(pong.ok()) << pong.error();
  EXPECT_EQ(pong->kind, Reply::Kind::Pong);
  EXPECT_EQ(pong->args, std::vector<std::string>{"idle"});
}

}  // namespace
}  // namespace ci::test
