// Shared-token authentication. The token never crosses the wire; each side proves it
// holds the token with an HMAC-SHA256 over both sides' nonces, bound to the service
// called and to the direction, so that a proof made for one connection is worth nothing
// on any other:
//
//   server: AUTH <server-nonce>
//   client: auth <client-nonce> <client-proof>
//   server: OK <server-proof>            (or ERR auth, and the connection is closed)
//
//   client-proof = hex HMAC-SHA256(token, "tinyci client->" + service + " " +
//                                         server-nonce + " " + client-nonce)
//   server-proof = hex HMAC-SHA256(token, "tinyci server " + service + " " +
//                                         server-nonce + " " + client-nonce)
//
// Nonces are 32 random bytes as lower-case hex; `service` is the name of the daemon
// being called ("dispatcher", "runner" or "observer"), which the server knows of itself
// and the client knows of the address it was given. A client answering a greeting that
// some other server relayed signs the name of the service it meant to call, which the
// relaying party cannot use anywhere else; and a client goes on only after the server
// has proved it holds the token too. Proofs are compared in constant time.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "ci/result.h"

namespace ci {

// The service names the handshake binds proofs to.
inline constexpr char kDispatcherService[] = "dispatcher";
inline constexpr char kRunnerService[] = "runner";
inline constexpr char kObserverService[] = "observer";

// A token must have at least this many characters (surrounding white space aside): 32
// hex digits are 128 bits, and base64 of 32 random bytes is 44 characters.
inline constexpr size_t kMinTokenLength = 32;

// The token from --token-file, or from the file the CI_TOKEN_FILE environment
// variable names when the flag is empty; "" when neither is given. Refused, with a
// message saying how to fix it: a file that is not a regular file, one that its group
// or others may read or write (as ssh refuses such a key: chmod 600 it), and a token
// of fewer than kMinTokenLength characters.
Result<std::string> load_token(const std::string& token_file_flag);

std::string make_nonce();              // 32 random bytes, as lower-case hex
bool is_nonce(std::string_view text);  // exactly 64 lower-case hex digits

// Lower-case hex of HMAC-SHA256(key, message).
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

// The proofs of the handshake above.
std::string client_proof(std::string_view token, std::string_view service,
                         std::string_view server_nonce, std::string_view client_nonce);
std::string server_proof(std::string_view token, std::string_view service,
                         std::string_view server_nonce, std::string_view client_nonce);
// Constant-time checks of a received proof against the expected one.
bool check_client_proof(std::string_view token, std::string_view service,
                        std::string_view server_nonce, std::string_view client_nonce,
                        std::string_view proof);
bool check_server_proof(std::string_view token, std::string_view service,
                        std::string_view server_nonce, std::string_view client_nonce,
                        std::string_view proof);

// A daemon binds a non-loopback address only with a token, or when told --insecure.
// `exposed` says what anyone who can reach it could then do ("make it run tests"), for
// the refusal's message.
Result<void> check_bind_policy(const std::string& host, bool has_token, bool insecure,
                               std::string_view exposed =
                                   "register runners, queue commits "
                                   "and post results");

}  // namespace ci
