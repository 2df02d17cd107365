// TensorBoard event files, written by hand (docs/design.md §5: RUN_DIR/events.out.tfevents.*).
//
// An event file is a sequence of TFRecords:
//
//   uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes |
//   `length` bytes of data        | uint32 masked CRC32C of the data
//
// CRC32C is the Castagnoli polynomial (reflected 0x82F63B78); mask(c) =
// ((c >> 15) | (c << 17)) + 0xa282ead8. Each record's data is a serialized tensorflow
// `Event` protobuf; only the fields TensorBoard needs are written:
//
//   Event          { double wall_time = 1; int64 step = 2; string file_version = 3;
//                    Summary summary = 5; }
//   Summary        { repeated Value value = 1; }
//   Value          { string tag = 1; float simple_value = 2; HistogramProto histo = 5; }
//   HistogramProto { double min = 1, max = 2, num = 3, sum = 4, sum_squares = 5;
//                    repeated double bucket_limit = 6 [packed]; repeated double bucket = 7 [packed]; }
//
// The first record of every file is {wall_time, step 0, file_version "brain.Event:2"}.
//
// Tag names (the same live, through TensorBoardWriter::row, and when a run is re-created
// with write_tensorboard_from_run):
//   metrics.jsonl      "train/<column>"                      (every numeric column but step)
//   eval.jsonl         "<split>/<metric>"                    (val/loss, test/accuracy, ...)
//   stats.jsonl        "layer<i>/<stat>"                     ("network/<stat>" for layer null)
//   diagnostics.jsonl  "curvature/<kind>/layer<i>/<metric>"  ("curvature/<kind>/<metric>" for
//                                                             layer null, e.g. full_top)
//   spectra            histogram "eigenvalues/<kind>/layer<i>" of `<kind>.<i>.eigenvalues`,
//                      "eigenvalues/<kind>" of `<kind>.eigenvalues`, "hessian_diag/<kind>/layer<i>"
//                      of `<kind>.<i>.values`, "singular_values/<weights|grads>/layer<i>" of
//                      `weights.<i>.singular_values` / `grads.<i>.singular_values`
//   weights            histogram "weights/<name>" of each tensor of
//                      checkpoints/step_N/model.safetensors
//   other histograms   any RUN_DIR/histograms/step_N.safetensors: each tensor under its name
//                      with the first '.' as '/' ("gradients.0.weight" → "gradients/0.weight",
//                      "activations.1" → "activations/1")
// Booleans count as numbers (0/1); null and string cells are skipped, as are non-finite
// values (a scalar event with NaN would poison TensorBoard's axes).
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "io/safetensors.h"

namespace cn {

// The tags written from curvature checkpoints: "curvature/...", "eigenvalues/...",
// "hessian_diag/...".
bool is_curvature_tag(const std::string& tag);

// The TFRecord framing and the little protobuf encoder/decoder (exposed for tests and tools).
namespace tfevents {

// CRC32C (Castagnoli) of `n` bytes; crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t n);
// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t mask_crc(uint32_t crc);
inline uint32_t masked_crc32c(const void* data, size_t n) { return mask_crc(crc32c(data, n)); }

// One framed record for `data`.
std::string frame_record(const std::string& data);

// The records of a file's bytes, in order. Reading stops at the first record that is
// incomplete or whose length or data CRC does not match (a torn tail after a crash);
// `valid_bytes` (optional) receives the length of the well-formed prefix.
std::vector<std::string> parse_records(const std::string& bytes, size_t* valid_bytes = nullptr);

// The records of the events file `path`. A record cut short at the end (a write a kill
// interrupted) is left out; any other damage stops the read with an InputError naming the
// file and the damaged record's byte offset, as the records after it cannot be framed.
std::vector<std::string> read_records(const std::string& path);

// Serialized Event protos.
std::string encode_file_version_event(double wall_time, const std::string& version = "brain.Event:2");
std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag, float value);
// A histogram event from an already bucketed HistogramProto.
struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit;  // right edges; bucket i holds [limit[i-1], limit[i])
  std::vector<double> bucket;        // counts
};
std::string encode_histogram_event(double wall_time, int64_t step, const std::string& tag, const Histogram& h);

