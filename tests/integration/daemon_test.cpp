// Properties of the daemons themselves: restart, idleness, bad input, flags.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "cluster.h"

namespace ci::test {
namespace {

// CPU time (user + system) the process has used, in clock ticks.
long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) {
      stime = std::stol(field);
      break;
    }
  }
  return utime + stime;
}

TEST(Daemons, RestartedDispatcherBindsItsPortAtOnce) {
  Cluster c;
  c.start_dispatcher();
  uint16_t port = c.port();
  // Leave the server side of a connection in TIME_WAIT: the dispatcher closes it
  // after answering a malformed message.
  {
    LineClient client("127.0.0.1", port);
    auto reply = client.call_frame(make_frame({"nonsense"}));
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->verb(), "ERR");
  }
  c.dispatcher().stop();
  c.start_dispatcher();  // same port, wait_listening fails the test if it cannot bind
  EXPECT_EQ(c.port(), port);
  EXPECT_EQ(c.status_value("runners"), 0);
}

TEST(Daemons, IdleDaemonsUseNoCpu) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher({"--heartbeat-interval", "2"});
  c.start_runner();
  ASSERT_TRUE(c.wait_runners(1));
  c.start_observer({"--interval", "1"});
  std::vector<pid_t> pids{c.dispatcher().pid(), c.runner(0).pid(), c.observer().pid()};
  std::vector<long> before;
  for (pid_t p : pids) before.push_back(cpu_ticks(p));
  // A measurement window, not a wait for a condition: what do idle daemons burn?
  std::this_thread::sleep_for(2s);
  long hz = sysconf(_SC_CLK_TCK);
  for (size_t i = 0; i < pids.size(); ++i) {
    long used = cpu_ticks(pids[i]) - before[i];
    // The chapter's redistribution loop spun a whole core (2 s of CPU here). Allow
    // 10% of the window for polls, pings and a slow shared machine.
    EXPECT_LT(used, hz / 5) << "daemon " << i << " used " << used << " ticks in 2 s";
  }
}

TEST(Daemons, MissingRepositoryIsNamedInOneClearLine) {
  TempDir dir;
  for (std::string name : {"ci-runner", "ci-observer"}) {
    CommandSpec spec;
    spec.argv = {bin(name), dir / "no-such-repo"};
    spec.env = current_environment();
    spec.timeout = 20s;
    auto r = run_command(spec);
    ASSERT_TRUE(r.ok());
    EXPECT_NE(r->exit_code, 0) << name;
    EXPECT_NE(r->output.find(dir / "no-such-repo"), std::string::npos) << name << r->output;
  }
}

TEST(Daemons, BadFlagIsNamed) {
  for (std::string name : {"ci-dispatcher", "ci-runner", "ci-observer", "cictl"}) {
    CommandSpec spec;
    spec.argv = {bin(name), "--no-such-flag", "x"};
    spec.env = current_environment();
    spec.timeout = 20s;
    auto r = run_command(spec);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 2) << name << ": " << r->output;
    EXPECT_NE(r->output.find("--no-such-flag"), std::string::npos) << name << ": " << r->output;
  }
}

TEST(Daemons, DispatcherAnswersMalformedMessagesWithErrAndKeepsServing) {
  Cluster c;
  c.start_dispatcher();
  struct Case {
    std::string bytes;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"bogus\n", "unknown verb"},
      {"\n", "empty message"},
      {"dispatch\n", "usage: dispatch"},
      {"dispatch ../../etc/passwd master\n", "commit id"},
      {"dispatch " + std::string(40, 'a') + " ../x\n", "branch"},
      {"register 127.0.0.1 70000\n", "port"},
      {"register 127.0.0.1 0\n", "port"},
      {"results 1 1 127.0.0.1:9 passed 1 0 5 99999999999\n", "body too long"},
      {"results 1 1 127.0.0.1:9 passed 1 0 5 4\nabcd", "unknown job"},
      {std::string(5000, 'x') + "\n", "longer than"},
      {std::string("sta\0tus\n", 8), "control byte"},
  };
  for (const auto& k : cases) {
    CommandSpec spec;
    spec.argv = {"python3", "-c",
                 "import socket,sys\n"
                 "s=socket.create_connection(('127.0.0.1'," +
                     std::to_string(c.port()) +
                     "))\n"
                     "s.sendall(bytes.fromhex(sys.argv[1]))\n"
                     "s.settimeout(5)\n"
                     "out=b''\n"
                     "while True:\n"
                     "  d=s.recv(4096)\n"
                     "  if not d: break\n"
                     "  out+=d\n"
                     "sys.stdout.write(out.decode('latin1'))\n"};
    std::string hex;
    static const char* digits = "0123456789abcdef";
    for (unsigned char ch : k.bytes) {
      hex += digits[ch >> 4];
      hex += digits[ch & 15];
    }
    spec.argv.push_back(hex);
    spec.env = current_environment();
    spec.timeout = 20s;
    auto r = run_command(spec);
    ASSERT_TRUE(r.ok());
    // Answered with ERR and a reason, then the connection closed (the script ends).
    EXPECT_EQ(r->output.rfind("ERR ", 0), 0u) << k.reason << ": " << r->output;
    EXPECT_NE(r->output.find(k.reason), std::string::npos) << r->output;
    EXPECT_EQ(c.status_value("runners"), 0) << "dispatcher stopped answering after " << k.reason;
  }
  EXPECT_TRUE(c.dispatcher().running());
  // Nothing was written outside the results folder.
  EXPECT_TRUE(c.result_files().empty());
}

}  // namespace
}  // namespace ci::test
