// Error types. InputError = bad usage/config/data (exit 2); Error = runtime failure (exit 1).
#pragma once
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  virtual int exit_code() const { return 1; }
};

// Bad input: a config key, a dataset file, a checkpoint, a CLI flag. The message names
// the file/line/field and what was expected.
class InputError : public Error {
 public:
  explicit InputError(const std::string& what) : Error(what) {}
  int exit_code() const override { return 2; }
};

// Input text as it may appear inside a message: control characters and NUL escaped (\n, \t,
// \r, \xNN) so that a message stays one line, and input longer than `max` bytes cut to its
// first `max` bytes (never inside a UTF-8 sequence) with "..." and its total length.
inline std::string quote_input(std::string_view s, size_t max = 80) {
  size_t keep = s.size();
  if (keep > max) {
    keep = max;
    while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0) == 0x80) --keep;
  }
  std::string o;
  o.reserve(keep + 32);
  for (size_t i = 0; i < keep; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      o += "\\n";
    } else if (c == '\t') {
      o += "\\t";
    } else if (c == '\r') {
      o += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      o += buf;
    } else {
      o += static_cast<char>(c);
    }
  }
  if (keep < s.size()) o += "... (" + std::to_string(s.size()) + " bytes)";
  return o;
}

namespace detail {
[[noreturn]] inline void fail_check(const char* file, int line, const char* expr, const std::string& msg) {
  std::ostringstream os;
  os << file << ":" << line << ": check failed: " << expr;
  if (!msg.empty()) os << ": " << msg;
  throw Error(os.str());
}
}  // namespace detail

}  // namespace cn

#define CN_CHECK(cond)                                                    \
  do {                                                                    \
    if (!(cond)) ::cn::detail::fail_check(__FILE__, __LINE__, #cond, ""); \
  } while (0)

#define CN_CHECK_MSG(cond, msg)                                          \
  do {                                                                   \
    if (!(cond)) {                                                       \
      std::ostringstream cn_os_;                                         \
      cn_os_ << msg;                                                     \
      ::cn::detail::fail_check(__FILE__, __LINE__, #cond, cn_os_.str()); \
    }                                                                    \
  } while (0)
