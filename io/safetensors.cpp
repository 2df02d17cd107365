#include "io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "io/files.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace cn {
namespace {

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit

struct DTypeInfo {
  const char* name;
  size_t size;
  enum Kind { Float, Signed, Unsigned, Bool } kind;
};

constexpr DTypeInfo kDTypes[] = {
    {"F64", 8, DTypeInfo::Float},    {"F32", 4, DTypeInfo::Float},    {"F16", 2, DTypeInfo::Float},
    {"BF16", 2, DTypeInfo::Float},   {"I64", 8, DTypeInfo::Signed},   {"I32", 4, DTypeInfo::Signed},
    {"I16", 2, DTypeInfo::Signed},   {"I8", 1, DTypeInfo::Signed},    {"U64", 8, DTypeInfo::Unsigned},
    {"U32", 4, DTypeInfo::Unsigned}, {"U16", 2, DTypeInfo::Unsigned}, {"U8", 1, DTypeInfo::Unsigned},
    {"BOOL", 1, DTypeInfo::Bool},
};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string known_dtypes() {
  std::string s;
  for (const auto& d : kDTypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

// numel of a shape, or -1 on a negative extent or overflow past int64.
int64_t numel_or_neg(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31)
    v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    v = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <class S>
S load(const uint8_t* p) {
  S s;
  std::memcpy(&s, p, sizeof(S));
  return s;
}

}  // namespace

int64_t SafeTensor::numel() const { return numel_or_neg(shape); }

size_t safetensors_dtype_size(const std::string& dtype) {
  const DTypeInfo* d = find_dtype(dtype);
  return d ? d->size : 0;
}

// --- writer

std::string SafetensorsWriter::shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t SafetensorsWriter::checked_numel(const std::string& name, const std::vector<int64_t>& shape) {
  const int64_t n = numel_or_neg(shape);
  if (n < 0) throw Error("safetensors: tensor " + name + ": invalid shape " + shape_string(shape));
  return n;
}

void SafetensorsWriter::add_raw(const std::string& name, SafeTensor tensor) {
  if (name.empty() || name == "__metadata__") throw Error("safetensors: invalid tensor name \"" + name + "\"");
  if (tensors_.count(name)) throw Error("safetensors: tensor " + name + " added twice");
  const size_t esize = safetensors_dtype_size(tensor.dtype);
  if (esize == 0) throw Error("safetensors: tensor " + name + ": unknown dtype " + tensor.dtype);
  const int64_t n = checked_numel(name, tensor.shape);
  if (tensor.bytes.size() != static_cast<size_t>(n) * esize)
    throw Error("safetensors: tensor " + name + ": " + std::to_string(tensor.bytes.size()) + " bytes for " +
                tensor.dtype + " " + shape_string(tensor.shape));
  tensors_.emplace(name, std::move(tensor));
}

void SafetensorsWriter::metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

std::string SafetensorsWriter::serialize() const {
  // Larger elements first, then by name (the reference's order): every tensor is aligned.
  std::vector<const std::pair<const std::string, SafeTensor>*> order;
  for (const auto& kv : tensors_) order.push_back(&kv);
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return safetensors_dtype_size(a->second.dtype) > safetensors_dtype_size(b->second.dtype);
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto* kv : order) {
    const SafeTensor& t = kv->second;
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = t.dtype;
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + t.bytes.size()};
    header[kv->first] = std::move(e);
    offset += t.bytes.size();
  }
  std::string json = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  json.append((8 - json.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + json.size() + offset);
  const uint64_t n = json.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += json;
  for (const auto* kv : order)
    out.append(reinterpret_cast<const char*>(kv->second.bytes.data()), kv->second.bytes.size());
  return out;
}

void SafetensorsWriter::write(const std::string& path) const { write_file_atomic(path, serialize()); }

// --- reader

SafeTensorMap parse_safetensors(const std::string& bytes, const std::string& origin,
                                std::map<std::string, std::string>* metadata) {
  auto fail = [&](const std::string& what) -> InputError { return InputError(origin + ": " + what); };
  if (bytes.size() < 8)
    throw fail("not a safetensors file: " + std::to_string(bytes.size()) + " bytes, too short for the header length");
  const uint64_t n = load<uint64_t>(reinterpret_cast<const uint8_t*>(bytes.data()));
  if (n > kMaxHeader)
    throw fail("header length " + std::to_string(n) +
               " is beyond the format's limit (truncated or not a safetensors file?)");
  if (n > bytes.size() - 8)
    throw fail("header length " + std::to_string(n) + " exceeds the file's " + std::to_string(bytes.size()) +
               " bytes (truncated?)");
  const std::string text = bytes.substr(8, n);
  if (text.empty() || text[0] != '{') throw fail("header does not start with '{'");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");

  const uint64_t buffer_size = bytes.size() - 8 - n;
  const uint8_t* buffer = reinterpret_cast<const uint8_t*>(bytes.data()) + 8 + n;
  SafeTensorMap out;
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> spans;
  if (metadata) metadata->clear();
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (entry.is_null()) continue;
      if (!entry.is_object()) throw fail("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw fail("__metadata__." + k + " is not a string");
        if (metadata) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + name + ": ";
    if (!entry.is_object()) throw fail(where + "entry is not an object");
    const auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) throw fail(where + "missing \"dtype\" string");
    const DTypeInfo* info = find_dtype(dt->get<std::string>());
    if (!info) throw fail(where + "unknown dtype " + dt->get<std::string>() + " (known: " + known_dtypes() + ")");
    const auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) throw fail(where + "missing \"shape\" array");
    SafeTensor t;
    t.dtype = info->name;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned())
        throw fail(where + "shape " + sh->dump() + " is not a list of non-negative integers");
      const uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw fail(where + "shape " + sh->dump() + " is too large");
      t.shape.push_back(static_cast<int64_t>(v));
    }
    const auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      throw fail(where + "\"data_offsets\" is not [begin, end]");
    const uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
    if (b > e || e > buffer_size)
      throw fail(where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                 "] out of range: the data buffer has " + std::to_string(buffer_size) + " bytes (truncated?)");
    const int64_t numel = numel_or_neg(t.shape);
    if (numel < 0 || static_cast<uint64_t>(numel) > (e - b) / info->size ||
        e - b != static_cast<uint64_t>(numel) * info->size)
      throw fail(where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] hold " +
                 std::to_string(e - b) + " bytes, but " + t.dtype + " " + SafetensorsWriter::shape_string(t.shape) +
                 " needs " +
                 (numel < 0 ? std::string("too many") : std::to_string(numel * static_cast<int64_t>(info->size))));
    t.bytes.assign(buffer + b, buffer + e);
    spans.emplace_back(b, e, name);
    out.emplace(name, std::move(t));
  }
  // Like the reference: the tensors tile the buffer exactly, no gaps or overlaps.
  std::sort(spans.begin(), spans.end());
  uint64_t pos = 0;
  for (const auto& [b, e, name] : spans) {
    if (b != pos)
      throw fail("tensor " + name + ": data_offsets begin at " + std::to_string(b) + ", expected " +
                 std::to_string(pos) + " (tensors must be contiguous and not overlap)");
    pos = e;
  }
  if (pos != buffer_size)
    throw fail("the tensors cover " + std::to_string(pos) + " bytes of a " + std::to_string(buffer_size) +
               "-byte data buffer");
  return out;
}

SafeTensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  return parse_safetensors(read_file(path), path, metadata);
}

SafetensorsFile load_safetensors(const std::string& path) {
  SafetensorsFile f;
  f.path = path;
  f.tensors = read_safetensors(path, &f.metadata);
  return f;
}

const SafeTensor& SafetensorsFile::at(const std::string& name) const {
  const auto it = tensors.find(name);
  if (it != tensors.end()) return it->second;
  std::string names;
  for (const auto& kv : tensors) names += (names.empty() ? "" : ", ") + kv.first;
  throw InputError(path + ": no tensor " + name + " (has: " + (names.empty() ? "none" : names) + ")");
}

const std::string& SafetensorsFile::meta(const std::string& key) const {
  const auto it = metadata.find(key);
  if (it == metadata.end()) throw InputError(path + ": no metadata entry " + key);
  return it->second;
}

template <class T>
std::vector<T> safetensor_values(const SafeTensor& t, const std::string& origin, const std::string& name,
                                 const std::vector<int64_t>* expected) {
  const std::string where = origin + ": tensor " + name + ": ";
  if (expected) {
    bool ok = expected->size() == t.shape.size();
    for (size_t i = 0; ok && i < t.shape.size(); ++i) ok = (*expected)[i] < 0 || (*expected)[i] == t.shape[i];
    if (!ok)
      throw InputError(where + "shape " + SafetensorsWriter::shape_string(t.shape) + ", expected " +
                       SafetensorsWriter::shape_string(*expected));
  }
  const DTypeInfo* info = find_dtype(t.dtype);
  if (!info) throw InputError(where + "unknown dtype " + t.dtype);
  if (info->kind == DTypeInfo::Float && !std::is_floating_point_v<T>)
    throw InputError(where + "dtype " + t.dtype + ", expected an integer dtype");
  const int64_t n = t.numel();
  if (n < 0 || t.bytes.size() != static_cast<size_t>(n) * info->size)
    throw InputError(where + "holds " + std::to_string(t.bytes.size()) + " bytes for its shape");
  std::vector<T> v(static_cast<size_t>(n));
  const uint8_t* p = t.bytes.data();
  const std::string dt = t.dtype;
  for (int64_t i = 0; i < n; ++i, p += info->size) {
    T& o = v[static_cast<size_t>(i)];
    if (dt == "F64")
      o = static_cast<T>(load<double>(p));
    else if (dt == "F32")
      o = static_cast<T>(load<float>(p));
    else if (dt == "F16")
      o = static_cast<T>(half_to_float(load<uint16_t>(p)));
    else if (dt == "BF16")
      o = static_cast<T>(bf16_to_float(load<uint16_t>(p)));
    else if (dt == "I64")
      o = static_cast<T>(load<int64_t>(p));
    else if (dt == "I32")
      o = static_cast<T>(load<int32_t>(p));
    else if (dt == "I16")
      o = static_cast<T>(load<int16_t>(p));
    else if (dt == "I8")
      o = static_cast<T>(load<int8_t>(p));
    else if (dt == "U64")
      o = static_cast<T>(load<uint64_t>(p));
    else if (dt == "U32")
      o = static_cast<T>(load<uint32_t>(p));
    else if (dt == "U16")
      o = static_cast<T>(load<uint16_t>(p));
    else if (dt == "U8")
      o = static_cast<T>(load<uint8_t>(p));
    else
      o = static_cast<T>(load<uint8_t>(p) != 0);  // BOOL
  }
  return v;
}

template std::vector<double> safetensor_values<double>(const SafeTensor&, const std::string&, const std::string&,
                                                       const std::vector<int64_t>*);
template std::vector<float> safetensor_values<float>(const SafeTensor&, const std::string&, const std::string&,
                                                     const std::vector<int64_t>*);
template std::vector<int64_t> safetensor_values<int64_t>(const SafeTensor&, const std::string&, const std::string&,
                                                         const std::vector<int64_t>*);
template std::vector<int32_t> safetensor_values<int32_t>(const SafeTensor&, const std::string&, const std::string&,
                                                         const std::vector<int64_t>*);
template std::vector<uint64_t> safetensor_values<uint64_t>(const SafeTensor&, const std::string&, const std::string&,
                                                           const std::vector<int64_t>*);
template std::vector<uint8_t> safetensor_values<uint8_t>(const SafeTensor&, const std::string&, const std::string&,
                                                         const std::vector<int64_t>*);

}  // namespace cn
