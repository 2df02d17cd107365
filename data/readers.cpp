// File readers: IDX (Fashion-MNIST), CSV, and the data files python3-sklearn ships.
// Every malformed input is an InputError naming the file, the position and what was
// expected there.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/text.h"

namespace cn {
namespace {

[[noreturn]] void input_error(const std::string& msg) { throw InputError(msg); }

// A gzip'd or plain file read sequentially (gzread passes plain files through unchanged,
// so one path serves both). pos() is the offset in the decompressed stream, the position
// every error message names.
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) input_error(path + ": file not found");
    if (std::filesystem::is_directory(path, ec)) input_error(path + ": expected a file, found a directory");
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) input_error(path + ": cannot open: " + std::strerror(errno));
    gzbuffer(f_, 1u << 20);
  }
  ~GzFile() {
    if (f_) gzclose(f_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Up to n bytes; fewer only at the end of the file.
  size_t read(void* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      const unsigned want = static_cast<unsigned>(std::min<size_t>(n - got, size_t{1} << 30));
      const int r = gzread(f_, static_cast<char*>(buf) + got, want);
      if (r < 0) fail();
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    pos_ += got;
    if (got < n) {  // the end: a cut gzip stream shows up here
      int errnum = 0;
      gzerror(f_, &errnum);
      if (errnum != Z_OK && errnum != Z_STREAM_END) fail();
    }
    return got;
  }
  size_t pos() const { return pos_; }
  const std::string& path() const { return path_; }

  // An upper bound on the (decompressed) bytes left, from the size on disk: exact for a
  // plain file; deflate expands at most 1032-fold. Lets a reader refuse a header's claim
  // before allocating for it.
  uint64_t max_bytes_left() {
    std::error_code ec;
    const uint64_t disk = std::filesystem::file_size(path_, ec);
    if (ec) return UINT64_MAX;
    if (gzdirect(f_)) return disk > pos_ ? disk - pos_ : 0;
    return disk > UINT64_MAX / 1032 ? UINT64_MAX : disk * 1032;
  }

 private:
  [[noreturn]] void fail() {
    int errnum = 0;
    const std::string msg = gzerror(f_, &errnum);
    input_error(path_ + ": byte " + std::to_string(pos_) + ": expected a complete, valid gzip stream: " + msg);
  }
  std::string path_;
  gzFile f_ = nullptr;
  size_t pos_ = 0;
};

}  // namespace
namespace text {

// The whole (decompressed) content of a file.
std::string read_whole(const std::string& path) {
  GzFile f(path);
  std::string out;
  constexpr size_t kChunk = size_t{1} << 22;
  for (;;) {
    const size_t at = out.size();
    out.resize(at + kChunk);
    const size_t got = f.read(out.data() + at, kChunk);
    out.resize(at + got);
    if (got < kChunk) break;
  }
  return out;
}

// ---- numbers ----

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// A finite number (locale-independent); false for anything else.
bool parse_number(std::string_view s, double* out) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool is_integer_value(double v) { return std::floor(v) == v && std::fabs(v) < 9007199254740992.0; }

// Input text in a message: escaped and cut, so the message stays one short line.
std::string quote(std::string_view s) { return "\"" + quote_input(s) + "\""; }

}  // namespace text
namespace {
using namespace text;

// ---- IDX ----

uint32_t be32(const std::string& b, size_t at) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(b[at])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(b[at + 3]));
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Reads and checks the header of an IDX file of unsigned bytes with `ndims` dimensions;
// returns the dimensions. The payload follows at byte 4 + 4 * ndims.
std::vector<int64_t> read_idx_header(GzFile& f, int ndims) {
  const std::string& path = f.path();
  const uint32_t magic = 0x00000800u | static_cast<uint32_t>(ndims);
  std::string b(4 + 4 * static_cast<size_t>(ndims), '\0');
  b.resize(f.read(b.data(), b.size()));
  if (b.size() < 4)
    input_error(path + ": byte 0: expected the 4-byte IDX magic number " + hex32(magic) + ", file has only " +
                std::to_string(b.size()) + " bytes");
  const uint32_t found = be32(b, 0);
  if (found != magic)
    input_error(path + ": byte 0: expected IDX magic number " + hex32(magic) + " (unsigned bytes, " +
                std::to_string(ndims) + " dimension" + (ndims > 1 ? "s" : "") + "), found " + hex32(found));
  std::vector<int64_t> dims;
  for (int i = 0; i < ndims; ++i) {
    const size_t at = 4 + 4 * static_cast<size_t>(i);
    if (b.size() < at + 4)
      input_error(path + ": byte " + std::to_string(b.size()) + ": expected dimension " + std::to_string(i) +
                  " (4 bytes at byte " + std::to_string(at) + "), file ends");
    const uint32_t d = be32(b, at);
    if (d == 0)
      input_error(path + ": byte " + std::to_string(at) + ": expected a positive size of dimension " +
                  std::to_string(i) + ", found 0");
    dims.push_back(d);
  }
  return dims;
}

