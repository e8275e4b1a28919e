// The pages' files, built into the binary (nothing is read from disk at run time).
#pragma once

#include <string_view>

namespace ci::reporter {

struct Asset {
  std::string_view content_type;
  std::string_view body;
};

// The asset at `path` (/, /jobs/<id> pages and /assets/*), or one with an empty body.
Asset find_asset(std::string_view path);

}  // namespace ci::reporter
