// TensorBoard event files: TFRecord framing, the few Event protobuf fields, the writer,
// resume truncation and re-creation from a run's logs (see tensorboard.h).
#include "io/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/files.h"
#include "io/run_layout.h"
#include "io/spectra_series.h"

namespace cn {

bool is_curvature_tag(const std::string& tag) {
  for (const char* prefix : {"curvature/", "eigenvalues/", "hessian_diag/"})
    if (tag.rfind(prefix, 0) == 0) return true;
  return false;
}
namespace tfevents {

// ---- CRC32C -------------------------------------------------------------------------

namespace {
std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
    t[i] = c;
  }
  return t;
}
}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t mask_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// ---- little-endian helpers ------------------------------------------------------------

namespace {
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
}  // namespace

std::string frame_record(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_u64(out, static_cast<uint64_t>(data.size()));
  put_u32(out, masked_crc32c(out.data(), 8));
  out += data;
  put_u32(out, masked_crc32c(data.data(), data.size()));
  return out;
}

std::vector<std::string> parse_records(const std::string& bytes, size_t* valid_bytes) {
  std::vector<std::string> records;
  size_t pos = 0;
  while (bytes.size() - pos >= 12) {
    const char* p = bytes.data() + pos;
    const uint64_t len = get_u64(p);
    if (get_u32(p + 8) != masked_crc32c(p, 8)) break;
    if (len > bytes.size() - pos - 12 || bytes.size() - pos - 12 - len < 4) break;
    const char* d = p + 12;
    if (get_u32(d + len) != masked_crc32c(d, static_cast<size_t>(len))) break;
    records.emplace_back(d, static_cast<size_t>(len));
    pos += 12 + static_cast<size_t>(len) + 4;
  }
  if (valid_bytes) *valid_bytes = pos;
  return records;
}

std::vector<std::string> read_records(const std::string& path) {
  const std::string bytes = read_file(path);
  size_t pos = 0;
  std::vector<std::string> records = parse_records(bytes, &pos);
  const size_t rest = bytes.size() - pos;
  if (rest < 12) return records;  // nothing left, or a torn header
  const char* p = bytes.data() + pos;
  if (get_u32(p + 8) == masked_crc32c(p, 8) && (rest < 16 || get_u64(p) > rest - 16)) return records;  // torn
  throw InputError(path + ": damaged record at byte offset " + std::to_string(pos) + " of " +
                   std::to_string(bytes.size()) + " (CRC mismatch); the records after it cannot be read");
}

// ---- protobuf encoding ----------------------------------------------------------------

namespace {
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, int field, int wire) { put_varint(out, (static_cast<uint64_t>(field) << 3) | wire); }
void put_double(std::string& out, int field, double v) {
  put_key(out, field, 1);
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_u64(out, bits);
}
void put_float(std::string& out, int field, float v) {
  put_key(out, field, 5);
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_u32(out, bits);
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_packed_doubles(std::string& out, int field, const std::vector<double>& v) {
  std::string body;
  body.reserve(v.size() * 8);
  for (double x : v) {
    uint64_t bits;
    std::memcpy(&bits, &x, 8);
    put_u64(body, bits);
  }
  put_bytes(out, field, body);
}

std::string event_header(double wall_time, int64_t step) {
  std::string e;
  put_double(e, 1, wall_time);
  if (step != 0) {
    put_key(e, 2, 0);
    put_varint(e, static_cast<uint64_t>(step));
  }
  return e;
}

std::string summary_event(double wall_time, int64_t step, const std::string& value) {
  std::string summary;
  put_bytes(summary, 1, value);
  std::string e = event_header(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}
}  // namespace

std::string encode_file_version_event(double wall_time, const std::string& version) {
  std::string e = event_header(wall_time, 0);
  put_bytes(e, 3, version);
  return e;
}

std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag, float value) {
  std::string v;
  put_bytes(v, 1, tag);
  put_float(v, 2, value);
  return summary_event(wall_time, step, v);
}

std::string encode_histogram_event(double wall_time, int64_t step, const std::string& tag, const Histogram& h) {
  std::string hp;
  put_double(hp, 1, h.min);
  put_double(hp, 2, h.max);
  put_double(hp, 3, h.num);
  put_double(hp, 4, h.sum);
  put_double(hp, 5, h.sum_squares);
  put_packed_doubles(hp, 6, h.bucket_limit);
  put_packed_doubles(hp, 7, h.bucket);
  std::string v;
  put_bytes(v, 1, tag);
  put_bytes(v, 5, hp);
  return summary_event(wall_time, step, v);
}

// ---- histograms -----------------------------------------------------------------------