// The payload size the header's dimensions claim; an InputError ("truncated") naming the file
// when it exceeds what the file can hold, so nothing is allocated for a false claim.
uint64_t idx_payload_size(GzFile& f, const std::vector<int64_t>& dims) {
  const uint64_t bound = f.max_bytes_left();
  uint64_t count = 1;
  bool fits = true;
  std::string claim;
  for (const int64_t d : dims) {
    claim += (claim.empty() ? "" : " x ") + std::to_string(d);
    const uint64_t u = static_cast<uint64_t>(d);
    if (fits && count > bound / u) fits = false;  // dims are positive; beyond the bound (or 64 bits)
    if (fits) count *= u;
  }
  if (!fits)
    input_error(f.path() + ": byte " + std::to_string(f.pos()) + ": expected " + claim +
                " data bytes (the header's dimensions), the file holds at most " + std::to_string(bound) +
                " (truncated)");
  return count;
}

// Streams `count` payload bytes through sink(const uint8_t*, size_t) in chunks and checks
// that the file holds exactly that many.
template <class Sink>
void read_idx_payload(GzFile& f, uint64_t count, Sink sink) {
  const size_t start = f.pos();
  std::vector<uint8_t> buf(size_t{1} << 20);
  uint64_t left = count;
  while (left > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
    const size_t got = f.read(buf.data(), want);
    sink(buf.data(), got);
    left -= got;
    if (got < want)
      input_error(f.path() + ": byte " + std::to_string(f.pos()) + ": expected " + std::to_string(count) +
                  " data bytes from byte " + std::to_string(start) + ", file ends after " +
                  std::to_string(count - left) + " (truncated)");
  }
  const size_t extra = f.read(buf.data(), buf.size());
  if (extra > 0)
    input_error(f.path() + ": byte " + std::to_string(start + count) + ": expected end of file after " +
                std::to_string(count) + " data bytes, found more");
}

// ---- CSV ----
}  // namespace
namespace text {

// One line split into cells; double quotes protect commas ("" is a quote inside quotes).
// Returns false on an unterminated quote.
bool split_csv_line(std::string_view line, char sep, std::vector<std::string>* cells) {
  cells->clear();
  std::string cur;
  size_t i = 0;
  for (;;) {
    cur.clear();
    // leading blanks
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t') && line[i] != sep) ++i;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            cur.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        cur.push_back(line[i++]);
      }
      if (!closed) return false;
      while (i < line.size() && line[i] != sep) ++i;  // blanks after the closing quote
    } else {
      while (i < line.size() && line[i] != sep) cur.push_back(line[i++]);
      cur = std::string(trim(cur));
    }
    cells->push_back(cur);
    if (i >= line.size()) break;
    ++i;  // the separator
  }
  return true;
}

