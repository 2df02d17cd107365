// Data sets: IDX and CSV readers (valid and malformed files), the bundled sklearn sets,
// Fashion-MNIST, synthetic generators, splits and standardisation, epoch order.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "data/dataset.h"
#include "data/suite.h"
#include "test_util.h"

using namespace cn;

namespace {

void put_be32(std::string* b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b->push_back(static_cast<char>((v >> s) & 0xff));
}

std::string idx_images(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t data_bytes) {
  std::string b;
  put_be32(&b, magic);
  put_be32(&b, n);
  put_be32(&b, rows);
  put_be32(&b, cols);
  for (size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<char>((i * 37) % 256));
  return b;
}

std::string idx_labels(uint32_t magic, const std::vector<uint8_t>& labels) {
  std::string b;
  put_be32(&b, magic);
  put_be32(&b, static_cast<uint32_t>(labels.size()));
  for (uint8_t l : labels) b.push_back(static_cast<char>(l));
  return b;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

bool exists(const std::string& p) { return std::filesystem::exists(p); }
std::string sk(const std::string& f) { return std::string(kSklearnDataDir) + "/" + f; }

}  // namespace

// ---------------------------------------------------------------- IDX

TEST(Idx, ReadsGzippedPair) {
  test::TempDir dir;
  write_gz(dir.file("img.gz"), idx_images(0x803, 3, 2, 2, 12));
  write_gz(dir.file("lab.gz"), idx_labels(0x801, {2, 0, 4}));
  const Dataset ds = read_idx_pair(dir.file("img.gz"), dir.file("lab.gz"));
  EXPECT_EQ(ds.task, Task::classification);
  EXPECT_EQ(ds.n, 3);
  EXPECT_EQ(ds.d, 4);
  EXPECT_EQ(ds.n_outputs, 5);
  ASSERT_EQ(ds.x.size(), 12u);
  for (size_t i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(ds.x[i], ((i * 37) % 256) / 255.0);
  EXPECT_EQ(ds.y, (std::vector<double>{2, 0, 4}));
}

TEST(Idx, ReadsPlainFiles) {
  test::TempDir dir;
  test::write_text(dir.file("img"), idx_images(0x803, 2, 1, 3, 6));
  test::write_text(dir.file("lab"), idx_labels(0x801, {1, 0}));
  const Dataset ds = read_idx_pair(dir.file("img"), dir.file("lab"));
  EXPECT_EQ(ds.n, 2);
  EXPECT_EQ(ds.d, 3);
  EXPECT_DOUBLE_EQ(ds.x[1], 37 / 255.0);
}

TEST(Idx, TruncatedDataNamesFileAndByte) {
  test::TempDir dir;
  write_gz(dir.file("short-img.gz"), idx_images(0x803, 3, 2, 2, 10));  // 12 bytes expected
  write_gz(dir.file("lab.gz"), idx_labels(0x801, {0, 1, 2}));
  const std::string msg = test::input_error_of([&] { read_idx_pair(dir.file("short-img.gz"), dir.file("lab.gz")); });
  EXPECT_NE(msg.find(dir.file("short-img.gz")), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte 26"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected 12"), std::string::npos) << msg;
}

TEST(Idx, TruncatedHeaderNamesFileAndByte) {
  test::TempDir dir;
  std::string b = idx_images(0x803, 3, 2, 2, 0).substr(0, 10);
  write_gz(dir.file("hdr.gz"), b);
  write_gz(dir.file("lab.gz"), idx_labels(0x801, {0, 1, 2}));
  const std::string msg = test::input_error_of([&] { read_idx_pair(dir.file("hdr.gz"), dir.file("lab.gz")); });
  EXPECT_NE(msg.find(dir.file("hdr.gz")), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte 10"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dimension 1 (4 bytes at byte 8)"), std::string::npos) << msg;
}

TEST(Idx, WrongMagicNamesFileAndByte) {
  test::TempDir dir;
  write_gz(dir.file("img.gz"), idx_images(0x803, 3, 2, 2, 12));
  write_gz(dir.file("badlab.gz"), idx_labels(0x803, {0, 1, 2}));
  const std::string msg = test::input_error_of([&] { read_idx_pair(dir.file("img.gz"), dir.file("badlab.gz")); });
  EXPECT_NE(msg.find(dir.file("badlab.gz")), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0x00000801"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0x00000803"), std::string::npos) << msg;
}

