#include "ci/auth.h"

#include <gtest/gtest.h>

#include <cctype>
#include <set>

namespace ci {
namespace {

TEST(Auth, NonceIs32RandomBytesInLowerCaseHex) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string nonce = make_nonce();
    ASSERT_EQ(nonce.size(), 64u);
    EXPECT_EQ(nonce.find_first_not_of("0123456789abcdef"), std::string::npos) << nonce;
    seen.insert(nonce);
  }
  EXPECT_EQ(seen.size(), 100u);
}

// The proof on the wire: lower-case hex of HMAC-SHA256(token, nonce). The expected
// value was computed once with Python:
//   hmac.new(token.encode(), nonce.encode(), hashlib.sha256).hexdigest()
TEST(Auth, ProofIsTheHexHmacOfTheNonceUnderTheToken) {
  const std::string token = "a-shared-secret-of-some-length";
  const std::string nonce = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  const std::string proof = "95cdad82167181231a3e00847934b6a64bfe616c9b9fb5f935efb89ede5955d4";
  EXPECT_EQ(prove_token(token, nonce), proof);
  EXPECT_TRUE(check_proof(token, nonce, proof));
}

TEST(Auth, CheckProofRefusesAnythingElse) {
  const std::string token = "a-shared-secret-of-some-length";
  const std::string nonce = make_nonce();
  const std::string proof = prove_token(token, nonce);
  ASSERT_TRUE(check_proof(token, nonce, proof));
  EXPECT_FALSE(check_proof("another-secret-of-some-length", nonce, proof));
  EXPECT_FALSE(check_proof(token, make_nonce(), proof));
  EXPECT_FALSE(check_proof(token, nonce, ""));
  EXPECT_FALSE(check_proof(token, nonce, proof.substr(0, 63)));
  EXPECT_FALSE(check_proof(token, nonce, proof + "0"));
  for (size_t i : {size_t{0}, size_t{31}, size_t{63}}) {
    std::string changed = proof;
    changed[i] = changed[i] == '0' ? '1' : '0';
    EXPECT_FALSE(check_proof(token, nonce, changed)) << i;
  }
  std::string upper = proof;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper != proof) {
    EXPECT_FALSE(check_proof(token, nonce, upper));  // exact, as the wire format has it
  }
}

}  // namespace
}  // namespace ci
