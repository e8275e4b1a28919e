#include "ci/auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ci/files.h"
#include "ci/validate.h"

namespace ci {

namespace {

// More than any token needs: a bigger file is not a token file.
constexpr size_t kMaxTokenFile = 4096;

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

[[noreturn]] void crypto_failed(const char* what) {
  // No safe way on: a predictable nonce would let a recorded proof be replayed, and a
  // missing MAC would leave nothing to compare.
  char reason[256];
  ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
  std::fprintf(stderr, "fatal: %s: %s\n", what, reason);
  std::abort();
}

// Compares in time that depends on the lengths only, which are not secret.
bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string proof_message(std::string_view prefix, std::string_view service,
                          std::string_view server_nonce, std::string_view client_nonce) {
  std::string message;
  message.reserve(prefix.size() + service.size() + server_nonce.size() + client_nonce.size() + 2);
  message.append(prefix).append(service);
  message.append(" ").append(server_nonce);
  message.append(" ").append(client_nonce);
  return message;
}

std::string how_to_make_one(const std::string& path) {
  return "make one with: head -c 32 /dev/urandom | base64 > " + path + "; chmod 600 " + path;
}

}  // namespace

Result<std::string> load_token(const std::string& token_file_flag) {
  std::string path = token_file_flag;
  if (path.empty()) {
    const char* env = std::getenv("CI_TOKEN_FILE");
    if (env && *env) path = env;
  }
  if (path.empty()) return std::string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return make_error("cannot open token file " + path + ": " + std::strerror(errno));
  // The checks and the read are on the same open file: nothing can swap it in between.
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return make_error("cannot stat token file " + path + ": " + why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error("token file " + path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error("token file " + path +
                      " may be read or written by its group or others (mode " + mode +
                      "); a shared secret must be its owner's alone: chmod 600 " + path);
  }
  std::string token;
  char buf[1024];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string why = std::strerror(errno);
      ::close(fd);
      return make_error("cannot read token file " + path + ": " + why);
    }
    if (n == 0) break;
    token.append(buf, static_cast<size_t>(n));
    if (token.size() > kMaxTokenFile) {
      ::close(fd);
      return make_error("token file " + path + " is larger than " + std::to_string(kMaxTokenFile) +
                        " bytes: is it the right file?");
    }
  }
  ::close(fd);
  size_t start = token.find_first_not_of(" \t\r\n");
  size_t end = token.find_last_not_of(" \t\r\n");
  token = start == std::string::npos ? "" : token.substr(start, end - start + 1);
  if (token.size() < kMinTokenLength)
    return make_error("token file " + path + " holds a token of " + std::to_string(token.size()) +
                      " characters; at least " + std::to_string(kMinTokenLength) +
                      " random ones are needed (128 bits): " + how_to_make_one(path));
  return token;
}

std::string make_nonce() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    crypto_failed("cannot draw a random authentication nonce");
  return to_hex(bytes, sizeof bytes);
}

bool is_nonce(std::string_view text) {
  return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // HMAC() takes the key's length as an int; a token file holds at most 4 KiB.
  if (key.size() > static_cast<size_t>(INT_MAX) ||
      !HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &size))
    crypto_failed("cannot compute HMAC-SHA256");
  return to_hex(mac, size);
}

std::string client_proof(std::string_view token, std::string_view service,
                         std::string_view server_nonce, std::string_view client_nonce) {
  return hmac_sha256_hex(token,
                         proof_message("tinyci client->", service, server_nonce, client_nonce));
}

std::string server_proof(std::string_view token, std::string_view service,
                         std::string_view server_nonce, std::string_view client_nonce) {
  return hmac_sha256_hex(token,
                         proof_message("tinyci server ", service, server_nonce, client_nonce));
}

bool check_client_proof(std::string_view token, std::string_view service,
                        std::string_view server_nonce, std::string_view client_nonce,
                        std::string_view proof) {
  return constant_time_equal(proof, client_proof(token, service, server_nonce, client_nonce));
}

bool check_server_proof(std::string_view token, std::string_view service,
                        std::string_view server_nonce, std::string_view client_nonce,
                        std::string_view proof) {
  return constant_time_equal(proof, server_proof(token, service, server_nonce, client_nonce));
}

Result<void> check_bind_policy(const std::string& host, bool has_token, bool insecure,
                               std::string_view exposed) {
  if (is_loopback(host) || has_token || insecure) return {};
  return make_error("refusing to listen on " + host +
                    " without a token: anyone who can reach it could " + std::string(exposed) +
                    ". Give --token-file (or CI_TOKEN_FILE), or --insecure if the network is "
                    "trusted");
}

}  // namespace ci