const std::vector<double>& default_bucket_limits() {
  static const std::vector<double> limits = [] {
    std::vector<double> pos, neg;
    for (double v = 1.0e-12; v < 1.0e20; v *= 1.1) {
      pos.push_back(v);
      neg.push_back(-v);
    }
    pos.push_back(DBL_MAX);
    neg.push_back(-DBL_MAX);
    std::reverse(neg.begin(), neg.end());
    std::vector<double> all(neg);
    all.push_back(0.0);
    all.insert(all.end(), pos.begin(), pos.end());
    return all;
  }();
  return limits;
}

namespace {
Histogram bucketize(const double* values, int64_t n, const std::vector<double>& limits, bool preserve_zero_buckets) {
  CN_CHECK(!limits.empty());
  Histogram h;
  std::vector<double> counts(limits.size(), 0.0);
  double mn = DBL_MAX, mx = -DBL_MAX;
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    if (!std::isfinite(v)) continue;
    size_t b = static_cast<size_t>(std::upper_bound(limits.begin(), limits.end(), v) - limits.begin());
    if (b >= limits.size()) b = limits.size() - 1;
    counts[b] += 1;
    h.num += 1;
    h.sum += v;
    h.sum_squares += v * v;
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
  if (h.num > 0) {
    h.min = mn;
    h.max = mx;
  }
  for (size_t i = 0; i < counts.size();) {
    double end = limits[i];
    double count = counts[i];
    ++i;
    if (!preserve_zero_buckets && count <= 0.0) {
      while (i < counts.size() && counts[i] <= 0.0) {
        end = limits[i];
        count = counts[i];
        ++i;
      }
    }
    h.bucket_limit.push_back(end);
    h.bucket.push_back(count);
  }
  if (h.bucket.empty()) {
    h.bucket_limit.push_back(DBL_MAX);
    h.bucket.push_back(0.0);
  }
  return h;
}
}  // namespace

Histogram make_histogram(const double* values, int64_t n, const std::vector<double>& limits) {
  return bucketize(values, n, limits, false);
}

// ---- protobuf decoding ----------------------------------------------------------------

namespace {
struct Reader {
  const char* p;
  const char* end;
  bool done() const { return p >= end; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) throw Error("tfevents: truncated varint");
      const uint8_t b = static_cast<uint8_t>(*p++);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw Error("tfevents: varint too long");
  }
  void need(size_t n) const {
    if (static_cast<size_t>(end - p) < n) throw Error("tfevents: truncated field");
  }
  double f64() {
    need(8);
    const uint64_t bits = get_u64(p);
    p += 8;
    double v;
    std::memcpy(&v, &bits, 8);
    return v;
  }
  float f32() {
    need(4);
    const uint32_t bits = get_u32(p);
    p += 4;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  std::string bytes() {
    const uint64_t n = varint();
    need(static_cast<size_t>(n));
    std::string s(p, static_cast<size_t>(n));
    p += n;
    return s;
  }
  void skip(int wire) {
    switch (wire) {
      case 0:
        varint();
        break;
      case 1:
        need(8);
        p += 8;
        break;
      case 2:
        bytes();
        break;
      case 5:
        need(4);
        p += 4;
        break;
      default:
        throw Error("tfevents: unsupported wire type " + std::to_string(wire));
    }
  }
};

void read_doubles(Reader& r, int wire, std::vector<double>& out) {
  if (wire == 1) {
    out.push_back(r.f64());
  } else if (wire == 2) {
    const std::string body = r.bytes();
    if (body.size() % 8) throw Error("tfevents: packed doubles of odd length");
    Reader b{body.data(), body.data() + body.size()};
    while (!b.done()) out.push_back(b.f64());
  } else {
    r.skip(wire);
  }
}

Histogram decode_histogram(const std::string& s) {
  Histogram h;
  Reader r{s.data(), s.data() + s.size()};
  while (!r.done()) {
    const uint64_t key = r.varint();
    const int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    if (field >= 1 && field <= 5 && wire == 1) {
      const double v = r.f64();
      (field == 1 ? h.min : field == 2 ? h.max : field == 3 ? h.num : field == 4 ? h.sum : h.sum_squares) = v;
    } else if (field == 6) {
      read_doubles(r, wire, h.bucket_limit);
    } else if (field == 7) {
      read_doubles(r, wire, h.bucket);
    } else {
      r.skip(wire);
    }
  }
  return h;
}

EventInfo::Value decode_value(const std::string& s) {
  EventInfo::Value v;
  Reader r{s.data(), s.data() + s.size()};
  while (!r.done()) {
    const uint64_t key = r.varint();
    const int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    if (field == 1 && wire == 2) {
      v.tag = r.bytes();
    } else if (field == 2 && wire == 5) {
      v.has_simple = true;
      v.simple_value = r.f32();
    } else if (field == 5 && wire == 2) {
      v.has_histo = true;
      v.histo = decode_histogram(r.bytes());
    } else {
      r.skip(wire);
    }
  }
  return v;
}
}  // namespace

