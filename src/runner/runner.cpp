#include "runner.h"

#include <fcntl.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ci/auth.h"
#include "ci/files.h"
#include "ci/git.h"
#include "sandbox.h"

namespace ci::runner {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint16_t kFirstPort = 8900;
constexpr uint16_t kLastPort = 9000;

// Once a job's output of this size or more is freed, malloc_trim gives back the free
// pages it may leave inside the malloc arenas. (Its large blocks themselves go back to
// the system when freed: see main.)
constexpr size_t kTrimAfter = 256u << 10;

// After `freed` bytes of output are let go; `lock` is released meanwhile.
void release_memory(size_t freed, std::unique_lock<std::mutex>& lock) {
  if (freed < kTrimAfter) return;
  lock.unlock();
  ::malloc_trim(0);
  lock.lock();
}

Response error_response(const std::string& reason, const std::string& peer) {
  spdlog::warn("refused a message from {}: {}", peer, reason);
  return Response{serialize_reply(Reply::err(reason)), true};
}

std::string count_text(int64_t n) { return n < 0 ? "?" : std::to_string(n); }

std::string describe(const RuntestRequest& job) {
  return "job " + std::to_string(job.job) + " attempt " + std::to_string(job.attempt) + " commit " +
         job.commit;
}

std::string describe(const SpooledResult& result) {
  return "job " + std::to_string(result.job) + " attempt " + std::to_string(result.attempt);
}

// The dispatcher's reply to a message: OK, ERR (refused for good) or a failure to
// reach it (or a reply that makes no sense), with why.
struct Answer {
  enum class Kind { Ok, Refused, Failed } kind = Kind::Failed;
  std::string why;
};

Answer ask(LineClient& dispatcher, const Frame& message) {
  auto frame = dispatcher.call_frame(message);
  dispatcher.close();
  if (!frame) return {Answer::Kind::Failed, frame.error()};
  auto reply = parse_reply(*frame);
  if (!reply) return {Answer::Kind::Failed, "unreadable reply: " + reply.error()};
  if (reply->kind == Reply::Kind::Ok) return {Answer::Kind::Ok, ""};
  if (reply->kind == Reply::Kind::Err) return {Answer::Kind::Refused, reply->reason()};
  return {Answer::Kind::Failed, "unexpected reply " + serialize(serialize_reply(*reply))};
}

// Absolute: the jobs' checkouts are made under it, and bind-mounted by path.
std::string state_dir_of(const RunnerOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!options.state_dir.empty())
    return fs::absolute(options.state_dir, ec).lexically_normal().string();
  fs::path repo = fs::absolute(options.job.repo, ec).lexically_normal();
  if (!repo.has_filename()) repo = repo.parent_path();  // "clone/"
  return repo.string() + ".ci-runner";
}

// The file naming a work root made outside the state folder, for the next start to
// remove what a killed runner left in it.
constexpr const char* kWorkRootNote = "work-root";

// The runner that made the work folder "tinyci-work-<pid>-XXXXXX"; 0 for any other name.
pid_t work_folder_maker(const std::string& name) {
  const std::string prefix = "tinyci-work-";
  if (name.rfind(prefix, 0) != 0) return 0;
  size_t dash = name.find('-', prefix.size());
  if (dash == std::string::npos) return 0;
  auto pid = parse_u64(name.substr(prefix.size(), dash - prefix.size()), INT32_MAX);
  return pid ? static_cast<pid_t>(*pid) : 0;
}

}  // namespace

Runner::Runner(RunnerOptions options)
    : options_(std::move(options)),
      state_dir_(state_dir_of(options_)),
      job_options_(options_.job),
      spool_(options_.spool_dir.empty() ? (std::filesystem::path(state_dir_) / "spool").string()
                                        : options_.spool_dir),
      test_group_((std::filesystem::path(state_dir_) / "running-test").string()),
      clone_(options_.job.repo),
      delivery_backoff_(options_.retry_initial, options_.retry_max),
      registration_(Clock::now(), options_.dispatcher_timeout,
                    Backoff(options_.retry_initial, options_.retry_max)) {}

Runner::~Runner() {
  stop();
  if (state_lock_ >= 0) ::close(state_lock_);
}

std::string Runner::address() const { return HostPort{options_.host, port_}.str(); }

