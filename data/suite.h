// The packaged suite's registry (suite.cpp): every set's files, encoding and documented shape.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/table.h"

namespace cn {

enum class Origin { weka, statsmodels, sklearn, penguins, vega, mlbench };
enum class Format { arff, csv, tsv, json, linnerud };

struct SuiteSet {
  const char* name;
  Task task;
  Origin origin;
  Format format;
  std::vector<const char*> files;  // relative to the origin's directory; several = rows appended
  std::vector<std::string> targets, drop, nominal;
  TargetRule rule;
  int64_t n_samples, n_features, n_outputs;  // documented (docs/datasets.md), checked by tests/data
  const char* licence;
  const char* description;
};

struct OriginInfo {
  std::string dir;      // where the package installs the files (mlbench: its .rda files)
  std::string package;  // the Debian package
};

const std::vector<SuiteSet>& suite_sets();
const SuiteSet* find_suite_set(const std::string& name);  // nullptr when not in the suite
OriginInfo origin_info(Origin o);

// A system directory under $CURVNET_DATA_ROOT when that is set (a stand-in root for tests).
std::string system_dir(const std::string& dir);

// The files a set is read from (path_override: data.path, replacing the directory).
std::vector<std::string> suite_files(const SuiteSet& s, const std::string& path_override = "");
// The file(s) inside the package, as installed (mlbench: the .rda the export reads).
std::string suite_package_file(const SuiteSet& s);
// What brings a missing set: "apt-get install PACKAGE" or "scripts/setup-study ...".
std::string suite_install_hint(const SuiteSet& s);
bool suite_available(const SuiteSet& s, const std::string& path_override = "");
Dataset load_suite_set(const SuiteSet& s, const std::string& path_override = "");

}  // namespace cn
