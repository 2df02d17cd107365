// Quality metrics with scikit-learn's definitions (docs/datasets.md, "Metrics"):
// accuracy; macro precision/recall/F1 over the classes present in the labels or the
// predictions, zero_division = 0; ROC AUC by average ranks (Mann-Whitney), binary on the
// positive class, multiclass one-vs-rest macro on softmax probabilities; R^2 (uniform
// average, a constant target scores 1 when predicted exactly, else 0), MAE, and RMSE as the
// mean over outputs of each output's RMSE.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"

namespace cn {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ROC AUC of `score` for the positives `pos`: (rank sum of positives - P(P+1)/2) / (P N)
// with ties given their average rank. NaN when either class is absent.
double roc_auc(const std::vector<double>& score, const std::vector<char>& pos) {
  const size_t n = score.size();
  for (double v : score)
    if (std::isnan(v)) return kNaN;  // no ranking (and no strict weak order for the sort)
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return score[a] < score[b]; });
  double rank_sum = 0;
  int64_t n_pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && score[idx[j]] == score[idx[i]]) ++j;
    const double avg_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1..j
    for (size_t k = i; k < j; ++k)
      if (pos[idx[k]]) {
        rank_sum += avg_rank;
        ++n_pos;
      }
    i = j;
  }
  const int64_t n_neg = static_cast<int64_t>(n) - n_pos;
  if (n_pos == 0 || n_neg == 0) return kNaN;
  return (rank_sum - 0.5 * static_cast<double>(n_pos) * static_cast<double>(n_pos + 1)) /
         (static_cast<double>(n_pos) * static_cast<double>(n_neg));
}

}  // namespace

