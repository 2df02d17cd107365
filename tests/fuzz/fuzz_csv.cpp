// The CSV reader (data sets from files): the label column is "label"; the task is inferred
// from the label cells as `curvnet train` does, then read as classification and regression.
#include "data/dataset.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = cn::fuzz::scratch_file("data.csv", data, size);
  cn::fuzz::expect_refusal_or_success([&] { cn::read_csv(path, "label", cn::Task::classification); });
  cn::fuzz::expect_refusal_or_success([&] { cn::read_csv(path, "label", cn::Task::regression); });
  return 0;
}
