// Small file helpers. Writes are atomic: a reader sees the old file or the new one,
// never half of one.
#pragma once

#include <string>

#include "ci/result.h"

namespace ci {

// Writes to a temporary name in the same folder and renames it over `path`. The
// temporary file is always a new one (O_EXCL | O_NOFOLLOW) under a name no other write
// uses, so neither a file a killed process left behind nor a symbolic link planted
// there is written through or blocks the write. With
// `flush`, the file and then the folder are flushed to disk too: that survives power
// loss; without, the rename alone survives any crash of the process.
Result<void> write_file_atomic(const std::string& path, const std::string& data, bool flush = true);
Result<std::string> read_file(const std::string& path);
// Creates the folder and its parents if missing.
Result<void> make_dirs(const std::string& path);

}  // namespace ci
