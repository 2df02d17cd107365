// `curvnet datasets`: the data sets, their shape, package, file and licence (docs/datasets.md).
#pragma once

namespace cn {

struct DatasetsOptions {
  bool json = false;  // a JSON array, one object per data set
  bool load = false;  // load every available set and report the shape as read
};

int run_datasets(const DatasetsOptions& options);

}  // namespace cn
