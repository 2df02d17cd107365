// `curvnet analyze DIR [--out OUT]`: the study report of a sweep directory (docs/analysis.md).
#pragma once

#include <string>

namespace cn {

// Replaces this process with the Python analysis (analysis/curvnet_analyze) on DIR; returns
// only when that cannot start (the exit status then: 2, after one line on stderr).
int run_analyze(const std::string& study_dir, const std::string& out_dir);

}  // namespace cn
