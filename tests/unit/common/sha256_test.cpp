#include "ci/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace ci {
namespace {

std::string hex(const Sha256::Digest& digest) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : digest) {
    out += digits[byte >> 4];
    out += digits[byte & 15];
  }
  return out;
}

// n bytes of a pattern that is neither constant nor periodic in 64 bytes.
std::string pattern(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += static_cast<char>((i * 7 + 3) & 0xff);
  return out;
}

// The examples of FIPS 180-4 (NIST's "SHA-256" example computations).
TEST(Sha256, FipsExamples) {
  EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 448 bits.
  EXPECT_EQ(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // 896 bits.
  EXPECT_EQ(hex(sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                       "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, OneMillionAs) {
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  EXPECT_EQ(hex(sha256(std::string(1000000, 'a'))), expected);
  Sha256 hash;  // and in pieces of a length prime to the block size
  std::string piece(997, 'a');
  size_t left = 1000000;
  for (; left >= piece.size(); left -= piece.size()) hash.update(piece);
  hash.update(std::string(left, 'a'));
  EXPECT_EQ(hex(hash.finish()), expected);
}

// Lengths on both sides of where the padding needs a second block (55/56 bytes in the
// last block) and of the block size. The expected digests were computed once with
// Python's hashlib:
//   hashlib.sha256(bytes((i * 7 + 3) & 0xff for i in range(n))).hexdigest()
TEST(Sha256, PaddingBoundaries) {
  const std::pair<size_t, const char*> cases[] = {
      {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
      {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
      {57, "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73"},
      {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
      {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
      {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
      {119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"},
      {120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"},
      {127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07"},
      {128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"},
      {129, "307f8fc2c1622b92762e818d39a185d4d667ad49a4b07ceae1f4afa008a93ec4"},
  };
  for (const auto& [length, expected] : cases)
    EXPECT_EQ(hex(sha256(pattern(length))), expected) << length << " bytes";
}

TEST(Sha256, AnySplitInTwoGivesTheDigestOfTheWhole) {
  for (size_t length : {0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 200}) {
    const std::string message = pattern(length);
    const Sha256::Digest whole = sha256(message);
    for (size_t cut = 0; cut <= length; ++cut) {
      Sha256 hash;
      hash.update(message.substr(0, cut));
      hash.update(message.substr(cut));
      EXPECT_EQ(hash.finish(), whole) << length << " bytes cut at " << cut;
    }
  }
}

TEST(Sha256, ByteAtATimeAndEmptyPiecesGiveTheDigestOfTheWhole) {
  const std::string message = pattern(300);
  Sha256 hash;
  for (char c : message) {
    hash.update(&c, 1);
    hash.update("", 0);
  }
  EXPECT_EQ(hash.finish(), sha256(message));
}

TEST(Sha256, FinishStartsANewMessage) {
  Sha256 hash;
  hash.update("some earlier message");
  (void)hash.finish();
  hash.update("abc");
  EXPECT_EQ(hex(hash.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

std::string bytes(size_t n, unsigned char value) {
  return std::string(n, static_cast<char>(value));
}

// RFC 4231, section 4: test cases 1 to 7 for HMAC-SHA256.
TEST(HmacSha256, Rfc4231) {
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
      // Test case 5 gives only the first 128 bits of the MAC.
      {bytes(20, 0x0c), "Test With Truncation", "a3b6167473100ee06e0c796c2955552b"},
      {bytes(131, 0xaa), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {bytes(131, 0xaa),
       "This is a test using a larger than block-size key and a larger than block-size data. "
       "The key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  int number = 0;
  for (const auto& c : cases) {
    ++number;
    std::string mac = hex(hmac_sha256(c.key, c.data));
    EXPECT_EQ(mac.substr(0, c.expected.size()), c.expected) << "test case " << number;
  }
}

TEST(HmacSha256, PiecesAndReuseGiveTheSameMac) {
  const std::string key = bytes(131, 0xaa);
  const std::string data =
      "This is a test using a larger than block-size key and a larger than block-size data. "
      "The key needs to be hashed before being used by the HMAC algorithm.";
  const std::string expected = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2";
  HmacSha256 mac(key);
  for (size_t i = 0; i < data.size(); i += 10) mac.update(data.substr(i, 10));
  EXPECT_EQ(hex(mac.finish()), expected);
  mac.update(data);  // the same key again, for a new message
  EXPECT_EQ(hex(mac.finish()), expected);
}

// Keys on both sides of the block size: up to 64 bytes a key is padded with zeros, a
// longer one is hashed first. The expected MACs were computed once with Python:
//   hmac.new(b"a" * n, b"m", hashlib.sha256).hexdigest()
TEST(HmacSha256, KeysAroundTheBlockSize) {
  EXPECT_EQ(hex(hmac_sha256("", "m")),
            "a64092104c76d9ef65599c33c177609ecd49857456eb28133c4daea25bea960a");
  EXPECT_EQ(hex(hmac_sha256(bytes(63, 'a'), "m")),
            "ad3806466bae96aeb1e2d141e377ef1247b4aa44d3abf714ffff2e26a844766f");
  EXPECT_EQ(hex(hmac_sha256(bytes(64, 'a'), "m")),
            "cd11329ff173063b748ca80406312ca140e95e65d03ba7fa546fdaab1aac03f1");
  EXPECT_EQ(hex(hmac_sha256(bytes(65, 'a'), "m")),
            "5d5f27064dc43c62a01463f9866c581d865b2ddcbb928b616b43a5f0e71f5de5");
  // An empty key is the zero block, like a key of one zero byte.
  EXPECT_EQ(hmac_sha256("", "m"), hmac_sha256(std::string(1, '\0'), "m"));
}

}  // namespace
}  // namespace ci
