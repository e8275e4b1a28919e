// The Scheduler's queue: the fair pick as a pure function over a view of the queue,
// and the lanes' waiting reasons.
#include <algorithm>

#include "dispatcher/scheduler.h"

namespace ci {

bool serves(const RunnerSpec& spec, const std::string& repo,
            const std::vector<std::string>& labels) {
  bool kind = spec.scope == RepoScope::All ||
              (repo.empty() ? spec.scope == RepoScope::Default : spec.scope == RepoScope::Named);
  if (!kind) return false;
  // Both sorted.
  return std::includes(spec.labels.begin(), spec.labels.end(), labels.begin(), labels.end());
}

namespace {

// The lane's head: a given-back job, else its oldest (newest with newest_first).
std::pair<int64_t, JobId> head(const QueueLane& lane, bool newest_first) {
  auto first = lane.jobs.begin();
  if (first->first < 0 || !newest_first) return *first;
  return *lane.jobs.rbegin();
}

// Whether a (head of a lane) goes before b (head of another lane of the same branch).
bool before(int64_t a, int64_t b, bool newest_first) {
  if ((a < 0) != (b < 0)) return a < 0;
  if (a < 0 || !newest_first) return a < b;
  return a > b;
}

std::optional<QueuePick> pick_in_branch(const std::string& repo_name, const QueueRepo& repo,
                                        const std::string& branch_name, const QueueBranch& branch,
                                        const CanTake& can_take) {
  std::optional<QueuePick> best;
  for (const auto& [labels, lane] : branch.lanes) {
    if (lane.jobs.empty() || !can_take(repo_name, labels)) continue;
    auto [key, job] = head(lane, repo.newest_first);
    if (best && !before(key, best->key, repo.newest_first)) continue;
    best = QueuePick{repo_name, branch_name, labels, key, job};
  }
  return best;
}

std::optional<QueuePick> pick_in_repo(const std::string& repo_name, const QueueRepo& repo,
                                      const std::string* last_branch, const CanTake& can_take) {
  if (repo.branches.empty()) return std::nullopt;
  // The branches after the one served last, then from the start up to it.
  auto start = last_branch ? repo.branches.upper_bound(*last_branch) : repo.branches.begin();
  auto it = start;
  for (size_t n = 0; n < repo.branches.size(); ++n) {
    if (it == repo.branches.end()) it = repo.branches.begin();
    if (auto pick = pick_in_branch(repo_name, repo, it->first, it->second, can_take)) return pick;
    ++it;
  }
  return std::nullopt;
}

}  // namespace

std::optional<QueuePick> pick_next(const QueueView& view, const QueueCursor& cursor,
                                   const CanTake& can_take) {
  if (view.repos.empty()) return std::nullopt;
  auto it = cursor.repo ? view.repos.upper_bound(*cursor.repo) : view.repos.begin();
  for (size_t n = 0; n < view.repos.size(); ++n) {
    if (it == view.repos.end()) it = view.repos.begin();
    auto last = cursor.branch.find(it->first);
    auto pick = pick_in_repo(it->first, it->second,
                             last == cursor.branch.end() ? nullptr : &last->second, can_take);
    if (pick) return pick;
    ++it;
  }
  return std::nullopt;
}

void advance(QueueCursor& cursor, const QueuePick& pick) {
  cursor.repo = pick.repo;
  cursor.branch[pick.repo] = pick.branch;
}

void Scheduler::enqueue(Job& job, bool front) {
  QueueRepo& repo = queue_.repos[job.repo];
  if (auto it = repos_.find(job.repo); it != repos_.end())
    repo.newest_first = it->second.newest_first;
  QueueLane& lane = repo.branches[job.branch].lanes[job.required];
  if (lane.jobs.empty()) lane.waiting = waiting_reason(job.repo, job.required);
  job.queue_key = front ? next_front_key_-- : next_back_key_++;
  lane.jobs.emplace(job.queue_key, job.id);
  job.waiting = lane.waiting;
  queue_.size++;
}

void Scheduler::dequeue(Job& job) {
  auto r = queue_.repos.find(job.repo);
  if (r == queue_.repos.end()) return;
  auto b = r->second.branches.find(job.branch);
  if (b == r->second.branches.end()) return;
  auto l = b->second.lanes.find(job.required);
  if (l == b->second.lanes.end()) return;
  if (l->second.jobs.erase(job.queue_key) == 0) return;
  queue_.size--;
  job.waiting.clear();
  // Empty parts go, so that a pick costs the parts that hold jobs.
  if (!l->second.jobs.empty()) return;
  b->second.lanes.erase(l);
  if (!b->second.lanes.empty()) return;
  r->second.branches.erase(b);
  if (!r->second.branches.empty()) return;
  queue_.repos.erase(r);
  cursor_.branch.erase(job.repo);
}

std::string Scheduler::waiting_reason(const std::string& repo,
                                      const std::vector<std::string>& labels) const {
  bool any = false, kind = false;
  for (const auto& [key, r] : runners_) {
    if (r.slot != 0) continue;
    any = true;
    if (serves(r.spec, repo, labels)) return "";
    if (serves(r.spec, repo, {})) kind = true;
  }
  if (!any) return "waiting for a runner";
  if (!kind)
    return repo.empty() ? "waiting for a runner that serves the default repository"
                        : "waiting for a runner that serves named repositories";
  std::string with;
  for (const auto& l : labels) with += (with.empty() ? "" : ",") + l;
  return "waiting for a runner with " + with;
}

void Scheduler::update_waiting(TimePoint now) {
  for (auto& [repo_name, repo] : queue_.repos) {
    for (auto& [branch_name, branch] : repo.branches) {
      for (auto& [labels, lane] : branch.lanes) {
        std::string reason = waiting_reason(repo_name, labels);
        if (reason == lane.waiting) continue;
        lane.waiting = reason;
        for (const auto& [key, id] : lane.jobs) {
          Job& job = jobs_.at(id);
          job.waiting = reason;
          // A job.queued of it not written yet (it was just given back) is brought up to
          // date rather than followed by another.
          auto pending =
              std::lower_bound(feed_.begin(), feed_.end(), job.seq,
                               [](const FeedEvent& e, uint64_t seq) { return e.seq < seq; });
          if (pending != feed_.end() && pending->seq == job.seq &&
              pending->kind == EventKind::JobQueued) {
            pending->job.waiting = reason;
            continue;
          }
          feed_job(job, EventKind::JobQueued, now);
        }
      }
    }
  }
}

size_t Scheduler::count_waiting() const {
  size_t n = 0;
  for (const auto& [repo_name, repo] : queue_.repos)
    for (const auto& [branch_name, branch] : repo.branches)
      for (const auto& [labels, lane] : branch.lanes)
        if (!lane.waiting.empty()) n += lane.jobs.size();
  return n;
}

void Scheduler::set_repo(const Repository& repo) {
  repos_[repo.name] = repo;
  dirty_repos_.insert(repo.name);
  if (auto it = queue_.repos.find(repo.name); it != queue_.repos.end())
    it->second.newest_first = repo.newest_first;
}

const Repository* Scheduler::repo(const std::string& name) const {
  auto it = repos_.find(name);
  return it == repos_.end() ? nullptr : &it->second;
}

}  // namespace ci
