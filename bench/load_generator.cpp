// ci-load-generator: plays M runners and a dispatching client against a real
// ci-dispatcher, speaking the real protocol.
//
// Each simulated runner listens on a port of its own and registers with it. In the
// default "capacity" mode a runner answers every `runtest` with OK at once and sends
// the job's `results` straight away (through a small pool of connections to the
// dispatcher), and answers `ping` with `pong busy <job> <attempt>` while a result of
// its own is not yet accepted, `pong idle` otherwise. The run has three phases:
//   saturated  N jobs dispatched as fast as the dispatcher takes them: jobs per second
//              from the first dispatch to the last result accepted;
//   paced      jobs dispatched at a fraction of that rate: dispatch latency, the time
//              from the dispatcher's OK to the `dispatch` to the runner receiving the
//              job's `runtest`;
//   unloaded   one job at a time: the same latency with nothing else in flight.
// In "fill" mode every runner answers `runtest` with BUSY and pings with
// `pong busy`, so that N dispatched jobs stay queued; the generator then says so on
// stdout and keeps the runners up until its stdin closes (to measure the dispatcher's
// memory in that state).
//
// The figures are printed as one JSON object on stdout; progress goes to stderr.
//
// One file on purpose, past the project's usual ~400 lines: it is a standalone tool,
// and its simulated runner, its dispatching client and its three phases share the
// few counters that the figures come from; split, they would need a header of their
// own only to pass those around.
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ci/framing.h"
#include "ci/net.h"
#include "ci/protocol.h"
#include "ci/validate.h"

namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using ci::JobId;

struct Options {
  ci::HostPort dispatcher{"127.0.0.1", 8888};
  std::string mode = "capacity";
  size_t runners = 10;
  size_t jobs = 1000;
  size_t dispatchers = 2;    // client threads dispatching in the saturated phase
  size_t senders = 8;        // connections delivering results
  double paced_load = 0.5;   // the paced phase's rate, as a share of the saturated rate
  size_t paced_jobs = 0;     // 0: jobs / 4, at most 5,000
  size_t unloaded_jobs = 0;  // 0: jobs / 10, at most 500
  double deadline_s = 600;   // for each phase
  // > 0: the saturated phase stops waiting after this long and is measured over the
  // results accepted by then (the other phases are then skipped).
  double budget_s = 0;
  double phase_s = 20;  // the paced and unloaded phases take about this long at most
};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// What happened to one job, as seen from the generator.
struct JobRecord {
  Clock::time_point sent{};        // just before the `dispatch` was sent
  Clock::time_point dispatched{};  // the dispatcher's OK to `dispatch`
  Clock::time_point runtest{};     // the first `runtest` for it reached a runner
  Clock::time_point accepted{};    // the dispatcher's OK to its first `results`
  bool has_dispatched = false, has_runtest = false, has_accepted = false;
  int runtests = 0;
};

struct PendingResult {
  JobId job;
  uint32_t attempt;
  size_t runner;
};

class Generator;

// One simulated runner: a listening socket and what it has been given.
struct SimRunner {
  size_t index = 0;
  std::string address;  // host:port, as registered
  std::unique_ptr<tcp::acceptor> acceptor;
  // Results given to it and not yet accepted by the dispatcher (guarded by the
  // generator's mutex).
  std::deque<std::pair<JobId, uint32_t>> unacked;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Generator* gen, size_t runner)
      : socket_(std::move(socket)),
        gen_(gen),
        runner_(runner),
        parser_(ci::FrameLimits{}, ci::request_has_body) {}
  void start() { read(); }

 private:
  void read();
  void write(std::string out);

  tcp::socket socket_;
  Generator* gen_;
  size_t runner_;
  ci::FrameParser parser_;
  std::array<char, 4096> buf_{};
};

class Generator {
 public:
  explicit Generator(Options options) : options_(std::move(options)) {}

  int run();
  std::string reply_to(size_t runner, const ci::Frame& frame);

