#include "runner/test_reports.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <pugixml.hpp>

#include "ci/fd.h"

namespace ci::runner {
namespace {

// JUnit's time="1.25" (seconds) in milliseconds; 0 when missing or absurd.
uint64_t junit_ms(const pugi::xml_node& testcase) {
  double seconds = testcase.attribute("time").as_double(0.0);
  if (!std::isfinite(seconds) || seconds <= 0 || seconds > 1e9) return 0;
  return static_cast<uint64_t>(std::llround(seconds * 1000));
}

// The message attribute, or else the element's text (a traceback): the first part,
// which bound_case_text cuts later anyway.
std::string junit_message(const pugi::xml_node& element) {
  std::string_view message = element.attribute("message").as_string();
  if (message.empty()) message = element.text().as_string();
  return std::string(message.substr(0, TestCaseLimits::kMaxMessage));
}

TestCase junit_case(const pugi::xml_node& testcase) {
  TestCase c;
  std::string_view classname = testcase.attribute("classname").as_string();
  std::string_view name = testcase.attribute("name").as_string();
  c.name = classname.empty()
               ? std::string(name)
               : std::string(classname) + (name.empty() ? "" : ".") + std::string(name);
  c.duration_ms = junit_ms(testcase);
  if (auto failure = testcase.child("failure")) {
    c.outcome = CaseOutcome::Failed;
    c.message = junit_message(failure);
  } else if (auto error = testcase.child("error")) {
    c.outcome = CaseOutcome::Error;
    c.message = junit_message(error);
  } else if (auto skipped = testcase.child("skipped")) {
    c.outcome = CaseOutcome::Skipped;
    c.message = junit_message(skipped);
  } else if (std::string_view(testcase.attribute("status").as_string()) == "notrun") {
    c.outcome = CaseOutcome::Skipped;  // GoogleTest's disabled tests
  }
  return c;
}

// Depth-bounded: a hostile file nests suites as deep as it likes.
bool read_suite(const pugi::xml_node& node, size_t depth, const ReportLimits& limits,
                ReportCases* out) {
  if (depth > limits.max_depth) return false;
  bool whole = true;
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    std::string_view element = child.name();
    if (element == "testcase") {
      add_case(junit_case(child), out);
    } else if (element == "testsuite" || element == "testsuites") {
      whole = read_suite(child, depth + 1, limits, out) && whole;
    }
  }
  return whole;
}

// The bytes of a regular file `name` in the folder `dir_fd`, at most `max` of them;
// never through a link, never blocking on a pipe.
Result<std::string> read_report(int dir_fd, const std::string& name, size_t max) {
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return make_error(std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return make_error(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return make_error("not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max)
    return make_error(std::to_string(st.st_size) + " bytes, more than " + std::to_string(max));
  std::string data;
  data.resize(max + 1);  // one more: a file that grew meanwhile is caught
  size_t used = 0;
  while (used < data.size()) {
    ssize_t r = ::read(fd.get(), data.data() + used, data.size() - used);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return make_error(std::strerror(errno));
    if (r == 0) break;
    used += static_cast<size_t>(r);
  }
  if (used > max) return make_error("more than " + std::to_string(max) + " bytes");
  data.resize(used);
  return data;
}

}  // namespace

void add_case(TestCase c, ReportCases* out) {
  if (c.outcome == CaseOutcome::Failed || c.outcome == CaseOutcome::Error) ++out->failed;
  if (out->cases.size() >= TestCaseLimits::kMaxCases) {
    ++out->dropped;
    return;
  }
  c.name = bound_case_text(c.name, TestCaseLimits::kMaxName);
  c.message = bound_case_text(c.message, TestCaseLimits::kMaxMessage);
  out->cases.push_back(std::move(c));
}

void read_junit(std::string_view xml, const std::string& name, const ReportLimits& limits,
                ReportCases* out) {
  // JUnit reports have no DOCTYPE; one is only there to declare entities or nest.
  if (xml.find("<!DOCTYPE") != std::string_view::npos) {
    out->notes.push_back("report " + name + " skipped: it has a DOCTYPE");
    return;
  }
  pugi::xml_document doc;
  // UTF-8 only: a test's report is not transcoded; entities beyond XML's five are not
  // expanded (pugixml never reads external ones).
  pugi::xml_parse_result parsed =
      doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    out->notes.push_back("report " + name + " skipped: not XML (" + parsed.description() +
                         " at byte " + std::to_string(parsed.offset) + ")");
    return;
  }
  size_t before = out->cases.size() + out->dropped;
  bool whole = read_suite(doc, 0, limits, out);
  ++out->files;
  if (!whole) {
    out->notes.push_back("report " + name + ": suites nested deeper than " +
                         std::to_string(limits.max_depth) + " levels skipped");
  }
  if (out->cases.size() + out->dropped == before)
    out->notes.push_back("report " + name + ": no <testcase> in it");
}

ReportCases read_junit_dir(const std::string& dir, const ReportLimits& limits) {
  ReportCases out;
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir_fd.valid()) {
    out.notes.push_back("cannot open the reports folder: " + std::string(std::strerror(errno)));
    return out;
  }
  std::vector<std::string> names;
  bool too_many = false;
  // The listing has its own descriptor: closedir closes it, dir_fd stays for openat.
  if (DIR* listing = ::fdopendir(::dup(dir_fd.get()))) {
    while (dirent* entry = ::readdir(listing)) {
      std::string_view file = entry->d_name;
      if (!file.ends_with(".xml")) continue;
      if (names.size() == limits.max_files) {
        too_many = true;
        break;
      }
      names.emplace_back(file);
    }
    ::closedir(listing);
  }
  std::sort(names.begin(), names.end());
  if (too_many)
    out.notes.push_back("more than " + std::to_string(limits.max_files) +
                        " reports: only the first read");
  for (const std::string& name : names) {
    auto data = read_report(dir_fd.get(), name, limits.max_file);
    if (!data) {
      out.notes.push_back("report " + name + " skipped: " + data.error());
      continue;
    }
    read_junit(*data, name, limits, &out);
  }
  if (out.dropped > 0)
    out.notes.push_back(std::to_string(out.dropped) + " test cases past the first " +
                        std::to_string(TestCaseLimits::kMaxCases) + " left out");
  return out;
}

}  // namespace ci::runner
