// The observer of a named repository: its announcement to the dispatcher, the repo= and
// require= of each dispatch, and the labels a commit's .ci/labels file asks for.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ci/validate.h"
#include "fake_dispatcher.h"
#include "log_capture.h"
#include "observer/observer.h"
#include "observer/repo_files.h"
#include "test_support.h"

namespace ci::observer {
namespace {

using namespace std::chrono_literals;
using ci::test::commit_file;
using ci::test::git;
using ci::test::wait_until;
using Labels = std::vector<std::string>;

using ci::test::LogCapture;

class ObserverReposTest : public ::testing::Test {
 protected:
  void SetUp() override {
    master_ = tmp_ / "master";
    base_ = ci::test::make_master_repo(master_);
    clone_ = ci::test::clone_repo(master_, tmp_ / "clone");
    ASSERT_TRUE(dispatcher_.start());
  }

  // A long interval: the tests drive rounds with poll_now().
  ObserverOptions options() {
    ObserverOptions o;
    o.repo = clone_;
    o.dispatcher = {"127.0.0.1", dispatcher_.port()};
    o.interval = 1h;
    o.client.connect_timeout = 2000ms;
    o.client.io_timeout = 5000ms;
    return o;
  }

  std::unique_ptr<Observer> start(ObserverOptions o) {
    auto observer = std::make_unique<Observer>(std::move(o));
    auto r = observer->start();
    EXPECT_TRUE(r.ok()) << r.error();
    EXPECT_TRUE(wait_until([&] { return observer->rounds_completed() >= 1; }));
    return observer;
  }

  std::string start_error(ObserverOptions o) {
    Observer observer(std::move(o));
    auto r = observer.start();
    return r.ok() ? "started" : r.error();
  }

  // Returns once a whole round has run that started after this call.
  static void full_round(Observer& observer) {
    for (int i = 0; i < 2; ++i) {
      uint64_t before = observer.rounds_completed();
      observer.poll_now();
      ASSERT_TRUE(wait_until([&] { return observer.rounds_completed() > before; }));
    }
  }

  std::string remove_and_commit(const std::string& path) {
    git(master_, {"rm", "-q", path});
    git(master_, {"commit", "-q", "-m", "remove " + path});
    return ci::test::head_commit(master_);
  }

