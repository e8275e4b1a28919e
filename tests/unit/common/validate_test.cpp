#include "ci/validate.h"

#include <gtest/gtest.h>

#include "ci/auth.h"

namespace ci {
namespace {

TEST(Validate, CommitIds) {
  EXPECT_EQ(check_commit_id(std::string(40, 'a')), "");
  EXPECT_EQ(check_commit_id(std::string(64, '0')), "");
  EXPECT_NE(check_commit_id(std::string(39, 'a')), "");
  EXPECT_NE(check_commit_id(std::string(41, 'a')), "");
  EXPECT_NE(check_commit_id("../" + std::string(37, 'a')), "");
}

TEST(Validate, CommitIdsAreNormalisedToLowerCase) {
  EXPECT_EQ(normalize_commit_id("0123456789ABCDEFabcdef0123456789ABCDEF01"),
            "0123456789abcdefabcdef0123456789abcdef01");
  EXPECT_EQ(normalize_commit_id(std::string(64, 'E')), std::string(64, 'e'));
  EXPECT_EQ(normalize_commit_id(std::string(40, '7')), std::string(40, '7'));
}

TEST(Validate, HostPort) {
  auto hp = parse_host_port("localhost:8888");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "localhost");
  EXPECT_EQ(hp->port, 8888);
  auto v6 = parse_host_port("[::1]:9000");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->str(), "[::1]:9000");
  std::string why;
  EXPECT_FALSE(parse_host_port("localhost", &why));
  EXPECT_NE(why.find("host:port"), std::string::npos);
  EXPECT_FALSE(parse_host_port("localhost:0", &why));
  EXPECT_FALSE(parse_host_port("localhost:65536", &why));
  EXPECT_FALSE(parse_host_port("local host:80", &why));
}

TEST(Validate, LoopbackIsOnlyALoopbackAddressOrLocalhost) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "127.255.255.254", "::1", "0:0:0:0:0:0:0:1",
                           "::ffff:127.0.0.1", "localhost", "LocalHost"})
    EXPECT_TRUE(is_loopback(host)) << host;
  for (const char* host : {"127.0.0.1.example.com", "127.evil", "127.", "127.0.0.1x", "127.1",
                           "0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "::ffff:10.0.0.1", "::2",
                           "localhost.example.com", "localhost.", "", " 127.0.0.1", "example.com"})
    EXPECT_FALSE(is_loopback(host)) << host;
}

// A daemon refuses to listen without a token on anything but a loopback address.
TEST(Validate, BindPolicyRefusesANameThatOnlyLooksLikeLoopback) {
  EXPECT_TRUE(check_bind_policy("127.0.0.1", false, false).ok());
  EXPECT_TRUE(check_bind_policy("::1", false, false).ok());
  EXPECT_FALSE(check_bind_policy("127.0.0.1.example.com", false, false).ok());
  EXPECT_FALSE(check_bind_policy("127.evil", false, false).ok());
  EXPECT_TRUE(check_bind_policy("127.evil", true, false).ok());
  EXPECT_TRUE(check_bind_policy("0.0.0.0", false, true).ok());
}

TEST(Validate, NumbersAreStrict) {
  EXPECT_EQ(parse_u64("0"), 0u);
  EXPECT_EQ(parse_u64("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(parse_u64("18446744073709551616"));
  EXPECT_FALSE(parse_u64("+1"));
  EXPECT_FALSE(parse_u64("-1"));
  EXPECT_FALSE(parse_u64(" 1"));
  EXPECT_FALSE(parse_u64(""));
  EXPECT_EQ(parse_count("-"), -1);
}

TEST(Validate, LogEscapingKeepsOneLine) {
  EXPECT_EQ(escape_for_log("a\nb\x1b[31m"), "a\\x0ab\\x1b[31m");
  EXPECT_EQ(escape_for_log(std::string(10, 'x'), 4), "xxxx...");
  EXPECT_EQ(escape_for_log("caf\xc3\xa9 \xff\\"), "caf\\xc3\\xa9 \\xff\\x5c");
}

}  // namespace
}  // namespace ci