EventInfo decode_event(const std::string& data) {
  EventInfo e;
  Reader r{data.data(), data.data() + data.size()};
  while (!r.done()) {
    const uint64_t key = r.varint();
    const int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    if (field == 1 && wire == 1) {
      e.wall_time = r.f64();
    } else if (field == 2 && wire == 0) {
      e.step = static_cast<int64_t>(r.varint());
    } else if (field == 3 && wire == 2) {
      e.file_version = r.bytes();
    } else if (field == 5 && wire == 2) {
      const std::string summary = r.bytes();
      Reader s{summary.data(), summary.data() + summary.size()};
      while (!s.done()) {
        const uint64_t k = s.varint();
        if ((k >> 3) == 1 && (k & 7) == 2)
          e.values.push_back(decode_value(s.bytes()));
        else
          s.skip(static_cast<int>(k & 7));
      }
    } else {
      r.skip(wire);
    }
  }
  return e;
}

}  // namespace tfevents

// ---- tag scheme shared by the live writer and the re-creation -------------------------

namespace {

using Emit = std::function<void(const std::string& event)>;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool json_step(const nlohmann::json& row, int64_t* step) {
  if (!row.is_object()) return false;
  const auto it = row.find("step");
  if (it == row.end() || !it->is_number()) return false;
  *step = it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(std::llround(it->get<double>()));
  return true;
}

// Every number/bool of `j` (nested objects flattened with '/') under prefix.
void emit_numbers(const Emit& emit, double wall, int64_t step, const std::string& prefix, const nlohmann::json& j,
                  const std::vector<std::string>& skip) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (std::find(skip.begin(), skip.end(), key) != skip.end() || ends_with(key, "_status")) continue;
    const nlohmann::json& v = it.value();
    double x;
    if (v.is_boolean())
      x = v.get<bool>() ? 1.0 : 0.0;
    else if (v.is_number())
      x = v.get<double>();
    else if (v.is_object()) {
      emit_numbers(emit, wall, step, prefix + key + "/", v, {});
      continue;
    } else
      continue;
    if (!std::isfinite(x)) continue;
    emit(tfevents::encode_scalar_event(wall, step, prefix + key, static_cast<float>(x)));
  }
}

std::string layer_prefix(const nlohmann::json& row, const std::string& none) {
  const auto it = row.find("layer");
  if (it != row.end() && it->is_number_integer()) return "layer" + std::to_string(it->get<int64_t>());
  return none;
}

void emit_row(const Emit& emit, double wall, RunLog log, const nlohmann::json& row) {
  int64_t step;
  if (!json_step(row, &step)) return;
  switch (log) {
    case RunLog::metrics:
      emit_numbers(emit, wall, step, "train/", row, {"step"});
      break;
    case RunLog::eval: {
      const auto it = row.find("split");
      const std::string split = it != row.end() && it->is_string() ? it->get<std::string>() : "eval";
      emit_numbers(emit, wall, step, split + "/", row, {"step", "epoch", "split"});
      break;
    }
    case RunLog::stats:
      emit_numbers(emit, wall, step, layer_prefix(row, "network") + "/", row, {"step", "layer"});
      break;
    case RunLog::diagnostics: {
      const auto it = row.find("kind");
      const std::string kind = it != row.end() && it->is_string() ? it->get<std::string>() : "unknown";
      std::string prefix = "curvature/" + kind + "/";
      const std::string layer = layer_prefix(row, "");
      if (!layer.empty()) prefix += layer + "/";
      emit_numbers(emit, wall, step, prefix, row, {"step", "layer", "kind"});
      break;
    }
  }
}

void emit_histogram(const Emit& emit, double wall, int64_t step, const std::string& tag, const std::vector<double>& v) {
  const tfevents::Histogram h =
      tfevents::make_histogram(v.data(), static_cast<int64_t>(v.size()), tfevents::default_bucket_limits());
  emit(tfevents::encode_histogram_event(wall, step, tag, h));
}

bool is_float_dtype(const std::string& dtype) {
  return dtype == "F64" || dtype == "F32" || dtype == "F16" || dtype == "BF16";
}

