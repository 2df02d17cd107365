// The checkpoint loaders (docs/design.md §3): model.safetensors into a small MLP and
// state.safetensors into its Adam optimiser. The input's first byte picks the loader.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>

#include "config/config.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "tests/fuzz/fuzz_util.h"
#include "train/checkpoint.h"

namespace {
struct Net {
  cn::ModelConfig model;
  std::unique_ptr<cn::Sequential<double>> net;
  std::unique_ptr<cn::Optimizer<double>> optimizer;
  Net() {
    model.hidden = {3};
    model.batchnorm = true;  // running statistics are part of the model file
    net = std::make_unique<cn::Sequential<double>>(cn::resolve_layers(model, 2), 4);
    net->initialize(model, 1);
    cn::OptimConfig o;
    o.name = cn::OptimKind::adam;
    optimizer = cn::make_optimizer<double>(o, net->layout());
  }
};
}  // namespace

// With CURVNET_FUZZ_SEED_DIR set, writes this build's own valid model and state files there
// (with their selector byte) as the seed corpus, so the seeds never lag the format.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("CURVNET_FUZZ_SEED_DIR");
  if (!dir) return 0;
  Net n;
  const std::string model = std::string(dir) + "/model.tmp", state = std::string(dir) + "/state.tmp";
  cn::save_model(*n.net, model);
  cn::TrainState st;
  st.step = 3;
  st.seed = 11;
  st.data_order = {2, 0, 1};
  st.doctor = "{}";
  cn::save_state(*n.optimizer, st, state);
  for (const auto& [path, selector] : {std::pair{model, '\x01'}, std::pair{state, '\x00'}}) {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(path.substr(0, path.size() - 4), std::ios::binary);
    out.put(selector);
    out << bytes;
    std::remove(path.c_str());
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Net n;
  if (size == 0) return 0;
  const std::string path = cn::fuzz::scratch_file("checkpoint.safetensors", data + 1, size - 1);
  if (data[0] & 1)
    cn::fuzz::expect_refusal_or_success([&] { cn::load_model(*n.net, path); });
  else
    cn::fuzz::expect_refusal_or_success([&] { cn::load_state(*n.optimizer, path); });
  return 0;
}
