// TensorBoard event files: CRC32C against the standard test vector, every record's framing
// re-verified, the tensorboard package's own EventAccumulator reading back scalars and
// histograms, resume truncation, and re-creation from a run's JSON-lines logs.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "io/tensorboard.h"
#include "test_util.h"

namespace tfe = cn::tfevents;
using cn::test::TempDir;

namespace {

uint32_t le32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(s[at + i])) << (8 * i);
  return v;
}
uint64_t le64(const std::string& s, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(s[at + i])) << (8 * i);
  return v;
}

// Walks the file's framing independently of parse_records: every length and data CRC must
// match and the records must tile the file exactly. Returns the record payloads.
std::vector<std::string> verify_records(const std::string& bytes) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    EXPECT_GE(bytes.size() - pos, 16u) << "short record at " << pos;
    if (bytes.size() - pos < 16) break;
    const uint64_t len = le64(bytes, pos);
    const uint32_t crc_len = le32(bytes, pos + 8);
    const uint32_t raw = tfe::crc32c(bytes.data() + pos, 8);
    EXPECT_EQ(crc_len, ((raw >> 15) | (raw << 17)) + 0xa282ead8u) << "length CRC at " << pos;
    EXPECT_LE(pos + 12 + len + 4, bytes.size());
    if (pos + 12 + len + 4 > bytes.size()) break;
    const std::string data = bytes.substr(pos + 12, len);
    EXPECT_EQ(le32(bytes, pos + 12 + len), tfe::masked_crc32c(data.data(), data.size())) << "data CRC at " << pos;
    out.push_back(data);
    pos += 12 + len + 4;
  }
  EXPECT_EQ(pos, bytes.size());
  return out;
}

std::string only_event_file(const std::string& dir) {
  const auto files = cn::TensorBoardWriter::event_files(dir);
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? "" : files[0];
}

// Runs tensorboard's EventAccumulator over `dir`; returns {"scalars": {tag: [[step, value]]},
// "histograms": {tag: [[step, min, max, num, sum, sum_squares, limits, counts]]}}.
nlohmann::json read_with_tensorboard(const TempDir& tmp, const std::string& dir) {
  const std::string script = tmp.file("read_events.py");
  cn::test::write_text(script, R"PY(
import json, sys
from tensorboard.backend.event_processing import event_accumulator as ea
guidance = {ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.COMPRESSED_HISTOGRAMS: 0, ea.TENSORS: 0,
            ea.IMAGES: 0, ea.AUDIO: 0}
acc = ea.EventAccumulator(sys.argv[1], size_guidance=guidance)
acc.Reload()
tags = acc.Tags()
out = {"scalars": {}, "histograms": {}, "file_version": acc.file_version}
for t in tags["scalars"]:
    out["scalars"][t] = [[e.step, e.value] for e in acc.Scalars(t)]
for t in tags["histograms"]:
    rows = []
    for e in acc.Histograms(t):
        h = e.histogram_value
        rows.append([e.step, h.min, h.max, h.num, h.sum, h.sum_squares, list(h.bucket_limit), list(h.bucket)])
    out["histograms"][t] = rows
json.dump(out, open(sys.argv[2], "w"))
)PY");
  const std::string out_path = tmp.file("events.json");
  std::string output;
  const int rc = cn::test::run_command(cn::test::python_exe() + " " + script + " " + dir + " " + out_path, &output);
  EXPECT_EQ(rc, 0) << output;
  if (rc != 0) return nlohmann::json::object();
  return nlohmann::json::parse(cn::test::read_text(out_path));
}

#define SKIP_WITHOUT_TENSORBOARD()                                                                 \
  if (!cn::test::python_has("tensorboard"))                                                        \
  GTEST_SKIP() << "the tensorboard Python package is not importable by " << cn::test::python_exe() \
               << " (scripts/test installs it into .venv)"

}  // namespace