bool is_uint(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void emit_spectra(const Emit& emit, double wall, int64_t step, const SafeTensorMap& tensors,
                  const std::string& origin) {
  for (const auto& [name, t] : tensors) {
    if (!is_float_dtype(t.dtype)) continue;
    const size_t d1 = name.find('.');
    if (d1 == std::string::npos) continue;
    const std::string kind = name.substr(0, d1);
    const std::string rest = name.substr(d1 + 1);
    std::string tag;
    if (rest == "eigenvalues") {
      tag = "eigenvalues/" + kind;
    } else {
      const size_t d2 = rest.find('.');
      if (d2 == std::string::npos) continue;
      const std::string layer = rest.substr(0, d2), what = rest.substr(d2 + 1);
      if (!is_uint(layer)) continue;
      if (what == "eigenvalues")
        tag = "eigenvalues/" + kind + "/layer" + layer;
      else if (what == "values")
        tag = "hessian_diag/" + kind + "/layer" + layer;
      else if (what == "singular_values")
        tag = "singular_values/" + kind + "/layer" + layer;
      else
        continue;
    }
    emit_histogram(emit, wall, step, tag, safetensor_values<double>(t, origin, name));
  }
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  std::string h(buf);
  for (char& c : h)
    if (c == '/' || c == ' ') c = '_';
  return h;
}

// A fresh event-file path in run_dir (a ".<n>" suffix when the name is taken).
std::string new_event_path(const std::string& run_dir, double wall) {
  const std::string base = run_dir + "/" + RunLayout::kEventsPrefix + std::to_string(static_cast<int64_t>(wall)) + "." +
                           host_name() + "." + std::to_string(static_cast<long>(getpid())) + ".curvnet";
  std::error_code ec;
  std::string path = base;
  for (int n = 1; std::filesystem::exists(path, ec); ++n) path = base + "." + std::to_string(n);
  return path;
}

}  // namespace

// ---- TensorBoardWriter ----------------------------------------------------------------

TensorBoardWriter::TensorBoardWriter(const std::string& run_dir) {
  const double wall = now_seconds();
  path_ = new_event_path(run_dir, wall);
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) throw Error(path_ + ": cannot create: " + std::strerror(errno));
  write_record(tfevents::encode_file_version_event(wall));
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    close();
  } catch (...) {}
}

void TensorBoardWriter::write_record(const std::string& event) {
  if (!file_) throw Error("TensorBoardWriter: write after close (" + path_ + ")");
  const std::string rec = tfevents::frame_record(event);
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size())
    throw Error(path_ + ": write failed: " + std::strerror(errno));
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value) {
  if (!std::isfinite(value)) return;
  write_record(tfevents::encode_scalar_event(now_seconds(), step, tag, static_cast<float>(value)));
}

void TensorBoardWriter::histogram(const std::string& tag, int64_t step, const double* values, int64_t n) {
  const tfevents::Histogram h = tfevents::make_histogram(values, n, tfevents::default_bucket_limits());
  write_record(tfevents::encode_histogram_event(now_seconds(), step, tag, h));
}

void TensorBoardWriter::histogram_fixed(const std::string& tag, int64_t step, const double* values, int64_t n,
                                        int bins) {
  if (bins < 1) throw Error("TensorBoardWriter::histogram_fixed: bins must be >= 1");
  double lo = DBL_MAX, hi = -DBL_MAX;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(values[i])) {
      lo = std::min(lo, values[i]);
      hi = std::max(hi, values[i]);
    }
  std::vector<double> limits;
  if (lo > hi) {
    limits.push_back(DBL_MAX);
  } else if (lo == hi) {
    limits.push_back(hi);
  } else {
    for (int k = 1; k <= bins; ++k) limits.push_back(k == bins ? hi : lo + (hi - lo) * k / bins);
  }
  const tfevents::Histogram h = tfevents::bucketize(values, n, limits, /*preserve_zero_buckets=*/true);
  write_record(tfevents::encode_histogram_event(now_seconds(), step, tag, h));
}

void TensorBoardWriter::row(RunLog log, const nlohmann::json& r) {
  emit_row([this](const std::string& e) { write_record(e); }, now_seconds(), log, r);
}

void TensorBoardWriter::spectra(int64_t step, const SafeTensorMap& tensors) {
  emit_spectra([this](const std::string& e) { write_record(e); }, now_seconds(), step, tensors, "spectra");
}

void TensorBoardWriter::flush() {
  if (!file_) return;
  if (std::fflush(file_) != 0) throw Error(path_ + ": flush failed: " + std::strerror(errno));
  if (::fsync(fileno(file_)) != 0) throw Error(path_ + ": fsync failed: " + std::strerror(errno));
}

