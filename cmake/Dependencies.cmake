# Every dependency comes from Debian's packages (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
# libcrypto (libssl-dev) for the token handshake: HMAC-SHA256, random nonces and a
# constant-time compare. Linked privately by ci_common: no OpenSSL header in include/ci/.
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
pkg_check_modules(LIBGIT2 REQUIRED IMPORTED_TARGET libgit2)
# nlohmann-json3-dev, headers only: the feed's JSON lines, the reporter's API and
# cictl's --json output.
find_package(nlohmann_json 3 REQUIRED)
# libpugixml-dev: the runner reads JUnit XML reports.
find_package(pugixml REQUIRED)
# libmicrohttpd-dev: the reporter's HTTP server (many event streams on one thread).
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
# prometheus-cpp-dev (core only): the reporter's /metrics.
find_package(prometheus-cpp CONFIG REQUIRED COMPONENTS core)
# libcurl4-openssl-dev: the reporter's webhooks.
find_package(CURL REQUIRED)

# libasio-dev ships headers only, without a CMake config: an INTERFACE target of our
# own. Asio is compiled once, in src/common/asio.cpp (ASIO_SEPARATE_COMPILATION).
find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
add_library(ci_asio INTERFACE)
target_include_directories(ci_asio SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
target_compile_definitions(ci_asio INTERFACE ASIO_STANDALONE ASIO_SEPARATE_COMPILATION ASIO_NO_DEPRECATED)
target_link_libraries(ci_asio INTERFACE Threads::Threads)

if(CI_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
