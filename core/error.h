// Error types. InputError = bad usage/config/data (exit 2); Error = runtime failure (exit 1).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

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
