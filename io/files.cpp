#include "io/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cn {
namespace {

std::string sys_reason() { return std::strerror(errno); }

[[noreturn]] void fail_io(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what + ": " + sys_reason());
}

// Writes all bytes to fd, retrying short writes and EINTR.
bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void fsync_dir(const std::filesystem::path& dir) {
  const std::string d = dir.empty() ? std::string(".") : dir.string();
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some file systems don't allow opening directories
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  static std::atomic<uint64_t> counter{0};
  const std::filesystem::path target(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_io(path, "cannot create temporary file " + tmp);
  bool ok = write_all(fd, static_cast<const char*>(data), size) && ::fsync(fd) == 0;
  std::string reason = ok ? std::string() : sys_reason();
  if (::close(fd) != 0 && ok) {
    ok = false;
    reason = sys_reason();
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot write: " + reason);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = sys_reason();
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot rename " + tmp + " into place: " + reason);
  }
  fsync_dir(target.parent_path());
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

bool is_atomic_temp_name(const std::string& name) {
  // From the end: ".<counter>", ".<pid>", ".tmp", then a non-empty name.
  auto digits_before = [&name](size_t end) -> size_t {  // start of the digit run ending at `end`
    size_t i = end;
    while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9') --i;
    return i;
  };
  const size_t counter = digits_before(name.size());
  if (counter == name.size() || counter == 0 || name[counter - 1] != '.') return false;
  const size_t pid = digits_before(counter - 1);
  if (pid == counter - 1 || pid < 6) return false;
  return name.compare(pid - 5, 5, ".tmp.") == 0;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot read: " + sys_reason());
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw InputError(path + ": cannot read: " + sys_reason());
  return ss.str();
}

// --- JsonLinesWriter

JsonLinesWriter::JsonLinesWriter(const std::string& path, bool append) { open(path, append); }

JsonLinesWriter::~JsonLinesWriter() {
  if (file_) {
    std::fflush(file_);
    ::fsync(fileno(file_));
    std::fclose(file_);
  }
}

JsonLinesWriter::JsonLinesWriter(JsonLinesWriter&& other) noexcept
    : file_(std::exchange(other.file_, nullptr)), path_(std::move(other.path_)) {}

JsonLinesWriter& JsonLinesWriter::operator=(JsonLinesWriter&& other) noexcept {
  if (this != &other) {
    if (file_) std::fclose(file_);
    file_ = std::exchange(other.file_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

void JsonLinesWriter::open(const std::string& path, bool append) {
  close();
  file_ = std::fopen(path.c_str(), append ? "ab" : "wb");
  if (!file_) fail_io(path, "cannot open for writing");
  path_ = path;
}

void JsonLinesWriter::write(const nlohmann::json& row) {
  if (!file_) throw Error("JsonLinesWriter::write: no file open");
  if (!row.is_object()) throw Error(path_ + ": a JSON-lines row must be an object, got " + row.dump());
  std::string line = row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size()) fail_io(path_, "cannot append");
}

void JsonLinesWriter::flush() {
  if (!file_) return;
  if (std::fflush(file_) != 0) fail_io(path_, "cannot flush");
  if (::fsync(fileno(file_)) != 0 && errno != EINVAL) fail_io(path_, "cannot fsync");
}

void JsonLinesWriter::close() {
  if (!file_) return;
  flush();
  std::FILE* f = std::exchange(file_, nullptr);
  if (std::fclose(f) != 0) fail_io(path_, "cannot close");
}

size_t truncate_after_step(const std::string& path, int64_t step,
                           const std::function<bool(const nlohmann::json&)>& drop) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return 0;
  std::istringstream in(read_file(path));
  std::string out, line;
  size_t kept = 0;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no trailing newline: a torn last line
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.is_object()) continue;
    const auto it = row.find("step");
    if (it != row.end() && it->is_number()) {
      const double row_step = it->get<double>();
      if (row_step > static_cast<double>(step)) continue;
      if (drop && drop(row)) continue;
    }
    out += line;
    out += '\n';
    ++kept;
  }
  write_file_atomic(path, out);
  return kept;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path, bool* exists) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  if (exists) *exists = static_cast<bool>(in);
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (!row.is_discarded() && row.is_object()) rows.push_back(std::move(row));
  }
  return rows;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

nlohmann::json json_number(double value) {
  if (std::isfinite(value)) return value;
  return nullptr;
}

const char* nonfinite_status(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return "";
}

void set_metric(nlohmann::json& row, const std::string& name, double value) {
  row[name] = json_number(value);
  if (!std::isfinite(value)) row[name + "_status"] = nonfinite_status(value);
}

}  // namespace cn
