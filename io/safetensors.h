// safetensors files (https://github.com/huggingface/safetensors), the public format exactly:
//
//   8 bytes   N, little-endian u64: the header's length
//   N bytes   JSON header {"__metadata__": {str: str}, "name": {"dtype": "F32", "shape":
//             [...], "data_offsets": [begin, end]}, ...}, padded with spaces so that N is
//             a multiple of 8 (the buffer starts 8-byte aligned)
//   rest      the byte buffer; offsets are relative to its start, little-endian,
//             row-major (C order)
//
// The writer orders tensors as the reference implementation does (larger element size
// first, then by name), so every tensor is naturally aligned; the header lists them in
// that order and the buffer holds them in the same order, back to back. The reader
// validates like the reference (header length within the file, a JSON object, known
// dtypes, offsets consistent with dtype x shape, contiguous, covering the buffer exactly)
// and throws InputError "FILE: ..." on anything malformed or truncated.
//
//   SafetensorsWriter w;
//   w.add<float>("0.weight", {out, in}, W);        // copies the data
//   w.add<int64_t>("1.num_batches_tracked", {}, &n);
//   w.metadata("format", "pt");
//   w.write(run_dir + "/model.safetensors");       // atomic (io/files.h)
//
//   SafetensorsFile f = load_safetensors(path);
//   std::vector<float> W = f.get<float>("0.weight", {out, -1});  // -1: any extent
#pragma once
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace cn {

// One tensor as stored: dtype name as in the format ("F64", "F32", "F16", "BF16", "I64",
// "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"), shape, raw little-endian bytes.
struct SafeTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const;
};

// Bytes per element of a dtype name; 0 when the name is not a known dtype.
size_t safetensors_dtype_size(const std::string& dtype);

// The dtype name for a C++ element type.
template <class T>
constexpr const char* safetensors_dtype() {
  if constexpr (std::is_same_v<T, double>)
    return "F64";
  else if constexpr (std::is_same_v<T, float>)
    return "F32";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "I64";
  else if constexpr (std::is_same_v<T, int32_t>)
    return "I32";
  else if constexpr (std::is_same_v<T, int16_t>)
    return "I16";
  else if constexpr (std::is_same_v<T, int8_t>)
    return "I8";
  else if constexpr (std::is_same_v<T, uint64_t>)
    return "U64";
  else if constexpr (std::is_same_v<T, uint32_t>)
    return "U32";
  else if constexpr (std::is_same_v<T, uint16_t>)
    return "U16";
  else if constexpr (std::is_same_v<T, uint8_t>)
    return "U8";
  else if constexpr (std::is_same_v<T, bool>)
    return "BOOL";
  else
    static_assert(sizeof(T) == 0, "no safetensors dtype for this type");
}

class SafetensorsWriter {
 public:
  // Adds a tensor, copying numel(shape) elements from `data` (shape {} = a scalar, one
  // element). A repeated name or a negative extent is a cn::Error.
  template <class T>
  void add(const std::string& name, const std::vector<int64_t>& shape, const T* data) {
    SafeTensor t;
    t.dtype = safetensors_dtype<T>();
    t.shape = shape;
    const int64_t n = checked_numel(name, shape);
    t.bytes.resize(static_cast<size_t>(n) * sizeof(T));
    if (n > 0) std::memcpy(t.bytes.data(), data, t.bytes.size());
    add_raw(name, std::move(t));
  }
  // Same; data.size() must equal numel(shape).
  template <class T>
  void add(const std::string& name, const std::vector<int64_t>& shape, const std::vector<T>& data) {
    static_assert(!std::is_same_v<T, bool>, "use add_raw for BOOL tensors");
    if (static_cast<int64_t>(data.size()) != checked_numel(name, shape))
      throw Error("safetensors: tensor " + name + ": " + std::to_string(data.size()) + " values for shape " +
                  shape_string(shape));
    add<T>(name, shape, data.data());
  }
  void add_i64(const std::string& name, const std::vector<int64_t>& shape, const int64_t* data) {
    add<int64_t>(name, shape, data);
  }
  // A tensor already in stored form (dtype known, bytes.size() == numel x dtype size).
  void add_raw(const std::string& name, SafeTensor tensor);
  // A "__metadata__" entry (string to string).
  void metadata(const std::string& key, const std::string& value);

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  size_t size() const { return tensors_.size(); }
  // The whole file's bytes.
  std::string serialize() const;
  // Writes the file atomically (temp name, fsync, rename); cn::Error on an I/O failure.
  void write(const std::string& path) const;