Result<void> Runner::start() {
  // Every test runs under the guard: without it no job could run.
  if (::access(default_guard_program().c_str(), X_OK) != 0) {
    return make_error("cannot run " + default_guard_program() + " (" + std::strerror(errno) +
                      "): ci-test-guard belongs in the same folder as ci-runner");
  }
  const std::string& path = options_.job.repo;
  auto repo = git::Repository::open(path);
  if (!repo) return Error{repo.error()};
  // The clone is this runner's alone: a lock file in it is from one that was killed.
  for (const auto& lock : repo->remove_stale_locks())
    spdlog::warn("removed {}, left by a process killed while writing", lock);
  if (!repo->has_remote("origin"))
    return make_error("the repository at '" + path + "' has no remote 'origin'");
  if (auto opened = open_state(); !opened) return opened;
  if (auto opened = open_spool(); !opened) return opened;
  if (auto prepared = prepare_work_root(); !prepared) return prepared;
  if (auto prepared = prepare_sandbox(); !prepared) return prepared;
  if (auto prepared = prepare_cgroups(); !prepared) return prepared;
  if (auto listening = listen(); !listening) return listening;
  std::error_code ec;
  std::string shown_path = std::filesystem::absolute(path, ec).lexically_normal().string();
  spdlog::info("listening on {}, repository {}, dispatcher {}, state {}{}", address(),
               ec ? path : shown_path, options_.dispatcher.str(), state_dir_,
               options_.token.empty() ? "" : ", token required");
  if (job_options_.sandbox.enabled) {
    spdlog::info("tests run in a sandbox ({}), network {}{}", job_options_.sandbox.bwrap,
                 job_options_.sandbox.network ? "on" : "off",
                 job_options_.user.set ? ", as user " + job_options_.user.name : "");
  } else {
    spdlog::warn(
        "the sandbox is off: tests run with the rights of {} and can read what it can, its "
        "token file, spool and clone included",
        job_options_.user.set ? "user " + job_options_.user.name : "the runner");
  }
  started_ = true;
  deliver_at_ = Clock::now();
  worker_ = std::thread([this] { work(); });
  liaison_ = std::thread([this] { keep_in_touch(); });
  return {};
}

Result<void> Runner::open_state() {
  if (auto made = make_dirs(state_dir_); !made) return make_error("state folder: " + made.error());
  // The test user may have to pass through it to reach its checkout (work/), never to
  // list or read it.
  ::chmod(state_dir_.c_str(), 0711);
  std::string lock_path = (std::filesystem::path(state_dir_) / "lock").string();
  state_lock_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (state_lock_ < 0) return make_error("cannot open " + lock_path + ": " + std::strerror(errno));
  if (::flock(state_lock_, LOCK_EX | LOCK_NB) != 0) {
    ::close(state_lock_);
    state_lock_ = -1;
    return make_error("another ci-runner uses the state folder " + state_dir_ +
                      " (give each runner its own clone, or its own --state-dir)");
  }
  return {};
}

