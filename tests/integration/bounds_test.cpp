// What a peer can make the real dispatcher hold, with a token: memory (its VmRSS, or the
// peak VmHWM where the kernel lets a test reset it) and connection slots, before and
// after authenticating.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

#include "ci/auth.h"
#include "cluster.h"

namespace ci::test {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// A sanitizer's runtime keeps freed memory on purpose: the figures say nothing then,
// and only what the peers are answered is checked.
constexpr bool kMemoryMeasured = false;
#else
constexpr bool kMemoryMeasured = true;
#endif

constexpr const char* kToken = kTestToken;

class Raw {
 public:
  explicit Raw(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Raw() { ::close(fd_); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  bool connected() const { return connected_; }
  // False when the peer stopped taking bytes (closed or reset the connection).
  bool send(const std::string& bytes) {
    for (size_t off = 0; off < bytes.size();) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // One line with its '\n'; "" when the peer closed or 10 s passed first.
  std::string line() {
    std::string out;
    while (out.empty() || out.back() != '\n') {
      pollfd p{fd_, POLLIN, 0};
      char c;
      if (::poll(&p, 1, 10000) <= 0 || ::recv(fd_, &c, 1, 0) != 1) return "";
      out += c;
    }
    return out;
  }
  // Everything until the peer closes (or 10 s pass).
  std::string rest() {
    std::string out;
    char buf[4096];
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) return out;
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  bool authenticate() {
    std::string greeting = line();
    if (greeting.rfind("AUTH ", 0) != 0) return false;
    std::string nonce = greeting.substr(5, greeting.size() - 6);
    std::string mine = make_nonce();
    return send("auth " + mine + " " + client_proof(kToken, kDispatcherService, nonce, mine) +
                "\n") &&
           line() == "OK " + server_proof(kToken, kDispatcherService, nonce, mine) + "\n";
  }
  // Bytes received and not read yet.
  int unread() const {
    int n = 0;
    ::ioctl(fd_, FIONREAD, &n);
    return n;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
  bool connected_ = false;
};

// A "VmRSS:" style figure of /proc/<pid>/status, in KiB.
int64_t proc_kib(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  }
  ADD_FAILURE() << "no " << key << " for process " << pid;
  return 0;
}

// Sets the peak (VmHWM) back to the present RSS: then the peak covers exactly what
// follows. False where the kernel does not allow it.
bool reset_peak(pid_t pid) {
  std::ofstream out("/proc/" + std::to_string(pid) + "/clear_refs");
  out << "5";
  out.close();
  return out.good() && proc_kib(pid, "VmHWM") <= proc_kib(pid, "VmRSS") + 64;
}

// The most the process has held since reset_peak, or now when that was not possible.
int64_t peak_kib(pid_t pid, bool peak_was_reset) {
  return proc_kib(pid, peak_was_reset ? "VmHWM" : "VmRSS");
}

int run_cictl(const std::vector<std::string>& args, std::string* output) {
  CommandSpec spec;
  spec.argv = {bin("cictl")};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = current_environment();
  spec.timeout = std::chrono::seconds(30);
  auto r = run_command(spec);
  *output = r.ok() ? r->output : r.error();
  return r.ok() ? r->exit_code : -1;
}

class Bounds : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra, bool token = true) {
    std::string token_file = dir_ / "token";
    write_token_file(token_file, kToken);
    std::vector<std::string> args{"--port",        "0", "--state-dir", ":memory:", "--results-dir",
                                  dir_ / "results"};
    if (token) args.insert(args.end(), {"--token-file", token_file});
    args.insert(args.end(), extra.begin(), extra.end());
    dispatcher_ = std::make_unique<Daemon>("ci-dispatcher", args, dir_ / "dispatcher.log");
    port_ = dispatcher_->wait_listening();
    ASSERT_NE(port_, 0) << dispatcher_->log();
    pid_ = dispatcher_->pid();
  }

  std::unique_ptr<LineClient> client() {
    ClientOptions co;
    co.token = kToken;
    co.service = kDispatcherService;
    return std::make_unique<LineClient>("127.0.0.1", port_, co);
  }

  void expect_serves(const std::string& after) {
    auto reply = client()->call(StatusRequest{});
    ASSERT_TRUE(reply.ok()) << after << ": " << reply.error();
    EXPECT_EQ(reply->kind, Reply::Kind::Ok) << after;
  }

  TempDir dir_;
  std::unique_ptr<Daemon> dispatcher_;
  uint16_t port_ = 0;
  pid_t pid_ = 0;
};

TEST_F(Bounds, UnauthenticatedSixteenMebibyteBodiesAreNeitherReadNorKept) {
  start({});  // the default --max-body, 16 MiB
  // The paths a connection takes, once, before measuring.
  expect_serves("start");
  {
    Raw warm(port_);
    ASSERT_TRUE(warm.authenticate());
  }
  expect_serves("a first connection");
  const int64_t before = proc_kib(pid_, "VmRSS");
  const bool peak = reset_peak(pid_);

  constexpr size_t kBody = 16u << 20;
  const std::string body(kBody, 'x');
  std::vector<std::string> replies(6);
  std::vector<std::thread> peers;
  for (size_t i = 0; i < replies.size(); ++i) {
    peers.emplace_back([&, i] {
      Raw conn(port_);
      if (!conn.connected()) return;
      // The header and then the whole body, as fast as the dispatcher takes it; it stops
      // taking it after the header.
      conn.send("results 1 1 127.0.0.1:9 passed 1 0 5 " + std::to_string(kBody) + "\n");
      conn.send(body);
      replies[i] = conn.rest();
    });
  }
  for (auto& t : peers) t.join();
  const int64_t grew = peak_kib(pid_, peak) - before;
  if (kMemoryMeasured) {
    EXPECT_LT(grew, 1024) << "KiB more after six unauthenticated 16 MiB bodies";
  }
  for (const auto& reply : replies) {
    EXPECT_EQ(reply.rfind("AUTH ", 0), 0u) << reply;
    EXPECT_NE(reply.find("\nERR auth required\n"), std::string::npos) << reply;
  }
  expect_serves("six unauthenticated bodies");
}

TEST_F(Bounds, HalfSentHeadersUpToTheConnectionLimitDoNotLockOutCictl) {
  // Deadlines far away: only making room can let cictl in.
  start({"--max-connections", "16", "--auth-timeout", "60", "--idle-timeout", "120"});
  std::vector<std::unique_ptr<Raw>> strangers;
  for (int i = 0; i < 16; ++i) {
    strangers.push_back(std::make_unique<Raw>(port_));
    ASSERT_EQ(strangers.back()->line().rfind("AUTH ", 0), 0u) << "connection " << i;
    ASSERT_TRUE(strangers.back()->send("stat"));
  }
  std::string out;
  int code = run_cictl({"--dispatcher-server", "127.0.0.1:" + std::to_string(port_), "--token-file",
                        dir_ / "token", "--timeout", "10", "status"},
                       &out);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("jobs-queued"), std::string::npos) << out;
}

TEST_F(Bounds, CictlSaysTheDispatcherIsBusyAndExitsWithThree) {
  // Without a token, connections in the middle of a message are never closed to
  // make room: at the limit a new one is answered ERR busy.
  start({"--max-connections", "2", "--idle-timeout", "120"}, false);
  std::vector<std::unique_ptr<Raw>> holders;
  for (int i = 0; i < 2; ++i) {
    holders.push_back(std::make_unique<Raw>(port_));
    // Half a header after a ping: the dispatcher has read both once it answers the ping.
    ASSERT_TRUE(holders.back()->send("ping\nsta"));
    ASSERT_EQ(holders.back()->line(), "pong\n");
  }
  std::string out;
  int code = run_cictl(
      {"--dispatcher-server", "127.0.0.1:" + std::to_string(port_), "--timeout", "10", "status"},
      &out);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("the dispatcher is busy (too many connections); try again"), std::string::npos)
      << out;
  // Both held connections are still served.
  for (auto& h : holders) {
    ASSERT_TRUE(h->send("tus\n"));
    EXPECT_EQ(h->line().rfind("OK ", 0), 0u);
  }
}