TEST(Idx, SwappedFilesAndCountMismatch) {
  test::TempDir dir;
  write_gz(dir.file("img.gz"), idx_images(0x803, 3, 2, 2, 12));
  write_gz(dir.file("lab.gz"), idx_labels(0x801, {0, 1}));
  std::string msg = test::input_error_of([&] { read_idx_pair(dir.file("lab.gz"), dir.file("img.gz")); });
  EXPECT_NE(msg.find(dir.file("img.gz") + ": byte 0: expected IDX magic number 0x00000801"), std::string::npos) << msg;
  msg = test::input_error_of([&] { read_idx_pair(dir.file("img.gz"), dir.file("lab.gz")); });
  EXPECT_NE(msg.find(dir.file("lab.gz") + ": byte 4: expected 3 labels"), std::string::npos) << msg;
}

TEST(Idx, TrailingBytesAndBrokenGzipAndMissingFile) {
  test::TempDir dir;
  write_gz(dir.file("long.gz"), idx_images(0x803, 1, 2, 2, 7));
  write_gz(dir.file("lab.gz"), idx_labels(0x801, {0}));
  std::string msg = test::input_error_of([&] { read_idx_pair(dir.file("long.gz"), dir.file("lab.gz")); });
  EXPECT_NE(msg.find(dir.file("long.gz") + ": byte 20: expected end of file"), std::string::npos) << msg;

  // A gzip stream cut in the middle.
  write_gz(dir.file("full.gz"), idx_images(0x803, 50, 28, 28, 50 * 784));
  const std::string gz = test::read_text(dir.file("full.gz"));
  test::write_text(dir.file("cut.gz"), gz.substr(0, gz.size() / 2));
  write_gz(dir.file("lab50.gz"), idx_labels(0x801, std::vector<uint8_t>(50, 1)));
  msg = test::input_error_of([&] { read_idx_pair(dir.file("cut.gz"), dir.file("lab50.gz")); });
  EXPECT_NE(msg.find(dir.file("cut.gz") + ": byte "), std::string::npos) << msg;

  msg = test::input_error_of([&] { read_idx_pair(dir.file("nope.gz"), dir.file("lab.gz")); });
  EXPECT_NE(msg.find(dir.file("nope.gz")), std::string::npos) << msg;
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
}

