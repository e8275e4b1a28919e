// The protocol of many repositories, slots and labels: register slots=/labels=/repos=,
// dispatch repo=/require=, the repo and repos verbs, runtest repo=/url=, the jobs repo=
// filter, the repos reply, and the feed's job with its repository, labels and reason.
#include <gtest/gtest.h>

#include "ci/events.h"
#include "ci/framing.h"
#include "ci/protocol.h"
#include "ci/replies.h"
#include "ci/validate.h"
#include "request_wire.h"

namespace ci {
namespace {

const std::string kCommit(40, 'a');

using test::parse_bytes;
using test::reason;
using test::round_trip;
using test::wire;

TEST(ManyReposProtocol, RegisterCarriesSlotsLabelsAndRepos) {
  // The seed's runner says only where it is.
  EXPECT_EQ(wire(RegisterRequest{"127.0.0.1", 8900}), "register 127.0.0.1 8900\n");
  RegisterRequest r{"127.0.0.1", 8900, 4, {"gpu", "linux"}, RepoScope::All};
  EXPECT_EQ(wire(r), "register 127.0.0.1 8900 slots=4 labels=gpu,linux repos=all\n");
  auto back = round_trip(r);
  EXPECT_EQ(back.slots, 4u);
  EXPECT_EQ(back.labels, (std::vector<std::string>{"gpu", "linux"}));
  EXPECT_EQ(back.repos, RepoScope::All);
  auto plain = round_trip(RegisterRequest{"::1", 9});
  EXPECT_EQ(plain.slots, 1u);
  EXPECT_TRUE(plain.labels.empty());
  EXPECT_EQ(plain.repos, RepoScope::Default);
  // Any order; labels sorted and each once.
  auto parsed = parse_bytes("register h 1 repos=named labels=py3.11,gpu,py3.11 slots=64\n");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  auto& reg = std::get<RegisterRequest>(*parsed);
  EXPECT_EQ(reg.slots, 64u);
  EXPECT_EQ(reg.labels, (std::vector<std::string>{"gpu", "py3.11"}));
  EXPECT_EQ(reg.repos, RepoScope::Named);
  EXPECT_EQ(std::get<RegisterRequest>(*parse_bytes("register h 1 repos=default\n")).repos,
            RepoScope::Default);
}

TEST(ManyReposProtocol, MalformedRegisterIsRefused) {
  EXPECT_EQ(reason("register h 1 slots=0\n"), "slots must be a number from 1 to 64");
  EXPECT_EQ(reason("register h 1 slots=65\n"), "slots must be a number from 1 to 64");
  EXPECT_EQ(reason("register h 1 slots=x\n"), "slots must be a number from 1 to 64");
  EXPECT_EQ(reason("register h 1 slots=+2\n"), "slots must be a number from 1 to 64");
  EXPECT_EQ(reason("register h 1 labels=-gpu\n"),
            "labels: label must start with a letter or digit");
  EXPECT_EQ(reason("register h 1 labels=a/b\n"),
            "labels: label may hold only letters, digits, '.', '-', '_' and '+'");
  EXPECT_EQ(reason("register h 1 labels=\n"), "labels: label is empty");
  EXPECT_EQ(reason("register h 1 labels=a,,b\n"), "labels: label is empty");
  EXPECT_EQ(reason("register h 1 labels=" + std::string(65, 'x') + "\n"),
            "labels: label longer than 64 bytes");
  std::string many;
  for (size_t i = 0; i <= kMaxLabels; ++i) many += (i ? "," : "") + ("l" + std::to_string(i));
  EXPECT_EQ(reason("register h 1 labels=" + many + "\n"), "labels: more than 32 labels");
  EXPECT_EQ(reason("register h 1 repos=some\n"), "repos must be default, named or all");
  EXPECT_EQ(reason("register h 1 colour=red\n"), "register: unknown option 'colour'");
  EXPECT_EQ(reason("register h 1 slots=2 slots=3\n"), "register: option 'slots' given twice");
  EXPECT_EQ(reason("register h 1 extra\n"), "register: unexpected word 'extra'");
}

TEST(ManyReposProtocol, DispatchCarriesARepositoryAndLabels) {
  DispatchRequest d{kCommit, "main", {}, "tools", {"gpu", "py3.11"}};
  EXPECT_EQ(wire(d), "dispatch " + kCommit + " main repo=tools require=gpu,py3.11\n");
  auto back = round_trip(d);
  EXPECT_EQ(back.repo, "tools");
  EXPECT_EQ(back.required, d.required);
  // With commit info: the body's length after the options.
  CommitInfo info{"Alice", "alice@example.com", "Fix it", 1764720000};
  d.info = serialize_commit_info(info);
  std::string bytes = wire(d);
  EXPECT_EQ(bytes.rfind("dispatch " + kCommit + " main repo=tools require=gpu,py3.11 ", 0), 0u);
  back = round_trip(d);
  EXPECT_EQ(back.repo, "tools");
  EXPECT_EQ(back.required, d.required);
  EXPECT_EQ(*parse_commit_info(back.info), info);
  // Only a repository, only labels; the default repository has no repo= word.
  EXPECT_EQ(round_trip(DispatchRequest{kCommit, "main", {}, "tools"}).required.size(), 0u);
  EXPECT_EQ(round_trip(DispatchRequest{kCommit, "main", {}, "", {"gpu"}}).repo, "");
  EXPECT_EQ(wire(DispatchRequest{kCommit, "main", {}, "", {"gpu"}}),
            "dispatch " + kCommit + " main require=gpu\n");
  // The options in either order.
  auto parsed = parse_bytes("dispatch " + kCommit + " main require=b,a repo=x.y\n");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(std::get<DispatchRequest>(*parsed).repo, "x.y");
  EXPECT_EQ(std::get<DispatchRequest>(*parsed).required, (std::vector<std::string>{"a", "b"}));
}

TEST(ManyReposProtocol, MalformedDispatchIsRefused) {
  const std::string head = "dispatch " + kCommit + " main ";
  EXPECT_EQ(reason(head + "repo=\n"), "repository name is empty");
  EXPECT_EQ(reason(head + "repo=.hidden\n"), "repository name must start with a letter or digit");
  EXPECT_EQ(reason(head + "repo=a/b\n"),
            "repository name may hold only letters, digits, '.', '-' and '_'");
  EXPECT_EQ(reason(head + "repo=" + std::string(65, 'r') + "\n"),
            "repository name longer than 64 bytes");
  // A commit id as a name would collide with the default repository's result files.
  EXPECT_EQ(reason(head + "repo=" + kCommit + "\n"), "repository name must not be a commit id");
  EXPECT_EQ(reason(head + "repo=" + std::string(64, 'B') + "\n"),
            "repository name must not be a commit id");
  EXPECT_EQ(reason(head + "require=gpu,\n"), "require: label is empty");
  EXPECT_EQ(reason(head + "require=g*u\n"),
            "require: label may hold only letters, digits, '.', '-', '_' and '+'");
  std::string many;
  for (size_t i = 0; i <= kMaxLabels; ++i) many += (i ? "," : "") + ("l" + std::to_string(i));
  EXPECT_EQ(reason(head + "require=" + many + "\n"), "require: more than 32 labels");
  EXPECT_EQ(reason(head + "colour=red\n"), "dispatch: unknown option 'colour'");
  EXPECT_EQ(reason(head + "repo=a repo=b\n"), "dispatch: option 'repo' given twice");
  EXPECT_EQ(reason(head + "require=a require=b\n"), "dispatch: option 'require' given twice");
}

TEST(ManyReposProtocol, RepoAndReposRoundTrip) {
  RepoRequest r{"tools", "https://example.com/tools.git", true};
  EXPECT_EQ(wire(r), "repo tools https://example.com/tools.git order=newest\n");
  auto back = round_trip(r);
  EXPECT_EQ(back.name, "tools");
  EXPECT_EQ(back.url, r.url);
  EXPECT_TRUE(back.newest_first);
  EXPECT_EQ(wire(RepoRequest{"a", "/srv/a"}), "repo a /srv/a order=oldest\n");
  EXPECT_FALSE(round_trip(RepoRequest{"a", "/srv/a"}).newest_first);
  auto bare = parse_bytes("repo a /srv/a\n");
  ASSERT_TRUE(bare.ok()) << bare.error();
  EXPECT_FALSE(std::get<RepoRequest>(*bare).newest_first);
  EXPECT_EQ(wire(ReposRequest{}), "repos\n");
  EXPECT_TRUE(std::holds_alternative<ReposRequest>(*parse_bytes("repos\n")));
  EXPECT_TRUE(reply_has_body("repos", {"OK", "12"}));
}

TEST(ManyReposProtocol, MalformedRepoIsRefused) {
  EXPECT_EQ(reason("repo a\n").rfind("usage: repo <name> <url>", 0), 0u);
  EXPECT_EQ(reason("repo a /x order=newest more\n").rfind("usage: repo <name> <url>", 0), 0u);
  EXPECT_EQ(reason("repo " + kCommit + " /x\n"), "repository name must not be a commit id");
  EXPECT_EQ(reason("repo -a /x\n"), "repository name must start with a letter or digit");
  EXPECT_EQ(reason("repo a -x\n"), "repository url starts with '-'");
  EXPECT_EQ(reason("repo a " + std::string(1025, 'u') + "\n"),
            "repository url longer than 1024 bytes");
  EXPECT_EQ(reason("repo a /x order=random\n"), "repo order must be order=oldest or order=newest");
  EXPECT_EQ(reason("repos all\n").rfind("usage: repos", 0), 0u);
}

TEST(ManyReposProtocol, RuntestCarriesTheRepositoryAndItsUrl) {
  RuntestRequest r{3, 1, kCommit, "main", "tools", "file:///srv/tools.git"};
  EXPECT_EQ(wire(r), "runtest 3 1 " + kCommit + " main repo=tools url=file:///srv/tools.git\n");
  auto back = round_trip(r);
  EXPECT_EQ(back.repo, "tools");
  EXPECT_EQ(back.url, r.url);
  EXPECT_EQ(round_trip(RuntestRequest{3, 1, kCommit, "main"}).repo, "");
  const std::string head = "runtest 3 1 " + kCommit + " main ";
  EXPECT_EQ(reason(head + "repo=tools\n").rfind("usage: runtest", 0), 0u);
  EXPECT_EQ(reason(head + "url=/x repo=tools\n").rfind("usage: runtest", 0), 0u);
  EXPECT_EQ(reason(head + "repo=" + kCommit + " url=/x\n"),
            "repository name must not be a commit id");
  EXPECT_EQ(reason(head + "repo=tools url=\n"), "repository url is empty");
  EXPECT_EQ(reason(head + "repo=tools url=-oProxy\n"), "repository url starts with '-'");
}

TEST(ManyReposProtocol, JobsFilterByRepository) {
  JobsRequest j{10};
  j.repo = "tools";
  EXPECT_EQ(wire(j), "jobs 10 repo=tools\n");
  EXPECT_EQ(round_trip(j).repo, "tools");
  j.repo = "-";  // the default repository
  EXPECT_EQ(round_trip(j).repo, "-");
  j.branch = "main";
  j.status = "queued";
  auto back = round_trip(j);
  EXPECT_EQ(back.branch, "main");
  EXPECT_EQ(back.status, "queued");
  EXPECT_EQ(back.repo, "-");
  EXPECT_EQ(reason("jobs 10 repo=" + kCommit + "\n"), "repository name must not be a commit id");
  EXPECT_EQ(reason("jobs 10 repo=a repo=b\n"), "jobs takes one repo=");
  EXPECT_EQ(reason("jobs 10 repo=a/b\n"),
            "repository name may hold only letters, digits, '.', '-' and '_'");
}

TEST(ManyReposProtocol, ReposReplyRoundTripsAndRejectsMalformedRows) {
  ReposReply r;
  r.repos.push_back({"tools", "https://example.com/tools.git", false, 3, 1, 20});
  r.repos.push_back({"web", "/srv/web", true, 0, 0, 0});
  Reply reply = to_reply(r);
  EXPECT_EQ(reply.body,
            "name url order jobs-queued jobs-running jobs-finished\n"
            "tools https://example.com/tools.git oldest 3 1 20\n"
            "web /srv/web newest 0 0 0\n");
  auto back = parse_repos_reply(reply);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, r);
  auto none = parse_repos_reply(to_reply(ReposReply{}));
  ASSERT_TRUE(none.ok()) << none.error();
  EXPECT_TRUE(none->repos.empty());

