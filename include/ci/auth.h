// Shared-token authentication. The token never crosses the wire: a server with a
// token greets each connection with "AUTH <nonce>", and the client's first line must be
// "auth <hex HMAC-SHA256(token, nonce)>". Compared in constant time.
#pragma once

#include <string>

#include "ci/result.h"

namespace ci {

// The token from --token-file, or from the file the CI_TOKEN_FILE environment
// variable names when the flag is empty; "" when neither is given. The file's content
// with surrounding white space removed must be at least 16 bytes.
Result<std::string> load_token(const std::string& token_file_flag);

std::string make_nonce();  // 32 random bytes, as hex
std::string prove_token(const std::string& token, const std::string& nonce);
bool check_proof(const std::string& token, const std::string& nonce, const std::string& proof);

// A daemon binds a non-loopback address only with a token, or when told --insecure.
Result<void> check_bind_policy(const std::string& host, bool has_token, bool insecure);

}  // namespace ci
