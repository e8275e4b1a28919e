#include "reporter/notifier.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "ci/mutex.h"
#include "ci/process.h"
#include "reporter/json.h"
#include "reporter/schema.h"

namespace ci::reporter {

namespace {

constexpr char kWebhook[] = "webhook ";
constexpr char kCommand[] = "command ";

size_t ignore_body(char*, size_t size, size_t n, void*) { return size * n; }

std::string field(const nlohmann::json& body, const char* outer, const char* name) {
  const nlohmann::json* v = outer ? (body.contains(outer) ? &body[outer] : nullptr) : &body;
  if (!v || !v->is_object() || !v->contains(name) || (*v)[name].is_null()) return "";
  const auto& x = (*v)[name];
  return x.is_string() ? x.get<std::string>() : json_text(x);
}

Result<void> post(const std::string& url, const std::string& body, const std::string& id,
                  std::chrono::milliseconds timeout) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURL* curl = curl_easy_init();
  if (!curl) return make_error("curl: cannot start a request");
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, ("X-Tinyci-Delivery: " + id).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &ignore_body);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return make_error(curl_easy_strerror(rc));
  if (status < 200 || status > 299) return make_error("HTTP " + std::to_string(status));
  return {};
}

// The command, through the shell, with the notification in its environment and, in a
// file that becomes its stdin, as JSON.
Result<void> run_notify_command(const std::string& command, const std::string& text,
                                const nlohmann::json& body, std::chrono::milliseconds timeout) {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/ci-reporter-event.XXXXXX";
  int fd = mkstemp(path.data());
  if (fd < 0) return make_error("cannot make a file for the event in " + path);
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c", "exec <\"$CI_EVENT_FILE\" || exit 125\n" + command};
  spec.env = current_environment();
  spec.env.push_back("CI_EVENT_FILE=" + path);
  spec.env.push_back("CI_EVENT=" + field(body, nullptr, "event"));
  spec.env.push_back("CI_DELIVERY_ID=" + field(body, nullptr, "id"));
  spec.env.push_back("CI_JOB_ID=" + field(body, "job", "id"));
  spec.env.push_back("CI_REPO=" + field(body, "job", "repo"));
  spec.env.push_back("CI_BRANCH=" + field(body, "job", "branch"));
  spec.env.push_back("CI_COMMIT=" + field(body, "job", "commit"));
  spec.env.push_back("CI_STATUS=" + field(body, "job", "status"));
  spec.env.push_back("CI_AUTHOR=" + field(body, "job", "author"));
  spec.env.push_back("CI_SUBJECT=" + field(body, "job", "subject"));
  spec.env.push_back("CI_BRANCH_STATE=" + field(body, nullptr, "to"));
  spec.env.push_back("CI_BROKEN_BY=" + field(body, "broken_by", "commit"));
  spec.timeout = timeout;
  spec.output_cap = 64 * 1024;
  auto result = written ? run_command(spec) : Result<CommandResult>(make_error("cannot write"));
  ::unlink(path.c_str());
  if (!result) return Error{result.error()};
  if (result->timed_out) return make_error("timed out");
  if (result->exit_code != 0)
    return make_error("exit code " + std::to_string(result->exit_code) + ", signal " +
                      std::to_string(result->term_signal));
  return {};
}

}  // namespace

std::vector<std::string> notify_targets(const NotifyOptions& options) {
  std::vector<std::string> names;
  // A target given twice is one target: its rows would otherwise be read by two threads.
  auto add = [&names](std::string name) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  };
  for (const auto& url : options.webhooks) add(kWebhook + url);
  for (const auto& command : options.commands) add(kCommand + command);
  return names;
}

struct Notifier::Target {
  std::string name;
  const NotifyOptions& options;
  sql::Database db;
  sql::Statement next, remove;
  Mutex mutex;
  CondVar wake;
  bool woken GUARDED_BY(mutex) = true;
  bool stopping GUARDED_BY(mutex) = false;
  std::atomic<uint64_t> delivered{0}, failed{0};
  std::thread thread;

