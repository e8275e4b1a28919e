// The bounds a LineServer keeps across its connections: how many there are (and which
// one goes to make room), how many from one address have not authenticated yet, how
// fast a failing address may guess, and the bytes of bodies being received at once.
#include <algorithm>

#include "line_connection.h"
#include "line_server_impl.h"

namespace ci {

bool LineServer::Impl::make_room() {
  std::vector<std::shared_ptr<Connection>> seen;  // released after the lock
  std::shared_ptr<Connection> victim;
  {
    MutexLock lock(mutex);
    seen.reserve(sessions.size());
    std::shared_ptr<Connection> unauthenticated_oldest, idlest;
    for (auto it = sessions.begin(); it != sessions.end();) {
      auto s = it->lock();
      if (!s) {
        it = sessions.erase(it);
        continue;
      }
      ++it;
      seen.push_back(s);
      if (!s->authenticated()) {
        if (!unauthenticated_oldest || s->opened_at() < unauthenticated_oldest->opened_at())
          unauthenticated_oldest = s;
      } else if (s->idle() && (!idlest || s->idle_since() < idlest->idle_since())) {
        idlest = s;
      }
    }
    victim = unauthenticated_oldest ? unauthenticated_oldest : idlest;
    // Already closing to make room for another: not counted twice.
    if (victim && !victim->mark_evicted()) victim = nullptr;
  }
  if (!victim) return false;
  victim->close_from_outside();
  return true;
}

bool LineServer::Impl::admit_unauthenticated(const std::string& ip) {
  MutexLock lock(mutex);
  auto it = unauthenticated.find(ip);
  size_t n = it == unauthenticated.end() ? 0 : it->second;
  if (n >= options.max_unauthenticated_per_address) return false;
  ++unauthenticated[ip];
  return true;
}

void LineServer::Impl::left_unauthenticated(const std::string& ip) {
  MutexLock lock(mutex);
  auto it = unauthenticated.find(ip);
  if (it == unauthenticated.end()) return;
  if (--it->second == 0) unauthenticated.erase(it);
}

bool LineServer::Impl::reserve_body(const std::shared_ptr<Connection>& connection, size_t n) {
  MutexLock lock(mutex);
  if (body_waiting.empty() && body_bytes + n <= body_budget()) {
    body_bytes += n;
    return true;
  }
  body_waiting.emplace_back(connection, n);
  return false;
}

void LineServer::Impl::release_body(size_t n) {
  // Released after the lock.
  std::vector<std::pair<std::shared_ptr<Connection>, size_t>> granted;
  {
    MutexLock lock(mutex);
    body_bytes -= n;
    if (stopped) return;
    while (!body_waiting.empty() && body_bytes + body_waiting.front().second <= body_budget()) {
      body_bytes += body_waiting.front().second;
      granted.push_back(std::move(body_waiting.front()));
      body_waiting.pop_front();
    }
  }
  for (auto& [connection, bytes] : granted) connection->body_granted(bytes);
}

std::chrono::milliseconds LineServer::Impl::auth_failed(const std::string& ip) {
  MutexLock lock(mutex);
  int n = ++auth_failures[ip];
  if (auth_failures.size() > 10000) auth_failures.clear();  // bounded memory
  int64_t ms = 100LL << std::min(n - 1, 6);
  return std::chrono::milliseconds(std::min<int64_t>(ms, 5000));
}

void LineServer::Impl::auth_succeeded(const std::string& ip) {
  MutexLock lock(mutex);
  auth_failures.erase(ip);
}

}  // namespace ci