ClassificationMetrics classification_metrics(const std::vector<double>& scores, const std::vector<double>& labels,
                                             int64_t n, int64_t n_classes) {
  CN_CHECK_MSG(n_classes >= 2, "classification_metrics: n_classes = " << n_classes);
  CN_CHECK_MSG(static_cast<int64_t>(labels.size()) == n,
               "classification_metrics: " << labels.size() << " labels for n = " << n);
  const bool single_logit = n_classes == 2 && static_cast<int64_t>(scores.size()) == n && n > 0;
  CN_CHECK_MSG(
      single_logit || static_cast<int64_t>(scores.size()) == n * n_classes,
      "classification_metrics: " << scores.size() << " scores for n = " << n << " x " << n_classes << " classes");
  ClassificationMetrics m;
  if (n == 0) {
    m.accuracy = m.precision = m.recall = m.f1 = m.auc = kNaN;
    return m;
  }
  const size_t C = static_cast<size_t>(n_classes);
  std::vector<int64_t> y(static_cast<size_t>(n)), pred(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double l = labels[static_cast<size_t>(i)];
    CN_CHECK_MSG(l >= 0 && l < static_cast<double>(n_classes) && std::floor(l) == l,
                 "classification_metrics: label " << l << " at " << i << " is not a class index below " << n_classes);
    y[static_cast<size_t>(i)] = static_cast<int64_t>(l);
    if (single_logit) {
      pred[static_cast<size_t>(i)] = scores[static_cast<size_t>(i)] > 0 ? 1 : 0;
    } else {
      const double* s = scores.data() + static_cast<size_t>(i) * C;
      pred[static_cast<size_t>(i)] = std::max_element(s, s + C) - s;  // first maximum, as numpy's argmax
    }
  }

  // Confusion counts.
  std::vector<int64_t> tp(C, 0), n_true(C, 0), n_pred(C, 0);
  int64_t correct = 0;
  for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
    ++n_true[static_cast<size_t>(y[i])];
    ++n_pred[static_cast<size_t>(pred[i])];
    if (y[i] == pred[i]) {
      ++correct;
      ++tp[static_cast<size_t>(y[i])];
    }
  }
  m.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  int64_t used = 0;
  for (size_t c = 0; c < C; ++c) {
    if (n_true[c] == 0 && n_pred[c] == 0) continue;  // sklearn averages over labels present in y_true or y_pred
    ++used;
    const double p = n_pred[c] ? static_cast<double>(tp[c]) / static_cast<double>(n_pred[c]) : 0.0;
    const double r = n_true[c] ? static_cast<double>(tp[c]) / static_cast<double>(n_true[c]) : 0.0;
    m.precision += p;
    m.recall += r;
    m.f1 += (p + r) > 0 ? 2 * p * r / (p + r) : 0.0;
  }
  m.precision /= static_cast<double>(used);
  m.recall /= static_cast<double>(used);
  m.f1 /= static_cast<double>(used);

  // AUC.
  std::vector<double> s(static_cast<size_t>(n));
  std::vector<char> pos(static_cast<size_t>(n));
  if (n_classes == 2) {
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      // softmax(s)[1] = sigmoid(s1 - s0) ranks as s1 - s0.
      s[i] = single_logit ? scores[i] : scores[2 * i + 1] - scores[2 * i];
      pos[i] = y[i] == 1;
    }
    m.auc = roc_auc(s, pos);
  } else {
    // Softmax; the denominator is summed in ascending order, so rows whose logits are
    // permutations of each other give exactly tied probabilities (as they should).
    std::vector<double> prob(static_cast<size_t>(n) * C), e(C);
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      const double* z = scores.data() + i * C;
      const double mx = *std::max_element(z, z + C);
      for (size_t c = 0; c < C; ++c) e[c] = prob[i * C + c] = std::exp(z[c] - mx);
      std::sort(e.begin(), e.end());
      double sum = 0;
      for (double v : e) sum += v;
      for (size_t c = 0; c < C; ++c) prob[i * C + c] /= sum;
    }
    double total = 0;
    int64_t counted = 0;
    for (size_t c = 0; c < C; ++c) {
      for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
        s[i] = prob[i * C + c];
        pos[i] = y[i] == static_cast<int64_t>(c);
      }
      const double a = roc_auc(s, pos);
      if (std::isnan(a)) continue;  // class absent (or the only one present)
      total += a;
      ++counted;
    }
    m.auc = counted ? total / static_cast<double>(counted) : kNaN;
  }
  return m;
}

RegressionMetrics regression_metrics(const std::vector<double>& pred, const std::vector<double>& target, int64_t n,
                                     int64_t n_outputs) {
  CN_CHECK_MSG(n_outputs >= 1, "regression_metrics: n_outputs = " << n_outputs);
  CN_CHECK_MSG(static_cast<int64_t>(pred.size()) == n * n_outputs && pred.size() == target.size(),
               "regression_metrics: " << pred.size() << " predictions and " << target.size() << " targets for " << n
                                      << " x " << n_outputs);
  RegressionMetrics m;
  if (n == 0) {
    m.r2 = m.mae = m.rmse = kNaN;
    return m;
  }
  const size_t K = static_cast<size_t>(n_outputs);
  for (size_t k = 0; k < K; ++k) {
    double mean = 0;
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) mean += target[i * K + k];
    mean /= static_cast<double>(n);
    double ss_res = 0, ss_tot = 0, abs_err = 0;
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      const double e = target[i * K + k] - pred[i * K + k];
      const double t = target[i * K + k] - mean;
      ss_res += e * e;
      ss_tot += t * t;
      abs_err += std::fabs(e);
    }
    m.r2 += ss_tot > 0 ? 1.0 - ss_res / ss_tot : (ss_res == 0 ? 1.0 : 0.0);
    m.mae += abs_err / static_cast<double>(n);
    m.rmse += std::sqrt(ss_res / static_cast<double>(n));
  }
  m.r2 /= static_cast<double>(K);
  m.mae /= static_cast<double>(K);
  m.rmse /= static_cast<double>(K);
  return m;
}

}  // namespace cn
