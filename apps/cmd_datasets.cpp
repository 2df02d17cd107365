// `curvnet datasets [--json] [--load]` (docs/datasets.md "Listing the data sets").
#include "apps/cmd_datasets.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <string>

#include "config/config.h"
#include "core/error.h"
#include "data/dataset.h"

namespace cn {
namespace {

// The shape as read through the training path (load_splits, no held-out parts, no
// standardisation), with sums of the features and targets so a test can check the values.
struct Loaded {
  int64_t n_samples = 0, n_features = 0, n_outputs = 0;
  double x_sum = 0, y_sum = 0;
  double seconds = 0;
};

Loaded load_whole(const std::string& name) {
  DataConfig c;
  c.dataset = name;
  c.val_fraction = 0;
  c.test_fraction = 0;
  c.standardize = false;
  const auto t0 = std::chrono::steady_clock::now();
  const Splits s = load_splits(c, 0);
  Loaded out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.n_features = s.train.d;
  out.n_outputs = s.train.n_outputs;
  for (const Dataset* d : {&s.train, &s.val, &s.test}) {
    out.n_samples += d->n;
    out.x_sum = std::accumulate(d->x.begin(), d->x.end(), out.x_sum);
    out.y_sum = std::accumulate(d->y.begin(), d->y.end(), out.y_sum);
  }
  return out;
}

nlohmann::ordered_json to_json(const DatasetInfo& d, bool load) {
  nlohmann::ordered_json o;
  o["name"] = d.name;
  o["task"] = d.task;
  o["n_samples"] = d.n_samples;
  o["n_features"] = d.n_features;
  if (d.task == "classification")
    o["n_classes"] = d.n_classes;
  else
    o["n_classes"] = nullptr;
  o["n_outputs"] = d.n_outputs;
  o["available"] = d.available;
  o["source"] = d.source;
  o["packaged"] = d.packaged;
  o["package"] = d.package;
  o["file"] = d.file;
  o["licence"] = d.licence;
  o["install"] = d.available ? "" : d.install;
  o["description"] = d.description;
  if (load && d.available && d.task != "auto") {
    const Loaded l = load_whole(d.name);
    o["loaded"] = {{"n_samples", l.n_samples}, {"n_features", l.n_features}, {"n_outputs", l.n_outputs},
                   {"x_sum", l.x_sum},         {"y_sum", l.y_sum},           {"seconds", l.seconds}};
  }
  return o;
}

std::string shape(const DatasetInfo& d) {
  if (d.task == "auto") return "the file's";
  std::string s = (d.packaged ? std::to_string(d.n_samples) : "n_samples") + " x " + std::to_string(d.n_features);
  if (d.task == "classification") return s + ", " + std::to_string(d.n_classes) + " classes";
  return s + ", " + std::to_string(d.n_outputs) + (d.n_outputs == 1 ? " target" : " targets");
}

}  // namespace

int run_datasets(const DatasetsOptions& opt) {
  const std::vector<DatasetInfo> list = list_datasets();
  if (opt.json) {
    // "csv" and "arff" read the user's file: they have no task or shape of their own.
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& d : list)
      if (d.task != "auto") arr.push_back(to_json(d, opt.load));
    std::cout << arr.dump(1) << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(25) << "name" << std::setw(16) << "task" << std::setw(28) << "shape"
            << std::setw(11) << "available"
            << "package\n";
  for (const auto& d : list) {
    std::cout << std::setw(25) << d.name << std::setw(16) << d.task << std::setw(28) << shape(d) << std::setw(11)
              << (d.available ? "yes" : "no") << (d.package.empty() ? d.source : d.package) << "\n";
    std::cout << std::setw(25) << "" << d.description << "\n";
    if (!d.file.empty())
      std::cout << std::setw(25) << ""
                << "file: " << d.file << "\n";
    if (!d.licence.empty())
      std::cout << std::setw(25) << ""
                << "licence: " << d.licence << "\n";
    if (!d.available && !d.install.empty())
      std::cout << std::setw(25) << ""
                << "to install: " << d.install << "\n";
    if (opt.load && d.available && d.task != "auto") {
      const Loaded l = load_whole(d.name);
      std::cout << std::setw(25) << ""
                << "loaded: " << l.n_samples << " x " << l.n_features << ", " << l.n_outputs << " outputs in "
                << std::fixed << std::setprecision(3) << l.seconds << " s\n"
                << std::defaultfloat;
    }
  }
  return 0;
}

}  // namespace cn
