// A whole CI system for a test: a master repository in a temporary folder, and the
// real dispatcher, runners and observer started as processes on ephemeral ports.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ci/net.h"
#include "ci/process.h"
#include "ci/replies.h"
#include "test_support.h"

namespace ci::test {

class Cluster {
 public:
  Cluster();

  std::string path(const std::string& name) const { return dir_ / name; }
  // A folder the test and the tests that runners run can both write: give it to a
  // runner with --sandbox-share.
  std::string shared_dir(const std::string& name);
  const std::string& master() const { return master_; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  std::string results_dir() const { return dir_ / "test_results"; }
  std::string result_path(const std::string& commit) const { return results_dir() + "/" + commit; }
  // A named repository's result file: test_results/<repo>/<commit>.
  std::string result_path(const std::string& repo, const std::string& commit) const {
    return results_dir() + "/" + repo + "/" + commit;
  }

  Daemon& start_dispatcher(std::vector<std::string> extra = {});
  // Clones the master repository for the runner and starts it on an ephemeral port.
  Daemon& start_runner(std::vector<std::string> extra = {});
  Daemon& start_observer(std::vector<std::string> extra = {});
  // A runner that provisions itself: started with only `--workdir DIR` (no clone of its
  // own), DIR being path("runner<N>.work") unless `extra` names a --workdir; with
  // --dispatcher-timeout 2 unless `extra` names one.
  Daemon& start_workdir_runner(std::vector<std::string> extra = {});
  // The --workdir runner i (counted among all runners) was started with ("" for one
  // started with a clone).
  const std::string& runner_workdir(size_t i) const { return runner_workdirs_.at(i); }
  // One more observer, of the repository in folder `master` (a clone of it is made
  // beside the others): started with `extra` (typically --name, --url, --require).
  // Observers of this kind are counted apart from observer(): observer_of(i).
  Daemon& start_observer_of(const std::string& master, std::vector<std::string> extra = {});
  Daemon& observer_of(size_t i) { return *observers_of_.at(i); }
  // The reporter, following this cluster's dispatcher, with its read model in
  // path("reporter.db") unless `extra` names another --db, serving HTTP on the same
  // port as its previous start (an ephemeral one the first time): see http_port().
  Daemon& start_reporter(std::vector<std::string> extra = {});
  // SIGKILL, and reap: the process is gone when this returns.
  static void kill_hard(Daemon& daemon);
  Daemon& dispatcher() { return *dispatcher_; }
  Daemon& runner(size_t i) { return *runners_.at(i); }
  Daemon& observer() { return *observer_; }
  Daemon& reporter() { return *reporter_; }
  uint16_t http_port() const { return http_port_; }

  Result<Reply> ask(const Request& request);
  // cictl run as a process against this cluster's dispatcher: its exit code, and its
  // stdout and stderr together (an empty result, and a test failure, if it cannot run).
  CommandResult cictl(std::vector<std::string> args);
  // The dispatcher's status, parsed; an error if it cannot be asked or answers badly.
  Result<StatusReply> status();
  // A value of the dispatcher's status by its key on the wire ("runners",
  // "jobs-finished", ...), or -1 when the status cannot be had.
  int64_t status_value(const std::string& key);
  bool wait_runners(int64_t n, std::chrono::milliseconds timeout = 20000ms);
  bool wait_result(const std::string& commit, std::chrono::milliseconds timeout = 60000ms);
  std::string result(const std::string& commit) { return read_text(result_path(commit)); }
  // The result files written so far (no temporaries).
  std::vector<std::string> result_files();
  // The same for a named repository: test_results/<repo>/<commit>.
  bool wait_result(const std::string& repo, const std::string& commit,
                   std::chrono::milliseconds timeout = 60000ms);
  std::string result(const std::string& repo, const std::string& commit) {
    return read_text(result_path(repo, commit));
  }
  std::vector<std::string> result_files(const std::string& repo);

 private:
  TempDir dir_;
  std::string master_;
  uint16_t port_ = 0;
  int dispatcher_starts_ = 0;
  int observer_starts_ = 0;
  int reporter_starts_ = 0;
  uint16_t http_port_ = 0;
  std::unique_ptr<Daemon> dispatcher_;
  std::vector<std::unique_ptr<Daemon>> runners_;
  std::vector<std::string> runner_workdirs_;
  std::unique_ptr<Daemon> observer_;
  std::vector<std::unique_ptr<Daemon>> observers_of_;
  std::unique_ptr<Daemon> reporter_;
};

// The rows of the dispatcher's `jobs` table, oldest first (none if it cannot be asked).
std::vector<JobRow> jobs_of(Cluster& cluster);
// Only the rows of one repository ("-": the default one).
std::vector<JobRow> jobs_of(Cluster& cluster, const std::string& repo);

// The value of "key: value" in a result file's header.
std::string header_field(const std::string& result, const std::string& key);

}  // namespace ci::test