  ci::test::TempDir tmp_;
  std::string master_;
  std::string base_;
  std::string clone_;
  test::FakeDispatcher dispatcher_;
};

TEST_F(ObserverReposTest, TheDefaultRepositoryIsNeitherAnnouncedNorNamed) {
  auto observer = start(options());
  std::string c1 = commit_file(master_, "a.txt", "1");
  full_round(*observer);
  ASSERT_EQ(dispatcher_.commits(), (Labels{c1}));
  EXPECT_EQ(dispatcher_.dispatches()[0].repo, "");
  EXPECT_EQ(dispatcher_.dispatches()[0].required, Labels{});
  EXPECT_TRUE(dispatcher_.announcements().empty());
  EXPECT_EQ(observer->repo_name(), "");
}

TEST_F(ObserverReposTest, ANamedRepositoryIsAnnouncedOnceBeforeItsCommits) {
  auto o = options();
  o.repo_name = "tools";
  o.repo_url = "https://example.com/team/tools.git";
  o.newest_first = true;
  auto observer = start(o);
  // Announced at once, with nothing to dispatch yet.
  ASSERT_EQ(dispatcher_.announcements().size(), 1u);
  RepoRequest announced = dispatcher_.announcements()[0];
  EXPECT_EQ(announced.name, "tools");
  EXPECT_EQ(announced.url, "https://example.com/team/tools.git");
  EXPECT_TRUE(announced.newest_first);

  std::string c1 = commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "a.txt", "2");
  full_round(*observer);
  full_round(*observer);
  ASSERT_EQ(dispatcher_.commits(), (Labels{c1, c2}));
  for (const auto& d : dispatcher_.dispatches()) EXPECT_EQ(d.repo, "tools");
  EXPECT_EQ(dispatcher_.announcements().size(), 1u);
}

TEST_F(ObserverReposTest, TheMissingNameOrUrlIsDerived) {
  auto only_url = options();
  only_url.repo_url = "https://example.com/team/web-app.git/";
  auto a = start(only_url);
  EXPECT_EQ(a->repo_name(), "web-app");
  a.reset();

  // The clone's origin: the master it was cloned from.
  auto only_name = options();
  only_name.repo_name = "tools";
  auto b = start(only_name);
  EXPECT_EQ(b->repo_url(), master_);
  ASSERT_FALSE(dispatcher_.announcements().empty());
  EXPECT_EQ(dispatcher_.announcements().back().url, master_);
  b.reset();

  // Without an origin: the repository's own path.
  auto no_origin = options();
  no_origin.repo = master_;
  no_origin.state_file = tmp_ / "state/observer.state";
  no_origin.repo_name = "tools";
  auto c = start(no_origin);
  EXPECT_EQ(c->repo_url(), std::filesystem::absolute(master_).lexically_normal().string());
}

TEST_F(ObserverReposTest, ABadNameUrlOrLabelStopsTheStartNamingIt) {
  auto o = options();
  o.repo_name = std::string(40, 'a');
  EXPECT_EQ(start_error(o).rfind("--name '" + std::string(40, 'a') + "': ", 0), 0u)
      << start_error(o);
  o = options();
  o.repo_url = "-upload-pack=evil";
  EXPECT_EQ(start_error(o).rfind("--url '-upload-pack=evil': ", 0), 0u) << start_error(o);
  o = options();
  o.repo_url = "https://example.com/";
  EXPECT_NE(start_error(o).find("(give --name)"), std::string::npos) << start_error(o);
  o = options();
  o.required = {"gpu", "no/slash"};
  EXPECT_EQ(start_error(o).rfind("--require 'no/slash': ", 0), 0u) << start_error(o);
  EXPECT_TRUE(dispatcher_.announcements().empty());
}

TEST_F(ObserverReposTest, ARefusedAnnouncementIsRetriedAndHoldsBackTheCommits) {
  LogCapture log;
  dispatcher_.set_refuse_repos(true);
  auto o = options();
  o.repo_name = "tools";
  auto observer = start(o);
  std::string c1 = commit_file(master_, "a.txt", "1");
  full_round(*observer);
  EXPECT_GE(dispatcher_.announcements_refused(), 2u);
  EXPECT_TRUE(dispatcher_.dispatches().empty());
  EXPECT_TRUE(log.contains("refused the announcement of repository tools (" + master_ +
                           "): this dispatcher serves only the default repository"));

  dispatcher_.set_refuse_repos(false);
  full_round(*observer);
  EXPECT_EQ(dispatcher_.announcements().size(), 1u);
  ASSERT_EQ(dispatcher_.commits(), (Labels{c1}));
  EXPECT_EQ(dispatcher_.dispatches()[0].repo, "tools");
}

TEST_F(ObserverReposTest, AnnouncedAgainAfterAnOutageOrWhenTheDispatcherForgot) {
  auto o = options();
  o.repo_name = "tools";
  auto observer = start(o);
  ASSERT_EQ(dispatcher_.announcements().size(), 1u);

  // Forgotten: the dispatch is refused as of an unknown repository, then it is announced
  // again and the commit goes.
  dispatcher_.forget_repos();
  std::string c1 = commit_file(master_, "a.txt", "1");
  full_round(*observer);
  full_round(*observer);
  EXPECT_EQ(dispatcher_.announcements().size(), 2u);
  EXPECT_EQ(dispatcher_.commits(), (Labels{c1}));

  // Down, then back (a new one on the same port, knowing nothing).
  uint16_t port = dispatcher_.port();
  dispatcher_.stop();
  std::string c2 = commit_file(master_, "a.txt", "2");
  full_round(*observer);
  test::FakeDispatcher back;
  ASSERT_TRUE(back.start(port));
  full_round(*observer);
  ASSERT_EQ(back.announcements().size(), 1u);
  EXPECT_EQ(back.announcements()[0].name, "tools");
  ASSERT_EQ(back.commits(), (Labels{c2}));
  EXPECT_EQ(back.dispatches()[0].repo, "tools");
}

TEST_F(ObserverReposTest, TheLabelsFileIsHonouredPerCommit) {
  LogCapture log;
  auto o = options();
  o.required = {"linux"};
  auto observer = start(o);
  std::string with = commit_file(master_, ".ci/labels",
                                 "# what the tests need\n"
                                 "gpu\n"
                                 "\n"
                                 "  py3.11   # the interpreter\n"
                                 "not/a/label\n"
                                 "gpu\n"
                                 "linux\n");
  std::string still = commit_file(master_, "a.txt", "1");
  std::string without = remove_and_commit(".ci/labels");
  full_round(*observer);
  ASSERT_EQ(dispatcher_.commits(), (Labels{with, still, without}));
  auto d = dispatcher_.dispatches();
  EXPECT_EQ(d[0].required, (Labels{"gpu", "linux", "py3.11"}));
  EXPECT_EQ(d[1].required, (Labels{"gpu", "linux", "py3.11"}));
  EXPECT_EQ(d[2].required, (Labels{"linux"}));
  EXPECT_TRUE(log.contains("commit " + with + ": .ci/labels: line 5: 'not/a/label': label may"));
}

TEST_F(ObserverReposTest, AnUnreadableLabelsFileIsLoggedAndItsCommitStillGoes) {
  LogCapture log;
  auto observer = start(options());
  std::string large =
      commit_file(master_, ".ci/labels", std::string(kMaxLabelsFileBytes, 'a') + "\n");
  std::string folder = remove_and_commit(".ci/labels");
  std::string dir = commit_file(master_, ".ci/labels/x", "gpu\n");
  full_round(*observer);
  ASSERT_EQ(dispatcher_.commits(), (Labels{large, folder, dir}));
  for (const auto& d : dispatcher_.dispatches()) EXPECT_EQ(d.required, Labels{});
  EXPECT_TRUE(log.contains("commit " + large + ": .ci/labels: .ci/labels is 65537 bytes, larger"));
  EXPECT_TRUE(log.contains("commit " + dir + ": .ci/labels: .ci/labels is not a file"));
}

TEST(LabelsFile, LinesCommentsAndBounds) {
  auto f = parse_labels_file("b\r\n#a\n  a  \n\n\t\nb # again\nc#x");
  EXPECT_EQ(f.labels, (Labels{"a", "b", "c"}));
  EXPECT_TRUE(f.problems.empty());
  f = parse_labels_file("-x\ngood\ntwo words\n" + std::string(65, 'l') + "\n");
  EXPECT_EQ(f.labels, (Labels{"good"}));
  ASSERT_EQ(f.problems.size(), 3u);
  EXPECT_EQ(f.problems[0], "line 1: '-x': label must start with a letter or digit");
  EXPECT_EQ(f.problems[1].rfind("line 3: 'two words': ", 0), 0u);
  EXPECT_EQ(f.problems[2].rfind("line 4: ", 0), 0u);
  std::string many;
  for (size_t i = 0; i < kMaxLabels + 2; ++i) many += "l" + std::to_string(i) + "\n";
  f = parse_labels_file(many);
  EXPECT_EQ(f.labels.size(), kMaxLabels);
  ASSERT_EQ(f.problems.size(), 1u);
  EXPECT_EQ(f.problems[0], "more than 32 labels: l32,l33 not taken");
  EXPECT_TRUE(parse_labels_file("").labels.empty());
}

TEST(LabelsFile, RequiredLabelsComeFirstWithinTheBound) {
  std::vector<std::string> problems;
  EXPECT_EQ(merge_labels({"linux"}, {"gpu", "linux"}, &problems), (Labels{"gpu", "linux"}));
  EXPECT_TRUE(problems.empty());
  Labels file;
  for (size_t i = 0; i < kMaxLabels; ++i) file.push_back("f" + std::to_string(i));
  auto merged = merge_labels({"zz"}, file, &problems);
  EXPECT_EQ(merged.size(), kMaxLabels);
  EXPECT_EQ(merged.back(), "zz");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "more than 32 labels with --require: f31 not taken");
}

TEST(RepoNameFromUrl, TheLastPathComponentWithoutDotGit) {
  EXPECT_EQ(*repo_name_from_url("https://example.com/team/tools.git"), "tools");
  EXPECT_EQ(*repo_name_from_url("git@example.com:team/web.app.git"), "web.app");
  EXPECT_EQ(*repo_name_from_url("/srv/git/lib/"), "lib");
  EXPECT_EQ(*repo_name_from_url("file:///srv/git/lib.git"), "lib");
  EXPECT_EQ(*repo_name_from_url("host:repo"), "repo");
  EXPECT_FALSE(repo_name_from_url("https://example.com/").ok());
  EXPECT_FALSE(repo_name_from_url("/srv/" + std::string(40, 'a') + ".git").ok());
  EXPECT_FALSE(repo_name_from_url("/srv/.git").ok());
  EXPECT_NE(repo_name_from_url("/srv/_x").error().find("must start with a letter or digit"),
            std::string::npos);
}

}  // namespace
}  // namespace ci::observer