  Target(std::string n, const NotifyOptions& o, sql::Database d)
      : name(std::move(n)), options(o), db(std::move(d)) {}

  Result<void> deliver(const std::string& text) {
    auto body = nlohmann::json::parse(text, nullptr, false);
    if (body.is_discarded()) return make_error("a malformed outbox row");
    if (name.rfind(kWebhook, 0) == 0)
      return post(name.substr(sizeof kWebhook - 1), text, field(body, nullptr, "id"),
                  options.timeout);
    return run_notify_command(name.substr(sizeof kCommand - 1), text, body, options.timeout);
  }

  // Sleeps until `deadline` (a backoff), or without one until woken; false when
  // stopping.
  bool sleep(std::optional<TimePoint> deadline) EXCLUDES(mutex) {
    MutexLock lock(mutex);
    if (deadline) {
      while (!stopping && options.clock->now() < *deadline)
        options.clock->wait_until(wake, lock, *deadline);
    } else {
      while (!stopping && !woken) wake.wait(lock);
      woken = false;
    }
    return !stopping;
  }

  // Tries one row until it is delivered or given up; false when stopping.
  bool attempt(int64_t id, const std::string& text) {
    std::chrono::milliseconds delay = options.retry_initial;
    for (int n = 1;; ++n) {
      auto r = deliver(text);
      if (r) {
        ++delivered;
        break;
      }
      if (n >= options.max_attempts) {
        spdlog::error("notification {} to {}: {}; giving up after {} attempts", id, name, r.error(),
                      n);
        ++failed;
        break;
      }
      spdlog::warn("notification {} to {}: {}; trying again", id, name, r.error());
      if (!sleep(options.clock->now() + delay)) return false;
      delay = std::min(delay * 2, options.retry_max);
    }
    if (auto r = remove.bind(1, id).run(); !r) spdlog::error("outbox: {}", r.error());
    return true;
  }

  void run() {
    for (;;) {
      std::vector<std::pair<int64_t, std::string>> queue;
      next.bind(1, name).bind(2, static_cast<int64_t>(options.queue));
      for (auto row = next.step(); row && *row; row = next.step())
        queue.emplace_back(next.column_int(0), next.column_text(1));
      next.reset();
      for (const auto& [id, text] : queue)
        if (!attempt(id, text)) return;
      if (queue.empty() && !sleep(std::nullopt)) return;
    }
  }
};

Notifier::Notifier(NotifyOptions options, std::string db_path)
    : options_(std::move(options)), db_path_(std::move(db_path)) {}

Notifier::~Notifier() { stop(); }

Result<void> Notifier::start() {
  for (const auto& name : notify_targets(options_)) {
    auto db = open_read_model(db_path_);
    if (!db) return Error{db.error()};
    auto target = std::make_unique<Target>(name, options_, std::move(*db));
    auto next =
        target->db.prepare("SELECT id, body FROM outbox WHERE target = ?1 ORDER BY id LIMIT ?2");
    auto remove = target->db.prepare("DELETE FROM outbox WHERE id = ?1");
    if (!next || !remove) return make_error("outbox: " + target->db.error());
    target->next = std::move(*next);
    target->remove = std::move(*remove);
    targets_.push_back(std::move(target));
  }
  for (auto& target : targets_) target->thread = std::thread([t = target.get()] { t->run(); });
  return {};
}

void Notifier::wake() {
  for (auto& target : targets_) {
    {
      MutexLock lock(target->mutex);
      target->woken = true;
    }
    target->wake.notify_all();
  }
}

void Notifier::stop() {
  for (auto& target : targets_) {
    {
      MutexLock lock(target->mutex);
      target->stopping = true;
    }
    target->wake.notify_all();
  }
  for (auto& target : targets_)
    if (target->thread.joinable()) target->thread.join();
}

uint64_t Notifier::delivered() const {
  uint64_t n = 0;
  for (const auto& target : targets_) n += target->delivered.load();
  return n;
}

uint64_t Notifier::failed() const {
  uint64_t n = 0;
  for (const auto& target : targets_) n += target->failed.load();
  return n;
}

}  // namespace ci::reporter