// A job's checkout is made under the work root, which the test user must be able to
// reach: <state>/work, or, when a folder above the state folder is closed to it (a
// runner running as root from its home), a folder of its own under /var/tmp.
Result<void> Runner::prepare_work_root() {
  if (::geteuid() == 0) {
    auto user = find_test_user(options_.test_user);
    if (!user) return make_error("--test-user: " + user.error());
    job_options_.user = *user;
  }
  namespace fs = std::filesystem;
  std::string note = (fs::path(state_dir_) / kWorkRootNote).string();
  // What a killed runner left: its checkouts are not to be trusted.
  if (auto earlier = read_file(note); earlier && !earlier->empty()) {
    std::string dir = earlier->substr(0, earlier->find('\n'));
    if (dir.rfind("/var/tmp/tinyci-work-", 0) == 0) (void)remove_tree(dir);
    ::unlink(note.c_str());
  }
  std::string work = (fs::path(state_dir_) / "work").string();
  if (auto removed = remove_tree(work); !removed) return removed;
  const TestUser& user = job_options_.user;
  if (!user.set || searchable_by(state_dir_, user.uid, user.gid)) {
    if (::mkdir(work.c_str(), 0711) != 0)
      return make_error("cannot make " + work + ": " + std::strerror(errno));
    ::chmod(work.c_str(), 0711);
    job_options_.work_root = work;
    return {};
  }
  // Named after this process, so that a later runner can tell the folders of runners
  // that are gone (their state folder gone with them, say) and remove them.
  std::error_code ec;
  for (fs::directory_iterator it("/var/tmp", ec), end; !ec && it != end; it.increment(ec)) {
    pid_t maker = work_folder_maker(it->path().filename().string());
    struct stat st {};
    if (maker > 0 && ::kill(maker, 0) != 0 && errno == ESRCH &&
        ::lstat(it->path().c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid())
      (void)remove_tree(it->path().string());
  }
  std::string pattern = "/var/tmp/tinyci-work-" + std::to_string(::getpid()) + "-XXXXXX";
  if (!::mkdtemp(pattern.data()))
    return make_error("cannot make a work folder in /var/tmp: " +
                      std::string(std::strerror(errno)));
  ::chmod(pattern.c_str(), 0711);
  if (auto noted = write_file_atomic(note, pattern + "\n"); !noted) {
    (void)remove_tree(pattern);
    return noted;
  }
  spdlog::info("the test user {} cannot reach {}: checkouts are made in {}", user.name, state_dir_,
               pattern);
  job_options_.work_root = pattern;
  return {};
}

Result<void> Runner::prepare_sandbox() {
  SandboxOptions& sandbox = job_options_.sandbox;
  if (!sandbox.enabled) return {};
  auto bwrap = find_program(sandbox.bwrap.empty() ? "bwrap" : sandbox.bwrap);
  if (!bwrap) {
    return make_error("the sandbox needs bubblewrap: " + bwrap.error() +
                      " (install the package bubblewrap, or start with --sandbox off to run "
                      "tests unconfined)");
  }
  sandbox.bwrap = *bwrap;
  // What the test must not see: the runner's own files and secrets.
  for (std::string path : {state_dir_, spool_.dir(), options_.job.repo, options_.token_file})
    if (!path.empty()) sandbox.hidden.push_back(path);
  if (const char* home = std::getenv("HOME"); home && *home) {
    sandbox.hidden.emplace_back(home);
    sandbox.home = home;
  }
  if (const passwd* self = ::getpwuid(::geteuid()); self && self->pw_dir)
    sandbox.hidden.emplace_back(self->pw_dir);
  // The users' runtime folders: the sockets of a systemd user manager, a session bus,
  // agents. A read-only mount does not stop a connect(), and through them a test could
  // start a process outside its sandbox with the runner's rights.
  sandbox.hidden.emplace_back("/run/user");
  // A shared folder is bound over the hidden ones: it must not bring back what they hide.
  namespace fs = std::filesystem;
  auto inside = [](const fs::path& path, const fs::path& dir) {
    auto [d, p] = std::mismatch(dir.begin(), dir.end(), path.begin(), path.end());
    return d == dir.end();
  };
  for (const auto& share : sandbox.shared) {
    std::error_code ec;
    fs::path shared = fs::weakly_canonical(fs::absolute(share, ec), ec);
    for (const std::string& own : {state_dir_, spool_.dir(), options_.job.repo, options_.token_file,
                                   job_options_.work_root}) {
      if (own.empty()) continue;
      fs::path mine = fs::weakly_canonical(fs::absolute(own, ec), ec);
      if (inside(mine, shared) || inside(shared, mine)) {
        return make_error("--sandbox-share " + share + " would let every test reach " + own +
                          ", the runner's own: share a folder outside it");
      }
    }
  }

  // Once, as every job will: a command in the sandbox, as the test user.
  std::string probe = (std::filesystem::path(job_options_.work_root) / "sandbox-check").string();
  (void)remove_tree(probe);
  if (::mkdir(probe.c_str(), 0700) != 0)
    return make_error("cannot make " + probe + ": " + std::strerror(errno));
  if (job_options_.user.set) (void)chown_tree(probe, job_options_.user.uid, job_options_.user.gid);
  CommandSpec spec;
  spec.argv = sandbox_command(sandbox, probe, {"/bin/sh", "-c", "exit 0"});
  spec.cwd = probe;
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  spec.timeout = std::chrono::seconds(30);
  spec.guard = true;
  spec.run_as_user = job_options_.user.set;
  spec.uid = job_options_.user.uid;
  spec.gid = job_options_.user.gid;
  auto ran = run_command(spec);
  (void)remove_tree(probe);
  std::string why =
      !ran ? ran.error()
      : ran->exit_code != 0
          ? ran->output.empty() ? "exit code " + std::to_string(ran->exit_code) : ran->output
          : "";
  if (!why.empty()) {
    while (!why.empty() && why.back() == '\n') why.pop_back();
    return make_error(
        "the sandbox cannot run on this machine (" + why +
        "): bubblewrap needs unprivileged user namespaces (sysctl "
        "kernel.unprivileged_userns_clone=1 "
        "and user.max_user_namespaces > 0); or start with --sandbox off to run tests unconfined");
  }
  return {};
}

Result<void> Runner::prepare_cgroups() {
  const CgroupLimits& limits = options_.cgroup_limits;
  if (!limits.any() && !options_.job_cgroup) {
    // Moving each test's guard into a new cgroup costs the kernel a grace period (about
    // 10 ms a job). In the sandbox its PID namespace already ends every process of a
    // test; without it, what a test starts in a session of its own may outlive it.
    if (!job_options_.sandbox.enabled) {
      spdlog::warn(
          "with the sandbox off and no cgroup per job, a process a test starts in a session "
          "of its own outlives it and can reach later jobs' checkouts (--job-cgroup on ends "
          "them)");
    }
    return {};
  }
  auto cgroups = JobCgroups::open(limits);
  if (!cgroups) {
    return make_error(std::string(limits.any() ? "--memory-max, --cpus and --pids-max need"
                                               : "--job-cgroup on needs") +
                      " cgroups the runner can make: " + cgroups.error());
  }
  std::string shown;
  if (limits.memory_max > 0) shown += ", memory " + std::to_string(limits.memory_max) + " bytes";
  if (limits.cpus > 0) shown += ", " + std::to_string(limits.cpus).substr(0, 6) + " CPUs";
  if (limits.pids_max > 0) shown += ", " + std::to_string(limits.pids_max) + " processes";
  spdlog::info("each job runs in a cgroup of its own in {}{}", cgroups->base(), shown);
  job_options_.cgroups = std::move(*cgroups);
  return {};
}

// Where runners kept their spool before they had a state folder: inside the clone.
std::string Runner::old_spool_dir() const {
  return (std::filesystem::path(options_.job.repo) / ".git" / "ci-runner-spool").string();
}

// Results an earlier version of the runner left undelivered in the clone's spool move to
// this one's, so that an upgrade loses none.
void Runner::take_up_old_spool() {
  namespace fs = std::filesystem;
  std::string old = old_spool_dir();
  std::error_code ec;
  if (!fs::is_directory(old, ec) || fs::equivalent(old, spool_.dir(), ec)) return;
  for (fs::directory_iterator it(old, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.ends_with(".result")) continue;
    std::string to = (fs::path(spool_.dir()) / name).string();
    std::error_code moved;
    fs::rename(it->path(), to, moved);
    if (moved) {  // another file system: copy, then remove
      auto data = read_file(it->path().string());
      if (!data || !write_file_atomic(to, *data)) {
        spdlog::warn("cannot move {} into the spool {}", it->path().string(), spool_.dir());
        continue;
      }
      fs::remove(it->path(), moved);
    }
    spdlog::info("moved {} from {} into the spool", name, old);
  }
}

Result<void> Runner::open_spool() {
  if (auto opened = spool_.open(); !opened) return make_error("spool: " + opened.error());
  ::chmod(spool_.dir().c_str(), 0700);
  take_up_old_spool();
  for (const TestGroupRecord& record :
       {test_group_, TestGroupRecord(old_spool_dir() + "/running-test")}) {
    if (auto left = record.kill_leftovers()) {
      spdlog::warn(
          "killed {} process(es) left running by job {} attempt {} (process group {}) "
          "when an earlier run of the runner was killed",
          left->processes, left->job, left->attempt, left->group);
    }
  }
  std::vector<std::string> problems;
  std::vector<SpooledResult> found = spool_.load(&problems);
  for (const auto& problem : problems) spdlog::warn("spool: {}", problem);
  for (auto& result : found) {
    spdlog::info("{}: results from an earlier run in the spool, delivered once registered",
                 describe(result));
    pending_.push_back(std::make_shared<const SpooledResult>(std::move(result)));
  }
  return {};
}

Result<void> Runner::listen() {
  ServerOptions server_options;
  server_options.host = options_.host;
  // Peers send the runner headers only; a body can only be a mistake.
  server_options.limits.max_body = 64u << 10;
  server_options.token = options_.token;
  server_options.service = kRunnerService;
  auto try_port = [&](uint16_t port) -> Result<void> {
    server_options.port = port;
    auto server = std::make_unique<LineServer>(
        server_options, request_has_body,
        [this](const Frame& request, const std::string& peer) { return handle(request, peer); });
    if (auto started = server->start(); !started) return started;
    port_ = server->port();
    server_ = std::move(server);
    return {};
  };
  if (options_.port) return try_port(*options_.port);
  std::string last_error;
  for (uint16_t port = kFirstPort; port <= kLastPort; ++port) {
    auto started = try_port(port);
    if (started) return {};
    last_error = started.error();
  }
  return make_error("no free port in " + std::to_string(kFirstPort) + "-" +
                    std::to_string(kLastPort) + " on " + options_.host + " (last: " + last_error +
                    ")");
}

Response Runner::handle(const Frame& frame, const std::string& peer) {
  auto request = parse_request(frame);
  if (!request) return error_response(request.error(), peer);
  if (std::holds_alternative<PingRequest>(*request)) return {serialize_reply(handle_ping())};
  if (auto* runtest = std::get_if<RuntestRequest>(&*request))
    return {serialize_reply(handle_runtest(*runtest))};
  return error_response("not a runner verb '" + frame.verb() + "'", peer);
}

void Runner::heard_from_dispatcher() {
  auto now = Clock::now();
  bool was_registered = registration_.registered();
  registration_.heard(now);
  if (!pending_.empty()) deliver_at_ = now;
  if (!was_registered || !pending_.empty()) changed_.notify_all();
}

Reply Runner::handle_ping() {
  std::lock_guard lock(mu_);
  heard_from_dispatcher();
  if (job_) return Reply::pong({"busy", std::to_string(job_->job), std::to_string(job_->attempt)});
  if (!pending_.empty()) {
    const SpooledResult& oldest = *pending_.front();
    return Reply::pong({"busy", std::to_string(oldest.job), std::to_string(oldest.attempt)});
  }
  return Reply::pong({"idle"});
}

Reply Runner::handle_runtest(const RuntestRequest& request) {
  {
    std::lock_guard lock(mu_);
    heard_from_dispatcher();
    // The dispatcher repeating a runtest whose OK it lost: still the same job.
    if (job_) {
      bool same = job_->job == request.job && job_->attempt == request.attempt &&
                  job_->commit == request.commit;
      return same ? Reply::ok() : Reply::busy();
    }
    for (const auto& result : pending_) {
      if (result->job == request.job && result->attempt == request.attempt) return Reply::ok();
    }
    // The one result left is on its way and the dispatcher already offers the next
    // job: it has recorded the result and only the reply is still in flight. Taking the
    // job now saves a heartbeat's wait; the result stays pending until its OK arrives.
    bool only_in_flight = pending_.size() == 1 && delivering_front_;
    if (stopping_ || draining_ || (!pending_.empty() && !only_in_flight)) return Reply::busy();
    job_ = request;
    job_started_ = false;
  }
  changed_.notify_all();
  spdlog::info("{}: accepted (branch {})", describe(request), request.branch);
  return Reply::ok();
}

void Runner::work() {
  std::unique_lock lock(mu_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || (job_ && !job_started_); });
    if (stopping_) return;
    job_started_ = true;
    const RuntestRequest job = *job_;
    lock.unlock();

    std::shared_ptr<const SpooledResult> spooled = run_job(job);
    if (!spooled) return;  // job_ stays set: stop() gives it back
    size_t size = spooled->message.body.size();

    lock.lock();
    pending_.push_back(std::move(spooled));
    job_.reset();
    deliver_at_ = Clock::now();
    changed_.notify_all();
    // The test's output is gone, its copy in the results message waits for delivery.
    release_memory(size, lock);
  }
}