// Non-blank lines of a text as rows of cells. Blank lines are skipped (their numbers still count).
std::vector<CsvRow> read_rows(const std::string& path, const std::string& text, char sep) {
  std::vector<CsvRow> rows;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (trim(line).empty()) continue;
    CsvRow row;
    row.line = line_no;
    if (sep == ' ') {  // any run of blanks separates
      std::string_view s = trim(line);
      size_t i = 0;
      while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        const size_t j0 = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
        if (i > j0) row.cells.emplace_back(s.substr(j0, i - j0));
      }
    } else if (!split_csv_line(line, sep, &row.cells)) {
      input_error(path + ": line " + std::to_string(line_no) + ": expected a closing double quote, line ends");
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace text
namespace {
using namespace text;

std::string column_name(const std::vector<std::string>& header, size_t j) {
  std::string s = "column " + std::to_string(j + 1);
  if (j < header.size() && !header[j].empty()) s += " (" + quote(header[j]) + ")";
  return s;
}

double cell_number(const std::string& path, const CsvRow& row, size_t j, const std::vector<std::string>& header) {
  double v = 0;
  if (!parse_number(row.cells[j], &v))
    input_error(path + ": line " + std::to_string(row.line) + ", " + column_name(header, j) +
                ": expected a finite number, found " + quote(row.cells[j]));
  return v;
}

// Class indices for label cells: integers by numeric order, otherwise strings by byte order.
void map_labels(const std::vector<std::string>& cells, std::vector<double>* y, std::vector<std::string>* names) {
  bool all_int = true;
  std::vector<double> vals(cells.size());
  for (size_t i = 0; i < cells.size() && all_int; ++i)
    all_int = parse_number(cells[i], &vals[i]) && is_integer_value(vals[i]);
  y->resize(cells.size());
  names->clear();
  if (all_int) {
    std::set<double> distinct(vals.begin(), vals.end());
    std::map<double, int64_t> index;
    for (double v : distinct) {
      index[v] = static_cast<int64_t>(names->size());
      std::ostringstream os;
      os << static_cast<long long>(v);
      names->push_back(os.str());
    }
    for (size_t i = 0; i < vals.size(); ++i) (*y)[i] = static_cast<double>(index[vals[i]]);
  } else {
    std::set<std::string> distinct;
    for (const auto& c : cells) distinct.insert(std::string(trim(c)));
    std::map<std::string, int64_t> index;
    for (const auto& s : distinct) {
      index[s] = static_cast<int64_t>(names->size());
      names->push_back(s);
    }
    for (size_t i = 0; i < cells.size(); ++i) (*y)[i] = static_cast<double>(index[std::string(trim(cells[i]))]);
  }
}

Dataset read_csv_impl(const std::string& path, const std::string& label_column, const Task* forced) {
  const std::string text = read_whole(path);
  const std::vector<CsvRow> rows = read_rows(path, text, ',');
  if (rows.empty()) input_error(path + ": line 1: expected a header row, file is empty");
  const std::vector<std::string>& header = rows[0].cells;
  const size_t ncol = header.size();
  if (ncol < 2)
    input_error(path + ": line " + std::to_string(rows[0].line) +
                ": expected a header with at least 2 columns (features and a label), found " + std::to_string(ncol));
  if (rows.size() < 2)
    input_error(path + ": line " + std::to_string(rows[0].line + 1) +
                ": expected at least one data row after the header, file ends");

  // The label column: a header name first, else a 0-based index; empty = the last column.
  size_t label = ncol - 1;
  const std::string want(trim(label_column));
  if (!want.empty()) {
    const auto it = std::find(header.begin(), header.end(), want);
    if (it != header.end()) {
      label = static_cast<size_t>(it - header.begin());
    } else {
      const bool digits = std::all_of(want.begin(), want.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits || want.size() > 9 || std::stoul(want) >= ncol) {
        std::string names;
        for (size_t j = 0; j < ncol; ++j) names += (j ? ", " : "") + quote(header[j]);
        input_error(path + ": line " + std::to_string(rows[0].line) + ": expected a label column named " + quote(want) +
                    " or a 0-based index below " + std::to_string(ncol) + " (data.label_column); the header has " +
                    names);
      }
      label = std::stoul(want);
    }
  }

  Dataset ds;
  ds.name = std::filesystem::path(path).stem().string();
  ds.n = static_cast<int64_t>(rows.size() - 1);
  ds.d = static_cast<int64_t>(ncol - 1);
  for (size_t j = 0; j < ncol; ++j)
    if (j != label) ds.feature_names.push_back(header[j]);
  ds.x.resize(static_cast<size_t>(ds.n * ds.d));
  std::vector<std::string> labels;
  labels.reserve(rows.size() - 1);
  for (size_t r = 1; r < rows.size(); ++r) {
    const CsvRow& row = rows[r];
    if (row.cells.size() != ncol)
      input_error(path + ": line " + std::to_string(row.line) + ": expected " + std::to_string(ncol) +
                  " cells (as in the header), found " + std::to_string(row.cells.size()));
    double* out = ds.x.data() + (r - 1) * static_cast<size_t>(ds.d);
    for (size_t j = 0; j < ncol; ++j) {
      if (j == label) continue;
      *out++ = cell_number(path, row, j, header);
    }
    if (trim(row.cells[label]).empty())
      input_error(path + ": line " + std::to_string(row.line) + ", " + column_name(header, label) +
                  ": expected a label, found an empty cell");
    labels.push_back(row.cells[label]);
  }

  ds.task = forced ? *forced : infer_csv_task(labels);
  if (ds.task == Task::classification) {
    map_labels(labels, &ds.y, &ds.class_names);
    ds.n_outputs = static_cast<int64_t>(ds.class_names.size());
    if (ds.n_outputs < 2)
      input_error(path + ": " + column_name(header, label) +
                  ": expected at least 2 distinct labels for classification, found only " +
                  quote(ds.class_names.empty() ? "" : ds.class_names[0]) + " in all " + std::to_string(ds.n) + " rows");
  } else {
    ds.n_outputs = 1;
    ds.y.resize(static_cast<size_t>(ds.n));
    for (size_t r = 1; r < rows.size(); ++r) ds.y[r - 1] = cell_number(path, rows[r], label, header);
  }
  return ds;
}

// The sklearn CSVs: "n_samples,n_features,class names..." then features and an integer label.
Dataset read_sklearn_csv(const std::string& path, const std::string& name) {
  const std::string text = read_whole(path);
  const std::vector<CsvRow> rows = read_rows(path, text, ',');
  if (rows.empty()) input_error(path + ": line 1: expected \"n_samples,n_features,class names...\", file is empty");
  const CsvRow& head = rows[0];
  double ns = 0, nf = 0;
  if (head.cells.size() < 3 || !parse_number(head.cells[0], &ns) || !parse_number(head.cells[1], &nf) ||
      !is_integer_value(ns) || !is_integer_value(nf) || ns < 1 || nf < 1)
    input_error(path + ": line " + std::to_string(head.line) + ": expected \"n_samples,n_features,class names...\"");
  Dataset ds;
  ds.name = name;
  ds.task = Task::classification;
  ds.n = static_cast<int64_t>(ns);
  ds.d = static_cast<int64_t>(nf);
  ds.class_names.assign(head.cells.begin() + 2, head.cells.end());
  ds.n_outputs = static_cast<int64_t>(ds.class_names.size());
  if (static_cast<int64_t>(rows.size()) - 1 != ds.n)
    input_error(path + ": line " + std::to_string(rows.back().line + 1) + ": expected " + std::to_string(ds.n) +
                " data rows (as the first line says), found " + std::to_string(rows.size() - 1));
  // Every row's width first, so the first line's counts are checked before anything is allocated.
  for (size_t r = 1; r < rows.size(); ++r)
    if (static_cast<int64_t>(rows[r].cells.size()) != ds.d + 1)
      input_error(path + ": line " + std::to_string(rows[r].line) + ": expected " + std::to_string(ds.d + 1) +
                  " cells (features and a label), found " + std::to_string(rows[r].cells.size()));
  ds.x.resize(static_cast<size_t>(ds.n * ds.d));
  ds.y.resize(static_cast<size_t>(ds.n));
  const std::vector<std::string> no_header;
  for (int64_t i = 0; i < ds.n; ++i) {
    const CsvRow& row = rows[static_cast<size_t>(i) + 1];
    for (int64_t j = 0; j < ds.d; ++j)
      ds.x[static_cast<size_t>(i * ds.d + j)] = cell_number(path, row, static_cast<size_t>(j), no_header);
    const double c = cell_number(path, row, static_cast<size_t>(ds.d), no_header);
    if (!is_integer_value(c) || c < 0 || c >= static_cast<double>(ds.n_outputs))
      input_error(path + ": line " + std::to_string(row.line) + ", column " + std::to_string(ds.d + 1) +
                  ": expected a class index in [0, " + std::to_string(ds.n_outputs) + "), found " +
                  quote(row.cells.back()));
    ds.y[static_cast<size_t>(i)] = c;
  }
  return ds;
}

// A headerless numeric table with a fixed number of columns per row.
std::vector<double> read_numeric_table(const std::string& path, char sep, int64_t ncol, int64_t* nrows) {
  const std::string text = read_whole(path);
  const std::vector<CsvRow> rows = read_rows(path, text, sep);
  if (rows.empty())
    input_error(path + ": line 1: expected rows of " + std::to_string(ncol) + " numbers, file is empty");
  std::vector<double> out;
  out.reserve(rows.size() * static_cast<size_t>(ncol));
  const std::vector<std::string> no_header;
  for (const CsvRow& row : rows) {
    if (static_cast<int64_t>(row.cells.size()) != ncol)
      input_error(path + ": line " + std::to_string(row.line) + ": expected " + std::to_string(ncol) +
                  " numbers, found " + std::to_string(row.cells.size()) + " cells");
    for (size_t j = 0; j < row.cells.size(); ++j) out.push_back(cell_number(path, row, j, no_header));
  }
  *nrows = static_cast<int64_t>(rows.size());
  return out;
}

std::string join_path(const std::string& dir, const std::string& file) {
  return (std::filesystem::path(dir) / file).string();
}

}  // namespace

Task infer_csv_task(const std::vector<std::string>& label_cells) {
  std::set<std::string> distinct;
  bool all_integer = true;
  for (const auto& c : label_cells) {
    double v = 0;
    if (!parse_number(c, &v)) return Task::classification;  // a non-numeric label: classes
    if (!is_integer_value(v)) all_integer = false;
    distinct.insert(std::string(trim(c)));
  }
  if (!all_integer) return Task::regression;
  // Distinct integer values (so "1" and "1.0" count once).
  std::set<double> values;
  for (const auto& c : label_cells) {
    double v = 0;
    parse_number(c, &v);
    values.insert(v);
  }
  return values.size() <= 50 ? Task::classification : Task::regression;
}

Dataset read_csv(const std::string& path, const std::string& label_column, Task task) {
  return read_csv_impl(path, label_column, &task);
}

Dataset read_csv(const std::string& path, const std::string& label_column) {
  return read_csv_impl(path, label_column, nullptr);
}

namespace {

// read_idx_pair, also giving the image shape (rows x cols).
Dataset read_idx_pair_shape(const std::string& images_path, const std::string& labels_path, int64_t* rows,
                            int64_t* cols) {
  // Labels first (small), so a count mismatch is found before the big read.
  GzFile lf(labels_path);
  const std::vector<int64_t> ldims = read_idx_header(lf, 1);
  const uint64_t n_labels = idx_payload_size(lf, ldims);
  std::vector<double> y;
  y.reserve(static_cast<size_t>(n_labels));
  int max_label = 0;
  read_idx_payload(lf, n_labels, [&](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      y.push_back(p[i]);
      max_label = std::max<int>(max_label, p[i]);
    }
  });
  GzFile imf(images_path);
  const std::vector<int64_t> idims = read_idx_header(imf, 3);
  if (ldims[0] != idims[0])
    input_error(labels_path + ": byte 4: expected " + std::to_string(idims[0]) + " labels (the image count of " +
                images_path + "), found " + std::to_string(ldims[0]));
  const uint64_t n_pixels = idx_payload_size(imf, idims);
  if (rows) *rows = idims[1];
  if (cols) *cols = idims[2];
  Dataset ds;
  ds.name = std::filesystem::path(images_path).filename().string();
  ds.task = Task::classification;
  ds.n = idims[0];
  ds.d = idims[1] * idims[2];
  std::array<double, 256> scale{};
  for (int v = 0; v < 256; ++v) scale[static_cast<size_t>(v)] = v / 255.0;
  // Decompress in chunks straight into the features: no copy of the file, no zero fill.
  ds.x.reserve(static_cast<size_t>(n_pixels));
  read_idx_payload(imf, n_pixels, [&](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) ds.x.push_back(scale[p[i]]);
  });
  ds.y = std::move(y);
  ds.n_outputs = max_label + 1;
  return ds;
}

}  // namespace

