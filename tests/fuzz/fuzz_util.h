// Shared by the libFuzzer targets (docs/design.md §7): the readers under test take paths, so
// an input is written to a per-process scratch file first. A reader may refuse an input with
// cn::Error (InputError: the one-line message a user sees); anything else — a crash, a
// sanitizer report, an uncaught exception, a leak, a runaway allocation — is a finding.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "core/error.h"

namespace cn::fuzz {

// Writes `size` bytes to /tmp/curvnet-fuzz-<pid>-<name> and returns the path (the same path
// for every input of a process, so a long campaign leaves one file behind).
inline std::string scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = "/tmp/curvnet-fuzz-" + std::to_string(getpid()) + "-" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

// Runs `f`; a refusal (cn::Error) is the expected answer to a malformed input.
template <class F>
void expect_refusal_or_success(F&& f) {
  try {
    f();
  } catch (const cn::Error&) {}
}

}  // namespace cn::fuzz
