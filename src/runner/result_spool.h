// The runner's spool: the results of finished jobs, kept on disk until the dispatcher
// has taken them, so that neither a dispatcher that is down nor a runner that restarts
// loses a result. One file a job attempt, <job>-<attempt>.result, holding the results
// message exactly as it goes on the wire, written atomically.
//
// Thread-safe: a ResultSpool holds nothing but the folder's name, and each result has
// its own file.
#pragma once

#include <string>
#include <vector>

#include "ci/framing.h"
#include "ci/protocol.h"
#include "ci/result.h"

namespace ci::runner {

struct SpooledResult {
  JobId job = 0;
  uint32_t attempt = 0;
  Frame message;     // the results message, sent as it is
  std::string path;  // its file; "" when it could not be written
};

class ResultSpool {
 public:
  explicit ResultSpool(std::string dir);
  const std::string& dir() const { return dir_; }

  // Creates the folder if missing.
  Result<void> open() const;
  // The message for `results`, with the name of its file (not yet written). Pass the
  // results as an rvalue to spare a copy of their output.
  SpooledResult prepare(ResultsRequest results) const;
  Result<void> write(const SpooledResult& result) const;
  // Once the dispatcher has answered for it.
  Result<void> remove(const SpooledResult& result) const;
  // The results left by an earlier run, oldest first. A file that is not a results
  // message is renamed to <name>.unreadable (kept for a person to look at) and reported
  // in `problems`; a temporary file left by an interrupted write is removed.
  std::vector<SpooledResult> load(std::vector<std::string>* problems) const;

 private:
  std::string dir_;
};

}  // namespace ci::runner