std::shared_ptr<const SpooledResult> Runner::run_job(const RuntestRequest& job) {
  spdlog::info("{}: running", describe(job));
  auto note_group = [&](pid_t group) {
    if (auto noted = test_group_.write(group, job); !noted)
      spdlog::warn("{}: cannot note the test's process group: {}", describe(job), noted.error());
  };
  TestJobOutcome outcome = run_test_job(clone_, job_options_, job, address(), &cancel_, note_group);
  test_group_.clear();
  if (outcome.cancelled) {
    spdlog::info("{}: cancelled by shutdown, not reported", describe(job));
    return nullptr;
  }
  const ResultsRequest& results = outcome.results;
  spdlog::info("{}: {} ({} run, {} failed, {} ms)", describe(job), to_string(results.status),
               count_text(results.tests_run), count_text(results.tests_failed),
               results.duration_ms);
  SpooledResult spooled = spool_.prepare(std::move(outcome.results));
  if (auto written = spool_.write(spooled); !written) {
    spdlog::error(
        "{}: cannot keep the results in the spool ({}); they are lost if the runner "
        "stops before delivering them",
        describe(job), written.error());
    spooled.path.clear();
  }
  return std::make_shared<const SpooledResult>(std::move(spooled));
}

void Runner::keep_in_touch() {
  ClientOptions register_options;
  register_options.io_timeout = std::chrono::seconds(5);
  register_options.token = options_.token;
  register_options.service = kDispatcherService;
  ClientOptions deliver_options;
  deliver_options.token = options_.token;
  deliver_options.service = kDispatcherService;
  LineClient registrar(options_.dispatcher.host, options_.dispatcher.port, register_options);
  LineClient courier(options_.dispatcher.host, options_.dispatcher.port, deliver_options);
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto now = Clock::now();
    if (registration_.due(now)) {
      register_once(registrar, lock);
      continue;
    }
    // Results go while registered (at start, after the first registration), so that the
    // dispatcher knows the runner they come from.
    bool can_deliver = registration_.registered() && !pending_.empty();
    if (can_deliver && now >= deliver_at_) {
      deliver_oldest(courier, lock);
      continue;
    }
    auto wake = registration_.next_attempt();
    if (can_deliver) wake = std::min(wake, deliver_at_);
    changed_.wait_until(lock, wake);
  }
}

