#include "runner/result_spool.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "ci/files.h"
#include "ci/validate.h"

namespace ci::runner {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSuffix = ".result";

// Job and attempt from "<job>-<attempt>.result"; false for any other name.
bool parse_name(std::string_view name, JobId* job, uint32_t* attempt) {
  if (!name.ends_with(kSuffix)) return false;
  name.remove_suffix(kSuffix.size());
  size_t dash = name.find('-');
  if (dash == std::string_view::npos) return false;
  auto j = parse_u64(name.substr(0, dash), INT64_MAX);
  auto a = parse_u64(name.substr(dash + 1), UINT32_MAX);
  if (!j || !a) return false;
  *job = *j;
  *attempt = static_cast<uint32_t>(*a);
  return true;
}

// The results message a file holds, whole and nothing after it.
Result<SpooledResult> read_result(const std::string& path) {
  auto data = read_file(path);
  if (!data) return Error{data.error()};
  FrameParser parser(FrameLimits{}, request_has_body);
  size_t used = 0;
  auto status = parser.feed(*data, &used);
  if (status == FrameParser::Status::Bad) return make_error(parser.error());
  if (status != FrameParser::Status::Done) return make_error("the message is cut short");
  if (used != data->size()) return make_error("bytes after the message");
  SpooledResult out;
  out.message = parser.take();
  auto request = parse_request(out.message);
  if (!request) return Error{request.error()};
  auto* results = std::get_if<ResultsRequest>(&*request);
  if (!results) return make_error("not a results message");
  out.job = results->job;
  out.attempt = results->attempt;
  out.path = path;
  return out;
}

}  // namespace

ResultSpool::ResultSpool(std::string dir) : dir_(std::move(dir)) {}

Result<void> ResultSpool::open() const { return make_dirs(dir_); }

SpooledResult ResultSpool::prepare(ResultsRequest results) const {
  SpooledResult out;
  out.job = results.job;
  out.attempt = results.attempt;
  out.path = (fs::path(dir_) / (std::to_string(results.job) + "-" +
                                std::to_string(results.attempt) + std::string(kSuffix)))
                 .string();
  out.message = serialize_request(Request{std::move(results)});
  return out;
}

Result<void> ResultSpool::write(const SpooledResult& result) const {
  // Not flushed to disk: the spool outlives a crash of the runner, which is what it is
  // for. After a power loss the job is simply run again (the dispatcher requeues it
  // when the runner comes back without it), and a flush here would delay every result.
  return write_file_atomic(result.path, serialize(result.message), /*flush=*/false);
}

Result<void> ResultSpool::remove(const SpooledResult& result) const {
  if (result.path.empty()) return {};
  if (::unlink(result.path.c_str()) != 0 && errno != ENOENT)
    return make_error("cannot remove " + result.path + ": " + std::strerror(errno));
  return {};
}

std::vector<SpooledResult> ResultSpool::load(std::vector<std::string>* problems) const {
  struct Found {
    fs::file_time_type written;
    SpooledResult result;
  };
  std::vector<Found> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    std::string path = entry.path().string();
    std::error_code entry_ec;
    if (name.find(".tmp.") != std::string::npos) {
      fs::remove(entry.path(), entry_ec);
      continue;
    }
    JobId job = 0;
    uint32_t attempt = 0;
    if (!parse_name(name, &job, &attempt) || !entry.is_regular_file(entry_ec)) continue;
    auto result = read_result(path);
    if (!result) {
      fs::rename(entry.path(), path + ".unreadable", entry_ec);
      problems->push_back(path + ": " + result.error() +
                          (entry_ec ? "" : "; renamed *.unreadable"));
      continue;
    }
    auto written = fs::last_write_time(entry.path(), entry_ec);
    found.push_back(Found{written, std::move(*result)});
  }
  if (ec) problems->push_back("cannot list " + dir_ + ": " + ec.message());
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return std::tie(a.written, a.result.job, a.result.attempt) <
           std::tie(b.written, b.result.job, b.result.attempt);
  });
  std::vector<SpooledResult> out;
  out.reserve(found.size());
  for (auto& f : found) out.push_back(std::move(f.result));
  return out;
}

}  // namespace ci::runner
