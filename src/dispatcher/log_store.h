// The live logs of running tests, one a job attempt, on disk: the runner streams a
// test's output in chunks at raw offsets of its output (`log`), people read it back by
// byte range (`logread`). A log keeps the first `head_bytes` and the last `tail_bytes`
// of the raw stream; the bytes between are omitted, as are bytes the runner dropped (a
// chunk that starts past what is held). No log is ever held whole in memory.
//
// On disk, in `dir`, for job J attempt A:
//   J-A.head      raw bytes [0, head_len): the head, its length the file's size
//   J-A.tail      a 21-byte header, the raw offset S of its first byte (20 decimal
//                 digits and a newline), then raw bytes [S, received)
//   J-A.done      empty: the attempt has ended, nothing more is written
//   J-A.tail.tmp  a new tail being written, renamed over J-A.tail when whole
// The tail is closed to growth at 2 * tail_bytes: its last tail_bytes are then copied
// into a new tail that replaces it, so each byte costs O(1) amortized and a log takes at
// most head_bytes + 2 * tail_bytes of disk (tail_bytes more while a copy is made). A
// tail that exists closes the head: a gap while still in the head starts the tail
// early, and a gap in the tail starts a new one (the bytes before the gap go with the
// old tail). Bytes once omitted stay so: a chunk resent over them writes only its part
// past the end.
//
// Everything is recovered from the files after a restart, the process killed at any
// point: a rename replaces the tail whole or not at all (a temporary file left is
// removed on open), and a write cut short leaves a file whose size says what is held
// (the runner resends from there). Writes are not flushed to disk: they survive a
// crash of the process, not a power loss.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "ci/mutex.h"
#include "ci/protocol.h"
#include "ci/result.h"

namespace ci {

class LogStore {
 public:
  struct Options {
    std::string dir;
    uint64_t head_bytes = 2u << 20;
    uint64_t tail_bytes = 2u << 20;  // at least 1
  };
  // A read returns at most this many bytes, whatever `max` asks: the reader goes on
  // from where the chunk ends.
  static constexpr uint64_t kMaxRead = 4u << 20;

  // Creates the folder if missing, and removes the temporary files a killed process
  // left there.
  static Result<std::unique_ptr<LogStore>> open(Options options);

  // Appends bytes at raw `offset` of (job, attempt)'s stream; returns the bytes received
  // so far (the next offset wanted). Only the part past what is held is written: a
  // chunk ending at or before it changes nothing. A chunk starting past it marks the
  // bytes between omitted. After finish(): nothing more is written (returns the final
  // size).
  Result<uint64_t> append(JobId job, uint32_t attempt, uint64_t offset, std::string_view bytes);

  struct Chunk {
    uint64_t start = 0;  // raw offset of bytes[0]: > the offset asked when omitted there
    uint64_t total = 0;  // bytes received so far
    bool done = false;   // the attempt has ended
    std::string bytes;
  };
  // At most min(`max`, kMaxRead) bytes from raw `offset`, all contiguous in the raw
  // stream. An attempt with no log yet is an empty chunk (start = offset, total 0);
  // so is a read at or past the end (with the total).
  Result<Chunk> read(JobId job, uint32_t attempt, uint64_t offset, uint64_t max) const;

  // The attempt ended: done from now on, and nothing more is written. Call it however
  // the attempt ends (results, abandoned, cancelled, lost runner): it also frees the
  // memory the log took while written.
  void finish(JobId job, uint32_t attempt);
  uint64_t received(JobId job, uint32_t attempt) const;
  // Logs whose state is held in memory: those written since the store opened whose
  // attempt has not ended.
  size_t held() const;
  // Removes the logs of every attempt of `job` (when the job is forgotten).
  Result<void> remove(JobId job);

  const Options& options() const { return options_; }

  // The state of one log, as its files tell it.
  struct State {
    uint64_t head_len = 0;
    bool has_tail = false;
    uint64_t tail_start = 0;
    uint64_t tail_len = 0;
    bool done = false;
    uint64_t received() const { return has_tail ? tail_start + tail_len : head_len; }
  };

 private:
  using Key = std::pair<JobId, uint32_t>;
  // A log being written; appends to it are serialized by its own mutex, so one log's
  // writes never wait for another's.
  struct Entry {
    Mutex mutex;
    State state GUARDED_BY(mutex);
  };

  explicit LogStore(Options options) : options_(std::move(options)) {}
  std::string base(Key key) const;
  State load(Key key) const;
  // The entry of a log not yet ended, made from its files if new; null once it ended.
  std::shared_ptr<Entry> entry(Key key);
  State snapshot(Key key) const;
  Result<void> write(Key key, Entry& e, uint64_t offset, std::string_view bytes) REQUIRES(e.mutex);
  Result<void> write_head(Key key, State& s, std::string_view bytes);
  Result<void> write_tail(Key key, State& s, std::string_view bytes);
  Result<void> new_tail(Key key, State& s, uint64_t start);
  Result<void> rotate(Key key, State& s);
  static Result<void> install_tail(const std::string& path, uint64_t start, int from, uint64_t pos,
                                   uint64_t len);

  const Options options_;
  mutable Mutex mutex_;
  // Logs written since the store opened and not ended: their state is here, that of
  // the others on disk.
  std::map<Key, std::shared_ptr<Entry>> active_ GUARDED_BY(mutex_);
};

}  // namespace ci