// TensorBoard's (TensorFlow's) default bucket edges: -DBL_MAX, then -x for x from ~1e20
// down to 1e-12 by /1.1, then 0, then 1e-12 ... ~1e20 by x1.1, then DBL_MAX.
const std::vector<double>& default_bucket_limits();
// Buckets `n` values on `limits` (sorted right edges; the last should be >= every value,
// e.g. DBL_MAX). Non-finite values are skipped. Like TensorFlow's Histogram::EncodeToProto
// without zero buckets: runs of empty buckets are merged into one, and an empty histogram
// has the single bucket (DBL_MAX, 0).
Histogram make_histogram(const double* values, int64_t n, const std::vector<double>& limits);

// The fields of an Event this project reads back (for truncation and tests).
struct EventInfo {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;  // empty when absent
  // Summary values: tag, and either simple_value (has_simple) or a histogram (has_histo).
  struct Value {
    std::string tag;
    bool has_simple = false;
    float simple_value = 0;
    bool has_histo = false;
    Histogram histo;
  };
  std::vector<Value> values;
};
// Decodes an Event; cn::Error on malformed bytes.
EventInfo decode_event(const std::string& data);

}  // namespace tfevents

// Which JSON-lines log a row comes from (selects the tag scheme above).
enum class RunLog { metrics, eval, stats, diagnostics };

class TensorBoardWriter {
 public:
  // Creates RUN_DIR/events.out.tfevents.<unix seconds>.<host>.<pid>.curvnet (a ".<n>" is
  // appended when that name exists) and writes the file_version record. cn::Error when the
  // file cannot be created.
  explicit TensorBoardWriter(const std::string& run_dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One scalar (stored as float32, as TensorBoard does). A non-finite value is skipped.
  void scalar(const std::string& tag, int64_t step, double value);
  // A histogram of `n` values on TensorBoard's default bucket edges (exponential, see
  // tfevents::default_bucket_limits). Non-finite values are left out of every field.
  void histogram(const std::string& tag, int64_t step, const double* values, int64_t n);
  void histogram(const std::string& tag, int64_t step, const std::vector<double>& values) {
    histogram(tag, step, values.data(), static_cast<int64_t>(values.size()));
  }
  // The same on `bins` equal-width bins between the finite min and max (bins >= 1).
  void histogram_fixed(const std::string& tag, int64_t step, const double* values, int64_t n, int bins);
  // Every scalar of one JSON-lines row under the tag scheme above (the row's "step" is the
  // event's step; a row without a numeric step is ignored).
  void row(RunLog log, const nlohmann::json& row);
  // Histograms of the tensors of a spectra file (`<kind>.<i>.eigenvalues`,
  // `<kind>.eigenvalues`, `<kind>.<i>.values`, `<kind>.<i>.singular_values`; other tensors
  // are ignored), tags as above.
  void spectra(int64_t step, const SafeTensorMap& tensors);

  void flush();  // fflush + fsync (the trainer calls it at every checkpoint)
  void close();  // flush and close; the destructor does it too (errors ignored there)
  const std::string& path() const { return path_; }

  // Resume support: cuts every events.out.tfevents.* file in run_dir back to the records
  // whose step is <= `step` (file_version records are always kept; a torn tail is
  // dropped; a damaged record elsewhere is an InputError, read_records, before any file
  // is rewritten). Each file is rewritten atomically; a file left without any summary record
  // is still kept (its file_version record). Records at or before `step` whose every tag
  // satisfies `drop_tag(tag, record's step)` are dropped too. Returns the number of records kept.
  static size_t truncate_after_step(const std::string& run_dir, int64_t step,
                                    const std::function<bool(const std::string&, int64_t)>& drop_tag = {});

  // The event files of a run directory, sorted by name.
  static std::vector<std::string> event_files(const std::string& run_dir);

 private:
  void write_record(const std::string& event);
  std::FILE* file_ = nullptr;
  std::string path_;
};

// Re-creates the event files of a run from its logs: removes RUN_DIR/events.out.tfevents.*,
// then writes one new file (atomically) with scalars for every numeric column of
// metrics.jsonl, eval.jsonl, stats.jsonl and diagnostics.jsonl, and histograms of the
// eigenvalues in spectra/step_N.safetensors, of the weights in
// checkpoints/step_N/model.safetensors and of any histograms/step_N.safetensors (tags
// above). Missing logs are skipped; unreadable lines in a log are skipped. Wall times
// follow metrics.jsonl's time_s where present. Returns the new file's path.
std::string write_tensorboard_from_run(const std::string& run_dir);

}  // namespace cn