void Runner::register_once(LineClient& dispatcher, std::unique_lock<std::mutex>& lock) {
  bool renewal = registration_.registered();
  bool first = !ever_registered_;
  lock.unlock();
  Answer answer =
      ask(dispatcher, serialize_request(Request{RegisterRequest{options_.host, port_}}));
  lock.lock();
  auto now = Clock::now();
  if (answer.kind == Answer::Kind::Ok) {
    registration_.succeeded(now);
    ever_registered_ = true;
    deliver_at_ = now;  // a dispatcher that was away is back: waiting results go now
    if (first) {
      spdlog::info("registered with the dispatcher at {} as {}", options_.dispatcher.str(),
                   address());
    } else if (renewal) {
      spdlog::info("registered again with the dispatcher at {}: nothing heard from it for {} ms",
                   options_.dispatcher.str(), options_.dispatcher_timeout.count());
    } else {
      spdlog::info("registered again with the dispatcher at {}", options_.dispatcher.str());
    }
    return;
  }
  std::string why = answer.kind == Answer::Kind::Refused ? "refused: " + answer.why : answer.why;
  if (registration_.failed(now)) {
    spdlog::warn("cannot register with the dispatcher at {} ({}); retrying, at most every {} ms",
                 options_.dispatcher.str(), why, options_.retry_max.count());
  }
}

