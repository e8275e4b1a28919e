#include "reporter/assets.h"

#include <algorithm>

namespace ci::reporter {

// In the file that embed_assets.cmake generates from src/reporter/assets/.
struct EmbeddedAsset {
  std::string_view path, content_type, body;
};
extern const EmbeddedAsset kEmbeddedAssets[];
extern const unsigned kEmbeddedAssetCount;

namespace {

Asset by_path(std::string_view path) {
  for (unsigned i = 0; i < kEmbeddedAssetCount; ++i)
    if (kEmbeddedAssets[i].path == path)
      return {kEmbeddedAssets[i].content_type, kEmbeddedAssets[i].body};
  return {};
}

bool is_job_page(std::string_view path) {
  constexpr std::string_view prefix = "/jobs/";
  if (path.substr(0, prefix.size()) != prefix || path.size() == prefix.size() ||
      path.size() > prefix.size() + 19)
    return false;
  path.remove_prefix(prefix.size());
  return std::all_of(path.begin(), path.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Asset find_asset(std::string_view path) {
  if (path == "/") return by_path("/assets/dashboard.html");
  if (is_job_page(path)) return by_path("/assets/job.html");
  // Only the scripts and styles by their own name: the pages have routes of their own.
  if (path.ends_with(".html")) return {};
  return by_path(path);
}

}  // namespace ci::reporter