 private:
  bool open_runners();
  bool register_runners();
  void accept(size_t runner);
  ci::ClientOptions client_options() const {
    ci::ClientOptions co;
    co.connect_timeout = std::chrono::milliseconds(5000);
    co.io_timeout = std::chrono::milliseconds(30000);
    return co;
  }
  std::unique_ptr<ci::LineClient> client() const {
    return std::make_unique<ci::LineClient>(options_.dispatcher.host, options_.dispatcher.port,
                                            client_options());
  }
  std::string next_commit();
  // Dispatches one job; returns its id, or 0 after an error (counted).
  JobId dispatch(ci::LineClient& client);
  void sender_loop();
  // Waits until every job in [first, last] has an accepted result.
  bool wait_accepted(JobId first, JobId last);
  // Waits as long as `seconds` for every job in `ids` to have an accepted result;
  // returns how many have one, and when the last of those was accepted.
  std::pair<size_t, Clock::time_point> wait_some_accepted(const std::vector<JobId>& ids,
                                                          double seconds);
  bool wait_runtest(JobId job);
  int run_capacity();
  int run_fill();
  std::string latency_json(const std::vector<double>& ms) const;

  Options options_;
  asio::io_context io_;
  std::vector<SimRunner> runners_;
  std::vector<std::thread> io_threads_;

  std::mutex mu_;
  std::condition_variable changed_;
  std::unordered_map<JobId, JobRecord> jobs_;
  std::deque<PendingResult> outbox_;
  bool stopping_ = false;
  uint64_t repeated_runtests_ = 0;  // runtest for a job that already had one
  uint64_t result_errors_ = 0;      // results answered ERR
  uint64_t dispatch_errors_ = 0;
  uint64_t pings_ = 0;
  std::atomic<uint64_t> commit_counter_{0};
  uint64_t commit_salt_ = 0;
  std::vector<std::thread> senders_;
};

void Session::read() {
  socket_.async_read_some(
      asio::buffer(buf_), [self = shared_from_this()](const asio::error_code& ec, size_t n) {
        if (ec) return;
        std::string_view data(self->buf_.data(), n);
        std::string out;
        while (!data.empty()) {
          size_t used = 0;
          auto status = self->parser_.feed(data, &used);
          data.remove_prefix(used);
          if (status == ci::FrameParser::Status::NeedMore) break;
          if (status == ci::FrameParser::Status::Bad) {
            std::cerr << "load-generator: bad frame from the dispatcher: " << self->parser_.error()
                      << "\n";
            return;
          }
          out += self->gen_->reply_to(self->runner_, self->parser_.take());
        }
        if (out.empty()) {
          self->read();
        } else {
          self->write(std::move(out));
        }
      });
}

void Session::write(std::string out) {
  auto buffer = std::make_shared<std::string>(std::move(out));
  asio::async_write(socket_, asio::buffer(*buffer),
                    [self = shared_from_this(), buffer](const asio::error_code& ec, size_t) {
                      if (!ec) self->read();
                    });
}

std::string Generator::reply_to(size_t index, const ci::Frame& frame) {
  auto now = Clock::now();
  auto request = ci::parse_request(frame);
  if (!request) return ci::serialize(ci::serialize_reply(ci::Reply::err(request.error())));
  bool fill = options_.mode == "fill";
  if (std::holds_alternative<ci::PingRequest>(*request)) {
    std::lock_guard lock(mu_);
    ++pings_;
    SimRunner& r = runners_[index];
    if (fill) return "pong busy 0 0\n";
    if (r.unacked.empty()) return "pong idle\n";
    const auto& [job, attempt] = r.unacked.front();
    return "pong busy " + std::to_string(job) + " " + std::to_string(attempt) + "\n";
  }
  if (auto* runtest = std::get_if<ci::RuntestRequest>(&*request)) {
    if (fill) return "BUSY\n";
    {
      std::lock_guard lock(mu_);
      JobRecord& rec = jobs_[runtest->job];
      if (rec.has_runtest) {
        ++repeated_runtests_;
      } else {
        rec.runtest = now;
        rec.has_runtest = true;
      }
      rec.runtests++;
      runners_[index].unacked.emplace_back(runtest->job, runtest->attempt);
      outbox_.push_back({runtest->job, runtest->attempt, index});
    }
    changed_.notify_all();
    return "OK\n";
  }
  return ci::serialize(ci::serialize_reply(ci::Reply::err("not a runner verb")));
}