  static std::string shape_string(const std::vector<int64_t>& shape);

 private:
  static int64_t checked_numel(const std::string& name, const std::vector<int64_t>& shape);
  std::map<std::string, SafeTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

using SafeTensorMap = std::map<std::string, SafeTensor>;

// Reads and validates a file; InputError "PATH: ..." when unreadable or malformed.
SafeTensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);
// Same, from the file's bytes; `origin` names the source in errors.
SafeTensorMap parse_safetensors(const std::string& bytes, const std::string& origin,
                                std::map<std::string, std::string>* metadata = nullptr);

// Converts a stored tensor's elements to T: floating dtypes (F64 F32 F16 BF16) to
// floating T; integer and BOOL dtypes to any arithmetic T. Floating to integer is refused.
// Checks the shape against `expected` unless `expected` is null (-1 in it = any extent).
// InputError "ORIGIN: tensor NAME: ..." on a dtype or shape mismatch.
template <class T>
std::vector<T> safetensor_values(const SafeTensor& t, const std::string& origin, const std::string& name,
                                 const std::vector<int64_t>* expected = nullptr);

// A file's contents with its path, for typed access with errors that name file and tensor.
struct SafetensorsFile {
  std::string path;
  SafeTensorMap tensors;
  std::map<std::string, std::string> metadata;

  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  // InputError "PATH: no tensor NAME (has: a, b, ...)" when absent.
  const SafeTensor& at(const std::string& name) const;
  // The values converted to T, any shape.
  template <class T>
  std::vector<T> get(const std::string& name) const {
    return safetensor_values<T>(at(name), path, name, nullptr);
  }
  // The values converted to T; the shape must match `shape` (-1 = any extent).
  template <class T>
  std::vector<T> get(const std::string& name, const std::vector<int64_t>& shape) const {
    return safetensor_values<T>(at(name), path, name, &shape);
  }
  // A metadata value; InputError when absent.
  const std::string& meta(const std::string& key) const;
};

SafetensorsFile load_safetensors(const std::string& path);

// Typed getter on a map (as returned by read_safetensors): `origin` names the file.
template <class T>
std::vector<T> get_tensor(const SafeTensorMap& tensors, const std::string& name,
                          const std::vector<int64_t>& expected_shape, const std::string& origin) {
  const auto it = tensors.find(name);
  if (it == tensors.end()) throw InputError(origin + ": no tensor " + name);
  return safetensor_values<T>(it->second, origin, name, &expected_shape);
}

extern template std::vector<double> safetensor_values<double>(const SafeTensor&, const std::string&, const std::string&,
                                                              const std::vector<int64_t>*);
extern template std::vector<float> safetensor_values<float>(const SafeTensor&, const std::string&, const std::string&,
                                                            const std::vector<int64_t>*);
extern template std::vector<int64_t> safetensor_values<int64_t>(const SafeTensor&, const std::string&,
                                                                const std::string&, const std::vector<int64_t>*);
extern template std::vector<int32_t> safetensor_values<int32_t>(const SafeTensor&, const std::string&,
                                                                const std::string&, const std::vector<int64_t>*);
extern template std::vector<uint64_t> safetensor_values<uint64_t>(const SafeTensor&, const std::string&,
                                                                  const std::string&, const std::vector<int64_t>*);
extern template std::vector<uint8_t> safetensor_values<uint8_t>(const SafeTensor&, const std::string&,
                                                                const std::string&, const std::vector<int64_t>*);

}  // namespace cn
