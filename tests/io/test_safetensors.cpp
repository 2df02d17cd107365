// safetensors: round trip, header layout, interoperability with the reference
// implementation (Python safetensors.numpy), malformed files; io/files: atomic writes,
// JSON lines and cutting logs back on resume.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using cn::InputError;

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
#define EXPECT_HAS(s, part) EXPECT_TRUE(has(s, part)) << "message: " << (s) << "\nmissing: " << (part)

// The InputError message from reading `path`, or "" when it reads.
std::string read_error(const std::string& path) {
  try {
    cn::read_safetensors(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

uint64_t header_len(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return n;
}

std::string with_header(const std::string& header, const std::string& buffer) {
  const uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + buffer;
}

const std::vector<float> kF32 = {1.5f, -2.25f, 3.0f, 1e-30f, -0.0f, 7.125f};
const std::vector<double> kF64 = {M_PI, -1e300, 0.1, 4.0};
const std::vector<int64_t> kI64 = {-5, 0, (int64_t{1} << 40) + 3};

cn::SafetensorsWriter example_writer() {
  cn::SafetensorsWriter w;
  w.add<float>("0.weight", {2, 3}, kF32);
  w.add<double>("loss.0.eigenvalues", {4}, kF64);
  w.add<int64_t>("order", {3}, kI64);
  const int64_t step = 17;
  w.add_i64("step", {}, &step);                         // a scalar
  w.add<float>("empty", {0, 5}, std::vector<float>{});  // no elements
  w.metadata("format", "pt");
  w.metadata("curvnet", "0.1.0");
  return w;
}

TEST(Safetensors, RoundTripWithMetadata) {
  cn::test::TempDir dir;
  const std::string path = dir.file("t.safetensors");
  example_writer().write(path);

  std::map<std::string, std::string> meta;
  const auto t = cn::read_safetensors(path, &meta);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"format", "pt"}, {"curvnet", "0.1.0"}}));
  ASSERT_EQ(t.size(), 5u);
  EXPECT_EQ(t.at("0.weight").dtype, "F32");
  EXPECT_EQ(t.at("0.weight").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.at("step").shape, std::vector<int64_t>{});
  EXPECT_EQ(t.at("empty").shape, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(cn::get_tensor<float>(t, "0.weight", {2, 3}, path), kF32);
  EXPECT_EQ(cn::get_tensor<double>(t, "loss.0.eigenvalues", {4}, path), kF64);
  EXPECT_EQ(cn::get_tensor<int64_t>(t, "order", {3}, path), kI64);
  EXPECT_EQ(cn::get_tensor<int64_t>(t, "step", {}, path), std::vector<int64_t>{17});
  EXPECT_TRUE(cn::get_tensor<float>(t, "empty", {0, 5}, path).empty());
  // Bit-exact, including -0.0.
  EXPECT_EQ(std::memcmp(t.at("0.weight").bytes.data(), kF32.data(), kF32.size() * 4), 0);

  // The file wrapper: conversion, wildcard extents, errors naming file and tensor.
  const cn::SafetensorsFile f = cn::load_safetensors(path);
  EXPECT_EQ(f.meta("format"), "pt");
  const std::vector<double> widened = f.get<double>("0.weight", {-1, 3});
  for (size_t i = 0; i < kF32.size(); ++i) EXPECT_EQ(widened[i], static_cast<double>(kF32[i]));
  EXPECT_EQ(f.get<double>("order")[2], static_cast<double>(kI64[2]));
  auto error_of = [&](auto fn) -> std::string {
    try {
      fn();
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error_of([&] {
              f.get<float>("0.weight", {3, 2});
            }),
            path + ": tensor 0.weight: shape [2, 3], expected [3, 2]");
  EXPECT_EQ(error_of([&] { f.get<int64_t>("loss.0.eigenvalues"); }),
            path + ": tensor loss.0.eigenvalues: dtype F64, expected an integer dtype");
  EXPECT_HAS(error_of([&] { f.get<float>("1.weight"); }), path + ": no tensor 1.weight (has: 0.weight, empty");
  EXPECT_HAS(error_of([&] { f.meta("absent"); }), path + ": no metadata entry absent");
}

TEST(Safetensors, HeaderLayout) {
  const std::string bytes = example_writer().serialize();
  const uint64_t n = header_len(bytes);
  EXPECT_EQ(n % 8, 0u) << "header padded to a multiple of 8";
  ASSERT_LE(8 + n, bytes.size());
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  const auto last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}') << "padding is spaces after the JSON";
  EXPECT_LT(header.size() - last - 1, 8u);

  // Tensors are laid out in the header's order, back to back, each aligned to its size.
  const auto j = nlohmann::ordered_json::parse(header);
  EXPECT_EQ(j.begin().key(), "__metadata__");
  uint64_t pos = 0;
  std::vector<std::string> order;
  for (const auto& [name, e] : j.items()) {
    if (name == "__metadata__") continue;
    order.push_back(name);
    const uint64_t b = e["data_offsets"][0], end = e["data_offsets"][1];
    EXPECT_EQ(b, pos) << name;
    EXPECT_EQ((8 + n + b) % cn::safetensors_dtype_size(e["dtype"]), 0u) << name << " misaligned";
    pos = end;
  }
  EXPECT_EQ(pos, bytes.size() - 8 - n) << "the tensors cover the buffer";
  // The reference's order: larger elements first, then by name.
  EXPECT_EQ(order, (std::vector<std::string>{"loss.0.eigenvalues", "order", "step", "0.weight", "empty"}));
}

