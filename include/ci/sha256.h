// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the token authentication
// (ci/auth.h). Small and portable rather than fast: the daemons hash a few dozen bytes
// per connection, and linking a whole cryptography library for that costs more memory
// than the rest of an idle daemon's own code.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ci {

class Sha256 {
 public:
  static constexpr size_t kDigestSize = 32;
  static constexpr size_t kBlockSize = 64;
  using Digest = std::array<unsigned char, kDigestSize>;

  Sha256() { reset(); }

  // Starts a new message.
  void reset();
  // Appends bytes to the message; any split of a message into pieces gives the same
  // digest as the whole.
  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // The digest of everything given since the last reset; then starts a new message.
  Digest finish();

 private:
  void compress(const unsigned char* block);

  std::array<uint32_t, 8> state_{};
  std::array<unsigned char, kBlockSize> buffer_{};
  size_t buffered_ = 0;  // bytes of buffer_ in use, always < kBlockSize
  uint64_t length_ = 0;  // message length so far, in bytes
};

Sha256::Digest sha256(std::string_view message);

// HMAC-SHA256 with a key of any length, fed in pieces like Sha256.
class HmacSha256 {
 public:
  explicit HmacSha256(std::string_view key);
  void update(const void* data, size_t size) { inner_.update(data, size); }
  void update(std::string_view bytes) { inner_.update(bytes); }
  // The MAC of everything given since construction; then starts a new message with
  // the same key.
  Sha256::Digest finish();

 private:
  std::array<unsigned char, Sha256::kBlockSize> outer_pad_{};
  std::array<unsigned char, Sha256::kBlockSize> inner_pad_{};
  Sha256 inner_;
};

Sha256::Digest hmac_sha256(std::string_view key, std::string_view message);

}  // namespace ci