void Runner::deliver_oldest(LineClient& dispatcher, std::unique_lock<std::mutex>& lock) {
  std::shared_ptr<const SpooledResult> result = pending_.front();
  delivering_front_ = true;
  lock.unlock();
  Answer answer = ask(dispatcher, result->message);
  if (answer.kind == Answer::Kind::Ok) {
    spdlog::info("{}: results delivered", describe(*result));
  } else if (answer.kind == Answer::Kind::Refused) {
    spdlog::warn("{}: the dispatcher refused the results: {}; dropping them", describe(*result),
                 answer.why);
  }
  if (answer.kind != Answer::Kind::Failed) {
    if (auto removed = spool_.remove(*result); !removed)
      spdlog::warn("{}: {}", describe(*result), removed.error());
  }
  lock.lock();
  delivering_front_ = false;
  if (answer.kind == Answer::Kind::Failed) {
    if (!delivery_failing_) {
      spdlog::warn("{}: cannot deliver the results ({}); they stay in the spool, retrying",
                   describe(*result), answer.why);
      delivery_failing_ = true;
    }
    deliver_at_ = Clock::now() + delivery_backoff_.next();
    return;
  }
  pending_.pop_front();  // still `result`: only this thread removes from the front
  delivery_backoff_.reset();
  delivery_failing_ = false;
  deliver_at_ = Clock::now();
  if (pending_.empty() && !job_ && !draining_) spdlog::info("idle");
  changed_.notify_all();
  size_t size = result->message.body.size();
  result.reset();
  release_memory(size, lock);  // the results are handed over: their message is gone
}

