// The file helpers on a real folder.
#include "ci/files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ci/fd.h"
#include "test_support.h"

namespace ci {
namespace {

namespace fs = std::filesystem;

// A process killed between creating its temporary file and renaming it leaves the file
// behind, and a restarted daemon often has the same pid (pid 1 in a container). Such
// a name, or a symbolic link planted under it, must neither be written through nor
// make the write fail.
TEST(Files, AtomicWriteNeitherFollowsNorTripsOverLeftTemporaryFiles) {
  test::TempDir dir;
  std::string path = dir / "state";
  std::string victim = dir / "victim";
  ASSERT_TRUE(write_file_atomic(victim, "precious").ok());
  std::string prefix = path + ".tmp." + std::to_string(::getpid()) + ".";
  for (int n = 0; n < 200; ++n) {
    ASSERT_EQ(::symlink(victim.c_str(), (prefix + std::to_string(n)).c_str()), 0);
    std::ofstream(prefix + std::to_string(n) + ".stale") << "left by a killed process";
  }
  for (bool flush : {true, false}) {
    auto written = write_file_atomic(path, flush ? "new" : "newer", flush);
    ASSERT_TRUE(written.ok()) << written.error();
    EXPECT_FALSE(fs::is_symlink(path));
    EXPECT_EQ(test::read_text(path), flush ? "new" : "newer");
    EXPECT_EQ(test::read_text(victim), "precious");
  }
  // Nothing of its own left behind.
  EXPECT_EQ(test::list_dir(dir.path()).size(), 2u + 2 * 200u);
}

TEST(Files, AtomicWriteIntoAMissingFolderIsAnErrorNamingIt) {
  test::TempDir dir;
  auto written = write_file_atomic(dir / "missing/state", "x");
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.error().find(dir / "missing/state"), std::string::npos) << written.error();
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFdTest, ClosesItsDescriptorWhenItEnds) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    UniqueFd fd(raw);
    EXPECT_TRUE(fd.valid());
    EXPECT_EQ(fd.get(), raw);
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFdTest, MovesReleasesAndResets) {
  UniqueFd first(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(first.valid());
  int raw = first.get();
  UniqueFd second(std::move(first));
  EXPECT_FALSE(first.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(second.get(), raw);

  UniqueFd third;
  third = std::move(second);
  EXPECT_EQ(third.get(), raw);
  EXPECT_TRUE(is_open(raw));

  int released = third.release();
  EXPECT_EQ(released, raw);
  EXPECT_FALSE(third.valid());
  EXPECT_TRUE(is_open(raw));  // released: not closed

  third.reset(released);
  EXPECT_EQ(third.get(), raw);
  third.reset();
  EXPECT_FALSE(third.valid());
  EXPECT_FALSE(is_open(raw));
}

}  // namespace
}  // namespace ci