void TensorBoardWriter::close() {
  if (!file_) return;
  std::FILE* f = file_;
  try {
    flush();
  } catch (...) {
    std::fclose(f);
    file_ = nullptr;
    throw;
  }
  file_ = nullptr;
  if (std::fclose(f) != 0) throw Error(path_ + ": close failed: " + std::strerror(errno));
}

std::vector<std::string> TensorBoardWriter::event_files(const std::string& run_dir) {
  return RunLayout(run_dir).event_files();
}

size_t TensorBoardWriter::truncate_after_step(const std::string& run_dir, int64_t step,
                                              const std::function<bool(const std::string&, int64_t)>& drop_tag) {
  size_t kept = 0;
  std::vector<std::pair<std::string, std::vector<std::string>>> files;  // all read before any is rewritten
  for (const std::string& path : event_files(run_dir)) files.emplace_back(path, tfevents::read_records(path));
  for (const auto& [path, records] : files) {
    std::string out;
    for (const std::string& rec : records) {
      tfevents::EventInfo e;
      try {
        e = tfevents::decode_event(rec);
      } catch (const Error&) {
        continue;
      }
      if (e.file_version.empty() && e.step > step) continue;
      if (e.file_version.empty() && drop_tag && !e.values.empty() &&
          std::all_of(e.values.begin(), e.values.end(), [&](const auto& v) { return drop_tag(v.tag, e.step); }))
        continue;
      out += tfevents::frame_record(rec);
      ++kept;
    }
    write_file_atomic(path, out);
  }
  return kept;
}

// ---- re-creation from a run's logs --------------------------------------------------------

std::string write_tensorboard_from_run(const std::string& run_dir) {
  const RunLayout run(run_dir);
  const double now = now_seconds();
  const std::vector<nlohmann::json> metrics = read_jsonl(run.metrics_log());

  // Wall time per step from metrics.jsonl's time_s (seconds since the run started).
  std::map<int64_t, double> time_at;
  double last_time = 0;
  for (const auto& row : metrics) {
    int64_t step;
    const auto it = row.find("time_s");
    if (json_step(row, &step) && it != row.end() && it->is_number() && std::isfinite(it->get<double>())) {
      time_at[step] = it->get<double>();
      last_time = std::max(last_time, it->get<double>());
    }
  }
  const double base = now - last_time;
  auto wall_of = [&](int64_t step) {
    auto it = time_at.upper_bound(step);
    if (it == time_at.begin()) return base;
    return base + std::prev(it)->second;
  };

  std::string bytes = tfevents::frame_record(tfevents::encode_file_version_event(base));
  const Emit emit = [&bytes](const std::string& e) { bytes += tfevents::frame_record(e); };
  auto emit_rows = [&](RunLog log, const std::vector<nlohmann::json>& rows) {
    for (const auto& row : rows) {
      int64_t step;
      if (json_step(row, &step)) emit_row(emit, wall_of(step), log, row);
    }
  };
  emit_rows(RunLog::metrics, metrics);
  emit_rows(RunLog::eval, read_jsonl(run.eval_log()));
  emit_rows(RunLog::stats, read_jsonl(run.stats_log()));
  emit_rows(RunLog::diagnostics, read_jsonl(run.diagnostics_log()));

  for (const auto& [step, tensors] : read_run_spectra(run.root()))
    emit_spectra(emit, wall_of(step), step, tensors, run.root() + "/spectra");

  for (const auto& [step, dir] : step_entries(run.checkpoints(), "", true)) {
    const std::string path = dir + "/" + RunLayout::kModelFile;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) continue;
    for (const auto& [name, t] : read_safetensors(path))
      if (is_float_dtype(t.dtype))
        emit_histogram(emit, wall_of(step), step, "weights/" + name, safetensor_values<double>(t, path, name));
  }

  for (const auto& [step, path] : step_entries(run.histograms(), ".safetensors", false)) {
    for (const auto& [name, t] : read_safetensors(path)) {
      if (!is_float_dtype(t.dtype)) continue;
      std::string tag = name;
      const size_t dot = tag.find('.');
      if (dot != std::string::npos) tag[dot] = '/';
      emit_histogram(emit, wall_of(step), step, tag, safetensor_values<double>(t, path, name));
    }
  }

  const std::vector<std::string> old = TensorBoardWriter::event_files(run_dir);
  const std::string path = new_event_path(run_dir, now);
  write_file_atomic(path, bytes);
  for (const std::string& f : old) {
    std::error_code ec;
    std::filesystem::remove(f, ec);
  }
  return path;
}

}  // namespace cn
