#include "ci/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace ci {

namespace {

// The %* flag: the message, escaped.
class EscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string text = escape_log_message(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>();
  }
};

}  // namespace

std::string escape_log_message(std::string_view text) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

void set_log_format(spdlog::logger& logger) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<EscapedMessage>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%e %n %^%l%$ %*");
  logger.set_formatter(std::move(formatter));
}

Result<void> setup_logging(const std::string& daemon_name, const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  // from_str answers "off" for any name it does not know.
  if (lvl == spdlog::level::off && level != "off")
    return make_error("unknown log level '" + level +
                      "' (use trace, debug, info, warn, error or off)");
  auto logger = spdlog::stderr_logger_mt(daemon_name);
  logger->set_level(lvl);
  set_log_format(*logger);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  return {};
}

}  // namespace ci
