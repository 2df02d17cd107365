// The safetensors parser and its typed access: every tensor it accepts must convert to the
// types curvnet reads (refusals are fine, a read past the buffer is not).
#include <map>
#include <string>

#include "io/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  cn::fuzz::expect_refusal_or_success([&] {
    std::map<std::string, std::string> metadata;
    const cn::SafeTensorMap tensors = cn::parse_safetensors(bytes, "fuzz.safetensors", &metadata);
    for (const auto& entry : tensors) {
      const std::string& name = entry.first;
      const cn::SafeTensor& t = entry.second;
      cn::fuzz::expect_refusal_or_success([&] { cn::safetensor_values<double>(t, "fuzz.safetensors", name); });
      cn::fuzz::expect_refusal_or_success([&] { cn::safetensor_values<float>(t, "fuzz.safetensors", name); });
      cn::fuzz::expect_refusal_or_success([&] { cn::safetensor_values<int64_t>(t, "fuzz.safetensors", name); });
    }
  });
  return 0;
}
