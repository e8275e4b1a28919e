// run_command's live view of the output (CommandSpec::on_output): every byte, in
// order, as it is read, whatever the cap keeps.
#include <gtest/gtest.h>

#include "ci/process.h"

namespace ci {
namespace {

using namespace std::chrono_literals;

CommandSpec shell(const std::string& script, bool guard) {
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  spec.timeout = 60s;
  spec.kill_grace = 500ms;
  spec.guard = guard;
  return spec;
}

TEST(RunCommandOutput, TheHookSeesTheWholeStreamBeyondTheCap) {
  for (bool guard : {false, true}) {
    auto spec = shell("i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done", guard);
    spec.output_cap = 100;
    std::string seen;
    spec.on_output = [&](std::string_view chunk) { seen.append(chunk); };
    auto ran = run_command(spec);
    ASSERT_TRUE(ran) << ran.error();
    std::string expected;
    for (int i = 0; i < 2000; ++i) expected += "line " + std::to_string(i) + "\n";
    EXPECT_EQ(seen, expected) << "guard " << guard;
    EXPECT_EQ(ran->output_bytes, expected.size());
    EXPECT_LE(ran->output.size(), 200u);
  }
}

// The hook runs while the command does: here it is what stops a command that would
// otherwise wait a minute.
TEST(RunCommandOutput, TheHookSeesOutputWhileTheCommandRuns) {
  for (bool guard : {false, true}) {
    auto spec = shell("echo ready; exec sleep 60", guard);
    CancelToken cancel;
    std::string seen;
    spec.on_output = [&](std::string_view chunk) {
      seen.append(chunk);
      if (seen.find("ready\n") != std::string::npos) cancel.cancel();
    };
    auto start = std::chrono::steady_clock::now();
    auto ran = run_command(spec, &cancel);
    ASSERT_TRUE(ran) << ran.error();
    EXPECT_TRUE(ran->cancelled);
    EXPECT_EQ(ran->output, "ready\n");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
  }
}

}  // namespace
}  // namespace ci
