// Data sets in memory: features as float64 row-major (n x d), targets as float64
// (class index for classification, one column per output for regression).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace cn {

enum class Task { classification, regression };

struct Dataset {
  std::string name;
  Task task = Task::classification;
  int64_t n = 0;                           // samples
  int64_t d = 0;                           // features
  int64_t n_outputs = 0;                   // classes (classification) or target columns (regression)
  std::vector<double> x;                   // n * d
  std::vector<double> y;                   // classification: n class indices; regression: n * n_outputs
  std::vector<std::string> class_names;    // may be empty
  std::vector<std::string> feature_names;  // may be empty (CSV header, sklearn sets)
};

// The three splits after the split and standardisation (fitted on train). `test` is
// empty for nothing; Fashion-MNIST keeps its own test split.
struct Splits {
  Dataset train, val, test;
  std::vector<double> feature_mean, feature_std;  // the standardisation applied (empty = none)
  // The source rows each split holds, ascending (0-based, in file or generator order). For
  // fashion-mnist, train and val index the training file and test its own test file.
  std::vector<int64_t> train_rows, val_rows, test_rows;
  std::string source;  // where the data came from (path or generator)
};

// Builds the splits the config asks for. Bad files -> InputError naming file and position.
// The split is a seeded permutation (RngStream::data, seed); data sets with their own test
// split keep it and carve val_fraction of their training part.
Splits load_splits(const DataConfig& config, uint64_t seed);

// One line per available data set: name, kind, size, where it comes from, and whether it
// is present on this machine.
struct DatasetInfo {
  std::string name, task, source, description;
  bool available = false;
};
std::vector<DatasetInfo> list_datasets();

// Readers, exposed for tests.
Dataset read_idx_pair(const std::string& images_path, const std::string& labels_path);  // gzip'd or plain IDX
Dataset read_csv(const std::string& path, const std::string& label_column, Task task);

// Quality metrics. Classification from scores (n x classes; logits or probabilities,
// argmax and ranking are what matter); regression from predictions (n x outputs).
struct ClassificationMetrics {
  double accuracy = 0, precision = 0, recall = 0, f1 = 0,
         auc = 0;  // macro averages; AUC one-vs-rest (binary: the positive class)
};
ClassificationMetrics classification_metrics(const std::vector<double>& scores, const std::vector<double>& labels,
                                             int64_t n, int64_t n_classes);
struct RegressionMetrics {
  double r2 = 0, mae = 0, rmse = 0;  // averaged over outputs
};
RegressionMetrics regression_metrics(const std::vector<double>& pred, const std::vector<double>& target, int64_t n,
                                     int64_t n_outputs);

// ---- Additions (data/*.cpp; docs/datasets.md is the reference of every data set) ----

// Where the system-wide data files live (Debian's dataset-fashion-mnist and python3-sklearn).
// `data.path`, when set, replaces the directory for fashion-mnist and the sklearn sets.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
inline constexpr const char* kSklearnDataDir = "/usr/lib/python3/dist-packages/sklearn/datasets/data";

// Every valid `data.dataset` name, in list_datasets() order.
std::vector<std::string> dataset_names();

// CSV with the task chosen by the rule of docs/datasets.md: classification when every label
// cell is an integer or a non-numeric string and there are at most 50 distinct labels,
// else regression. An empty label_column means the last column.
Dataset read_csv(const std::string& path, const std::string& label_column);
Task infer_csv_task(const std::vector<std::string>& label_cells);

// The bundled sklearn sets by name ("iris" "wine" "breast-cancer" "digits" "diabetes");
// dir empty = kSklearnDataDir.
Dataset load_sklearn_dataset(const std::string& name, const std::string& dir = "");
// Fashion-MNIST's train (60000) or test (10000) part; pixels in [0, 1]; dir empty = kFashionMnistDir.
Dataset load_fashion_mnist(bool train, const std::string& dir = "");
// The seeded generators ("spirals" "blobs" "xor" "teacher" "sine"): a pure function of
// (name, n_samples, noise, seed) drawn from RngStream::data.
// teacher_width: the teacher data set's hidden units (data.teacher_width).
Dataset make_synthetic(const std::string& name, int64_t n_samples, double noise, uint64_t seed,
                       int64_t teacher_width = 32);
bool is_synthetic(const std::string& name);

// The rows `rows` of ds, in that order (features and targets; metadata copied).
Dataset take_rows(const Dataset& ds, const std::vector<int64_t>& rows);

// Mini-batch order of one epoch: a permutation of [0, n) (identity without shuffle) drawn
// from RngStream::shuffle keyed by (epoch), so a resumed run redraws the same order.
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch);

}  // namespace cn
