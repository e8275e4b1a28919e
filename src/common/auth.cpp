#include "ci/auth.h"

#include <sys/random.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ci/files.h"
#include "ci/sha256.h"
#include "ci/validate.h"

namespace ci {

namespace {

std::string to_hex(const unsigned char* data, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

// Fills the buffer from the kernel's random number generator. getrandom(2) without
// flags blocks only until the generator is first seeded at boot; a signal can interrupt
// it, and it may return fewer bytes than asked.
Result<void> random_bytes(unsigned char* out, size_t size) {
  size_t filled = 0;
  while (filled < size) {
    ssize_t n = getrandom(out + filled, size - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(std::string("getrandom: ") + std::strerror(errno));
    }
    filled += static_cast<size_t>(n);
  }
  return {};
}

// Compares without a data-dependent branch or early exit, so the time taken says
// nothing about where the first difference is. The lengths are not secret.
bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i)
    difference = difference | static_cast<unsigned char>(a[i] ^ b[i]);
  return difference == 0;
}

}  // namespace

Result<std::string> load_token(const std::string& token_file_flag) {
  std::string path = token_file_flag;
  if (path.empty()) {
    const char* env = std::getenv("CI_TOKEN_FILE");
    if (env && *env) path = env;
  }
  if (path.empty()) return std::string();
  auto text = read_file(path);
  if (!text) return make_error("token file: " + text.error());
  std::string token = *text;
  size_t start = token.find_first_not_of(" \t\r\n");
  size_t end = token.find_last_not_of(" \t\r\n");
  token = start == std::string::npos ? "" : token.substr(start, end - start + 1);
  if (token.size() < 16)
    return make_error("token file " + path + " must hold a token of at least 16 characters");
  return token;
}

std::string make_nonce() {
  unsigned char bytes[32];
  if (auto r = random_bytes(bytes, sizeof bytes); !r) {
    // No safe way on: a predictable nonce would let a recorded proof be replayed.
    std::fprintf(stderr, "fatal: cannot draw a random authentication nonce: %s\n",
                 r.error().c_str());
    std::abort();
  }
  return to_hex(bytes, sizeof bytes);
}

std::string prove_token(const std::string& token, const std::string& nonce) {
  Sha256::Digest mac = hmac_sha256(token, nonce);
  return to_hex(mac.data(), mac.size());
}

bool check_proof(const std::string& token, const std::string& nonce, const std::string& proof) {
  return constant_time_equal(proof, prove_token(token, nonce));
}

Result<void> check_bind_policy(const std::string& host, bool has_token, bool insecure) {
  if (is_loopback(host) || has_token || insecure) return {};
  return make_error("refusing to listen on " + host +
                    " without a token: anyone who can reach it could register runners, "
                    "queue commits and post results. Give --token-file (or CI_TOKEN_FILE), "
                    "or --insecure if the network is trusted");
}

}  // namespace ci