// A header may claim far more items than the file holds: the reader answers "truncated"
// from the file size instead of allocating what the header claims.
TEST(Idx, HeaderClaimingMoreThanTheFileHoldsIsTruncated) {
  test::TempDir dir;
  std::string lab;
  put_be32(&lab, 0x801);
  put_be32(&lab, 4000000000u);
  lab += std::string(3, '\1');
  test::write_text(dir.file("lab"), lab);
  test::write_text(dir.file("img"), idx_images(0x803, 3, 2, 2, 12));
  std::string msg = test::input_error_of([&] { read_idx_pair(dir.file("img"), dir.file("lab")); });
  EXPECT_NE(msg.find(dir.file("lab") + ": byte 8: expected 4000000000 data bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  write_gz(dir.file("lab.gz"), lab);
  msg = test::input_error_of([&] { read_idx_pair(dir.file("img"), dir.file("lab.gz")); });
  EXPECT_NE(msg.find(dir.file("lab.gz") + ": byte 8: expected 4000000000 data bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  // Image dimensions whose product does not even fit in 64 bits, and one that does.
  write_gz(dir.file("lab1.gz"), idx_labels(0x801, {1}));
  for (const uint32_t side : {0xffffffffu, 65535u}) {
    write_gz(dir.file("huge.gz"), idx_images(0x803, 1, side, side, 64));
    msg = test::input_error_of([&] { read_idx_pair(dir.file("huge.gz"), dir.file("lab1.gz")); });
    EXPECT_NE(msg.find(dir.file("huge.gz") + ": byte 16: expected 1 x " + std::to_string(side) + " x " +
                       std::to_string(side) + " data bytes"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// ---------------------------------------------------------------- CSV

TEST(Csv, IntegerLabelsByNameAndIndex) {
  test::TempDir dir;
  test::write_text(dir.file("a.csv"), "f1,label,f2\r\n1.5,5,-2\r\n2,2,3e1\r\n\r\n+3,5,0\r\n4,9,1\r\n");
  for (const std::string col : {"label", "1"}) {
    const Dataset ds = read_csv(dir.file("a.csv"), col, Task::classification);
    EXPECT_EQ(ds.n, 4);
    EXPECT_EQ(ds.d, 2);
    EXPECT_EQ(ds.n_outputs, 3);
    EXPECT_EQ(ds.x, (std::vector<double>{1.5, -2, 2, 30, 3, 0, 4, 1}));
    EXPECT_EQ(ds.y, (std::vector<double>{1, 0, 1, 2}));
    EXPECT_EQ(ds.class_names, (std::vector<std::string>{"2", "5", "9"}));
    EXPECT_EQ(ds.feature_names, (std::vector<std::string>{"f1", "f2"}));
  }
  // The task rule: integers, at most 50 distinct -> classification.
  EXPECT_EQ(read_csv(dir.file("a.csv"), "label").task, Task::classification);
  // Forced regression keeps the values.
  const Dataset r = read_csv(dir.file("a.csv"), "label", Task::regression);
  EXPECT_EQ(r.y, (std::vector<double>{5, 2, 5, 9}));
  EXPECT_EQ(r.n_outputs, 1);
}

TEST(Csv, StringLabelsQuotedCellsAndDefaultLastColumn) {
  test::TempDir dir;
  test::write_text(dir.file("s.csv"), "x,\"y, quoted\",species\n1,2,virginica\n3,4,\"setosa\"\n5,6,virginica\n");
  const Dataset ds = read_csv(dir.file("s.csv"), "");
  EXPECT_EQ(ds.task, Task::classification);
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"setosa", "virginica"}));
  EXPECT_EQ(ds.y, (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(ds.feature_names[1], "y, quoted");
  const std::string msg = test::input_error_of([&] { read_csv(dir.file("s.csv"), "species", Task::regression); });
  EXPECT_NE(msg.find(dir.file("s.csv") + ": line 2, column 3"), std::string::npos) << msg;
}

TEST(Csv, TaskRule) {
  EXPECT_EQ(infer_csv_task({"1", "2", "1"}), Task::classification);
  EXPECT_EQ(infer_csv_task({"1", "2.5", "1"}), Task::regression);
  EXPECT_EQ(infer_csv_task({"cat", "dog"}), Task::classification);
  EXPECT_EQ(infer_csv_task({"1.0", "2.0"}), Task::classification);
  std::vector<std::string> many;
  for (int i = 0; i < 51; ++i) many.push_back(std::to_string(i));
  EXPECT_EQ(infer_csv_task(many), Task::regression);
  many.pop_back();
  EXPECT_EQ(infer_csv_task(many), Task::classification);
  test::TempDir dir;
  test::write_text(dir.file("r.csv"), "a,t\n1,0.5\n2,1.25\n");
  const Dataset ds = read_csv(dir.file("r.csv"), "t");
  EXPECT_EQ(ds.task, Task::regression);
  EXPECT_EQ(ds.y, (std::vector<double>{0.5, 1.25}));
}

TEST(Csv, RaggedRowNamesFileAndLine) {
  test::TempDir dir;
  test::write_text(dir.file("rag.csv"), "a,b,c\n1,2,3\n4,5\n");
  const std::string msg = test::input_error_of([&] { read_csv(dir.file("rag.csv"), "c", Task::classification); });
  EXPECT_NE(msg.find(dir.file("rag.csv") + ": line 3: expected 3 cells"), std::string::npos) << msg;
  EXPECT_NE(msg.find("found 2"), std::string::npos) << msg;
}

TEST(Csv, NonNumericCellNamesFileLineAndColumn) {
  test::TempDir dir;
  test::write_text(dir.file("nn.csv"), "a,b,c\n1,2,0\n4,x5,1\n");
  const std::string msg = test::input_error_of([&] { read_csv(dir.file("nn.csv"), "c", Task::classification); });
  EXPECT_NE(msg.find(dir.file("nn.csv") + ": line 3, column 2 (\"b\"): expected a finite number, found \"x5\""),
            std::string::npos)
      << msg;
  test::write_text(dir.file("nan.csv"), "a,c\nnan,0\n");
  EXPECT_NE(test::input_error_of([&] { read_csv(dir.file("nan.csv"), "c"); }).find("line 2, column 1"),
            std::string::npos);
  test::write_text(dir.file("empty-cell.csv"), "a,c\n,0\n");
  EXPECT_NE(test::input_error_of([&] { read_csv(dir.file("empty-cell.csv"), "c"); }).find("line 2, column 1"),
            std::string::npos);
}

// A cell quoted in a message is escaped and cut: a 10 MB cell gives a short one-line message.
TEST(Csv, CellsInMessagesAreEscapedAndCut) {
  test::TempDir dir;
  test::write_text(dir.file("big.csv"), "a,c\n" + std::string(10 << 20, 'x') + ",0\n");
  const std::string big = test::input_error_of([&] { read_csv(dir.file("big.csv"), "c"); });
  EXPECT_LT(big.size(), 400u) << big.substr(0, 400);
  EXPECT_NE(big.find("line 2, column 1"), std::string::npos) << big;
  EXPECT_NE(big.find("... (10485760 bytes)"), std::string::npos) << big;
  test::write_text(dir.file("nul.csv"), std::string("a,c\n1\0\x01,0\n", 10));
  const std::string nul = test::input_error_of([&] { read_csv(dir.file("nul.csv"), "c"); });
  EXPECT_EQ(nul.find('\0'), std::string::npos) << nul;
  EXPECT_NE(nul.find("found \"1\\x00\\x01\""), std::string::npos) << nul;
}

TEST(Csv, MissingLabelColumnAndEmptyFiles) {
  test::TempDir dir;
  test::write_text(dir.file("m.csv"), "a,b\n1,2\n");
  std::string msg = test::input_error_of([&] { read_csv(dir.file("m.csv"), "target", Task::classification); });
  EXPECT_NE(msg.find(dir.file("m.csv") + ": line 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"target\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"a\", \"b\""), std::string::npos) << msg;
  msg = test::input_error_of([&] { read_csv(dir.file("m.csv"), "2", Task::classification); });
  EXPECT_NE(msg.find("line 1"), std::string::npos) << msg;

  test::write_text(dir.file("e.csv"), "");
  msg = test::input_error_of([&] { read_csv(dir.file("e.csv"), "", Task::classification); });
  EXPECT_NE(msg.find(dir.file("e.csv") + ": line 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;

  test::write_text(dir.file("h.csv"), "a,b\n");
  msg = test::input_error_of([&] { read_csv(dir.file("h.csv"), "", Task::classification); });
  EXPECT_NE(msg.find(dir.file("h.csv") + ": line 2"), std::string::npos) << msg;

  msg = test::input_error_of([&] { read_csv(dir.file("absent.csv"), ""); });
  EXPECT_NE(msg.find(dir.file("absent.csv")), std::string::npos) << msg;
}

// One class cannot be classified: the load says so, naming the file and the label column.
TEST(Csv, SingleClassLabelColumnIsAnInputError) {
  test::TempDir dir;
  test::write_text(dir.file("one.csv"), "a,b,kind\n1,2,cat\n3,4,cat\n5,6, cat\n");
  std::string msg = test::input_error_of([&] { read_csv(dir.file("one.csv"), "kind"); });
  EXPECT_NE(msg.find(dir.file("one.csv") + ": column 3 (\"kind\"): expected at least 2 distinct labels"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("\"cat\""), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  test::write_text(dir.file("int.csv"), "a,y\n1,3\n2,3\n");
  msg = test::input_error_of([&] { read_csv(dir.file("int.csv"), "", Task::classification); });
  EXPECT_NE(msg.find(dir.file("int.csv") + ": column 2 (\"y\"): expected at least 2 distinct labels"),
            std::string::npos)
      << msg;
  // Through load_splits, before any split or run exists.
  DataConfig c;
  c.dataset = "csv";
  c.path = dir.file("one.csv");
  msg = test::input_error_of([&] { load_splits(c, 0); });
  EXPECT_NE(msg.find(dir.file("one.csv")), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"kind\""), std::string::npos) << msg;
  // One constant regression target stays a valid regression set.
  EXPECT_EQ(read_csv(dir.file("int.csv"), "", Task::regression).n, 2);
}

// ---------------------------------------------------------------- bundled sets

struct Shape {
  const char* name;
  const char* file;
  int64_t n, d, outputs;
  Task task;
};

TEST(Sklearn, KnownShapes) {
  const Shape shapes[] = {{"iris", "iris.csv", 150, 4, 3, Task::classification},
                          {"wine", "wine_data.csv", 178, 13, 3, Task::classification},
                          {"breast-cancer", "breast_cancer.csv", 569, 30, 2, Task::classification},
                          {"digits", "digits.csv.gz", 1797, 64, 10, Task::classification},
                          {"diabetes", "diabetes_data_raw.csv.gz", 442, 10, 1, Task::regression}};
  int seen = 0;
  for (const Shape& s : shapes) {
    if (!exists(sk(s.file))) continue;
    ++seen;
    const Dataset ds = load_sklearn_dataset(s.name);
    EXPECT_EQ(ds.n, s.n) << s.name;
    EXPECT_EQ(ds.d, s.d) << s.name;
    EXPECT_EQ(ds.n_outputs, s.outputs) << s.name;
    EXPECT_EQ(ds.task, s.task) << s.name;
    EXPECT_EQ(static_cast<int64_t>(ds.x.size()), s.n * s.d) << s.name;
    EXPECT_EQ(static_cast<int64_t>(ds.y.size()), s.n) << s.name;
    if (s.task == Task::classification) {
      std::set<double> classes(ds.y.begin(), ds.y.end());
      EXPECT_EQ(static_cast<int64_t>(classes.size()), s.outputs) << s.name;
      EXPECT_EQ(static_cast<int64_t>(ds.class_names.size()), s.outputs) << s.name;
    }
  }
  if (seen == 0) GTEST_SKIP() << "python3-sklearn's data files are absent";
}

TEST(Sklearn, KnownValues) {
  if (!exists(sk("iris.csv")) || !exists(sk("diabetes_target.csv.gz"))) GTEST_SKIP() << "sklearn data files absent";
  const Dataset iris = load_sklearn_dataset("iris");
  EXPECT_EQ((std::vector<double>(iris.x.begin(), iris.x.begin() + 4)), (std::vector<double>{5.1, 3.5, 1.4, 0.2}));
  EXPECT_EQ(iris.class_names, (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(std::count(iris.y.begin(), iris.y.end(), 2.0), 50);
  const Dataset dia = load_sklearn_dataset("diabetes");
  EXPECT_DOUBLE_EQ(dia.y[0], 151.0);
  EXPECT_DOUBLE_EQ(dia.x[0], 59.0);
  EXPECT_DOUBLE_EQ(dia.x[8], 4.8598);
  EXPECT_NE(test::input_error_of([] { load_sklearn_dataset("nope"); }).find("iris"), std::string::npos);
}

TEST(Sklearn, MalformedBundledFileNamesLine) {
  test::TempDir dir;
  test::write_text(dir.file("iris.csv"), "3,2,a,b\n1,2,0\n1,2,1\n1,2,5\n");
  std::string msg = test::input_error_of([&] { load_sklearn_dataset("iris", dir.path().string()); });
  EXPECT_NE(msg.find(dir.file("iris.csv") + ": line 4, column 3: expected a class index in [0, 2)"), std::string::npos)
      << msg;
  test::write_text(dir.file("iris.csv"), "3,2,a,b\n1,2,0\n1,2,1\n");
  msg = test::input_error_of([&] { load_sklearn_dataset("iris", dir.path().string()); });
  EXPECT_NE(msg.find("expected 3 data rows"), std::string::npos) << msg;
}

// The first line's feature count is checked against the rows before anything is allocated.
TEST(Sklearn, HugeFeatureCountInFirstLineIsAnInputError) {
  test::TempDir dir;
  test::write_text(dir.file("iris.csv"), "2,1000000000000,a,b\n1,2,0\n1,2,1\n");
  const std::string msg = test::input_error_of([&] { load_sklearn_dataset("iris", dir.path().string()); });
  EXPECT_NE(msg.find(dir.file("iris.csv") + ": line 2: expected 1000000000001 cells (features and a label), found 3"),
            std::string::npos)
      << msg;
}

TEST(FashionMnist, ShapesAndSpeed) {
  const std::string dir = kFashionMnistDir;
  if (!exists(dir + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset train = load_fashion_mnist(true);
  const Dataset test = load_fashion_mnist(false);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "fashion-mnist train + test load: " << secs << " s\n";
  EXPECT_LT(secs, 4.0);  // target < 2 s; the slack is for a busy machine
  EXPECT_EQ(train.n, 60000);
  EXPECT_EQ(test.n, 10000);
  EXPECT_EQ(train.d, 784);
  EXPECT_EQ(train.n_outputs, 10);
  EXPECT_EQ(train.class_names.size(), 10u);
  EXPECT_EQ(*std::max_element(train.x.begin(), train.x.end()), 1.0);
  EXPECT_EQ(*std::min_element(train.x.begin(), train.x.end()), 0.0);
  std::map<double, int> counts;
  for (double v : train.y) ++counts[v];
  ASSERT_EQ(counts.size(), 10u);
  for (const auto& [c, k] : counts) EXPECT_EQ(k, 6000) << c;
}

TEST(FashionMnist, Splits) {
  if (!exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  DataConfig c;
  c.dataset = "fashion-mnist";
  c.val_fraction = 0.1;
  const Splits s = load_splits(c, 3);
  EXPECT_EQ(s.train.n, 54000);
  EXPECT_EQ(s.val.n, 6000);
  EXPECT_EQ(s.test.n, 10000);
  EXPECT_EQ(s.feature_mean.size(), 784u);
  double m = 0;
  for (int64_t i = 0; i < s.train.n; ++i) m += s.train.x[i * 784 + 400];
  EXPECT_NEAR(m / s.train.n, 0.0, 1e-9);
}

// ---------------------------------------------------------------- synthetic

TEST(Synthetic, ShapesAndDeterminism) {
  const struct {
    const char* name;
    int64_t d, outputs;
    Task task;
  } sets[] = {{"spirals", 2, 2, Task::classification},
              {"blobs", 2, 3, Task::classification},
              {"xor", 2, 2, Task::classification},
              {"teacher", 10, 1, Task::regression},
              {"sine", 1, 1, Task::regression}};
  for (const auto& s : sets) {
    EXPECT_TRUE(is_synthetic(s.name));
    const Dataset a = make_synthetic(s.name, 301, 0.1, 42);
    const Dataset b = make_synthetic(s.name, 301, 0.1, 42);
    const Dataset c = make_synthetic(s.name, 301, 0.1, 43);
    EXPECT_EQ(a.n, 301) << s.name;
    EXPECT_EQ(a.d, s.d) << s.name;
    EXPECT_EQ(a.n_outputs, s.outputs) << s.name;
    EXPECT_EQ(a.task, s.task) << s.name;
    EXPECT_EQ(static_cast<int64_t>(a.x.size()), 301 * s.d) << s.name;
    EXPECT_EQ(a.y.size(), 301u) << s.name;
    EXPECT_EQ(a.x, b.x) << s.name;
    EXPECT_EQ(a.y, b.y) << s.name;
    EXPECT_NE(a.x, c.x) << s.name;
    for (double v : a.x) EXPECT_TRUE(std::isfinite(v)) << s.name;
    if (s.task == Task::classification) {
      std::set<double> classes(a.y.begin(), a.y.end());
      EXPECT_EQ(static_cast<int64_t>(classes.size()), s.outputs) << s.name;
    }
  }
  EXPECT_FALSE(is_synthetic("iris"));
  EXPECT_NE(test::input_error_of([] { make_synthetic("spirals", 0, 0.1, 0); }).find("data.n_samples"),
            std::string::npos);
  EXPECT_NE(test::input_error_of([] { make_synthetic("spirals", 10, -1, 0); }).find("data.noise"), std::string::npos);
}

TEST(Synthetic, Definitions) {
  // Noise-free: xor labels are the sign rule, sine is sin(x) exactly, blobs are balanced.
  const Dataset x = make_synthetic("xor", 500, 0.0, 1);
  for (int64_t i = 0; i < x.n; ++i) {
    EXPECT_LE(std::fabs(x.x[2 * i]), 1.0);
    EXPECT_EQ(x.y[i], x.x[2 * i] * x.x[2 * i + 1] > 0 ? 1.0 : 0.0);
  }
  const Dataset s = make_synthetic("sine", 200, 0.0, 1);
  for (int64_t i = 0; i < s.n; ++i) {
    EXPECT_LE(std::fabs(s.x[i]), M_PI + 1e-12);
    EXPECT_DOUBLE_EQ(s.y[i], std::sin(s.x[i]));
  }
  const Dataset b = make_synthetic("blobs", 300, 0.1, 1);
  EXPECT_EQ(std::count(b.y.begin(), b.y.end(), 2.0), 100);
  // Spirals without noise lie on radius t <= 1.
  const Dataset sp = make_synthetic("spirals", 200, 0.0, 1);
  for (int64_t i = 0; i < sp.n; ++i) EXPECT_LE(std::hypot(sp.x[2 * i], sp.x[2 * i + 1]), 1.0 + 1e-12);
  // Teacher targets carry signal: variance well above the noise's.
  const Dataset t = make_synthetic("teacher", 2000, 0.0, 1);
  double m = 0, v = 0;
  for (double y : t.y) m += y;
  m /= t.n;
  for (double y : t.y) v += (y - m) * (y - m);
  EXPECT_GT(v / t.n, 0.05);
}

// ---------------------------------------------------------------- splits

TEST(Splits, SizesStandardisationAndFileOrder) {
  DataConfig c;
  c.dataset = "sine";
  c.n_samples = 1000;
  c.val_fraction = 0.1;
  c.test_fraction = 0.2;
  c.standardize = false;
  const Splits raw = load_splits(c, 5);
  EXPECT_EQ(raw.train.n, 700);
  EXPECT_EQ(raw.val.n, 100);
  EXPECT_EQ(raw.test.n, 200);
  EXPECT_TRUE(raw.feature_mean.empty());
  // Every sample lands in exactly one split, and each split keeps the generated order.
  const Dataset all = make_synthetic("sine", 1000, c.noise, 5);
  std::map<double, int64_t> where;
  for (int64_t i = 0; i < all.n; ++i) where[all.x[i]] = i;
  std::set<int64_t> seen;
  for (const Dataset* part : {&raw.train, &raw.val, &raw.test}) {
    int64_t prev = -1;
    for (int64_t i = 0; i < part->n; ++i) {
      ASSERT_TRUE(where.count(part->x[i]));
      const int64_t k = where[part->x[i]];
      EXPECT_GT(k, prev);
      EXPECT_DOUBLE_EQ(part->y[i], all.y[k]);
      prev = k;
      EXPECT_TRUE(seen.insert(k).second);
    }
  }
  EXPECT_EQ(seen.size(), 1000u);
  // The recorded source rows (RUN/data.safetensors) name the same samples.
  for (const auto& [part, rows] : {std::pair{&raw.train, &raw.train_rows}, std::pair{&raw.val, &raw.val_rows},
                                   std::pair{&raw.test, &raw.test_rows}}) {
    ASSERT_EQ(static_cast<int64_t>(rows->size()), part->n);
    for (int64_t i = 0; i < part->n; ++i) EXPECT_EQ((*rows)[static_cast<size_t>(i)], where[part->x[i]]);
  }

  c.standardize = true;
  const Splits s = load_splits(c, 5);
  ASSERT_EQ(s.feature_mean.size(), 1u);
  double m = 0, v = 0;
  for (double x : s.train.x) m += x;
  m /= s.train.n;
  for (double x : s.train.x) v += (x - m) * (x - m);
  EXPECT_NEAR(m, 0.0, 1e-12);
  EXPECT_NEAR(std::sqrt(v / s.train.n), 1.0, 1e-12);
  for (int64_t i = 0; i < s.val.n; ++i)
    EXPECT_NEAR(s.val.x[i], (raw.val.x[i] - s.feature_mean[0]) / s.feature_std[0], 1e-12);
  for (int64_t i = 0; i < s.test.n; ++i)
    EXPECT_NEAR(s.test.x[i], (raw.test.x[i] - s.feature_mean[0]) / s.feature_std[0], 1e-12);
  EXPECT_NE(s.source.find("generated"), std::string::npos);
}

TEST(Splits, DeterministicBySeed) {
  DataConfig c;
  c.dataset = "blobs";
  c.n_samples = 300;
  const Splits a = load_splits(c, 11), b = load_splits(c, 11), d = load_splits(c, 12);
  EXPECT_EQ(a.train.x, b.train.x);
  EXPECT_EQ(a.val.y, b.val.y);
  EXPECT_EQ(a.test.x, b.test.x);
  EXPECT_NE(a.train.x, d.train.x);
}

TEST(Splits, BundledSetAndCsvWithConstantFeature) {
  if (exists(sk("iris.csv"))) {
    DataConfig c;
    c.dataset = "iris";
    const Splits s = load_splits(c, 0);
    EXPECT_EQ(s.train.n + s.val.n + s.test.n, 150);
    EXPECT_EQ(s.test.n, 30);
    EXPECT_EQ(s.val.n, 15);
    EXPECT_EQ(s.train.name, "iris");
    EXPECT_NE(s.source.find("iris.csv"), std::string::npos);
    for (int j = 0; j < 4; ++j) {
      double m = 0, v = 0;
      for (int64_t i = 0; i < s.train.n; ++i) m += s.train.x[i * 4 + j];
      m /= s.train.n;
      for (int64_t i = 0; i < s.train.n; ++i) v += std::pow(s.train.x[i * 4 + j] - m, 2);
      EXPECT_NEAR(m, 0.0, 1e-12);
      EXPECT_NEAR(std::sqrt(v / s.train.n), 1.0, 1e-12);
    }
  }
  test::TempDir dir;
  std::string text = "a,const,y\n";
  for (int i = 0; i < 20; ++i) text += std::to_string(i) + ",7," + (i % 2 ? "yes" : "no") + "\n";
  test::write_text(dir.file("c.csv"), text);
  DataConfig c;
  c.dataset = "csv";
  c.path = dir.file("c.csv");
  c.label_column = "y";
  c.val_fraction = 0.25;
  c.test_fraction = 0.25;
  const Splits s = load_splits(c, 1);
  EXPECT_EQ(s.train.n, 10);
  EXPECT_EQ(s.train.task, Task::classification);
  EXPECT_EQ(s.train.class_names, (std::vector<std::string>{"no", "yes"}));
  EXPECT_DOUBLE_EQ(s.feature_std[1], 1.0);
  for (int64_t i = 0; i < s.test.n; ++i) EXPECT_DOUBLE_EQ(s.test.x[i * 2 + 1], 0.0);
}

TEST(Splits, ConfigErrorsNameTheKey) {
  DataConfig c;
  c.dataset = "mnist-ish";
  std::string msg = test::input_error_of([&] { load_splits(c, 0); });
  EXPECT_NE(msg.find("data.dataset"), std::string::npos) << msg;
  for (const auto& n : dataset_names()) EXPECT_NE(msg.find(n), std::string::npos) << n;
  c.dataset = "sine";
  c.val_fraction = 1.5;
  msg = test::input_error_of([&] { load_splits(c, 0); });
  EXPECT_NE(msg.find("data.val_fraction"), std::string::npos) << msg;
  c.val_fraction = 0.5;
  c.test_fraction = -0.1;
  EXPECT_NE(test::input_error_of([&] { load_splits(c, 0); }).find("data.test_fraction"), std::string::npos);
  c.test_fraction = 0.5;
  msg = test::input_error_of([&] { load_splits(c, 0); });
  EXPECT_NE(msg.find("data.val_fraction + data.test_fraction"), std::string::npos) << msg;
  c.dataset = "csv";
  c.test_fraction = 0.1;
  EXPECT_NE(test::input_error_of([&] { load_splits(c, 0); }).find("data.path"), std::string::npos);
  c.dataset = "spirals";
  c.n_samples = 2;
  c.val_fraction = 0.4;
  c.test_fraction = 0.4;
  EXPECT_NE(test::input_error_of([&] { load_splits(c, 0); }).find("no training samples"), std::string::npos);
}

TEST(Splits, ZeroFractionsGiveEmptySplits) {
  DataConfig c;
  c.dataset = "xor";
  c.n_samples = 50;
  c.val_fraction = 0;
  c.test_fraction = 0;
  const Splits s = load_splits(c, 0);
  EXPECT_EQ(s.train.n, 50);
  EXPECT_EQ(s.val.n, 0);
  EXPECT_EQ(s.test.n, 0);
  EXPECT_TRUE(s.val.x.empty());
}

// Fashion-MNIST from data.path: every split must hold 28x28 images (the model's input width
// comes from the training split, so another test shape would be read out of bounds).
TEST(Splits, FashionMnistImageShapesAreChecked) {
  test::TempDir dir;
  const auto write_split = [&](const std::string& prefix, uint32_t n, uint32_t side) {
    write_gz(dir.file(prefix + "-images-idx3-ubyte.gz"), idx_images(0x803, n, side, side, size_t{n} * side * side));
    std::vector<uint8_t> labels(n);
    for (uint32_t i = 0; i < n; ++i) labels[i] = static_cast<uint8_t>(i % 10);
    write_gz(dir.file(prefix + "-labels-idx1-ubyte.gz"), idx_labels(0x801, labels));
  };
  DataConfig c;
  c.dataset = "fashion-mnist";
  c.path = dir.path().string();
  c.val_fraction = 0.25;

  write_split("train", 20, 2);
  write_split("t10k", 4, 56);
  std::string msg = test::input_error_of([&] { load_splits(c, 0); });
  EXPECT_NE(
      msg.find(dir.file("train-images-idx3-ubyte.gz") + ": byte 8: expected 28x28 images (Fashion-MNIST), found 2x2"),
      std::string::npos)
      << msg;

  write_split("train", 20, 28);
  msg = test::input_error_of([&] { load_splits(c, 0); });
  EXPECT_NE(
      msg.find(dir.file("t10k-images-idx3-ubyte.gz") + ": byte 8: expected 28x28 images (Fashion-MNIST), found 56x56"),
      std::string::npos)
      << msg;

  write_split("t10k", 4, 1);
  msg = test::input_error_of([&] { load_splits(c, 0); });
  EXPECT_NE(
      msg.find(dir.file("t10k-images-idx3-ubyte.gz") + ": byte 8: expected 28x28 images (Fashion-MNIST), found 1x1"),
      std::string::npos)
      << msg;

  write_split("t10k", 4, 28);
  const Splits s = load_splits(c, 0);
  EXPECT_EQ(s.train.d, 784);
  EXPECT_EQ(s.test.d, 784);
  EXPECT_EQ(s.train.n + s.val.n, 20);
  EXPECT_EQ(s.test.n, 4);
}

// ---------------------------------------------------------------- epoch order, registry

TEST(EpochOrder, PermutationDeterministicPerEpoch) {
  const auto a = epoch_order(1000, true, 9, 0);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(a, epoch_order(1000, true, 9, 0));
  EXPECT_NE(a, epoch_order(1000, true, 9, 1));
  EXPECT_NE(a, epoch_order(1000, true, 10, 0));
  const auto id = epoch_order(5, false, 9, 3);
  EXPECT_EQ(id, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(epoch_order(0, true, 1, 1).empty());
  EXPECT_EQ(epoch_order(1, true, 1, 1), std::vector<int64_t>{0});
  // Every position is reachable: over many epochs element 0 visits many places.
  std::set<int64_t> places;
  for (int e = 0; e < 200; ++e) {
    const auto p = epoch_order(10, true, 1, e);
    places.insert(std::find(p.begin(), p.end(), 0) - p.begin());
  }
  EXPECT_EQ(places.size(), 10u);
}

TEST(Registry, ListsEveryDataset) {
  const auto list = list_datasets();
  const auto names = dataset_names();
  ASSERT_EQ(list.size(), names.size());
  EXPECT_EQ(names.size(), 13u + suite_sets().size());
  for (size_t i = 0; i < list.size(); ++i) {
    EXPECT_EQ(list[i].name, names[i]);
    EXPECT_FALSE(list[i].description.empty());
    EXPECT_FALSE(list[i].source.empty());
    if (is_synthetic(list[i].name)) {
      EXPECT_TRUE(list[i].available);
      EXPECT_EQ(list[i].source, "generated");
    }
    if (list[i].name == "iris") EXPECT_EQ(list[i].available, exists(sk("iris.csv")));
    if (list[i].name == "diabetes") EXPECT_EQ(list[i].task, "regression");
  }
}