Dataset read_idx_pair(const std::string& images_path, const std::string& labels_path) {
  return read_idx_pair_shape(images_path, labels_path, nullptr, nullptr);
}

Dataset load_fashion_mnist(bool train, const std::string& dir) {
  const std::string root = dir.empty() ? kFashionMnistDir : dir;
  const std::string prefix = train ? "train" : "t10k";
  const std::string images = join_path(root, prefix + "-images-idx3-ubyte.gz");
  int64_t rows = 0, cols = 0;
  Dataset ds = read_idx_pair_shape(images, join_path(root, prefix + "-labels-idx1-ubyte.gz"), &rows, &cols);
  // Every split feeds one model of 784 inputs: another shape would be read out of bounds.
  if (rows != 28 || cols != 28)
    input_error(images + ": byte 8: expected 28x28 images (Fashion-MNIST), found " + std::to_string(rows) + "x" +
                std::to_string(cols));
  ds.name = "fashion-mnist";
  if (ds.n_outputs > 10)
    input_error(join_path(root, prefix + "-labels-idx1-ubyte.gz") + ": expected labels 0..9, found " +
                std::to_string(ds.n_outputs - 1));
  ds.n_outputs = 10;
  ds.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return ds;
}

Dataset load_sklearn_dataset(const std::string& name, const std::string& dir) {
  const std::string root = dir.empty() ? kSklearnDataDir : dir;
  if (name == "iris") {
    Dataset ds = read_sklearn_csv(join_path(root, "iris.csv"), name);
    ds.feature_names = {"sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"};
    return ds;
  }
  if (name == "wine") return read_sklearn_csv(join_path(root, "wine_data.csv"), name);
  if (name == "breast-cancer") return read_sklearn_csv(join_path(root, "breast_cancer.csv"), name);
  if (name == "digits") {
    const std::string path = join_path(root, "digits.csv.gz");
    Dataset ds;
    ds.name = name;
    ds.task = Task::classification;
    ds.d = 64;
    ds.n_outputs = 10;
    const std::vector<double> t = read_numeric_table(path, ',', 65, &ds.n);
    ds.x.resize(static_cast<size_t>(ds.n * 64));
    ds.y.resize(static_cast<size_t>(ds.n));
    for (int64_t i = 0; i < ds.n; ++i) {
      std::copy(t.begin() + i * 65, t.begin() + i * 65 + 64, ds.x.begin() + i * 64);
      const double c = t[static_cast<size_t>(i * 65 + 64)];
      if (!is_integer_value(c) || c < 0 || c > 9)
        input_error(path + ": row " + std::to_string(i + 1) + ", column 65: expected a digit label 0..9");
      ds.y[static_cast<size_t>(i)] = c;
    }
    for (int c = 0; c < 10; ++c) ds.class_names.push_back(std::to_string(c));
    return ds;
  }
  if (name == "diabetes") {
    const std::string xpath = join_path(root, "diabetes_data_raw.csv.gz");
    const std::string ypath = join_path(root, "diabetes_target.csv.gz");
    Dataset ds;
    ds.name = name;
    ds.task = Task::regression;
    ds.d = 10;
    ds.n_outputs = 1;
    ds.x = read_numeric_table(xpath, ' ', 10, &ds.n);
    int64_t ny = 0;
    ds.y = read_numeric_table(ypath, ' ', 1, &ny);
    if (ny != ds.n)
      input_error(ypath + ": line " + std::to_string(std::min(ny, ds.n) + 1) + ": expected " + std::to_string(ds.n) +
                  " targets (the rows of " + xpath + "), found " + std::to_string(ny));
    ds.feature_names = {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"};
    return ds;
  }
  input_error("unknown bundled data set " + quote(name) + ": expected iris, wine, breast-cancer, digits or diabetes");
}

Dataset take_rows(const Dataset& ds, const std::vector<int64_t>& rows) {
  Dataset out;
  out.name = ds.name;
  out.task = ds.task;
  out.d = ds.d;
  out.n_outputs = ds.n_outputs;
  out.class_names = ds.class_names;
  out.feature_names = ds.feature_names;
  out.n = static_cast<int64_t>(rows.size());
  const int64_t ycols = ds.task == Task::classification ? 1 : ds.n_outputs;
  out.x.resize(static_cast<size_t>(out.n * ds.d));
  out.y.resize(static_cast<size_t>(out.n * ycols));
  for (int64_t i = 0; i < out.n; ++i) {
    const int64_t r = rows[static_cast<size_t>(i)];
    CN_CHECK_MSG(r >= 0 && r < ds.n, "row " << r << " outside [0, " << ds.n << ")");
    std::copy_n(ds.x.begin() + r * ds.d, ds.d, out.x.begin() + i * ds.d);
    std::copy_n(ds.y.begin() + r * ycols, ycols, out.y.begin() + i * ycols);
  }
  return out;
}

}  // namespace cn
