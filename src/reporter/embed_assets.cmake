# Writes OUTPUT, a C++ file holding each file of ASSETS (names separated by commas,
# under SOURCE_DIR) as a raw string literal, with its URL path and content type, for ci::reporter::find_asset().
set(body "")
string(REPLACE "," ";" names "${ASSETS}")
foreach(name IN LISTS names)
  file(READ ${SOURCE_DIR}/${name} content)
  if(content MATCHES "\\)ASSET\"")
    message(FATAL_ERROR "${name} holds the raw string delimiter )ASSET\"")
  endif()
  if(name MATCHES "\\.html$")
    set(type "text/html; charset=utf-8")
  elseif(name MATCHES "\\.css$")
    set(type "text/css; charset=utf-8")
  else()
    set(type "text/javascript; charset=utf-8")
  endif()
  string(APPEND body "    {\"/assets/${name}\", \"${type}\", R\"ASSET(${content})ASSET\"},\n")
endforeach()
file(WRITE ${OUTPUT} "// Generated from src/reporter/assets/ by embed_assets.cmake: do not edit.
#include <string_view>

namespace ci::reporter {

struct EmbeddedAsset {
  std::string_view path, content_type, body;
};

extern const EmbeddedAsset kEmbeddedAssets[];
extern const unsigned kEmbeddedAssetCount;

const EmbeddedAsset kEmbeddedAssets[] = {
${body}};
const unsigned kEmbeddedAssetCount = sizeof kEmbeddedAssets / sizeof kEmbeddedAssets[0];

}  // namespace ci::reporter
")
