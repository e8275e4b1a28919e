#include "dispatcher/log_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "ci/fd.h"
#include "ci/files.h"

namespace ci {

namespace {

constexpr size_t kHeaderSize = 21;        // 20 decimal digits and a newline
constexpr size_t kCopyBuffer = 64 << 10;  // a rotation copies through this much memory
constexpr char kTempSuffix[] = ".tmp";    // beside the file it is to replace

Error sys_error(const std::string& what) { return make_error(what + ": " + std::strerror(errno)); }

// -1 when missing.
int64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return st.st_size;
}

std::string tail_header(uint64_t start) {
  char text[kHeaderSize + 1];
  std::snprintf(text, sizeof text, "%020" PRIu64 "\n", start);
  return std::string(text, kHeaderSize);
}

// The raw offset a tail file's header names; false if it has none (never written by
// this code: a tail appears whole by rename).
bool read_tail_header(int fd, uint64_t* start) {
  char text[kHeaderSize];
  if (::pread(fd, text, kHeaderSize, 0) != static_cast<ssize_t>(kHeaderSize)) return false;
  if (text[kHeaderSize - 1] != '\n') return false;
  uint64_t value = 0;
  for (size_t i = 0; i + 1 < kHeaderSize; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  *start = value;
  return true;
}

bool pwrite_all(int fd, const char* data, size_t n, uint64_t pos) {
  while (n > 0) {
    ssize_t k = ::pwrite(fd, data, n, static_cast<off_t>(pos));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    data += k;
    n -= static_cast<size_t>(k);
    pos += static_cast<uint64_t>(k);
  }
  return true;
}

// Fewer bytes than `n` only at the end of the file.
ssize_t pread_all(int fd, char* data, size_t n, uint64_t pos) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = ::pread(fd, data + got, n - got, static_cast<off_t>(pos + got));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) break;
    got += static_cast<size_t>(k);
  }
  return static_cast<ssize_t>(got);
}

// The names of the files in `dir`.
Result<std::vector<std::string>> list_names(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) names.push_back(it->path().filename().string());
  if (ec) return make_error("cannot list " + dir + ": " + ec.message());
  return names;
}

UniqueFd open_for_write(const std::string& path, int flags) {
  return UniqueFd(::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC | flags, 0644));
}

}  // namespace

Result<std::unique_ptr<LogStore>> LogStore::open(Options options) {
  if (options.dir.empty()) return make_error("log folder not set");
  if (options.tail_bytes == 0 || options.tail_bytes > (UINT64_MAX >> 2))
    return make_error("a log's tail must keep from one byte to 2^62");
  if (auto made = make_dirs(options.dir); !made) return make_error(made.error());
  auto names = list_names(options.dir);
  if (!names) return make_error(names.error());
  // A temporary tail is one cut short: the tail it was to replace is whole. Other
  // files are left alone.
  for (const std::string& name : *names) {
    if (name.ends_with(std::string(".tail") + kTempSuffix))
      ::unlink((options.dir + "/" + name).c_str());
  }
  return std::unique_ptr<LogStore>(new LogStore(std::move(options)));
}

std::string LogStore::base(Key key) const {
  return options_.dir + "/" + std::to_string(key.first) + "-" + std::to_string(key.second);
}

