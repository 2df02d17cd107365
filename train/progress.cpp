#include "train/progress.h"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace cn {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = static_cast<long>(s + 0.5);
  std::ostringstream os;
  os << t / 60 << ":" << std::setw(2) << std::setfill('0') << t % 60;
  return os.str();
}

void Progress::update(const std::string& line, bool force) {
  if (!out_) return;  // a failed write (a closed pipe): nothing more is shown
  const double t = now_s();
  if (live_) {
    if (!force && t - last_ < 0.1) return;
    out_ << "\r\033[K" << line << std::flush;
    dirty_ = true;
  } else {
    if (!force && t - last_ < 5.0) return;
    out_ << line << "\n" << std::flush;
  }
  last_ = t;
}

void Progress::message(const std::string& line) {
  if (!out_) return;
  if (dirty_) out_ << "\r\033[K";
  dirty_ = false;
  out_ << line << "\n" << std::flush;
}

}  // namespace cn
