// The reporter's read model on disk: its own SQLite file, in WAL mode so that the HTTP
// threads read while the feed follower writes.
//
//   meta(key, value)      last_seq: the last feed event applied (in the same
//                         transaction as what it changed)
//   jobs                  every field of a JobInfo, with its commit's author and subject,
//                         its repository ('' the default one), the labels it requires
//                         ("a,b") and why it waits, and log_size from job.log events
//   cases                 the test cases of each (job, attempt), with the job's repository
//                         and branch, indexed by (repo, branch, name, job) for broken-by
//                         and history
//   runners               joined or left, and busy or idle from the job events
//   branches              per (repo, name): passing or failing, the job that said so,
//                         and the job since which it is in that state
//   outbox                notifications to deliver, one row per (event, target),
//                         written with the event that caused them
#pragma once

#include <string>

#include "ci/result.h"
#include "ci/sqlite.h"

namespace ci::reporter {

// The schema's version is the file's user_version (1); a file of version 0 (one
// repository) is migrated in place on opening, its rows all of the default repository.
//
// Opens (creating or migrating if needed) the database at `path` with the schema above.
Result<sql::Database> open_read_model(const std::string& path);

}  // namespace ci::reporter