void Generator::accept(size_t index) {
  runners_[index].acceptor->async_accept(
      [this, index](const asio::error_code& ec, tcp::socket socket) {
        if (ec) return;
        asio::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<Session>(std::move(socket), this, index)->start();
        accept(index);
      });
}

bool Generator::open_runners() {
  // Each runner holds a listener, and the dispatcher keeps up to two connections to
  // each (heartbeat and jobs): raise the descriptor limit as far as allowed.
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    rlim_t want = options_.runners * 4 + 256;
    if (lim.rlim_cur < want) {
      lim.rlim_cur = std::min(want, lim.rlim_max);
      setrlimit(RLIMIT_NOFILE, &lim);
    }
  }
  runners_.resize(options_.runners);
  for (size_t i = 0; i < options_.runners; ++i) {
    SimRunner& r = runners_[i];
    r.index = i;
    r.acceptor = std::make_unique<tcp::acceptor>(io_);
    asio::error_code ec;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    r.acceptor->open(ep.protocol(), ec);
    if (!ec) r.acceptor->bind(ep, ec);
    if (!ec) r.acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::cerr << "load-generator: cannot listen for runner " << i << ": " << ec.message() << "\n";
      return false;
    }
    r.address = "127.0.0.1:" + std::to_string(r.acceptor->local_endpoint().port());
    accept(i);
  }
  io_threads_.emplace_back([this] { io_.run(); });
  return true;
}

bool Generator::register_runners() {
  auto c = client();
  for (auto& r : runners_) {
    auto hp = ci::parse_host_port(r.address);
    auto reply = c->call(ci::RegisterRequest{hp->host, hp->port});
    if (!reply || reply->kind != ci::Reply::Kind::Ok) {
      std::cerr << "load-generator: cannot register " << r.address << ": "
                << (reply ? reply->reason() : reply.error()) << "\n";
      return false;
    }
  }
  return true;
}

std::string Generator::next_commit() {
  uint64_t n = commit_counter_.fetch_add(1);
  char buf[41];
  std::snprintf(buf, sizeof buf, "%016llx%024llx", static_cast<unsigned long long>(commit_salt_),
                static_cast<unsigned long long>(n));
  return buf;
}

JobId Generator::dispatch(ci::LineClient& c) {
  ci::DispatchRequest request{next_commit(), "master"};
  auto sent = Clock::now();
  auto reply = c.call(request);
  auto now = Clock::now();
  if (!reply || reply->kind != ci::Reply::Kind::Ok || reply->args.empty()) {
    std::lock_guard lock(mu_);
    if (dispatch_errors_++ < 5)
      std::cerr << "load-generator: dispatch failed: " << (reply ? reply->reason() : reply.error())
                << "\n";
    return 0;
  }
  JobId id = ci::parse_u64(reply->args[0]).value_or(0);
  std::lock_guard lock(mu_);
  JobRecord& rec = jobs_[id];
  rec.sent = sent;
  rec.dispatched = now;
  rec.has_dispatched = true;
  return id;
}

void Generator::sender_loop() {
  auto c = client();
  std::unique_lock lock(mu_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || !outbox_.empty(); });
    if (stopping_) return;
    PendingResult p = outbox_.front();
    outbox_.pop_front();
    std::string runner = runners_[p.runner].address;
    lock.unlock();

    ci::ResultsRequest r;
    r.job = p.job;
    r.attempt = p.attempt;
    r.runner = runner;
    r.status = ci::TestStatus::Passed;
    r.tests_run = 1;
    r.tests_failed = 0;
    r.duration_ms = 0;
    r.output = "ok\n";
    auto reply = c->call(r);
    auto now = Clock::now();

    lock.lock();
    if (!reply) {
      // The dispatcher is unreachable for now: try again shortly.
      outbox_.push_back(p);
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      lock.lock();
      continue;
    }
    if (reply->kind != ci::Reply::Kind::Ok) {
      if (result_errors_++ < 5)
        std::cerr << "load-generator: results for job " << p.job << " refused: " << reply->reason()
                  << "\n";
    }
    auto& unacked = runners_[p.runner].unacked;
    unacked.erase(std::remove(unacked.begin(), unacked.end(), std::make_pair(p.job, p.attempt)),
                  unacked.end());
    if (reply->kind == ci::Reply::Kind::Ok) {
      JobRecord& rec = jobs_[p.job];
      if (!rec.has_accepted) {
        rec.accepted = now;
        rec.has_accepted = true;
      }
    }
    changed_.notify_all();
  }
}

