// The packaged data suite: the ARFF reader and the table encoding (one-hot, missing values)
// on small crafted files, malformed files, the registry (shapes, availability, task), and the
// whole suite against an independent read (tests/data/check_suite.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "config/config.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/suite.h"
#include "data/table.h"
#include "test_util.h"

using namespace cn;

namespace {

// Sets an environment variable for one scope and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_)
      setenv(name_, old_.c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

bool have_rscript_and_mlbench() {
  return std::system("command -v Rscript >/dev/null 2>&1") == 0 &&
         std::filesystem::exists(std::string(kMlbenchDataDir) + "/Sonar.rda");
}

}  // namespace

// ---------------------------------------------------------------- ARFF

TEST(Arff, TypesQuotingCommentsAndMissing) {
  test::TempDir dir;
  // Keywords in any case, comments, quoted names and values (with a comma and an escaped
  // quote), '?' missing, a quoted '?' as a value, blank lines and \r\n endings.
  test::write_text(dir.file("a.arff"),
                   "% a comment\r\n@RELATION 'toy set'\r\n\r\n"
                   "@attribute width NUMERIC\r\n"
                   "@Attribute 'the colour' {red, 'dark, blue', green}\r\n"
                   "@attribute count integer\n"
                   "@attribute mark {'?', x}\n"
                   "@attribute class {no,yes,maybe}\n"
                   "@DATA\n"
                   "% rows\n"
                   "1.5, red, 3, x, yes\n"
                   "2, 'dark, blue', 4, '?', no\n"
                   "?, green, 5, x, yes\n"    // missing numeric: row dropped
                   "-1e1, ?, 6, x, no\n"      // missing nominal: its own level
                   "4, \"green\", 7, x, ?\n"  // missing target: row dropped
                   "5, red, 8, 'x', yes\n");
  const Dataset ds = read_arff(dir.file("a.arff"));
  EXPECT_EQ(ds.task, Task::classification);
  ASSERT_EQ(ds.n, 4);
  // width, colour: red, dark blue (green only in dropped rows), ?; count; mark: ?, x.
  ASSERT_EQ(ds.d, 7);
  EXPECT_EQ(ds.feature_names, (std::vector<std::string>{"width", "the colour=red", "the colour=dark, blue",
                                                        "the colour=?", "count", "mark=?", "mark=x"}));
  EXPECT_EQ(ds.x, (std::vector<double>{1.5, 1, 0, 0, 3, 0, 1,  //
                                       2,   0, 1, 0, 4, 1, 0,  //
                                       -10, 0, 0, 1, 6, 0, 1,  //
                                       5,   1, 0, 0, 8, 0, 1}));
  // Classes: the declared levels present, in declaration order ("maybe" never occurs).
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(ds.y, (std::vector<double>{1, 0, 0, 1}));
  EXPECT_EQ(ds.n_outputs, 2);
}

TEST(Arff, NumericTargetByNameIsRegression) {
  test::TempDir dir;
  test::write_text(dir.file("r.arff"),
                   "@relation r\n@attribute y real\n@attribute k {a,b}\n@attribute z numeric\n@data\n"
                   "1.5,a,2\n2.5,b,?\n-3,b,4\n");
  const Dataset ds = read_arff(dir.file("r.arff"), "y");
  EXPECT_EQ(ds.task, Task::regression);
  ASSERT_EQ(ds.n, 2);
  EXPECT_EQ(ds.d, 3);
  EXPECT_EQ(ds.y, (std::vector<double>{1.5, -3}));
  EXPECT_EQ(ds.x, (std::vector<double>{1, 0, 2, 0, 1, 4}));
}

TEST(Arff, MalformedFilesNameFileAndLine) {
  test::TempDir dir;
  const std::string head = "@relation r\n@attribute a numeric\n@attribute c {x,y}\n";
  struct Case {
    std::string text, expect;
  };
  const std::vector<Case> cases = {
      {"", ": line 1: expected @data, file ends"},
      {head, ": line 4: expected @data, file ends"},
      {head + "@data\n", ": line 5: expected at least one data row after @data"},
      {head + "@data\n1,x\n2\n", ": line 6: expected 2 values (one per @attribute), found 1"},
      {head + "@data\n1,z\n", ": line 5: attribute \"c\": expected one of {x,y} or ?, found \"z\""},
      {head + "@data\n1x,x\n", ": line 5: attribute \"a\": expected a number or ?, found \"1x\""},
      {head + "@data\n1,'x\n", ": line 5: expected a closing ' quote, line ends"},
      {head + "@data\n{0 1}\n", ": line 5: expected a dense data row"},
      {"@relation r\n@attribute a numerik\n@data\n1\n",
       ": line 2: attribute \"a\": expected a type numeric, real, integer or {values}, found \"numerik\""},
      {"@relation r\n@attribute s string\n@data\n'a'\n", ": line 2: attribute \"s\": expected numeric, real"},
      {"@relation r\n@attribute d date \"yyyy\"\n@data\n1\n", ": line 2: attribute \"d\": expected numeric, real"},
      {"@relation r\n@attribute c {x,y\n@data\nx\n", ": line 2: expected the nominal values of \"c\" to end with }"},
      {"@relation r\n@attribute c {x,x}\n@data\nx\n", ": line 2: expected distinct nominal values of \"c\""},
      {"@relation r\n@attribute a real\n@attribute a real\n@data\n1,2\n",
       ": line 3: expected a new attribute name, found \"a\" again"},
      {"@relation r\n1,2\n", ": line 2: expected @relation, @attribute or @data, found \"1,2\""},
      {"@relation r\n@data\n1\n", ": line 2: expected at least one @attribute before @data"},
      {"@relation r\n@attrib a real\n", ": line 2: expected @relation, @attribute or @data, found @attrib"},
  };
  for (const Case& c : cases) {
    test::write_text(dir.file("bad.arff"), c.text);
    const std::string msg = test::input_error_of([&] { read_arff(dir.file("bad.arff")); });
    EXPECT_EQ(msg.rfind(dir.file("bad.arff") + c.expect, 0), 0u) << "got: " << msg << "\nfor:\n" << c.text;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_NE(test::input_error_of([&] { read_arff(dir.file("absent.arff")); }).find("file not found"),
            std::string::npos);
}

TEST(Arff, MalformedFileThroughTheCliExitsTwoWithOneLine) {
  test::TempDir dir;
  test::write_text(dir.file("bad.arff"), "@relation r\n@attribute a real\n@attribute c {x,y}\n@data\n1,x\n2,w\n");
  test::write_text(dir.file("c.toml"), "[data]\ndataset = \"arff\"\npath = \"" + dir.file("bad.arff") +
                                           "\"\n[model]\nhidden = [4]\n[train]\nepochs = 1\n");
  std::string out;
  const int rc =
      test::run_command(test::curvnet_exe() + " train " + dir.file("c.toml") + " --out " + dir.file("run"), &out);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find(dir.file("bad.arff") + ": line 6: attribute \"c\": expected one of {x,y} or ?, found \"w\""),
            std::string::npos)
      << out;
}

// ---------------------------------------------------------------- text and JSON tables

TEST(Tables, CsvNominalColumnsAndTheMissingRule) {
  test::TempDir dir;
  test::write_text(dir.file("t.csv"),
                   "'id',size,kind,colour,target\n"
                   "a,1.5,10,red,3.5\n"
                   "b,NA,2,red,1\n"  // missing numeric feature: dropped
                   "c,2,2,,2\n"      // missing nominal: level "?"
                   "d,3,10,blue,\n"  // missing target: dropped
                   "e,4,9,blue,?\n"  // missing target: dropped
                   "f,-1,9,green,0.5\n");
  const Table t = read_text_table(dir.file("t.csv"), ',', {"id", "kind", "colour"});
  ASSERT_EQ(t.rows(), 6);
  EXPECT_EQ(t.columns[0].name, "id");  // the single quotes of the header are dropped
  // Numeric labels sort numerically ("2" < "9" < "10"), others byte-wise.
  EXPECT_EQ(t.columns[2].levels, (std::vector<std::string>{"2", "9", "10"}));
  EXPECT_EQ(t.columns[3].levels, (std::vector<std::string>{"blue", "green", "red"}));
  Encoding enc;
  enc.task = Task::regression;
  enc.targets = {"target"};
  enc.drop = {"id"};
  const Dataset ds = encode_table(t, enc);
  ASSERT_EQ(ds.n, 3);
  EXPECT_EQ(ds.feature_names, (std::vector<std::string>{"size", "kind=2", "kind=9", "kind=10", "colour=green",
                                                        "colour=red", "colour=?"}));
  EXPECT_EQ(ds.x, (std::vector<double>{1.5, 0, 0, 1, 0, 1, 0,  //
                                       2,   1, 0, 0, 0, 0, 1,  //
                                       -1,  0, 1, 0, 1, 0, 0}));
  EXPECT_EQ(ds.y, (std::vector<double>{3.5, 2, 0.5}));

  // A classification target by label; a derived "positive" one; a share of two columns.
  Encoding cls;
  cls.task = Task::classification;
  cls.targets = {"colour"};
  cls.drop = {"id", "target"};
  const Dataset dc = encode_table(t, cls);
  EXPECT_EQ(dc.n, 4);  // "c" has no target (an empty colour); "b" has a missing size
  EXPECT_EQ(dc.y, (std::vector<double>{2, 0, 0, 1}));
  EXPECT_EQ(dc.class_names, (std::vector<std::string>{"blue", "green", "red"}));
  Encoding pos;
  pos.task = Task::classification;
  pos.targets = {"kind"};
  pos.rule = TargetRule::positive;
  const Table num = read_text_table(dir.file("t.csv"), ',', {"id", "colour"});
  const Dataset dp = encode_table(num, pos);
  EXPECT_EQ(dp.n_outputs, 2);
  Encoding share;
  share.task = Task::regression;
  share.targets = {"size", "kind"};
  share.rule = TargetRule::share;
  share.drop = {"id", "colour"};
  const Dataset ds2 = encode_table(num, share);
  ASSERT_EQ(ds2.n, 3);  // rows a, c, f have size, kind and target
  EXPECT_EQ(ds2.y, (std::vector<double>{0.15, 1, -1.0 / 9}));
  EXPECT_EQ(ds2.d, 1);  // "target" is a numeric feature here: rows "d" and "e" lack it

  // A label in a numeric column names file, line and column.
  const std::string msg = test::input_error_of([&] { read_text_table(dir.file("t.csv"), ',', {"id"}); });
  EXPECT_EQ(msg, dir.file("t.csv") +
                     ": line 2: column 4 (\"colour\"): expected a number or a missing mark (empty, NA, ?), found "
                     "\"red\"");
}

TEST(Tables, JsonRecords) {
  test::TempDir dir;
  test::write_text(dir.file("r.json"),
                   "[{\"n\":\"a\",\"x\":1,\"o\":\"EU\",\"y\":2.5},{\"n\":\"b\",\"x\":null,\"o\":\"US\",\"y\":1},"
                   "{\"n\":\"c\",\"x\":3,\"o\":\"US\",\"y\":null},{\"n\":\"d\",\"x\":4,\"o\":\"JP\",\"y\":0}]");
  const Table t = read_json_table(dir.file("r.json"), {"n", "o"});
  Encoding enc;
  enc.task = Task::regression;
  enc.targets = {"y"};
  enc.drop = {"n"};
  const Dataset ds = encode_table(t, enc);
  ASSERT_EQ(ds.n, 2);
  EXPECT_EQ(ds.feature_names, (std::vector<std::string>{"x", "o=EU", "o=JP"}));
  EXPECT_EQ(ds.x, (std::vector<double>{1, 1, 0, 4, 0, 1}));
  test::write_text(dir.file("bad.json"), "[{\"x\":1},{\"x\":\"one\"}]");
  EXPECT_EQ(test::input_error_of([&] { read_json_table(dir.file("bad.json"), {}); }),
            dir.file("bad.json") + ": record 2, field \"x\": expected a number or null, found \"\"one\"\"");
  test::write_text(dir.file("bad2.json"), "[{\"x\":1},");
  EXPECT_EQ(test::input_error_of([&] {
              read_json_table(dir.file("bad2.json"), {});
            }).rfind(dir.file("bad2.json") + ": byte", 0),
            0u);
}

// ---------------------------------------------------------------- the registry

TEST(Suite, CountsNamesAndContractFields) {
  const auto list = list_datasets();
  int cls = 0, reg = 0;
  std::set<std::string> names;
  for (const auto& d : list) {
    EXPECT_TRUE(names.insert(d.name).second) << d.name;
    for (char ch : d.name) EXPECT_TRUE((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') << d.name;
    if (!d.packaged) continue;
    EXPECT_FALSE(d.package.empty()) << d.name;
    EXPECT_FALSE(d.file.empty()) << d.name;
    EXPECT_FALSE(d.licence.empty()) << d.name;
    EXPECT_FALSE(d.install.empty()) << d.name;
    EXPECT_GT(d.n_samples, 0) << d.name;
    EXPECT_GT(d.n_features, 0) << d.name;
    if (d.task == "classification") {
      ++cls;
      EXPECT_GE(d.n_classes, 2) << d.name;
    } else {
      ASSERT_EQ(d.task, "regression") << d.name;
      ++reg;
      EXPECT_EQ(d.n_classes, 0) << d.name;
    }
  }
  EXPECT_GE(cls, 22);
  EXPECT_GE(reg, 15);
}

TEST(Suite, EveryNameIsAConfigValueAndHasATask) {
  for (const auto& name : dataset_names()) {
    const std::string extra = (name == "csv" || name == "arff") ? "path = \"x\"\n" : "";
    EXPECT_NO_THROW(parse_config("[data]\ndataset = \"" + name + "\"\n" + extra, "t.toml")) << name;
    if (name == "csv" || name == "arff") {
      EXPECT_NE(test::input_error_of([&] { dataset_task(name); }).find("set loss.kind"), std::string::npos);
      continue;
    }
    const Task t = dataset_task(name);
    EXPECT_EQ(dataset_info(name).task, t == Task::classification ? "classification" : "regression");
  }
  EXPECT_EQ(dataset_task("cpu"), Task::regression);
  EXPECT_EQ(dataset_task("glass"), Task::classification);
  EXPECT_EQ(natural_loss(Task::classification), LossKind::cross_entropy);
  EXPECT_EQ(natural_loss(Task::regression), LossKind::mse);
  EXPECT_NE(test::input_error_of([&] { dataset_task("no-such-set"); }).find("unknown data set"), std::string::npos);
}

// Every available packaged set loads through load_splits with the stated shape, finite
// standardised features and targets in range.
TEST(Suite, EverySetLoadsWithItsStatedShape) {
  test::TempDir cache;
  ScopedEnv env("CURVNET_DATA_CACHE", cache.path().string());
  if (have_rscript_and_mlbench())
    ASSERT_EQ(std::system(
                  ("Rscript " + std::string(CURVNET_SOURCE_DIR) + "/scripts/export-mlbench.R " + cache.file("mlbench"))
                      .c_str()),
              0);
  int loaded = 0;
  for (const auto& info : list_datasets()) {
    if (!info.packaged || !info.available || info.name == "fashion-mnist") continue;
    DataConfig c;
    c.dataset = info.name;
    const Splits s = load_splits(c, 7);
    const int64_t n = s.train.n + s.val.n + s.test.n;
    EXPECT_EQ(n, info.n_samples) << info.name;
    EXPECT_EQ(s.train.d, info.n_features) << info.name;
    EXPECT_EQ(s.train.n_outputs, info.n_outputs) << info.name;
    EXPECT_EQ(s.train.task, dataset_task(info.name)) << info.name;
    for (const Dataset* d : {&s.train, &s.val, &s.test}) {
      for (double v : d->x) ASSERT_TRUE(std::isfinite(v)) << info.name;
      if (d->task == Task::classification)
        for (double v : d->y) ASSERT_TRUE(v >= 0 && v < static_cast<double>(d->n_outputs)) << info.name;
    }
    ++loaded;
  }
  if (loaded == 0) GTEST_SKIP() << "no packaged data set is installed";
}

TEST(Suite, MissingFilesAreReportedUnavailableWithTheirPackage) {
  test::TempDir root, cache;
  ScopedEnv r("CURVNET_DATA_ROOT", root.path().string());
  ScopedEnv c("CURVNET_DATA_CACHE", cache.path().string());
  for (const auto& d : list_datasets()) {
    if (!d.packaged) continue;
    EXPECT_FALSE(d.available) << d.name;
    if (d.package == "r-cran-mlbench")
      EXPECT_EQ(d.install, "apt-get install r-cran-mlbench, then scripts/setup-study") << d.name;
    else
      EXPECT_EQ(d.install, "apt-get install " + d.package) << d.name;
  }
  EXPECT_EQ(dataset_info("glass").package, "weka");
  DataConfig cfg;
  cfg.dataset = "glass";
  const std::string glass = root.file("usr/share/doc/weka/examples/glass.arff");
  EXPECT_EQ(test::input_error_of([&] { load_splits(cfg, 1); }),
            "data.dataset = \"glass\": " + glass + ": file not found; apt-get install weka brings it");
  cfg.dataset = "sonar";
  EXPECT_NE(
      test::input_error_of([&] { load_splits(cfg, 1); }).find(cache.file("mlbench/Sonar.csv") + ": file not found"),
      std::string::npos);

  // A stand-in file under the root makes that one set available, and it loads from there.
  std::filesystem::create_directories(std::filesystem::path(glass).parent_path());
  test::write_text(glass, "@relation g\n@attribute RI real\n@attribute Type {a,b,c}\n@data\n1,a\n2,b\n3,a\n4,c\n5,b\n");
  EXPECT_TRUE(dataset_info("glass").available);
  EXPECT_FALSE(dataset_info("ionosphere").available);
  cfg.dataset = "glass";
  cfg.val_fraction = 0;
  cfg.test_fraction = 0;
  const Splits s = load_splits(cfg, 1);
  EXPECT_EQ(s.train.n, 5);
  EXPECT_EQ(s.train.n_outputs, 3);
  EXPECT_EQ(s.source, glass);

  // Through the CLI: the JSON contract, and the reason.
  std::string out;
  ASSERT_EQ(test::run_command("CURVNET_DATA_ROOT=" + root.path().string() + " CURVNET_DATA_CACHE=" +
                                  cache.path().string() + " " + test::curvnet_exe() + " datasets --json 2>/dev/null",
                              &out),
            0);
  const auto arr = nlohmann::json::parse(out);
  ASSERT_TRUE(arr.is_array());
  bool saw_sonar = false;
  for (const auto& o : arr) {
    for (const char* key : {"name", "task", "n_samples", "n_features", "n_classes", "available", "source"})
      EXPECT_TRUE(o.contains(key)) << key;
    EXPECT_TRUE(o["task"] == "classification" || o["task"] == "regression") << o.dump();
    EXPECT_EQ(o["task"] == "regression", o["n_classes"].is_null()) << o.dump();
    if (o["name"] == "sonar") {
      saw_sonar = true;
      EXPECT_FALSE(o["available"].get<bool>());
      EXPECT_EQ(o["install"], "apt-get install r-cran-mlbench, then scripts/setup-study");
      EXPECT_EQ(o["n_samples"], 208);
      EXPECT_EQ(o["n_classes"], 2);
    }
    if (o["name"] == "glass") EXPECT_TRUE(o["available"].get<bool>());
  }
  EXPECT_TRUE(saw_sonar);
}

// The whole suite against pandas/scipy/sklearn reads of the same files (shape, classes and
// the sums of features and targets).
TEST(Suite, MatchesAnIndependentRead) {
  if (!test::python_has("pandas, scipy, sklearn"))
    GTEST_SKIP() << "no pandas/scipy/sklearn for " << test::python_exe() << " (set CURVNET_PYTHON)";
  std::string out;
  const int rc = test::run_command(test::python_exe() + " " + CURVNET_SOURCE_DIR + "/tests/data/check_suite.py " +
                                       test::curvnet_exe() + " " + CURVNET_SOURCE_DIR,
                                   &out);
  if (rc == 77) GTEST_SKIP() << out;
  EXPECT_EQ(rc, 0) << out;
  std::cout << out;
}

// docs/datasets.md's table has a row for every packaged set with its stated task and shape.
TEST(Suite, DocsTableListsEverySet) {
  const std::string doc = test::read_text(std::string(CURVNET_SOURCE_DIR) + "/docs/datasets.md");
  for (const auto& d : list_datasets()) {
    if (!d.packaged) continue;
    const std::string row = "| `" + d.name + "` | " + d.task + " | " + std::to_string(d.n_samples) + " x " +
                            std::to_string(d.n_features) + ", ";
    EXPECT_NE(doc.find(row), std::string::npos) << row;
    EXPECT_NE(doc.find("| `" + d.name + "` |"), std::string::npos) << d.name;
  }
}