// Queues `n` jobs through a few pipelining connections.
void queue_jobs(uint16_t port, size_t n) {
  constexpr size_t kConnections = 8;
  std::vector<std::thread> threads;
  std::atomic<size_t> answered{0};
  for (size_t c = 0; c < kConnections; ++c) {
    threads.emplace_back([&, c] {
      Raw conn(port);
      if (!conn.authenticate()) return;
      std::string burst;
      size_t mine = 0;
      for (size_t i = c; i < n; i += kConnections, ++mine) {
        char commit[41];
        std::snprintf(commit, sizeof commit, "%040zx", i + 1);
        burst += "dispatch " + std::string(commit) + " master\n";
      }
      if (!conn.send(burst)) return;
      for (size_t i = 0; i < mine; ++i) {
        if (conn.line().rfind("OK ", 0) != 0) return;
        answered++;
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(answered.load(), n);
}

TEST_F(Bounds, JobsListsAtMostTheNewestTenThousand) {
  start({});
  queue_jobs(port_, 10005);
  auto jobs = client()->call(JobsRequest{1000000});
  ASSERT_TRUE(jobs.ok()) << jobs.error();
  ASSERT_EQ(jobs->kind, Reply::Kind::Ok);
  auto table = parse_jobs_reply(*jobs);
  ASSERT_TRUE(table.ok()) << table.error();
  EXPECT_EQ(table->jobs.size(), 10000u) << "10,000 jobs";
  ASSERT_FALSE(table->jobs.empty());
  EXPECT_EQ(table->jobs.front().id, 6u) << "the newest, oldest first";
}

TEST_F(Bounds, PipelinedJobsQueriesNeverReadKeepTheDispatcherBounded) {
  // The connections are read one after another below: while one is read, the others
  // make no progress, which the default idle timeout (10 s) ends on a slow build
  // (sanitizers: under ThreadSanitizer, building the 400 answers takes about two
  // minutes). That closing is right for a stalled peer; this test is about memory.
  start({"--idle-timeout", "600"});
  constexpr size_t kJobs = 5000, kConnections = 4, kQueries = 100;
  queue_jobs(port_, kJobs);
  // One whole answer first, so that building one is part of the baseline.
  auto jobs = client()->call(JobsRequest{1000000});
  ASSERT_TRUE(jobs.ok()) << jobs.error();
  const size_t reply_size = jobs->body.size();
  ASSERT_GT(reply_size, 300000u);  // the burst asks for far more than 64 MiB
  const int64_t before = proc_kib(pid_, "VmRSS");
  const bool peak = reset_peak(pid_);

  std::vector<std::unique_ptr<Raw>> greedy;
  std::string burst;
  for (size_t i = 0; i < kQueries; ++i) burst += "jobs 1000000\n";
  for (size_t c = 0; c < kConnections; ++c) {
    greedy.push_back(std::make_unique<Raw>(port_));
    ASSERT_TRUE(greedy.back()->authenticate());
    ASSERT_TRUE(greedy.back()->send(burst));
  }
  // The dispatcher has answered on every connection, and still answers others. A
  // connection writes once its unsent answers reach 4 MiB (about a dozen answers), so the
  // last one's first bytes may come after some 50 answers are built: a few seconds, or
  // a minute on a sanitizer build of a loaded machine. A bound on a stall again.
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto& g : greedy)
          if (g->unread() == 0) return false;
        return true;
      },
      300s));
  expect_serves("the burst");
  int64_t most = peak_kib(pid_, peak);

  // Read now: every answer comes, whole and in order, and the peak stays bounded
  // until the last.
  for (auto& g : greedy) {
    FrameParser parser({},
                       [](const std::vector<std::string>& w) { return reply_has_body("jobs", w); });
    size_t answers = 0;
    char buf[65536];
    while (answers < kQueries) {
      most = std::max(most, peak_kib(pid_, peak));
      pollfd p{g->fd(), POLLIN, 0};
      // A bound on a stall, not a speed: an answer of 5,000 jobs is built in a few
      // milliseconds, or seconds on a sanitizer build with the other tests running.
      ASSERT_GT(::poll(&p, 1, 60000), 0) << answers << " answers";
      ssize_t n = ::recv(g->fd(), buf, sizeof buf, 0);
      ASSERT_GT(n, 0) << answers << " answers";
      std::string_view data(buf, static_cast<size_t>(n));
      while (!data.empty()) {
        size_t used = 0;
        auto status = parser.feed(data, &used);
        data.remove_prefix(used);
        ASSERT_NE(status, FrameParser::Status::Bad) << parser.error();
        if (status == FrameParser::Status::Done) {
          EXPECT_EQ(parser.take().body.size(), reply_size);
          ++answers;
        }
      }
    }
  }
  most = std::max(most, peak_kib(pid_, peak));
  if (kMemoryMeasured) {
    EXPECT_LT(most - before, 64 * 1024)
        << "KiB more for " << kConnections * kQueries << " answers of " << reply_size << " bytes";
  }
  expect_serves("reading every answer");
}

}  // namespace
}  // namespace ci::test
