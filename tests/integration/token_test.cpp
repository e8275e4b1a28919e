// Contract 4: with a shared token, nothing works before authentication, a wrong token
// is refused, and cictl and the three daemons work with the right one. A proof is
// worth nothing on another connection, and every client refuses a server that cannot
// prove it holds the token.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <mutex>
#include <sstream>

#include "ci/auth.h"
#include "cluster.h"
#include "raw_peer.h"

namespace ci::test {
namespace {

std::string run_cictl(const std::vector<std::string>& args, int* exit_code) {
  CommandSpec spec;
  spec.argv = {bin("cictl")};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = current_environment();
  spec.timeout = std::chrono::seconds(20);
  auto r = run_command(spec);
  *exit_code = r.ok() ? r->exit_code : -1;
  return r.ok() ? r->output : r.error();
}

TEST(Token, EveryDaemonAndCictlWorkWithTheTokenAndNothingWithout) {
  Cluster c;
  make_master_repo(c.master());
  std::string token_file = c.path("token");
  const std::string token = kTestToken;
  write_token_file(token_file, token);
  std::vector<std::string> with_token{"--token-file", token_file};
  c.start_dispatcher(with_token);
  auto runner_args = with_token;
  runner_args.insert(runner_args.end(), {"--test-command", "echo authenticated run"});
  c.start_runner(runner_args);
  ASSERT_TRUE(wait_until([&] {
    int code = 0;
    std::string out =
        run_cictl({"--dispatcher-server", c.server(), "--token-file", token_file, "status"}, &code);
    return code == 0 && out.find("runners              1") != std::string::npos;
  })) << c.dispatcher().log()
      << c.runner(0).log();
  c.start_observer(with_token);
  std::string commit = commit_file(c.master(), "x", "y");
  ASSERT_TRUE(c.wait_result(commit)) << c.observer().log();
  EXPECT_NE(c.result(commit).find("authenticated run"), std::string::npos);

  // Without the token: nothing.
  int code = 0;
  std::string out = run_cictl({"--dispatcher-server", c.server(), "status"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("requires authentication"), std::string::npos) << out;
  // With a wrong one: refused.
  std::string wrong_file = c.path("wrong");
  write_token_file(wrong_file, "bm90LXRoZS1zaGFyZWQtc2VjcmV0LWF0LWFsbC4uLi4=");
  out = run_cictl({"--dispatcher-server", c.server(), "--token-file", wrong_file, "status"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("refused the token"), std::string::npos) << out;
  // A forged registration without the token changes nothing.
  LineClient intruder("127.0.0.1", c.port());
  auto reply = intruder.call_frame(make_frame({"register", "127.0.0.1", "6666"}));
  EXPECT_FALSE(reply.ok());
  EXPECT_EQ(c.status_value("runners"), -1);  // cannot even ask without the token
  // The token is in no log.
  for (auto* d : {&c.dispatcher(), &c.runner(0), &c.observer()})
    EXPECT_EQ(d->log().find(token), std::string::npos);
}

TEST(Token, NonLoopbackAddressNeedsATokenOrInsecure) {
  TempDir dir;
  CommandSpec spec;
  spec.argv = {bin("ci-dispatcher"), "--host",  "0.0.0.0",     "--port", "0",
               "--results-dir",      dir / "r", "--state-dir", dir / "s"};
  spec.env = current_environment();
  spec.timeout = std::chrono::seconds(20);
  auto r = run_command(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_NE(r->output.find("without a token"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("--insecure"), std::string::npos) << r->output;
}

// The token file is read in one place for all: each daemon and cictl refuse a weak,
// exposed or missing one at start, saying how to fix it.
TEST(Token, AShortExposedOrMissingTokenFileIsRefusedAtStart) {
  TempDir dir;
  write_token_file(dir / "short", "0123456789abcdef0123456789abcde");  // 31 characters
  write_token_file(dir / "group-readable");
  ASSERT_EQ(::chmod((dir / "group-readable").c_str(), 0640), 0);
  write_token_file(dir / "world-writable");
  ASSERT_EQ(::chmod((dir / "world-writable").c_str(), 0602), 0);
  const std::string repo = dir / "repo";
  make_master_repo(repo);
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {dir / "short",
       {"31 characters", "at least 32",
        "head -c 32 /dev/urandom | base64 > " + dir / "short" + "; chmod 600 " + dir / "short"}},
      {dir / "group-readable",
       {"group or others", "(mode 0640)", "chmod 600 " + dir / "group-readable"}},
      {dir / "world-writable", {"group or others", "chmod 600 " + dir / "world-writable"}},
      {dir / "missing", {"cannot open token file " + dir / "missing"}},
  };
  const std::vector<std::vector<std::string>> commands = {
      {bin("ci-dispatcher"), "--port", "0", "--results-dir", dir / "r", "--state-dir", dir / "s"},
      {bin("ci-runner"), "--port", "0", repo},
      {bin("ci-observer"), repo},
      {bin("cictl"), "status"},
  };
  for (const auto& [file, words] : cases) {
    for (const auto& command : commands) {
      CommandSpec spec;
      spec.argv = command;
      spec.argv.insert(spec.argv.begin() + 1, {"--token-file", file});
      spec.env = current_environment();
      spec.timeout = std::chrono::seconds(20);
      auto r = run_command(spec);
      ASSERT_TRUE(r.ok()) << r.error();
      EXPECT_EQ(r->exit_code, 2) << command[0] << " " << file << ": " << r->output;
      for (const auto& w : words)
        EXPECT_NE(r->output.find(w), std::string::npos)
            << command[0] << " " << file << ": " << r->output;
    }
  }
}

// Plays a server between a client and the real server on `target`: passes the
// greeting, the client's answer and the real server's reply through, records them, and
// closes.
class Relay {
 public:
  explicit Relay(uint16_t target) : target_(target), server_([this](RawSocket& s) { serve(s); }) {}
  std::string address() const { return server_.address(); }
  struct Seen {
    std::string greeting, answer, reply;
  };
  Seen seen() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_;
  }

 private:
  void serve(RawSocket& client) {
    auto real = RawSocket::connect(target_);
    if (!real) return;
    auto greeting = real->read_line(10000ms);
    if (!greeting || !client.send(*greeting + "\n")) return;
    auto answer = client.read_line(10000ms);
    if (!answer || !real->send(*answer + "\n")) return;
    auto reply = real->read_line(10000ms);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      seen_ = {*greeting, *answer, reply.value_or("(closed)")};
    }
    if (reply) client.send(*reply + "\n");
  }

  uint16_t target_;
  std::mutex mutex_;
  Seen seen_;
  RawServer server_;  // last: its threads use the members above
};

ClientOptions dispatcher_client() {
  ClientOptions options;
  options.token = kTestToken;
  options.service = kDispatcherService;
  return options;
}

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// A squatter on the observer's poke port gets `cictl notify` to answer the
// dispatcher's greeting: the proof is bound to "observer" and the dispatcher refuses it.
TEST(Token, AProofRelayedToAnotherServiceIsRefused) {
  Cluster c;
  std::string token_file = c.path("token");
  write_token_file(token_file);
  c.start_dispatcher({"--token-file", token_file});

  // The relay itself works: a client that means to call the dispatcher, led to it
  // through the relay, is let in, and the dispatcher proves itself to it.
  {
    Relay relay(c.port());
    int code = 0;
    run_cictl({"--dispatcher-server", relay.address(), "--token-file", token_file, "status"},
              &code);
    auto seen = relay.seen();
    auto greeting = words_of(seen.greeting), answer = words_of(seen.answer),
         reply = words_of(seen.reply);
    ASSERT_EQ(greeting.size(), 2u) << seen.greeting;
    ASSERT_EQ(answer.size(), 3u) << seen.answer;
    ASSERT_EQ(reply.size(), 2u) << seen.reply;
    EXPECT_EQ(reply[0], "OK");
    EXPECT_TRUE(
        check_server_proof(kTestToken, kDispatcherService, greeting[1], answer[1], reply[1]));
  }

  // cictl notify, answering the relayed greeting as the observer's, signs for the
  // observer: the dispatcher refuses it, and cictl fails.
  Relay squatter(c.port());
  int code = 0;
  std::string out =
      run_cictl({"notify", "--observer", squatter.address(), "--token-file", token_file}, &code);
  auto seen = squatter.seen();
  ASSERT_EQ(words_of(seen.answer).size(), 3u) << seen.answer;
  EXPECT_EQ(seen.reply, "ERR auth") << seen.answer;
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("refused the token"), std::string::npos) << out;
  // Nothing got in: the dispatcher still serves, and has queued nothing.
  LineClient probe("127.0.0.1", c.port(), dispatcher_client());
  auto status = probe.call(StatusRequest{});
  ASSERT_TRUE(status.ok()) << status.error();
  auto parsed = parse_status_reply(*status);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed->jobs_queued, 0u) << status->body;
}

// What a fake server answers a client's proof with: OK with a wrong proof, or OK alone.
struct BadAnswer {
  const char* name;
  const char* line;
};

void PrintTo(const BadAnswer& answer, std::ostream* os) { *os << answer.name; }

class EveryClientRefusesAFakeServer : public ::testing::TestWithParam<BadAnswer> {
 protected:
  HandshakeFake fake{
      [](const std::string&, const std::string&) { return std::string(GetParam().line); }};
  std::string failed_to_prove() const {
    return "the server at " + fake.address() + " failed to prove it holds the token";
  }
  // The clients that met the fake closed the connection without sending a request.
  void expect_nothing_sent() {
    ASSERT_TRUE(wait_until([&] { return fake.closed_quietly() >= 1; }));
    EXPECT_EQ(fake.sent_after_reply(), "");
  }
  TempDir dir;
  std::string token_file = dir / "token";
  void SetUp() override { write_token_file(token_file); }
};

TEST_P(EveryClientRefusesAFakeServer, Cictl) {
  int code = 0;
  std::string out = run_cictl(
      {"--dispatcher-server", fake.address(), "--token-file", token_file, "status"}, &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find(failed_to_prove()), std::string::npos) << out;
  expect_nothing_sent();
}

TEST_P(EveryClientRefusesAFakeServer, TheRunnersLinkToTheDispatcher) {
  std::string master = dir / "master";
  make_master_repo(master);
  std::string clone = clone_repo(master, dir / "clone");
  Daemon runner(
      "ci-runner",
      {"--port", "0", "--dispatcher-server", fake.address(), "--token-file", token_file, clone},
      dir / "runner.log");
  EXPECT_TRUE(wait_until([&] { return runner.log_contains(failed_to_prove()); })) << runner.log();
  runner.stop();
  expect_nothing_sent();
}

TEST_P(EveryClientRefusesAFakeServer, TheObserversLinkToTheDispatcher) {
  std::string master = dir / "master";
  make_master_repo(master);
  std::string clone = clone_repo(master, dir / "clone");
  Daemon observer("ci-observer",
                  {"--dispatcher-server", fake.address(), "--token-file", token_file, "--interval",
                   "0.1", clone},
                  dir / "observer.log");
  ASSERT_TRUE(wait_until([&] { return observer.log_contains("first look"); })) << observer.log();
  commit_file(master, "x", "y");  // something to hand over
  EXPECT_TRUE(wait_until([&] { return observer.log_contains(failed_to_prove()); }))
      << observer.log();
  observer.stop();
  expect_nothing_sent();
}

TEST_P(EveryClientRefusesAFakeServer, TheDispatchersLinkToARunner) {
  Cluster c;
  write_token_file(c.path("token"));
  c.start_dispatcher({"--token-file", c.path("token")});
  // The fake registers as a runner (it holds the token as a client), then is offered a
  // job: the dispatcher refuses to go on when the fake answers its handshake.
  LineClient client("127.0.0.1", c.port(), dispatcher_client());
  auto registered = client.call(RegisterRequest{"127.0.0.1", fake.port()});
  ASSERT_TRUE(registered.ok()) << registered.error();
  ASSERT_EQ(registered->kind, Reply::Kind::Ok) << registered->reason();
  auto dispatched = client.call(DispatchRequest{std::string(40, 'a'), "master"});
  ASSERT_TRUE(dispatched.ok()) << dispatched.error();
  EXPECT_TRUE(wait_until([&] { return c.dispatcher().log_contains(failed_to_prove()); }))
      << c.dispatcher().log();
  c.dispatcher().stop();
  expect_nothing_sent();
}

INSTANTIATE_TEST_SUITE_P(Token, EveryClientRefusesAFakeServer,
                         ::testing::Values(BadAnswer{"OkWithGarbage",
                                                     "OK 0123456789abcdef0123456789abcdef"
                                                     "0123456789abcdef0123456789abcdef\n"},
                                           BadAnswer{"PlainOk", "OK\n"}),
                         [](const auto& test) { return std::string(test.param.name); });

}  // namespace
}  // namespace ci::test
