#include "ci/auth.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cctype>
#include <fstream>
#include <set>

#include "test_support.h"

namespace ci {
namespace {

const std::string kToken = "c2VjcmV0LW9mLWF0LWxlYXN0LTMyLWNoYXJhY3RlcnM=";

TEST(Auth, NonceIs32RandomBytesInLowerCaseHex) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string nonce = make_nonce();
    ASSERT_EQ(nonce.size(), 64u);
    EXPECT_EQ(nonce.find_first_not_of("0123456789abcdef"), std::string::npos) << nonce;
    EXPECT_TRUE(is_nonce(nonce)) << nonce;
    seen.insert(nonce);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(Auth, IsNonceTakesExactly64LowerCaseHexDigits) {
  const std::string nonce = make_nonce();
  EXPECT_FALSE(is_nonce(""));
  EXPECT_FALSE(is_nonce(nonce.substr(1)));
  EXPECT_FALSE(is_nonce(nonce + "0"));
  EXPECT_FALSE(is_nonce(std::string(63, 'a') + "A"));
  EXPECT_FALSE(is_nonce(std::string(63, 'a') + "g"));
  EXPECT_FALSE(is_nonce(std::string(63, 'a') + " "));
  EXPECT_TRUE(is_nonce(std::string(64, 'f')));
}

std::string bytes(size_t n, int value) { return std::string(n, static_cast<char>(value)); }

// libcrypto's HMAC-SHA256 against RFC 4231, section 4 (test case 5, truncated, left out).
TEST(Auth, HmacSha256MatchesRfc4231) {
  std::string key4;
  for (int i = 1; i <= 25; ++i) key4 += static_cast<char>(i);
  struct Case {
    std::string key, data, expected;
  } cases[] = {
      {bytes(20, 0x0b), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {bytes(20, 0xaa), bytes(50, 0xdd),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {key4, bytes(50, 0xcd), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {bytes(131, 0xaa), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {bytes(131, 0xaa),
       "This is a test using a larger than block-size key and a larger than block-size data. "
       "The key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (const auto& c : cases) EXPECT_EQ(hmac_sha256_hex(c.key, c.data), c.expected) << c.data;
}

// The proofs on the wire, as ci/auth.h defines them. The expected values were computed
// once with Python:
//   hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()
TEST(Auth, ProofsAreTheHexHmacOfTheDocumentedMessages) {
  const std::string server_nonce(64, 'a');
  const std::string client_nonce(64, 'b');
  EXPECT_EQ(
      client_proof(kToken, "dispatcher", server_nonce, client_nonce),
      hmac_sha256_hex(kToken, "tinyci client->dispatcher " + server_nonce + " " + client_nonce));
  EXPECT_EQ(
      server_proof(kToken, "dispatcher", server_nonce, client_nonce),
      hmac_sha256_hex(kToken, "tinyci server dispatcher " + server_nonce + " " + client_nonce));
  EXPECT_EQ(client_proof(kToken, "dispatcher", server_nonce, client_nonce),
            "9f7b3138f509973f5e65c874fc212b2372d07321dfdec51dbafd39c78a3232d4");
  EXPECT_EQ(server_proof(kToken, "dispatcher", server_nonce, client_nonce),
            "379776b7e8c0ac3c1d0ad5971ed9d2971789f0011e6951f27fbcb161f149d4ed");
}

TEST(Auth, AProofVerifiesOnlyForItsServiceDirectionAndNonces) {
  const std::string sn = make_nonce(), cn = make_nonce();
  const std::string proof = client_proof(kToken, kDispatcherService, sn, cn);
  ASSERT_TRUE(check_client_proof(kToken, kDispatcherService, sn, cn, proof));
  // Another service: what a relayed greeting gets signed for.
  EXPECT_FALSE(check_client_proof(kToken, kObserverService, sn, cn, proof));
  EXPECT_FALSE(check_client_proof(kToken, kRunnerService, sn, cn, proof));
  // The other direction: a client's proof is no server's proof, and the reverse.
  EXPECT_FALSE(check_server_proof(kToken, kDispatcherService, sn, cn, proof));
  const std::string answer = server_proof(kToken, kDispatcherService, sn, cn);
  ASSERT_TRUE(check_server_proof(kToken, kDispatcherService, sn, cn, answer));
  EXPECT_FALSE(check_client_proof(kToken, kDispatcherService, sn, cn, answer));
  EXPECT_NE(proof, answer);
  // Either nonce changed, or the two swapped.
  EXPECT_FALSE(check_client_proof(kToken, kDispatcherService, make_nonce(), cn, proof));
  EXPECT_FALSE(check_client_proof(kToken, kDispatcherService, sn, make_nonce(), proof));
  EXPECT_FALSE(check_client_proof(kToken, kDispatcherService, cn, sn, proof));
  EXPECT_FALSE(check_server_proof(kToken, kDispatcherService, sn, make_nonce(), answer));
  EXPECT_FALSE(check_server_proof(kToken, kDispatcherService, make_nonce(), cn, answer));
  // Another token.
  const std::string other = "another-secret-of-at-least-32-characters";
  EXPECT_FALSE(check_client_proof(other, kDispatcherService, sn, cn, proof));
  EXPECT_FALSE(check_server_proof(other, kDispatcherService, sn, cn, answer));
}

TEST(Auth, CheckRefusesAnyOtherText) {
  const std::string sn = make_nonce(), cn = make_nonce();
  const std::string proof = client_proof(kToken, kRunnerService, sn, cn);
  auto check = [&](const std::string& p) {
    return check_client_proof(kToken, kRunnerService, sn, cn, p);
  };
  ASSERT_TRUE(check(proof));
  EXPECT_FALSE(check(""));
  EXPECT_FALSE(check(proof.substr(0, 63)));
  EXPECT_FALSE(check(proof + "0"));
  for (size_t i : {size_t{0}, size_t{31}, size_t{63}}) {
    std::string changed = proof;
    changed[i] = changed[i] == '0' ? '1' : '0';
    EXPECT_FALSE(check(changed)) << i;
  }
  std::string upper = proof;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper != proof) {
    EXPECT_FALSE(check(upper));  // exact, as the wire format has it
  }
}

class TokenFile : public ::testing::Test {
 protected:
  // Writes `content` to a file with `mode` and loads it.
  Result<std::string> load(const std::string& content, mode_t mode) {
    std::ofstream(path) << content;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return load_token(path);
  }
  test::TempDir dir;
  std::string path = dir / "token";
};

TEST_F(TokenFile, AStrongPrivateTokenIsTakenWithoutSurroundingWhiteSpace) {
  auto token = load("  " + kToken + "\n\n", 0600);
  ASSERT_TRUE(token.ok()) << token.error();
  EXPECT_EQ(*token, kToken);
  auto read_only = load(std::string(32, 'f') + "\n", 0400);
  ASSERT_TRUE(read_only.ok()) << read_only.error();
  EXPECT_EQ(*read_only, std::string(32, 'f'));
}

TEST_F(TokenFile, FewerThan32CharactersAreRefusedWithHowToMakeOne) {
  auto token = load(std::string(31, 'f') + "\n", 0600);
  ASSERT_FALSE(token.ok());
  EXPECT_NE(token.error().find("31 characters"), std::string::npos) << token.error();
  EXPECT_NE(token.error().find("at least 32"), std::string::npos) << token.error();
  EXPECT_NE(token.error().find("head -c 32 /dev/urandom | base64 > " + path), std::string::npos)
      << token.error();
  EXPECT_NE(token.error().find("chmod 600 " + path), std::string::npos) << token.error();
  // White space does not count.
  EXPECT_FALSE(load("  " + std::string(31, 'f') + "  \n", 0600).ok());
  EXPECT_FALSE(load("", 0600).ok());
}

TEST_F(TokenFile, AFileTheGroupOrOthersMayReadOrWriteIsRefusedWithTheFix) {
  for (mode_t mode : {0640, 0620, 0604, 0602, 0644, 0666, 0660}) {
    auto token = load(kToken, mode);
    ASSERT_FALSE(token.ok()) << std::oct << mode;
    EXPECT_NE(token.error().find("group or others"), std::string::npos) << token.error();
    EXPECT_NE(token.error().find("chmod 600 " + path), std::string::npos) << token.error();
  }
  auto token = load(kToken, 0644);
  ASSERT_FALSE(token.ok());
  EXPECT_NE(token.error().find("(mode 0644)"), std::string::npos) << token.error();
}

TEST_F(TokenFile, MissingFileOrAFolderIsAClearError) {
  auto missing = load_token(dir / "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find(dir / "missing"), std::string::npos) << missing.error();
  EXPECT_NE(missing.error().find("No such file"), std::string::npos) << missing.error();
  ASSERT_EQ(::mkdir((dir / "folder").c_str(), 0700), 0);
  auto folder = load_token(dir / "folder");
  ASSERT_FALSE(folder.ok());
  EXPECT_NE(folder.error().find("not a regular file"), std::string::npos) << folder.error();
}

TEST_F(TokenFile, TheEnvironmentNamesTheFileWhenTheFlagIsEmpty) {
  std::ofstream(path) << kToken;
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  ASSERT_EQ(::setenv("CI_TOKEN_FILE", path.c_str(), 1), 0);
  auto token = load_token("");
  ::unsetenv("CI_TOKEN_FILE");
  ASSERT_TRUE(token.ok()) << token.error();
  EXPECT_EQ(*token, kToken);
  auto none = load_token("");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "");
}

}  // namespace
}  // namespace ci
