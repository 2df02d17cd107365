// The registry of data sets, the seeded train/val/test split, standardisation and the
// per-epoch mini-batch order.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/philox.h"
#include "data/dataset.h"

namespace cn {
namespace {

struct Entry {
  const char* name;
  const char* task;
  const char* description;
  std::vector<std::string> files;  // relative to the source directory; empty = generated or csv
  int source;                      // 0 fashion-mnist dir, 1 sklearn dir, 2 generated, 3 data.path
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> r = {
      {"fashion-mnist",
       "classification",
       "Zalando Fashion-MNIST: 28x28 grey images (784 features in [0,1]), 10 classes, 60000 train + 10000 test",
       {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz"},
       0},
      {"csv",
       "auto",
       "a CSV file (data.path, data.label_column): classification or regression by the label rule",
       {},
       3},
      {"iris", "classification", "Fisher's iris: 150 samples, 4 features, 3 classes", {"iris.csv"}, 1},
      {"wine", "classification", "UCI wine recognition: 178 samples, 13 features, 3 classes", {"wine_data.csv"}, 1},
      {"breast-cancer",
       "classification",
       "Wisconsin diagnostic breast cancer: 569 samples, 30 features, 2 classes",
       {"breast_cancer.csv"},
       1},
      {"digits",
       "classification",
       "UCI optical digits: 1797 8x8 images (64 features, 0..16), 10 classes",
       {"digits.csv.gz"},
       1},
      {"diabetes",
       "regression",
       "Efron et al. diabetes: 442 samples, 10 raw features, 1 target (disease progression)",
       {"diabetes_data_raw.csv.gz", "diabetes_target.csv.gz"},
       1},
      {"spirals", "classification", "two interleaved spirals: n_samples x 2 features, 2 classes", {}, 2},
      {"blobs", "classification", "three Gaussian blobs (std 0.3 + noise): n_samples x 2 features, 3 classes", {}, 2},
      {"xor",
       "classification",
       "XOR of signs on U[-1,1]^2 with feature noise: n_samples x 2 features, 2 classes",
       {},
       2},
      {"teacher",
       "regression",
       "teacher-student: a fixed random MLP 10 -> tanh 32 -> 1 plus target noise: n_samples x 10 features",
       {},
       2},
      {"sine", "regression", "y = sin(x) + noise, x ~ U[-pi, pi]: n_samples x 1 feature", {}, 2},
  };
  return r;
}

std::string dir_for(const Entry& e, const std::string& path_override) {
  if (e.source == 0) return path_override.empty() ? kFashionMnistDir : path_override;
  if (e.source == 1) return path_override.empty() ? kSklearnDataDir : path_override;
  return "";
}

std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

void check_fraction(const char* key, double v) {
  if (!std::isfinite(v) || v < 0.0 || v >= 1.0)
    throw InputError(std::string(key) + " = " + fmt(v) + ": expected a fraction in [0, 1)");
}

// The seeded permutation of [0, n) used for splits (RngStream::data, draw a = 0).
std::vector<int64_t> split_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  PhiloxDraw draw(seed, RngStream::data, 0, 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[static_cast<size_t>(i)], p[draw.below(static_cast<uint64_t>(i + 1))]);
  return p;
}

// Keeps only the (ascending) rows `keep` of ds, in place.
void keep_rows(Dataset* ds, const std::vector<int64_t>& keep) {
  const int64_t ycols = ds->task == Task::classification ? 1 : ds->n_outputs;
  int64_t dst = 0;
  for (int64_t r : keep) {
    if (r != dst) {
      std::copy_n(ds->x.begin() + r * ds->d, ds->d, ds->x.begin() + dst * ds->d);
      std::copy_n(ds->y.begin() + r * ycols, ycols, ds->y.begin() + dst * ycols);
    }
    ++dst;
  }
  ds->n = dst;
  ds->x.resize(static_cast<size_t>(dst * ds->d));
  ds->x.shrink_to_fit();
  ds->y.resize(static_cast<size_t>(dst * ycols));
  ds->y.shrink_to_fit();
}

// Carves `counts` samples per part from `all` by the seeded permutation: parts[k] takes the
// next counts[k] entries of the permutation (sorted, so every split stays in file order);
// `all` keeps the rest, in place.
// `rows` (when given) receives each part's source rows and then the rest's.
std::vector<Dataset> carve(Dataset* all, const std::vector<int64_t>& counts, uint64_t seed,
                           std::vector<std::vector<int64_t>>* rows_out = nullptr) {
  const std::vector<int64_t> perm = split_permutation(all->n, seed);
  std::vector<Dataset> parts;
  size_t at = 0;
  for (int64_t c : counts) {
    std::vector<int64_t> rows(perm.begin() + static_cast<std::ptrdiff_t>(at),
                              perm.begin() + static_cast<std::ptrdiff_t>(at + c));
    std::sort(rows.begin(), rows.end());
    parts.push_back(take_rows(*all, rows));
    if (rows_out) rows_out->push_back(std::move(rows));
    at += static_cast<size_t>(c);
  }
  std::vector<int64_t> rest(perm.begin() + static_cast<std::ptrdiff_t>(at), perm.end());
  std::sort(rest.begin(), rest.end());
  keep_rows(all, rest);
  if (rows_out) rows_out->push_back(std::move(rest));
  return parts;
}

// Per-feature mean and population std of `train`; a std of (numerically) zero becomes 1.
void fit_standardisation(const Dataset& train, std::vector<double>* mean, std::vector<double>* stdv) {
  const size_t d = static_cast<size_t>(train.d);
  mean->assign(d, 0.0);
  stdv->assign(d, 0.0);
  const double* x = train.x.data();
  for (int64_t i = 0; i < train.n; ++i)
    for (size_t j = 0; j < d; ++j) (*mean)[j] += x[i * d + j];
  for (size_t j = 0; j < d; ++j) (*mean)[j] /= static_cast<double>(std::max<int64_t>(train.n, 1));
  for (int64_t i = 0; i < train.n; ++i)
    for (size_t j = 0; j < d; ++j) {
      const double t = x[i * d + j] - (*mean)[j];
      (*stdv)[j] += t * t;
    }
  for (size_t j = 0; j < d; ++j) {
    const double s = std::sqrt((*stdv)[j] / static_cast<double>(std::max<int64_t>(train.n, 1)));
    (*stdv)[j] = s <= 1e-12 * std::max(1.0, std::fabs((*mean)[j])) ? 1.0 : s;
  }
}

void apply_standardisation(Dataset* ds, const std::vector<double>& mean, const std::vector<double>& stdv) {
  const size_t d = static_cast<size_t>(ds->d);
  std::vector<double> inv(d);
  for (size_t j = 0; j < d; ++j) inv[j] = 1.0 / stdv[j];
  double* x = ds->x.data();
  for (int64_t i = 0; i < ds->n; ++i)
    for (size_t j = 0; j < d; ++j) x[i * d + j] = (x[i * d + j] - mean[j]) * inv[j];
}

std::string valid_names() {
  std::string s;
  for (const auto& e : registry()) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

}  // namespace

std::vector<std::string> dataset_names() {
  std::vector<std::string> v;
  for (const auto& e : registry()) v.emplace_back(e.name);
  return v;
}

std::vector<DatasetInfo> list_datasets() {
  std::vector<DatasetInfo> out;
  for (const auto& e : registry()) {
    DatasetInfo info;
    info.name = e.name;
    info.task = e.task;
    info.description = e.description;
    if (e.source == 2) {
      info.source = "generated";
      info.available = true;
    } else if (e.source == 3) {
      info.source = "data.path";
      info.available = true;
    } else {
      const std::string dir = dir_for(e, "");
      info.source = dir;
      info.available = true;
      std::error_code ec;
      for (const auto& f : e.files)
        info.available = info.available && std::filesystem::is_regular_file(std::filesystem::path(dir) / f, ec);
    }
    out.push_back(info);
  }
  return out;
}

Splits load_splits(const DataConfig& c, uint64_t seed) {
  const auto& reg = registry();
  const auto it = std::find_if(reg.begin(), reg.end(), [&](const Entry& e) { return c.dataset == e.name; });
  if (it == reg.end())
    throw InputError("data.dataset = \"" + c.dataset + "\": unknown data set; expected one of " + valid_names());
  check_fraction("data.val_fraction", c.val_fraction);
  check_fraction("data.test_fraction", c.test_fraction);

  Splits s;
  if (c.dataset == "fashion-mnist") {
    const std::string dir = dir_for(*it, c.path);
    s.source = dir;
    s.train = load_fashion_mnist(true, dir);
    s.test = load_fashion_mnist(false, dir);
    // The model's input width comes from the training split; the test split must match it.
    if (s.test.d != s.train.d)
      throw InputError((std::filesystem::path(dir) / "t10k-images-idx3-ubyte.gz").string() + ": expected images of " +
                       std::to_string(s.train.d) + " pixels (as in train-images-idx3-ubyte.gz), found " +
                       std::to_string(s.test.d));
    const int64_t n_val = std::llround(c.val_fraction * static_cast<double>(s.train.n));
    if (n_val >= s.train.n)
      throw InputError("data.val_fraction = " + fmt(c.val_fraction) + ": leaves no training samples of " +
                       std::to_string(s.train.n));
    std::vector<std::vector<int64_t>> rows;
    s.val = std::move(carve(&s.train, {n_val}, seed, &rows)[0]);
    s.val_rows = std::move(rows[0]);
    s.train_rows = std::move(rows[1]);
    s.test_rows.resize(static_cast<size_t>(s.test.n));
    std::iota(s.test_rows.begin(), s.test_rows.end(), 0);
  } else {
    if (c.val_fraction + c.test_fraction >= 1.0)
      throw InputError("data.val_fraction + data.test_fraction = " + fmt(c.val_fraction + c.test_fraction) +
                       ": expected a sum below 1 (the rest is the training split)");
    Dataset all;
    if (c.dataset == "csv") {
      if (c.path.empty())
        throw InputError("data.path: expected the CSV file for data.dataset = \"csv\", found an empty path");
      all = read_csv(c.path, c.label_column);
      s.source = c.path;
    } else if (it->source == 1) {
      const std::string dir = dir_for(*it, c.path);
      all = load_sklearn_dataset(c.dataset, dir);
      for (const auto& f : it->files)
        s.source += (s.source.empty() ? "" : " ") + (std::filesystem::path(dir) / f).string();
    } else {
      all = make_synthetic(c.dataset, c.n_samples, c.noise, seed, c.teacher_width);
      s.source = "generated: " + c.dataset + " (n_samples=" + std::to_string(c.n_samples) + ", noise=" + fmt(c.noise) +
                 ", seed=" + std::to_string(seed) + ")";
    }
    all.name = c.dataset;
    const int64_t n_test = std::llround(c.test_fraction * static_cast<double>(all.n));
    const int64_t n_val = std::llround(c.val_fraction * static_cast<double>(all.n));
    if (n_test + n_val >= all.n)
      throw InputError("data.val_fraction = " + fmt(c.val_fraction) + ", data.test_fraction = " + fmt(c.test_fraction) +
                       ": leave no training samples of " + std::to_string(all.n) + " in " + c.dataset);
    std::vector<std::vector<int64_t>> rows;
    std::vector<Dataset> parts = carve(&all, {n_test, n_val}, seed, &rows);
    s.test = std::move(parts[0]);
    s.val = std::move(parts[1]);
    s.test_rows = std::move(rows[0]);
    s.val_rows = std::move(rows[1]);
    s.train_rows = std::move(rows[2]);
    s.train = std::move(all);
  }
  if (c.standardize) {
    fit_standardisation(s.train, &s.feature_mean, &s.feature_std);
    apply_standardisation(&s.train, s.feature_mean, s.feature_std);
    apply_standardisation(&s.val, s.feature_mean, s.feature_std);
    apply_standardisation(&s.test, s.feature_mean, s.feature_std);
  }
  return s;
}

std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  CN_CHECK_MSG(n >= 0, "epoch_order: n = " << n);
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  if (!shuffle) return p;
  PhiloxDraw draw(seed, RngStream::shuffle, 0, static_cast<uint64_t>(epoch));
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[static_cast<size_t>(i)], p[draw.below(static_cast<uint64_t>(i + 1))]);
  return p;
}

}  // namespace cn