bool Generator::wait_accepted(JobId first, JobId last) {
  auto deadline = Clock::now() + std::chrono::duration<double>(options_.deadline_s);
  std::unique_lock lock(mu_);
  JobId next = first;
  while (next <= last) {
    auto it = jobs_.find(next);
    if (it != jobs_.end() && it->second.has_accepted) {
      ++next;
      continue;
    }
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      std::cerr << "load-generator: job " << next << " has no accepted result in time\n";
      return false;
    }
  }
  return true;
}

std::pair<size_t, Clock::time_point> Generator::wait_some_accepted(const std::vector<JobId>& ids,
                                                                   double seconds) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(seconds));
  std::unique_lock lock(mu_);
  size_t next = 0;
  while (next < ids.size()) {
    auto it = jobs_.find(ids[next]);
    if (it != jobs_.end() && it->second.has_accepted) {
      ++next;
      continue;
    }
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) break;
  }
  size_t done = 0;
  Clock::time_point last{};
  for (JobId id : ids) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || !it->second.has_accepted) continue;
    ++done;
    last = std::max(last, it->second.accepted);
  }
  return {done, last};
}

bool Generator::wait_runtest(JobId job) {
  auto deadline = Clock::now() + std::chrono::duration<double>(options_.deadline_s);
  std::unique_lock lock(mu_);
  return changed_.wait_until(lock, deadline, [&] {
    auto it = jobs_.find(job);
    return it != jobs_.end() && it->second.has_runtest;
  });
}

std::string Generator::latency_json(const std::vector<double>& input) const {
  std::vector<double> ms = input;
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    if (ms.empty()) return 0.0;
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(ms.size() - 1) + 0.5);
    return ms[std::min(i, ms.size() - 1)];
  };
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"samples\": %zu, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
                "\"max_ms\": %.4f}",
                ms.size(), pct(50), pct(90), pct(99), ms.empty() ? 0.0 : ms.back());
  return buf;
}

