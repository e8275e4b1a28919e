#include "ci/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdlib>

#include "ci/files.h"

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

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
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
  if (RAND_bytes(bytes, sizeof bytes) != 1) std::abort();  // no safe way on without entropy
  return to_hex(bytes, sizeof bytes);
}

std::string prove_token(const std::string& token, const std::string& nonce) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()),
       reinterpret_cast<const unsigned char*>(nonce.data()), nonce.size(), mac, &len);
  return to_hex(mac, len);
}

bool check_proof(const std::string& token, const std::string& nonce, const std::string& proof) {
  std::string expected = prove_token(token, nonce);
  if (proof.size() != expected.size()) return false;
  return CRYPTO_memcmp(proof.data(), expected.data(), expected.size()) == 0;
}

Result<void> check_bind_policy(const std::string& host, bool has_token, bool insecure) {
  if (is_loopback(host) || has_token || insecure) return {};
  return make_error("refusing to listen on " + host +
                    " without a token: anyone who can reach it could register runners, "
                    "queue commits and post results. Give --token-file (or CI_TOKEN_FILE), "
                    "or --insecure if the network is trusted");
}

}  // namespace ci