void Runner::drain() {
  std::lock_guard lock(mu_);
  if (draining_ || stopping_) return;
  draining_ = true;
  if (job_) {
    spdlog::info(
        "draining: taking no new job; waiting for {} to finish and its results to be "
        "delivered",
        describe(*job_));
  } else if (!pending_.empty()) {
    spdlog::info("draining: taking no new job; delivering {} waiting result(s) first",
                 pending_.size());
  } else {
    spdlog::info("draining: taking no new job; nothing running");
  }
  changed_.notify_all();
}

bool Runner::drained() const { return draining_ && !job_ && pending_.empty(); }

bool Runner::wait_drained(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, timeout, [&] { return drained() || stopping_; }) && drained();
}

void Runner::stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cancel_.cancel();
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (liaison_.joinable()) liaison_.join();
  if (server_) server_->stop();
  if (started_) say_goodbye();
  // A work folder of its own outside the state folder goes with the runner.
  const std::string& work = job_options_.work_root;
  if (started_ && work.rfind("/var/tmp/tinyci-work-", 0) == 0 && remove_tree(work)) {
    ::unlink((std::filesystem::path(state_dir_) / kWorkRootNote).c_str());
  }
}

void Runner::say_goodbye() {
  // The threads are joined: what is left is this thread's.
  std::unique_lock lock(mu_);
  const bool was_draining = draining_;
  const std::optional<RuntestRequest> killed = job_;
  const bool test_started = job_started_;
  const bool was_registered = ever_registered_;
  std::deque<std::shared_ptr<const SpooledResult>> pending = pending_;
  lock.unlock();

  ClientOptions client_options;
  client_options.connect_timeout = options_.goodbye_timeout;
  client_options.io_timeout = options_.goodbye_timeout;
  client_options.token = options_.token;
  client_options.service = kDispatcherService;
  LineClient dispatcher(options_.dispatcher.host, options_.dispatcher.port, client_options);

  // One try for each waiting result, oldest first, while the dispatcher answers.
  std::string unreachable;
  while (!pending.empty() && unreachable.empty()) {
    const SpooledResult& result = *pending.front();
    Answer answer = ask(dispatcher, result.message);
    if (answer.kind == Answer::Kind::Failed) {
      unreachable = answer.why;
      break;
    }
    if (answer.kind == Answer::Kind::Ok) spdlog::info("{}: results delivered", describe(result));
    if (answer.kind == Answer::Kind::Refused)
      spdlog::warn("{}: the dispatcher refused the results: {}; dropping them", describe(result),
                   answer.why);
    if (auto removed = spool_.remove(result); !removed)
      spdlog::warn("{}: {}", describe(result), removed.error());
    pending.pop_front();
  }

  if (killed) {
    Answer answer =
        ask(dispatcher,
            serialize_request(Request{AbandonRequest{killed->job, killed->attempt, address()}}));
    std::string what = test_started ? "killed the test of job " + std::to_string(killed->job)
                                    : "did not start job " + std::to_string(killed->job);
    if (answer.kind == Answer::Kind::Failed) {
      spdlog::warn(
          "stopping: {} but could not give it back ({}); the dispatcher requeues it "
          "once it misses the runner",
          what, answer.why);
    } else {
      spdlog::info("stopping: {} and gave it back", what);
    }
  } else if (was_draining && pending.empty()) {
    spdlog::info("stopping: drained, every result delivered");
  }
  for (const auto& result : pending) {
    spdlog::warn(
        "stopping: {}: results not delivered ({}); they remain in the spool at {} for "
        "the next start",
        describe(*result), unreachable, spool_.dir());
  }

  if (!was_registered && !killed) return;
  Answer left =
      ask(dispatcher, serialize_request(Request{UnregisterRequest{options_.host, port_}}));
  if (left.kind == Answer::Kind::Ok) {
    spdlog::info("left the dispatcher at {}", options_.dispatcher.str());
  } else {
    spdlog::warn("could not unregister from the dispatcher at {}: {}", options_.dispatcher.str(),
                 left.why);
  }
}

}  // namespace ci::runner