int Generator::run_capacity() {
  for (size_t i = 0; i < std::max<size_t>(1, std::min(options_.senders, options_.runners)); ++i)
    senders_.emplace_back([this] { sender_loop(); });
  std::ostringstream json;
  json << "{\"mode\": \"capacity\", \"runners\": " << options_.runners;
  bool ok = true;

  // Saturated: every dispatching thread sends its share as fast as it is answered.
  std::cerr << "load-generator: saturated phase, " << options_.jobs << " jobs\n";
  std::vector<std::vector<JobId>> ids(options_.dispatchers);
  std::atomic<size_t> left{options_.jobs};
  auto t0 = Clock::now();
  {
    std::vector<std::thread> threads;
    for (size_t d = 0; d < options_.dispatchers; ++d) {
      threads.emplace_back([&, d] {
        auto c = client();
        while (true) {
          size_t n = left.load();
          if (n == 0) break;
          if (!left.compare_exchange_weak(n, n - 1)) continue;
          if (JobId id = dispatch(*c)) ids[d].push_back(id);
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  auto t_dispatched = Clock::now();
  std::vector<JobId> all;
  for (auto& v : ids) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  if (all.size() != options_.jobs) ok = false;
  size_t accepted = 0;
  Clock::time_point t1;
  if (ok && options_.budget_s > 0) {
    auto [done, last] = wait_some_accepted(all, options_.budget_s);
    accepted = done;
    t1 = done ? last : Clock::now();
  } else {
    ok = ok && wait_accepted(all.front(), all.back());
    accepted = ok ? all.size() : 0;
    t1 = Clock::now();
  }
  bool complete = ok && accepted == all.size();
  double seconds = std::chrono::duration<double>(t1 - t0).count();
  std::vector<double> queued_latency;
  {
    std::lock_guard lock(mu_);
    for (JobId id : all) {
      auto& rec = jobs_[id];
      if (rec.has_dispatched && rec.has_runtest)
        queued_latency.push_back(ms_between(rec.dispatched, rec.runtest));
    }
  }
  json << ", \"saturated\": {\"jobs\": " << all.size() << ", \"accepted\": " << accepted
       << ", \"complete\": " << (complete ? "true" : "false") << ", \"seconds\": " << seconds
       << ", \"jobs_per_s\": " << (seconds > 0 ? static_cast<double>(accepted) / seconds : 0)
       << ", \"dispatch_seconds\": " << std::chrono::duration<double>(t_dispatched - t0).count()
       << ", \"latency\": " << latency_json(queued_latency) << "}";
  double rate = seconds > 0 ? static_cast<double>(accepted) / seconds : 100;
  // A saturated phase cut short by the budget leaves jobs queued: the other phases
  // would measure that queue, not the dispatcher.
  if (!complete) {
    if (ok)
      std::cerr << "load-generator: " << accepted << " of " << all.size()
                << " results within the budget; skipping the other phases\n";
    ok = ok && accepted > 0;
  }

  // Paced: one dispatching thread at a share of the saturated rate.
  size_t paced =
      options_.paced_jobs ? options_.paced_jobs : std::min<size_t>(options_.jobs / 4, 5000);
  double target = std::max(1.0, rate * options_.paced_load);
  paced = std::min(paced, std::max<size_t>(20, static_cast<size_t>(target * options_.phase_s)));
  if (complete && paced > 0) {
    std::cerr << "load-generator: paced phase, " << paced << " jobs at " << target << "/s\n";
    auto c = client();
    std::vector<JobId> pids;
    auto start = Clock::now();
    for (size_t i = 0; i < paced; ++i) {
      auto due = start + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(static_cast<double>(i) / target));
      std::this_thread::sleep_until(due);
      if (JobId id = dispatch(*c)) pids.push_back(id);
    }
    ok = pids.size() == paced && wait_accepted(pids.front(), pids.back());
    auto end = Clock::now();
    std::vector<double> lat, from_send;
    {
      std::lock_guard lock(mu_);
      for (JobId id : pids) {
        auto& rec = jobs_[id];
        if (rec.has_dispatched && rec.has_runtest) {
          lat.push_back(ms_between(rec.dispatched, rec.runtest));
          from_send.push_back(ms_between(rec.sent, rec.runtest));
        }
      }
    }
    double secs = std::chrono::duration<double>(end - start).count();
    json << ", \"paced\": {\"jobs\": " << pids.size() << ", \"target_per_s\": " << target
         << ", \"achieved_per_s\": " << (secs > 0 ? static_cast<double>(pids.size()) / secs : 0)
         << ", \"latency\": " << latency_json(lat)
         << ", \"latency_from_send\": " << latency_json(from_send) << "}";
  }

  // Unloaded: one job at a time, the next once the previous one's result is accepted.
  size_t unloaded =
      options_.unloaded_jobs ? options_.unloaded_jobs : std::min<size_t>(options_.jobs / 10, 500);
  if (complete && ok && unloaded > 0) {
    std::cerr << "load-generator: unloaded phase, " << unloaded << " jobs\n";
    auto c = client();
    std::vector<double> lat, from_send;
    auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(options_.phase_s));
    for (size_t i = 0; i < unloaded && ok && Clock::now() < until; ++i) {
      JobId id = dispatch(*c);
      ok = id != 0 && wait_runtest(id) && wait_accepted(id, id);
      if (!ok) break;
      std::lock_guard lock(mu_);
      auto& rec = jobs_[id];
      lat.push_back(ms_between(rec.dispatched, rec.runtest));
      from_send.push_back(ms_between(rec.sent, rec.runtest));
    }
    json << ", \"unloaded\": {\"latency\": " << latency_json(lat)
         << ", \"latency_from_send\": " << latency_json(from_send) << "}";
  }

  {
    std::lock_guard lock(mu_);
    json << ", \"repeated_runtests\": " << repeated_runtests_
         << ", \"result_errors\": " << result_errors_
         << ", \"dispatch_errors\": " << dispatch_errors_ << ", \"pings\": " << pings_
         << ", \"ok\": " << (ok ? "true" : "false") << "}";
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : senders_) t.join();
  std::cout << json.str() << std::endl;
  return ok ? 0 : 1;
}

int Generator::run_fill() {
  std::cerr << "load-generator: queueing " << options_.jobs << " jobs\n";
  std::atomic<size_t> left{options_.jobs};
  std::atomic<size_t> queued{0};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (size_t d = 0; d < options_.dispatchers; ++d) {
    threads.emplace_back([&] {
      auto c = client();
      while (true) {
        size_t n = left.load();
        if (n == 0) break;
        if (!left.compare_exchange_weak(n, n - 1)) continue;
        if (dispatch(*c)) queued++;
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "{\"mode\": \"fill\", \"runners\": " << options_.runners
            << ", \"queued\": " << queued.load() << ", \"seconds\": " << seconds
            << ", \"dispatch_per_s\": " << static_cast<double>(queued.load()) / seconds << "}"
            << std::endl;
  // Keep the runners up (answering pings) until told to go.
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return queued.load() == options_.jobs ? 0 : 1;
}

int Generator::run() {
  std::random_device rd;
  commit_salt_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                 static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  if (!open_runners()) return 2;
  std::cerr << "load-generator: registering " << options_.runners << " runners\n";
  if (!register_runners()) return 1;
  int rc = options_.mode == "fill" ? run_fill() : run_capacity();
  io_.stop();
  for (auto& t : io_threads_) t.join();
  return rc;
}

int usage() {
  std::cerr << "usage: ci-load-generator --dispatcher HOST:PORT [--mode capacity|fill]\n"
               "         [--runners M] [--jobs N] [--dispatchers D] [--senders S]\n"
               "         [--paced-load FRACTION] [--paced-jobs K] [--unloaded-jobs K]\n"
               "         [--deadline SECONDS] [--budget SECONDS] [--phase-seconds SECONDS]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") return usage();
    if (i + 1 >= argc) return usage();
    std::string value = argv[++i];
    auto number = [&](double* out) {
      char* end = nullptr;
      *out = std::strtod(value.c_str(), &end);
      return end && *end == '\0';
    };
    double n = 0;
    if (arg == "--dispatcher") {
      auto hp = ci::parse_host_port(value);
      if (!hp) return usage();
      options.dispatcher = *hp;
    } else if (arg == "--mode" && (value == "capacity" || value == "fill")) {
      options.mode = value;
    } else if (!number(&n) || n < 0) {
      return usage();
    } else if (arg == "--runners" && n >= 1) {
      options.runners = static_cast<size_t>(n);
    } else if (arg == "--jobs" && n >= 1) {
      options.jobs = static_cast<size_t>(n);
    } else if (arg == "--dispatchers" && n >= 1) {
      options.dispatchers = static_cast<size_t>(n);
    } else if (arg == "--senders" && n >= 1) {
      options.senders = static_cast<size_t>(n);
    } else if (arg == "--paced-load" && n > 0) {
      options.paced_load = n;
    } else if (arg == "--paced-jobs") {
      options.paced_jobs = static_cast<size_t>(n);
    } else if (arg == "--unloaded-jobs") {
      options.unloaded_jobs = static_cast<size_t>(n);
    } else if (arg == "--deadline" && n > 0) {
      options.deadline_s = n;
    } else if (arg == "--budget") {
      options.budget_s = n;
    } else if (arg == "--phase-seconds" && n > 0) {
      options.phase_s = n;
    } else {
      return usage();
    }
  }
  Generator generator(options);
  return generator.run();
}