TEST(Safetensors, WriterRejectsBadInput) {
  cn::SafetensorsWriter w;
  w.add<float>("a", {1}, std::vector<float>{1});
  EXPECT_THROW(w.add<float>("a", {1}, std::vector<float>{1}), cn::Error);  // twice
  EXPECT_THROW(w.add<float>("b", {2}, std::vector<float>{1}), cn::Error);  // wrong count
  EXPECT_THROW(w.add<float>("c", {-1}, std::vector<float>{}), cn::Error);  // negative extent
  EXPECT_THROW(w.add_raw("d", {"F99", {1}, {0, 0, 0, 0}}), cn::Error);     // unknown dtype
  EXPECT_THROW(w.add_raw("__metadata__", {"U8", {1}, {0}}), cn::Error);    // reserved name
}

TEST(Safetensors, ReferenceImplementationInterop) {
  if (!cn::test::python_has("numpy, safetensors.numpy"))
    GTEST_SKIP() << cn::test::python_exe() << " lacks numpy or safetensors (pip install safetensors into .venv)";
  cn::test::TempDir dir;
  // 1. The reference writes, we read.
  const std::string theirs = dir.file("theirs.safetensors");
  const std::string script = dir.file("write.py");
  cn::test::write_text(script,
                       "import sys, numpy as np\n"
                       "from safetensors.numpy import save_file\n"
                       "save_file({'w': np.arange(6, dtype=np.float32).reshape(2, 3) / 4,\n"
                       "           'd': np.array([1.0, -2.5, 1e-300], dtype=np.float64),\n"
                       "           'i': np.array([[-7], [2**40]], dtype=np.int64),\n"
                       "           'h': np.array([0.5, -3.0], dtype=np.float16),\n"
                       "           'b': np.array([True, False]),\n"
                       "           'u': np.array([255, 1, 0], dtype=np.uint8)},\n"
                       "          sys.argv[1], metadata={'who': 'reference'})\n");
  std::string out;
  ASSERT_EQ(cn::test::run_command(cn::test::python_exe() + " " + script + " " + theirs, &out), 0) << out;
  const cn::SafetensorsFile f = cn::load_safetensors(theirs);
  EXPECT_EQ(f.meta("who"), "reference");
  EXPECT_EQ(f.get<float>("w", {2, 3}), (std::vector<float>{0, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f}));
  EXPECT_EQ(f.get<double>("d", {3}), (std::vector<double>{1.0, -2.5, 1e-300}));
  EXPECT_EQ(f.get<int64_t>("i", {2, 1}), (std::vector<int64_t>{-7, int64_t{1} << 40}));
  EXPECT_EQ(f.at("h").dtype, "F16");
  EXPECT_EQ(f.get<float>("h"), (std::vector<float>{0.5f, -3.0f}));
  EXPECT_EQ(f.at("b").dtype, "BOOL");
  EXPECT_EQ(f.get<uint8_t>("b"), (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(f.get<int64_t>("u"), (std::vector<int64_t>{255, 1, 0}));

  // 2. We write, the reference reads and checks every value.
  const std::string ours = dir.file("ours.safetensors");
  example_writer().write(ours);
  const std::string check = dir.file("check.py");
  cn::test::write_text(check,
                       "import sys, math, json, numpy as np\n"
                       "from safetensors.numpy import load_file\n"
                       "from safetensors import safe_open\n"
                       "t = load_file(sys.argv[1])\n"
                       "assert sorted(t) == ['0.weight', 'empty', 'loss.0.eigenvalues', 'order', 'step'], sorted(t)\n"
                       "w = t['0.weight']; assert w.dtype == np.float32 and w.shape == (2, 3)\n"
                       "assert w.ravel().tolist() == [1.5, -2.25, 3.0, float(np.float32(1e-30)), -0.0, 7.125]\n"
                       "assert math.copysign(1, w[1, 1]) < 0\n"
                       "e = t['loss.0.eigenvalues']; assert e.dtype == np.float64 and e.shape == (4,)\n"
                       "assert e.tolist() == [math.pi, -1e300, 0.1, 4.0]\n"
                       "o = t['order']; assert o.dtype == np.int64 and o.tolist() == [-5, 0, 2**40 + 3]\n"
                       "s = t['step']; assert s.shape == () and int(s) == 17\n"
                       "assert t['empty'].shape == (0, 5) and t['empty'].dtype == np.float32\n"
                       "with safe_open(sys.argv[1], framework='numpy') as f:\n"
                       "    assert f.metadata() == {'format': 'pt', 'curvnet': '0.1.0'}, f.metadata()\n"
                       "print('ok')\n");
  ASSERT_EQ(cn::test::run_command(cn::test::python_exe() + " " + check + " " + ours, &out), 0) << out;
  EXPECT_HAS(out, "ok");
}

TEST(Safetensors, MalformedFilesAreInputErrorsNamingTheFile) {
  cn::test::TempDir dir;
  const std::string good = example_writer().serialize();
  auto write = [&](const std::string& name, const std::string& bytes) {
    const std::string p = dir.file(name);
    cn::test::write_text(p, bytes);
    return p;
  };

  std::string p = write("truncated.safetensors", good.substr(0, good.size() - 5));
  std::string e = read_error(p);
  EXPECT_HAS(e, p + ": ");
  EXPECT_HAS(e, "data_offsets");

  p = write("tiny.safetensors", good.substr(0, 5));
  EXPECT_HAS(read_error(p), p + ": not a safetensors file");

  p = write("headercut.safetensors", good.substr(0, 8 + header_len(good) / 2));
  EXPECT_HAS(read_error(p), p + ": header length " + std::to_string(header_len(good)) + " exceeds the file");

  std::string big = good;
  const uint64_t huge = 1ull << 40;
  std::memcpy(big.data(), &huge, 8);
  p = write("hugeheader.safetensors", big);
  EXPECT_HAS(read_error(p), p + ": header length");

  p = write("badjson.safetensors", with_header("{\"a\": {\"dtype\": \"F32\",", ""));
  EXPECT_HAS(read_error(p), p + ": header is not valid JSON");

  p = write("notobject.safetensors", with_header("[1, 2]  ", ""));
  EXPECT_HAS(read_error(p), p + ": header does not start with '{'");

  p = write("offsets.safetensors",
            with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", std::string(8, '\0')));
  e = read_error(p);
  EXPECT_HAS(e, p + ": tensor a: data_offsets [0, 16] out of range: the data buffer has 8 bytes");

  p = write("size.safetensors",
            with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')));
  EXPECT_HAS(read_error(p), p + ": tensor a: data_offsets [0, 8] hold 8 bytes, but F32 [3] needs 12");

  p = write("dtype.safetensors",
            with_header(R"({"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  EXPECT_HAS(read_error(p), p + ": tensor a: unknown dtype F99");

  p = write("gap.safetensors", with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                           std::string(12, '\0')));
  EXPECT_HAS(read_error(p), p + ": tensor b: data_offsets begin at 8, expected 4");

  p = write("overlap.safetensors", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                               std::string(8, '\0')));
  EXPECT_HAS(read_error(p), p + ": tensor ");

  p = write("trailing.safetensors", good + "xxxx");
  EXPECT_HAS(read_error(p), p + ": the tensors cover");

  p = write("negshape.safetensors",
            with_header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0')));
  EXPECT_HAS(read_error(p), p + ": tensor a: shape [-1] is not a list of non-negative integers");

  p = write("badmeta.safetensors", with_header(R"({"__metadata__":{"k":1}})", ""));
  EXPECT_HAS(read_error(p), p + ": __metadata__.k is not a string");

  const std::string missing = dir.file("missing.safetensors");
  EXPECT_HAS(read_error(missing), missing + ": cannot read");

  // A good file still reads (the helpers above are not what fails).
  EXPECT_EQ(read_error(write("good.safetensors", good)), "");
}

// --- io/files

std::vector<std::string> list_dir(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Files, AtomicWriteLeavesNoTempFile) {
  cn::test::TempDir dir;
  const std::string path = dir.file("config.toml");
  cn::write_file_atomic(path, std::string("first\n"));
  EXPECT_EQ(cn::test::read_text(path), "first\n");
  cn::write_file_atomic(path, std::string("second, longer\n"));  // replaces
  EXPECT_EQ(cn::test::read_text(path), "second, longer\n");
  const std::string bin("\0\x01\xff", 3);
  cn::write_file_atomic(dir.file("b.bin"), bin.data(), bin.size());
  EXPECT_EQ(cn::test::read_text(dir.file("b.bin")), bin);
  cn::write_file_atomic(dir.file("empty"), std::string());
  EXPECT_EQ(fs::file_size(dir.file("empty")), 0u);
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"b.bin", "config.toml", "empty"}));
  // A directory that doesn't exist: a runtime error naming the path, nothing left behind.
  try {
    cn::write_file_atomic(dir.file("no/such/dir/x"), std::string("x"));
    FAIL() << "no error";
  } catch (const cn::Error& e) {
    EXPECT_HAS(std::string(e.what()), dir.file("no/such/dir/x"));
  }
}

TEST(Files, JsonLinesAppendAndMetrics) {
  cn::test::TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  {
    cn::JsonLinesWriter w(path);
    nlohmann::json row = {{"step", 1}, {"loss", 0.5}};
    cn::set_metric(row, "condition", std::numeric_limits<double>::infinity());
    cn::set_metric(row, "trace", std::nan(""));
    cn::set_metric(row, "logdet", -3.5);
    w.write(row);
    w.flush();
    EXPECT_THROW(w.write(nlohmann::json::array({1, 2})), cn::Error);
  }
  {
    cn::JsonLinesWriter w(path);  // appends
    w.write({{"step", 2}, {"layer", nullptr}});
  }
  const std::string text = cn::test::read_text(path);
  EXPECT_EQ(text,
            "{\"condition\":null,\"condition_status\":\"inf\",\"logdet\":-3.5,\"loss\":0.5,\"step\":1,"
            "\"trace\":null,\"trace_status\":\"nan\"}\n"
            "{\"layer\":null,\"step\":2}\n");
  EXPECT_EQ(cn::json_number(-std::numeric_limits<double>::infinity()), nullptr);
  EXPECT_STREQ(cn::nonfinite_status(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_STREQ(cn::nonfinite_status(1.0), "");
}

TEST(Files, TruncateAfterStepKeepsRowsUpToStep) {
  cn::test::TempDir dir;
  const std::string path = dir.file("eval.jsonl");
  cn::test::write_text(path,
                       "{\"step\":0,\"loss\":1}\n"
                       "{\"step\":10,\"layer\":0}\n"
                       "{\"step\":10,\"layer\":1}\n"
                       "{\"step\":11,\"loss\":0.9}\n"
                       "{\"note\":\"no step\"}\n"
                       "{\"step\":25,\"loss\":0.5}\n"
                       "{\"step\":5,\"loss\":0.7}\n"
                       "{\"step\":30,\"lo");  // a torn last line
  EXPECT_EQ(cn::truncate_after_step(path, 10), 5u);
  EXPECT_EQ(cn::test::read_text(path),
            "{\"step\":0,\"loss\":1}\n"
            "{\"step\":10,\"layer\":0}\n"
            "{\"step\":10,\"layer\":1}\n"
            "{\"note\":\"no step\"}\n"
            "{\"step\":5,\"loss\":0.7}\n");
  EXPECT_EQ(cn::truncate_after_step(path, -1), 1u);
  EXPECT_EQ(cn::test::read_text(path), "{\"note\":\"no step\"}\n");
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"eval.jsonl"});
  // A missing log stays missing.
  EXPECT_EQ(cn::truncate_after_step(dir.file("absent.jsonl"), 3), 0u);
  EXPECT_FALSE(fs::exists(dir.file("absent.jsonl")));
}

}  // namespace
