// The config loader: the bytes up to the first NUL are a TOML file; each later NUL-separated
// piece is one `--set section.key=value` override (docs/config.md).
#include <string>
#include <vector>

#include "config/config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> pieces;
  size_t start = 0;
  for (size_t i = 0; i <= bytes.size(); ++i)
    if (i == bytes.size() || bytes[i] == '\0') {
      pieces.push_back(bytes.substr(start, i - start));
      start = i + 1;
    }
  const std::vector<std::string> overrides(pieces.begin() + 1, pieces.end());
  cn::fuzz::expect_refusal_or_success([&] {
    const cn::Config c = cn::parse_config(pieces[0], "fuzz.toml", overrides);
    // What was accepted must print and parse back to the same config.
    const cn::Config again = cn::parse_config(cn::to_toml(c), "fuzz-roundtrip.toml");
    if (!cn::config_differences(c, again).empty()) __builtin_trap();
  });
  return 0;
}
