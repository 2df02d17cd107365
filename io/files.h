// Whole-file atomic writes and JSON-lines logs (docs/design.md §5, run directory).
//
// Whole files (config, meta, safetensors, report) go through write_file_atomic: the bytes
// are written to a temporary name in the same directory, flushed, fsynced and renamed
// into place, then the directory is fsynced — a reader sees the old file or the new one,
// never a part. Logs are JSON lines: one complete object per line, appended, flushed at
// checkpoints; a resume first cuts them back to the checkpoint's step.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cn {

// Atomically replaces `path` with `size` bytes from `data`. The temporary file is
// "<path>.tmp.<pid>.<counter>" in the same directory and is removed on failure.
// Throws cn::Error (runtime, exit 1) naming the path and the system's reason.
void write_file_atomic(const std::string& path, const void* data, size_t size);
void write_file_atomic(const std::string& path, const std::string& bytes);
// Whether `name` is such a temporary file's name ("<anything>.tmp.<digits>.<digits>"), one
// a write killed before its rename leaves behind.
bool is_atomic_temp_name(const std::string& name);

// The whole file as bytes; InputError "PATH: cannot read: <reason>" when it can't be read.
std::string read_file(const std::string& path);

// Appends one JSON object per line. Each write() emits a complete line into the stdio
// buffer; flush() pushes it to the file and fsyncs. Non-finite doubles inside a row are
// written as null (JSON has no NaN/infinity) — use set_metric() to add the status key.
class JsonLinesWriter {
 public:
  JsonLinesWriter() = default;
  // Opens (creating it if needed) for appending; append = false truncates first.
  explicit JsonLinesWriter(const std::string& path, bool append = true);
  ~JsonLinesWriter();
  JsonLinesWriter(JsonLinesWriter&& other) noexcept;
  JsonLinesWriter& operator=(JsonLinesWriter&& other) noexcept;
  JsonLinesWriter(const JsonLinesWriter&) = delete;
  JsonLinesWriter& operator=(const JsonLinesWriter&) = delete;

  void open(const std::string& path, bool append = true);
  // One row: `row` must be a JSON object (cn::Error otherwise).
  void write(const nlohmann::json& row);
  void flush();  // fflush + fsync
  void close();  // flush + close; also done by the destructor (errors ignored there)
  bool is_open() const { return file_ != nullptr; }
  const std::string& path() const { return path_; }

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
};

// Rewrites a JSON-lines file (atomically) keeping only the rows whose numeric "step" is
// <= `step`. Rows without a numeric "step" (null or missing) are kept; lines that are
// not complete JSON objects (a torn last line after a crash) are dropped. A missing file
// is left missing. Rows at or before `step` for which `drop` is true are dropped too
// (the results a resumed run recomputes). Returns the number of rows kept.
size_t truncate_after_step(const std::string& path, int64_t step,
                           const std::function<bool(const nlohmann::json&)>& drop = {});

// The rows of a JSON-lines file: every line that is a complete JSON object (a torn tail or
// any other line is skipped). A file that cannot be opened has none; `exists` (optional)
// says whether it could.
std::vector<nlohmann::json> read_jsonl(const std::string& path, bool* exists = nullptr);

bool ends_with(const std::string& s, const std::string& suffix);

// JSON for a metric: a finite double → number, NaN/±inf → null.
nlohmann::json json_number(double value);
// "" for a finite value, else "nan", "inf" or "-inf".
const char* nonfinite_status(double value);
// row[name] = json_number(value); for a non-finite value also row[name + "_status"] =
// nonfinite_status(value) (docs/design.md §5: a metric without a finite value is null + status).
void set_metric(nlohmann::json& row, const std::string& name, double value);

}  // namespace cn
