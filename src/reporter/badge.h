// The SVG badge of a branch's state.
#pragma once

#include <string>

namespace ci::reporter {

// `label`: the branch name (escaped here); `state`: passing, failing or unknown.
std::string badge_svg(const std::string& label, const std::string& state);

}  // namespace ci::reporter
