#include "reporter/badge.h"

#include <cstdio>

#include "reporter/json.h"

namespace ci::reporter {

namespace {

std::string xml_escape(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 at all.
        if (c >= 0x20 || c == '\t') out += static_cast<char>(c);
    }
  }
  // Nor are U+FFFE and U+FFFF (valid UTF-8, EF BF BE and EF BF BF): replaced by U+FFFD.
  for (size_t at = out.find("\xEF\xBF"); at != std::string::npos; at = out.find("\xEF\xBF", at + 3))
    if (at + 2 < out.size() && (out[at + 2] == '\xBE' || out[at + 2] == '\xBF'))
      out[at + 2] = '\xBD';
  return out;
}

// Widths from the character count (UTF-8 continuation bytes, 10xxxxxx, not counted):
// close enough for the badge's 11px sans-serif font.
int text_width(const std::string& text) {
  int characters = 0;
  for (unsigned char c : text)
    if ((c & 0xC0) != 0x80) ++characters;
  return characters * 7 + 10;
}

}  // namespace

std::string badge_svg(const std::string& label, const std::string& state) {
  // Git allows a branch any bytes but a few: a name that is not UTF-8 would make the badge
  // a malformed XML document, so it is repaired as the JSON API repairs it.
  std::string name = valid_utf8(label);
  if (name.size() > 64) {
    // Not inside a UTF-8 character (its continuation bytes are 10xxxxxx): half a
    // character would make the badge a malformed XML document.
    size_t cut = 64;
    while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
    name.resize(cut);
  }
  const char* colour = state == "passing" ? "#4c1" : state == "failing" ? "#e05d44" : "#9f9f9f";
  std::string shown = state == "passing" || state == "failing" ? state : "unknown";
  int left = text_width(name), right = text_width(shown), width = left + right;
  std::string escaped = xml_escape(name);
  char buf[2048];
  std::snprintf(
      buf, sizeof buf,
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">)"
      R"(<title>%s: %s</title>)"
      R"(<rect width="%d" height="20" fill="#555"/><rect x="%d" width="%d" height="20" fill="%s"/>)"
      R"(<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">)"
      R"(<text x="%d" y="14">%s</text><text x="%d" y="14">%s</text></g></svg>)",
      width, escaped.c_str(), shown.c_str(), escaped.c_str(), shown.c_str(), left, left, right,
      colour, left / 2, escaped.c_str(), left + right / 2, shown.c_str());
  return buf;
}

}  // namespace ci::reporter
