// `curvnet sweep STUDY.toml`: runs a study's grid points as ordinary run directories
// (docs/study.md). Each point is a child process `curvnet train`; statuses live in
// DIR/status/<index>.json and are merged into DIR/index.jsonl.
#pragma once
#include <cstdint>
#include <string>

namespace cn {

struct SweepOptions {
  std::string study;     // STUDY.toml
  std::string out;       // DIR; "" = studies/<study stem>
  int64_t jobs = 0;      // runs at once; 0 = cores / study.threads
  std::string shard;     // --shard I/N: the points with index % N == I ("" = all)
  int64_t shard_i = -1;  // I and N of --shard, parsed by run_sweep
  int64_t shard_n = 0;
  int64_t index = -1;         // --index I: that point only
  std::string emit;           // "slurm": write DIR/sweep.sbatch and run nothing
  bool status_only = false;   // rebuild index.jsonl and print the counts; run nothing
  bool retry_failed = false;  // run failed points again from the start
};

// Exit status: 0 every selected point done, 1 some failed, 2 bad study or usage,
// 128 + signal when SIGINT/SIGTERM stopped it (runs checkpointed; re-running resumes them).
int run_sweep(const SweepOptions& options);

}  // namespace cn
