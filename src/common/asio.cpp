// Asio is compiled once, here (ASIO_SEPARATE_COMPILATION), not in every file.
#include <asio/impl/src.hpp>