LogStore::State LogStore::load(Key key) const {
  State s;
  std::string path = base(key);
  s.head_len = static_cast<uint64_t>(std::max<int64_t>(0, file_size(path + ".head")));
  UniqueFd tail(::open((path + ".tail").c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (tail.valid() && ::fstat(tail.get(), &st) == 0 &&
      read_tail_header(tail.get(), &s.tail_start)) {
    s.has_tail = true;
    s.tail_len = static_cast<uint64_t>(st.st_size) - kHeaderSize;
  }
  s.done = file_size(path + ".done") >= 0;
  return s;
}

std::shared_ptr<LogStore::Entry> LogStore::entry(Key key) {
  MutexLock lock(mutex_);
  auto it = active_.find(key);
  if (it != active_.end()) return it->second;
  State s = load(key);
  if (s.done) return nullptr;
  auto e = std::make_shared<Entry>();
  {
    MutexLock entry_lock(e->mutex);
    e->state = s;
  }
  active_.emplace(key, e);
  return e;
}

LogStore::State LogStore::snapshot(Key key) const {
  MutexLock lock(mutex_);
  auto it = active_.find(key);
  if (it == active_.end()) {
    // Loaded under the lock: no append writes a log without an entry here.
    return load(key);
  }
  MutexLock entry_lock(it->second->mutex);
  return it->second->state;
}

Result<uint64_t> LogStore::append(JobId job, uint32_t attempt, uint64_t offset,
                                  std::string_view bytes) {
  if (job == 0 || attempt == 0) return make_error("job and attempt must be positive");
  if (bytes.size() > UINT64_MAX - offset) return make_error("log chunk past the largest offset");
  Key key{job, attempt};
  std::shared_ptr<Entry> e = entry(key);
  if (!e) return snapshot(key).received();
  MutexLock lock(e->mutex);
  if (!e->state.done) {
    if (auto written = write(key, *e, offset, bytes); !written) {
      // What the files hold is the truth after a failed write.
      e->state = load(key);
      return make_error(written.error());
    }
  }
  return e->state.received();
}

Result<void> LogStore::write(Key key, Entry& e, uint64_t offset, std::string_view bytes) {
  State& s = e.state;
  if (bytes.empty()) return {};
  uint64_t held = s.received();
  if (offset + bytes.size() <= held) return {};
  if (offset < held) {
    bytes.remove_prefix(held - offset);
    offset = held;
  }
  // Past what is held: the runner dropped the bytes between. A new tail starts here,
  // which closes the head if it was still open.
  if (offset > held) {
    if (auto made = new_tail(key, s, offset); !made) return made;
  }
  while (!bytes.empty()) {
    bool in_head = !s.has_tail && s.head_len < options_.head_bytes;
    size_t room = in_head ? options_.head_bytes - s.head_len : bytes.size();
    std::string_view piece = bytes.substr(0, std::min<uint64_t>(bytes.size(), room));
    auto written = in_head ? write_head(key, s, piece) : write_tail(key, s, piece);
    if (!written) return written;
    bytes.remove_prefix(piece.size());
  }
  return {};
}

Result<void> LogStore::write_head(Key key, State& s, std::string_view bytes) {
  std::string path = base(key) + ".head";
  UniqueFd fd = open_for_write(path, O_CREAT);
  if (!fd.valid()) return sys_error("cannot open " + path);
  if (!pwrite_all(fd.get(), bytes.data(), bytes.size(), s.head_len))
    return sys_error("cannot write " + path);
  s.head_len += bytes.size();
  return {};
}

// Writes the bytes at the tail's end, rotating it each time it reaches 2 * tail_bytes.
Result<void> LogStore::write_tail(Key key, State& s, std::string_view bytes) {
  if (!s.has_tail) {
    if (auto made = new_tail(key, s, s.head_len); !made) return made;
  }
  std::string path = base(key) + ".tail";
  while (!bytes.empty()) {
    if (s.tail_len >= 2 * options_.tail_bytes) {
      if (auto rotated = rotate(key, s); !rotated) return rotated;
    }
    size_t n = std::min<uint64_t>(bytes.size(), 2 * options_.tail_bytes - s.tail_len);
    UniqueFd fd = open_for_write(path, 0);
    if (!fd.valid()) return sys_error("cannot open " + path);
    if (!pwrite_all(fd.get(), bytes.data(), n, kHeaderSize + s.tail_len))
      return sys_error("cannot write " + path);
    s.tail_len += n;
    bytes.remove_prefix(n);
  }
  return {};
}

// An empty tail starting at raw `start`, replacing any tail there was.
Result<void> LogStore::new_tail(Key key, State& s, uint64_t start) {
  if (auto made = install_tail(base(key) + ".tail", start, -1, 0, 0); !made) return made;
  s.has_tail = true;
  s.tail_start = start;
  s.tail_len = 0;
  return {};
}

// Keeps only the tail's last tail_bytes.
Result<void> LogStore::rotate(Key key, State& s) {
  std::string path = base(key) + ".tail";
  uint64_t keep = options_.tail_bytes;
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return sys_error("cannot open " + path);
  uint64_t new_start = s.tail_start + s.tail_len - keep;
  auto made = install_tail(path, new_start, in.get(), kHeaderSize + s.tail_len - keep, keep);
  if (!made) return made;
  s.tail_start = new_start;
  s.tail_len = keep;
  return {};
}

// Writes a tail file starting at raw `start` with `len` bytes of `from` (at `pos`) under
// a temporary name, and renames it over `path`. Killed before the rename, the old tail
// is whole (the temporary file is removed on the next open); after it, the new one is.
Result<void> LogStore::install_tail(const std::string& path, uint64_t start, int from, uint64_t pos,
                                    uint64_t len) {
  std::string tmp = path + kTempSuffix;
  UniqueFd out = open_for_write(tmp, O_CREAT | O_TRUNC);
  if (!out.valid()) return sys_error("cannot create " + tmp);
  std::string header = tail_header(start);
  bool ok = pwrite_all(out.get(), header.data(), header.size(), 0);
  std::string buffer(std::min<uint64_t>(len, kCopyBuffer), '\0');
  for (uint64_t done = 0; ok && done < len;) {
    size_t n = std::min<uint64_t>(buffer.size(), len - done);
    ok = pread_all(from, buffer.data(), n, pos + done) == static_cast<ssize_t>(n) &&
         pwrite_all(out.get(), buffer.data(), n, kHeaderSize + done);
    done += n;
  }
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    Error err = sys_error("cannot write " + path);
    ::unlink(tmp.c_str());
    return err;
  }
  return {};
}

Result<LogStore::Chunk> LogStore::read(JobId job, uint32_t attempt, uint64_t offset,
                                       uint64_t max) const {
  if (job == 0 || attempt == 0) return make_error("job and attempt must be positive");
  Key key{job, attempt};
  State s = snapshot(key);
  Chunk chunk;
  chunk.start = offset;
  chunk.total = s.received();
  chunk.done = s.done;
  max = std::min(max, kMaxRead);
  if (offset >= chunk.total || max == 0) return chunk;
  // Bytes below a snapshot's sizes are written and never change, but the tail file may
  // have been replaced since by one starting later: its header says where it starts.
  std::string path = base(key) + (offset < s.head_len ? ".head" : ".tail");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return sys_error("cannot open " + path);
  uint64_t end = s.head_len;
  uint64_t file_start = 0;
  size_t header = 0;
  if (offset >= s.head_len) {
    if (!read_tail_header(fd.get(), &file_start)) return make_error("no header in " + path);
    end = chunk.total;
    header = kHeaderSize;
    // A tail started past the snapshot's end (after a gap): all before it is omitted.
    chunk.start = std::min(std::max(offset, file_start), end);
  }
  chunk.bytes.resize(std::min(max, end - chunk.start));
  ssize_t n = pread_all(fd.get(), chunk.bytes.data(), chunk.bytes.size(),
                        header + chunk.start - file_start);
  if (n < 0) return sys_error("cannot read " + path);
  chunk.bytes.resize(static_cast<size_t>(n));
  return chunk;
}

void LogStore::finish(JobId job, uint32_t attempt) {
  if (job == 0 || attempt == 0) return;
  Key key{job, attempt};
  if (std::shared_ptr<Entry> e = entry(key)) {
    MutexLock lock(e->mutex);
    e->state.done = true;
    // Without its file, the log is done only while the entry stays.
    if (!open_for_write(base(key) + ".done", O_CREAT).valid()) return;
  }
  MutexLock lock(mutex_);
  active_.erase(key);
}

uint64_t LogStore::received(JobId job, uint32_t attempt) const {
  if (job == 0 || attempt == 0) return 0;
  return snapshot({job, attempt}).received();
}

size_t LogStore::held() const {
  MutexLock lock(mutex_);
  return active_.size();
}

Result<void> LogStore::remove(JobId job) {
  if (job == 0) return make_error("job must be positive");
  MutexLock lock(mutex_);
  // An append still holding one of the job's entries writes nothing more. (The entry
  // is unlocked before the map lets it go: it may be the last to hold it.)
  for (auto it = active_.lower_bound({job, 0}); it != active_.end() && it->first.first == job;) {
    {
      MutexLock entry_lock(it->second->mutex);
      it->second->state.done = true;
    }
    it = active_.erase(it);
  }
  auto names = list_names(options_.dir);
  if (!names) return make_error(names.error());
  // <job>-<attempt>.<anything>
  std::string prefix = std::to_string(job) + "-";
  for (const std::string& name : *names) {
    if (!name.starts_with(prefix)) continue;
    size_t digits = prefix.size();
    while (digits < name.size() && name[digits] >= '0' && name[digits] <= '9') ++digits;
    if (digits == prefix.size() || digits == name.size() || name[digits] != '.') continue;
    std::string path = options_.dir + "/" + name;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("cannot remove " + path);
  }
  return {};
}

}  // namespace ci
