// curvnet._curvnet.train: the trainer (train/trainer.h) as `curvnet train` runs it, with the GIL
// released; its progress lines go to a Python callable, and a Ctrl-C (SIGINT) seen by Python
// stops it as SIGINT stops the CLI: the step finishes, a checkpoint is written, the summary
// says `interrupted`.
#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

#include <nanobind/stl/function.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bindings.h"
#include "config/config.h"
#include "train/trainer.h"

namespace cnpy {

using namespace cn;

namespace {

// Complete lines to a Python callable (under the GIL). A callable that raises is dropped:
// training continues, the error comes back at the end; a KeyboardInterrupt (Ctrl-C while
// the callable ran) is a stop request.
class LineSink : public std::streambuf {
 public:
  LineSink(nb::object callback, bool* interrupted) : callback_(std::move(callback)), interrupted_(interrupted) {}
  ~LineSink() override { flush_line(); }
  nb::object error;

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return 0;
    if (c == '\n' || c == '\r') {
      flush_line();
    } else {
      line_.push_back(static_cast<char>(c));
    }
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    for (std::streamsize i = 0; i < n; ++i) overflow(static_cast<unsigned char>(s[i]));
    return n;
  }

 private:
  void flush_line() {
    if (line_.empty()) return;
    std::string line;
    line.swap(line_);
    if (!callback_.is_valid() || callback_.is_none()) return;
    nb::gil_scoped_acquire acquire;
    try {
      callback_(line);
    } catch (nb::python_error& e) {
      if (e.matches(PyExc_KeyboardInterrupt)) {
        *interrupted_ = true;
        return;
      }
      callback_ = nb::none();
      error = nb::str(e.what());
    }
  }
  nb::object callback_;
  bool* interrupted_;
  std::string line_;
};

nb::dict train_py(const std::string& toml, const std::string& origin, const std::string& out_dir,
                  const std::string& resume_dir, const std::string& device, nb::object on_line) {
  TrainOptions o;
  Config config;
  if (!toml.empty()) config = parse_config(toml, origin);
  o.config_given = !toml.empty();
  o.out_dir = out_dir;
  o.resume_dir = resume_dir;
  o.device = device;
  o.progress = 0;
  bool interrupted_by_python = false;
  LineSink sink(on_line, &interrupted_by_python);
  std::ostream out(&sink);
  o.out = &out;
  // Asked once per update on this (the calling) thread: Python's own SIGINT handler runs
  // here, and a KeyboardInterrupt it raises becomes the trainer's stop request.
  o.should_stop = [&interrupted_by_python](int64_t) {
    if (interrupted_by_python) return true;
    nb::gil_scoped_acquire acquire;
    if (PyErr_CheckSignals() != 0) {
      PyErr_Clear();
      interrupted_by_python = true;
    }
    return interrupted_by_python;
  };
  TrainSummary s;
  {
    nb::gil_scoped_release release;
    s = train(config, o);
    out.flush();
  }
  nb::dict d;
  d["run_dir"] = s.run_dir;
  d["steps"] = s.steps;
  d["last_loss"] = s.last_loss;
  d["final_eval"] = s.final_eval.dump();
  d["early_stopped"] = s.early_stopped;
  d["nonfinite"] = s.nonfinite;
  d["interrupted"] = s.interrupted;
  d["wall_s"] = s.wall_s;
  d["callback_error"] = sink.error.is_valid() ? sink.error : nb::none();
  return d;
}

}  // namespace

void register_train(nb::module_& m) {
  m.def("train", &train_py, nb::arg("toml"), nb::arg("origin"), nb::arg("out_dir"), nb::arg("resume_dir"),
        nb::arg("device"), nb::arg("on_line").none(),
        "Trains as `curvnet train` does; returns the summary (use curvnet.train).");
  m.def(
      "to_toml", [](const std::string& toml, const std::string& origin) { return to_toml(parse_config(toml, origin)); },
      nb::arg("toml"), nb::arg("origin"), "The resolved config (every default filled in) as TOML.");
}

}  // namespace cnpy