  const std::string header = "name url order jobs-queued jobs-running jobs-finished\n";
  auto rejection = [](const std::string& body) {
    auto p = parse_repos_reply(Reply::ok_with_body(body));
    return p.ok() ? std::string() : p.error();
  };
  EXPECT_EQ(rejection(header + "a /a oldest 0 0 0\n"), "");
  EXPECT_EQ(rejection("a /a oldest 0 0 0\n").rfind("repos reply, line 1: expected the header", 0),
            0u);
  EXPECT_EQ(rejection(header + "a /a oldest 0 0\n"),
            "repos reply, line 2: expected 6 words separated by single spaces");
  EXPECT_EQ(rejection(header + kCommit + " /a oldest 0 0 0\n"),
            "repos reply, line 2: name: repository name must not be a commit id");
  EXPECT_EQ(rejection(header + "a -a oldest 0 0 0\n"),
            "repos reply, line 2: url: repository url starts with '-'");
  EXPECT_EQ(rejection(header + "a /a random 0 0 0\n"),
            "repos reply, line 2: order must be oldest or newest");
  EXPECT_EQ(rejection(header + "a /a oldest 0 x 0\n"),
            "repos reply, line 2: job counts must be numbers");
  EXPECT_EQ(parse_repos_reply(Reply::err("no")).error(), "repos reply: ERR no");
}

TEST(ManyReposProtocol, FeedJobCarriesRepositoryLabelsAndWaiting) {
  JobInfo job;
  job.id = 7;
  job.commit = kCommit;
  job.branch = "main";
  job.state = "queued";
  job.repo = "tools";
  job.required = {"gpu", "py3.11"};
  job.waiting = "waiting for a runner with gpu";
  job.seq = 3;
  FeedEvent e;
  e.seq = 3;
  e.kind = EventKind::JobQueued;
  e.job = job;
  auto back = parse_event(serialize_event(e));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->job, job);
  EXPECT_NE(serialize_event(e).find(R"("repo":"tools")"), std::string::npos);
  EXPECT_NE(serialize_event(e).find(R"("requires":["gpu","py3.11"])"), std::string::npos);
  // The default repository: no repo key at all.
  job.repo.clear();
  e.job = job;
  EXPECT_EQ(serialize_event(e).find("\"repo\""), std::string::npos);

  EXPECT_FALSE(parse_event(R"({"seq":1,"kind":"job.queued","job":{"id":1,"repo":"a/b"}})").ok());
  EXPECT_FALSE(
      parse_event(R"({"seq":1,"kind":"job.queued","job":{"id":1,"requires":["-x"]}})").ok());
  EXPECT_FALSE(
      parse_event(R"({"seq":1,"kind":"job.queued","job":{"id":1,"requires":"gpu"}})").ok());
}

}  // namespace
}  // namespace ci
