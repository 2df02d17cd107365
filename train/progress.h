// The trainer's console output: a live status line (redrawn in place on a terminal) or
// plain periodic lines, and messages that interrupt it.
#pragma once
#include <iosfwd>
#include <string>

namespace cn {

// Seconds on the steady clock.
double now_s();
// "m:ss" for a duration in seconds; "?" when not finite or negative.
std::string fmt_duration(double s);

class Progress {
 public:
  // live: redraw one line at most every 0.1 s; otherwise a plain line at most every 5 s.
  Progress(std::ostream& out, bool live) : out_(out), live_(live) {}
  // The status line; `force` draws it regardless of the interval.
  void update(const std::string& line, bool force);
  void message(const std::string& line);

 private:
  std::ostream& out_;
  bool live_;
  bool dirty_ = false;
  double last_ = -1e9;
};

}  // namespace cn