TEST(TensorBoard, Crc32cKnownVectors) {
  EXPECT_EQ(tfe::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(tfe::crc32c("", 0), 0u);
  // RFC 3720 B.4: 32 bytes of zeros and of 0xFF.
  std::string zeros(32, '\0'), ones(32, '\xff');
  EXPECT_EQ(tfe::crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(tfe::crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(tfe::mask_crc(c), ((c >> 15) | (c << 17)) + 0xa282ead8u);
  EXPECT_EQ(tfe::masked_crc32c("123456789", 9), tfe::mask_crc(0xE3069283u));
}

TEST(TensorBoard, DefaultBucketsMatchTensorFlow) {
  const auto& lim = tfe::default_bucket_limits();
  ASSERT_EQ(lim.size(), 1551u);
  EXPECT_EQ(lim.front(), -DBL_MAX);
  EXPECT_EQ(lim.back(), DBL_MAX);
  EXPECT_TRUE(std::is_sorted(lim.begin(), lim.end()));
  const size_t mid = lim.size() / 2;
  EXPECT_EQ(lim[mid], 0.0);
  EXPECT_EQ(lim[mid + 1], 1e-12);
  EXPECT_DOUBLE_EQ(lim[mid + 2], 1.1e-12);
  for (size_t i = 0; i < lim.size(); ++i) EXPECT_EQ(lim[i], -lim[lim.size() - 1 - i]);

  const std::vector<double> v = {-2.0, 0.0, 0.5, 0.5, 3.0, NAN};
  const tfe::Histogram h = tfe::make_histogram(v.data(), 6, lim);
  EXPECT_EQ(h.num, 5);
  EXPECT_EQ(h.min, -2.0);
  EXPECT_EQ(h.max, 3.0);
  EXPECT_DOUBLE_EQ(h.sum, 2.0);
  EXPECT_DOUBLE_EQ(h.sum_squares, 4 + 0.25 + 0.25 + 9);
  double total = 0;
  for (double b : h.bucket) total += b;
  EXPECT_EQ(total, 5);
  EXPECT_EQ(h.bucket_limit.size(), h.bucket.size());
  // Empty runs are merged: at most one empty bucket between non-empty ones.
  EXPECT_LE(h.bucket.size(), 9u);
  // The bucket holding 0.5 ends just above it.
  for (size_t i = 0; i < h.bucket.size(); ++i)
    if (h.bucket[i] == 2) {
      EXPECT_GT(h.bucket_limit[i], 0.5);
      EXPECT_LT(h.bucket_limit[i], 0.5 * 1.1 + 1e-9);
    }
  const tfe::Histogram empty = tfe::make_histogram(nullptr, 0, lim);
  ASSERT_EQ(empty.bucket.size(), 1u);
  EXPECT_EQ(empty.bucket_limit[0], DBL_MAX);
}

TEST(TensorBoard, RecordsCarryValidMaskedCrcs) {
  TempDir tmp;
  std::string path;
  {
    cn::TensorBoardWriter w(tmp.path().string());
    path = w.path();
    EXPECT_EQ(std::filesystem::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u);
    EXPECT_TRUE(path.size() > 8 && path.substr(path.size() - 8) == ".curvnet");
    for (int s = 0; s < 5; ++s) w.scalar("train/loss", s, 1.0 / (1 + s));
    const std::vector<double> v = {1, 2, 3};
    w.histogram("weights/0.weight", 3, v);
    w.scalar("train/nan", 4, NAN);  // skipped
    w.flush();
  }
  const auto records = verify_records(cn::read_file(path));
  ASSERT_EQ(records.size(), 1u + 5 + 1);
  const tfe::EventInfo first = tfe::decode_event(records[0]);
  EXPECT_EQ(first.file_version, "brain.Event:2");
  EXPECT_EQ(first.step, 0);
  EXPECT_GT(first.wall_time, 1.5e9);
  for (int s = 0; s < 5; ++s) {
    const tfe::EventInfo e = tfe::decode_event(records[1 + s]);
    EXPECT_EQ(e.step, s);
    ASSERT_EQ(e.values.size(), 1u);
    EXPECT_EQ(e.values[0].tag, "train/loss");
    EXPECT_TRUE(e.values[0].has_simple);
    EXPECT_FLOAT_EQ(e.values[0].simple_value, static_cast<float>(1.0 / (1 + s)));
  }
  const tfe::EventInfo h = tfe::decode_event(records[6]);
  ASSERT_EQ(h.values.size(), 1u);
  EXPECT_TRUE(h.values[0].has_histo);
  EXPECT_EQ(h.values[0].histo.num, 3);
  EXPECT_EQ(h.values[0].histo.sum, 6);
  // parse_records agrees, and stops at a torn tail.
  const std::string bytes = cn::read_file(path);
  size_t valid = 0;
  EXPECT_EQ(tfe::parse_records(bytes, &valid).size(), records.size());
  EXPECT_EQ(valid, bytes.size());
  std::string corrupt = bytes;
  corrupt[corrupt.size() - 6] ^= 0x40;  // inside the last record's data
  EXPECT_EQ(tfe::parse_records(corrupt, &valid).size(), records.size() - 1);
  EXPECT_EQ(tfe::parse_records(bytes.substr(0, bytes.size() - 3)).size(), records.size() - 1);
}

TEST(TensorBoard, EventAccumulatorReadsScalarsAndHistograms) {
  SKIP_WITHOUT_TENSORBOARD();
  TempDir tmp;
  const std::string run = tmp.file("run");
  std::filesystem::create_directories(run);
  std::vector<double> big(1000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = std::sin(0.37 * i) * std::exp(0.01 * i) - 0.2;
  {
    cn::TensorBoardWriter w(run);
    for (int s = 0; s <= 30; s += 10) {
      w.scalar("train/loss", s, 2.5 - 0.05 * s);
      w.scalar("val/accuracy", s, 0.5 + 0.01 * s);
    }
    w.scalar("train/big_step", int64_t(1) << 40, -3.25);
    w.histogram("eigenvalues/loss/layer0", 10, big);
    const std::vector<double> few = {-1.0, 0.0, 0.0, 2.0};
    w.histogram("eigenvalues/loss/layer0", 20, few);
    w.histogram_fixed("weights/fixed", 5, big.data(), static_cast<int64_t>(big.size()), 7);
    w.flush();
  }
  const nlohmann::json tb = read_with_tensorboard(tmp, run);
  ASSERT_TRUE(tb.contains("scalars")) << tb.dump();
  EXPECT_EQ(tb["file_version"].get<double>(), 2.0);
  const auto& loss = tb["scalars"]["train/loss"];
  ASSERT_EQ(loss.size(), 4u) << tb.dump();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(loss[i][0].get<int64_t>(), 10 * i);
    EXPECT_FLOAT_EQ(loss[i][1].get<float>(), static_cast<float>(2.5 - 0.05 * 10 * i));
  }
  const auto& acc = tb["scalars"]["val/accuracy"];
  ASSERT_EQ(acc.size(), 4u);
  EXPECT_FLOAT_EQ(acc[3][1].get<float>(), 0.8f);
  const auto& bs = tb["scalars"]["train/big_step"];
  ASSERT_EQ(bs.size(), 1u);
  EXPECT_EQ(bs[0][0].get<int64_t>(), int64_t(1) << 40);
  EXPECT_FLOAT_EQ(bs[0][1].get<float>(), -3.25f);

  const auto& hs = tb["histograms"]["eigenvalues/loss/layer0"];
  ASSERT_EQ(hs.size(), 2u) << tb.dump();
  const tfe::Histogram ref = tfe::make_histogram(big.data(), 1000, tfe::default_bucket_limits());
  EXPECT_EQ(hs[0][0].get<int64_t>(), 10);
  EXPECT_DOUBLE_EQ(hs[0][1].get<double>(), ref.min);
  EXPECT_DOUBLE_EQ(hs[0][2].get<double>(), ref.max);
  EXPECT_EQ(hs[0][3].get<double>(), 1000.0);
  EXPECT_DOUBLE_EQ(hs[0][4].get<double>(), ref.sum);
  EXPECT_DOUBLE_EQ(hs[0][5].get<double>(), ref.sum_squares);
  EXPECT_EQ(hs[0][6].get<std::vector<double>>(), ref.bucket_limit);
  EXPECT_EQ(hs[0][7].get<std::vector<double>>(), ref.bucket);
  // Every value falls in its bucket: the counts over (limit[i-1], limit[i]] recomputed.
  const auto limits = hs[0][6].get<std::vector<double>>();
  const auto counts = hs[0][7].get<std::vector<double>>();
  double total = 0;
  for (size_t i = 0; i < limits.size(); ++i) {
    const double lo = i == 0 ? -DBL_MAX : limits[i - 1];
    double n = 0;
    for (double v : big) n += (v >= lo && v < limits[i]) ? 1 : 0;
    EXPECT_EQ(counts[i], n) << "bucket " << i;
    total += counts[i];
  }
  EXPECT_EQ(total, 1000.0);
  EXPECT_EQ(hs[1][0].get<int64_t>(), 20);
  EXPECT_EQ(hs[1][3].get<double>(), 4.0);
  EXPECT_EQ(hs[1][1].get<double>(), -1.0);
  EXPECT_EQ(hs[1][2].get<double>(), 2.0);

  const auto& fixed = tb["histograms"]["weights/fixed"];
  ASSERT_EQ(fixed.size(), 1u);
  EXPECT_EQ(fixed[0][6].size(), 7u);
  EXPECT_EQ(fixed[0][3].get<double>(), 1000.0);
  EXPECT_DOUBLE_EQ(fixed[0][6][6].get<double>(), ref.max);
}

TEST(TensorBoard, TruncateAfterStepKeepsExactlyTheEarlierRecords) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  std::filesystem::create_directories(run);
  std::string path;
  {
    cn::TensorBoardWriter w(run);
    path = w.path();
    for (int s = 0; s <= 20; ++s) {
      w.scalar("train/loss", s, 1.0 * s);
      if (s % 5 == 0) {
        const std::vector<double> v = {1.0 * s, 2.0 * s};
        w.histogram("weights/w", s, v);
      }
    }
  }
  // A torn record at the end, as after a crash.
  std::string bytes = cn::read_file(path);
  const std::string extra = tfe::frame_record(tfe::encode_scalar_event(1.7e9, 21, "train/loss", 21.0f));
  cn::test::write_text(path, bytes + extra.substr(0, extra.size() - 5));

  const size_t kept = cn::TensorBoardWriter::truncate_after_step(run, 10);
  // file_version + steps 0..10 (11 scalars) + histograms at 0, 5, 10.
  EXPECT_EQ(kept, 1u + 11 + 3);
  const auto records = verify_records(cn::read_file(path));
  ASSERT_EQ(records.size(), kept);
  EXPECT_EQ(tfe::decode_event(records[0]).file_version, "brain.Event:2");
  std::vector<int64_t> scalar_steps, histo_steps;
  for (size_t i = 1; i < records.size(); ++i) {
    const tfe::EventInfo e = tfe::decode_event(records[i]);
    EXPECT_LE(e.step, 10);
    ASSERT_EQ(e.values.size(), 1u);
    (e.values[0].has_histo ? histo_steps : scalar_steps).push_back(e.step);
  }
  EXPECT_EQ(scalar_steps, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(histo_steps, (std::vector<int64_t>{0, 5, 10}));
  // A resumed writer adds a second file; TensorBoard then sees each step once.
  {
    cn::TensorBoardWriter w(run);
    EXPECT_NE(w.path(), path);
    for (int s = 11; s <= 12; ++s) w.scalar("train/loss", s, 1.0 * s);
  }
  EXPECT_EQ(cn::TensorBoardWriter::event_files(run).size(), 2u);
  EXPECT_EQ(cn::TensorBoardWriter::truncate_after_step(run, 100), kept + 1 + 2);
  // Cutting to a step before everything keeps only the file_version records.
  EXPECT_EQ(cn::TensorBoardWriter::truncate_after_step(run, -1), 2u);
  EXPECT_EQ(cn::TensorBoardWriter::truncate_after_step(run, 100), 2u);
}

TEST(TensorBoard, TruncatedFileReadsBackInTensorBoard) {
  SKIP_WITHOUT_TENSORBOARD();
  TempDir tmp;
  const std::string run = tmp.file("run");
  std::filesystem::create_directories(run);
  {
    cn::TensorBoardWriter w(run);
    for (int s = 0; s <= 20; ++s) w.scalar("train/loss", s, 0.5 * s);
  }
  cn::TensorBoardWriter::truncate_after_step(run, 7);
  const nlohmann::json tb = read_with_tensorboard(tmp, run);
  const auto& loss = tb["scalars"]["train/loss"];
  ASSERT_EQ(loss.size(), 8u) << tb.dump();
  EXPECT_EQ(loss[7][0].get<int64_t>(), 7);
  EXPECT_FLOAT_EQ(loss[7][1].get<float>(), 3.5f);
}

TEST(TensorBoard, RowsUseTheDocumentedTags) {
  TempDir tmp;
  std::string path;
  {
    cn::TensorBoardWriter w(tmp.path().string());
    path = w.path();
    w.row(cn::RunLog::metrics, {{"step", 10}, {"epoch", 1}, {"loss", 0.5}, {"clipped", true}, {"lr", nullptr}});
    w.row(cn::RunLog::eval, {{"step", 10}, {"epoch", 1}, {"split", "val"}, {"loss", 0.7}, {"accuracy", 0.9}});
    w.row(cn::RunLog::stats, {{"step", 10}, {"layer", 2}, {"grad_l2", 0.1}});
    w.row(cn::RunLog::stats, {{"step", 10}, {"layer", nullptr}, {"grad_l2", 0.3}});
    w.row(cn::RunLog::diagnostics, {{"step", 10},
                                    {"layer", 0},
                                    {"kind", "loss"},
                                    {"method", "dense"},
                                    {"trace", 4.0},
                                    {"logdet", nullptr},
                                    {"logdet_status", "singular"}});
    w.row(cn::RunLog::diagnostics, {{"step", 10}, {"layer", nullptr}, {"kind", "full_top"}, {"lambda_max", 9.0}});
    w.row(cn::RunLog::metrics, {{"loss", 1.0}});  // no step: ignored
  }
  std::map<std::string, float> seen;
  const auto records = verify_records(cn::read_file(path));
  for (size_t i = 1; i < records.size(); ++i) {
    const tfe::EventInfo e = tfe::decode_event(records[i]);
    EXPECT_EQ(e.step, 10);
    for (const auto& v : e.values) seen[v.tag] = v.simple_value;
  }
  const std::map<std::string, float> expected = {{"train/epoch", 1.0f},
                                                 {"train/loss", 0.5f},
                                                 {"train/clipped", 1.0f},
                                                 {"val/loss", 0.7f},
                                                 {"val/accuracy", 0.9f},
                                                 {"layer2/grad_l2", 0.1f},
                                                 {"network/grad_l2", 0.3f},
                                                 {"curvature/loss/layer0/trace", 4.0f},
                                                 {"curvature/full_top/lambda_max", 9.0f}};
  EXPECT_EQ(seen, expected);
}

TEST(TensorBoard, RecreatesEventsFromRunLogs) {
  SKIP_WITHOUT_TENSORBOARD();
  TempDir tmp;
  const std::string run = tmp.file("run");
  std::filesystem::create_directories(run + "/spectra");
  std::filesystem::create_directories(run + "/checkpoints/step_20");
  {
    cn::JsonLinesWriter m(run + "/metrics.jsonl"), e(run + "/eval.jsonl"), s(run + "/stats.jsonl"),
        d(run + "/diagnostics.jsonl");
    for (int step = 10; step <= 30; step += 10) {
      m.write({{"step", step}, {"epoch", 0}, {"loss", 1.0 / step}, {"lr", 1e-3}, {"time_s", 0.1 * step}});
      e.write({{"step", step}, {"epoch", 0}, {"split", "val"}, {"loss", 2.0 / step}, {"accuracy", 0.01 * step}});
      for (int layer = 0; layer < 2; ++layer) {
        s.write({{"step", step}, {"layer", layer}, {"grad_l2", 0.1 * (layer + 1)}, {"update_ratio", 1e-3}});
        d.write({{"step", step}, {"layer", layer}, {"kind", "loss"}, {"method", "dense"}, {"trace", step + layer}});
      }
    }
    e.write({{"step", 30}, {"epoch", 0}, {"split", "test"}, {"loss", 0.25}});
  }
  for (int step : {10, 30}) {
    cn::SafetensorsWriter w;
    w.add<double>("loss.0.eigenvalues", {3}, std::vector<double>{-0.5, 1.0 * step, 2.0});
    w.add<float>("local.1.eigenvalues", {2}, std::vector<float>{0.0f, 0.0f});
    w.add<double>("full_top.eigenvalues", {1}, std::vector<double>{5.0});
    w.add<double>("weights.0.singular_values", {2}, std::vector<double>{3.0, 1.0});
    w.add<double>("loss.0.lanczos_extremes", {2}, std::vector<double>{0.0, 1.0});  // not histogrammed
    w.write(run + "/spectra/step_" + std::to_string(step) + ".safetensors");
  }
  {
    cn::SafetensorsWriter w;
    w.add<float>("0.weight", {2, 2}, std::vector<float>{1, 2, 3, 4});
    w.write(run + "/checkpoints/step_20/model.safetensors");
  }
  // An old event file is replaced.
  {
    cn::TensorBoardWriter old(run);
    old.scalar("stale/tag", 1, 1.0);
  }

  const std::string path = cn::write_tensorboard_from_run(run);
  EXPECT_EQ(only_event_file(run), path);
  verify_records(cn::read_file(path));

  const nlohmann::json tb = read_with_tensorboard(tmp, run);
  const auto& sc = tb["scalars"];
  EXPECT_FALSE(sc.contains("stale/tag"));
  for (const char* tag :
       {"train/loss", "train/lr", "train/epoch", "train/time_s", "val/loss", "val/accuracy", "layer0/grad_l2",
        "layer1/update_ratio", "curvature/loss/layer0/trace", "curvature/loss/layer1/trace"})
    EXPECT_EQ(sc[tag].size(), 3u) << tag << " in " << sc.dump();
  EXPECT_FLOAT_EQ(sc["train/loss"][2][1].get<float>(), 1.0f / 30);
  EXPECT_EQ(sc["curvature/loss/layer1/trace"][1][0].get<int64_t>(), 20);
  EXPECT_FLOAT_EQ(sc["curvature/loss/layer1/trace"][1][1].get<float>(), 21.0f);
  ASSERT_EQ(sc["test/loss"].size(), 1u);
  EXPECT_FLOAT_EQ(sc["test/loss"][0][1].get<float>(), 0.25f);
  const auto& hs = tb["histograms"];
  ASSERT_EQ(hs["eigenvalues/loss/layer0"].size(), 2u) << hs.dump();
  EXPECT_EQ(hs["eigenvalues/loss/layer0"][1][0].get<int64_t>(), 30);
  EXPECT_EQ(hs["eigenvalues/loss/layer0"][1][2].get<double>(), 30.0);
  EXPECT_EQ(hs["eigenvalues/local/layer1"][0][3].get<double>(), 2.0);
  EXPECT_EQ(hs["eigenvalues/full_top"].size(), 2u);
  ASSERT_EQ(hs["singular_values/weights/layer0"].size(), 2u);
  EXPECT_EQ(hs["singular_values/weights/layer0"][0][4].get<double>(), 4.0);
  for (auto it = hs.begin(); it != hs.end(); ++it) EXPECT_EQ(it.key().find("lanczos"), std::string::npos);
  ASSERT_EQ(hs["weights/0.weight"].size(), 1u);
  EXPECT_EQ(hs["weights/0.weight"][0][0].get<int64_t>(), 20);
  EXPECT_EQ(hs["weights/0.weight"][0][4].get<double>(), 10.0);
}

// A damaged record amid an events file is no torn tail: the cut stops with the file and
// the record's byte offset, leaving every file as it was, instead of dropping the records
// after it.
TEST(TensorBoard, TruncateAfterStepRefusesADamagedRecordNamingItsOffset) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  std::filesystem::create_directories(run);
  std::string path;
  {
    cn::TensorBoardWriter w(run);
    path = w.path();
    for (int s = 0; s <= 20; ++s) w.scalar("train/loss", s, 1.0 * s);
  }
  std::string bytes = cn::read_file(path);
  const std::vector<std::string> records = tfe::parse_records(bytes);
  size_t offset = 0;
  for (size_t i = 0; i < 6; ++i) offset += 12 + records[i].size() + 4;
  bytes[offset + 12 + 2] ^= 0x40;  // record 6's data
  cn::test::write_text(path, bytes);
  try {
    cn::TensorBoardWriter::truncate_after_step(run, 10);
    ADD_FAILURE() << "expected an InputError";
  } catch (const cn::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("byte offset " + std::to_string(offset)), std::string::npos) << e.what();
  }
  EXPECT_EQ(cn::read_file(path), bytes);
  // A damaged header is refused as well; a header cut short at the end is a torn tail.
  bytes[offset + 12 + 2] ^= 0x40;
  bytes[offset + 9] ^= 0x01;
  cn::test::write_text(path, bytes);
  EXPECT_THROW(tfe::read_records(path), cn::InputError);
  bytes[offset + 9] ^= 0x01;
  cn::test::write_text(path, bytes + bytes.substr(offset, 14));
  EXPECT_EQ(tfe::read_records(path).size(), records.size());
}
