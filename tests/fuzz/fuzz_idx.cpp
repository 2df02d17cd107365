// The IDX reader (MNIST-style image and label files, plain or gzip'd): the input's first byte
// says where it splits into the images file and the labels file.
#include "data/dataset.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t rest = size - 1;
  const size_t cut = rest == 0 ? 0 : (static_cast<size_t>(data[0]) * rest) / 255;
  const std::string images = cn::fuzz::scratch_file("images.idx", data + 1, cut);
  const std::string labels = cn::fuzz::scratch_file("labels.idx", data + 1 + cut, rest - cut);
  cn::fuzz::expect_refusal_or_success([&] { cn::read_idx_pair(images, labels); });
  return 0;
}
