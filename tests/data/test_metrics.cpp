// Quality metrics against hand-computed cases and (when available) scikit-learn.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "data/dataset.h"
#include "test_util.h"

using namespace cn;

namespace {

// Logits that put 2 on the predicted class and 0 elsewhere.
std::vector<double> one_hot_logits(const std::vector<int>& pred, int C) {
  std::vector<double> s(pred.size() * C, 0.0);
  for (size_t i = 0; i < pred.size(); ++i) s[i * C + pred[i]] = 2.0;
  return s;
}

}  // namespace

// y    = 0 0 0 1 1 2 2 2
// pred = 0 0 1 1 2 2 2 1
// class 0: tp 2, predicted 2, true 3 -> P 1,   R 2/3, F 0.8
// class 1: tp 1, predicted 3, true 2 -> P 1/3, R 1/2, F 0.4
// class 2: tp 2, predicted 3, true 3 -> P 2/3, R 2/3, F 2/3
// AUC (softmax: predicted class a, others b < a; ties count 1/2):
//   class 0: pos {a,a,b} vs neg {b x5}: (10 + 2.5)/15 = 5/6
//   class 1: pos {a,b} vs neg {a x2, b x4}: (4 + 1 + 2)/12 = 7/12
//   class 2: pos {a,a,b} vs neg {a, b x4}: (8 + 1 + 2)/15 = 11/15
TEST(ClassificationMetrics, ThreeClassConfusionMatrix) {
  const std::vector<double> y = {0, 0, 0, 1, 1, 2, 2, 2};
  const auto s = one_hot_logits({0, 0, 1, 1, 2, 2, 2, 1}, 3);
  const ClassificationMetrics m = classification_metrics(s, y, 8, 3);
  EXPECT_DOUBLE_EQ(m.accuracy, 5.0 / 8);
  EXPECT_NEAR(m.precision, 2.0 / 3, 1e-12);
  EXPECT_NEAR(m.recall, 11.0 / 18, 1e-12);
  EXPECT_NEAR(m.f1, 28.0 / 45, 1e-12);  // mean of per-class F1, not F1 of the means
  EXPECT_NEAR(m.auc, (5.0 / 6 + 7.0 / 12 + 11.0 / 15) / 3, 1e-12);
}

// A class never predicted has precision 0 (sklearn's zero_division=0).
TEST(ClassificationMetrics, NeverPredictedClassHasPrecisionZero) {
  const std::vector<double> y = {0, 1, 2};
  const auto s = one_hot_logits({0, 0, 0}, 3);
  const ClassificationMetrics m = classification_metrics(s, y, 3, 3);
  EXPECT_NEAR(m.accuracy, 1.0 / 3, 1e-12);
  EXPECT_NEAR(m.precision, (1.0 / 3) / 3, 1e-12);
  EXPECT_NEAR(m.recall, 1.0 / 3, 1e-12);
  EXPECT_NEAR(m.f1, 0.5 / 3, 1e-12);
}

// Classes absent from both labels and predictions do not enter the macro average.
TEST(ClassificationMetrics, AbsentClassesAreNotAveraged) {
  const std::vector<double> y = {0, 1, 1, 0};
  const auto s = one_hot_logits({0, 1, 0, 0}, 4);
  const ClassificationMetrics m = classification_metrics(s, y, 4, 4);
  // class 0: P 2/3, R 1; class 1: P 1, R 1/2.
  EXPECT_NEAR(m.precision, (2.0 / 3 + 1.0) / 2, 1e-12);
  EXPECT_NEAR(m.recall, 0.75, 1e-12);
  EXPECT_NEAR(m.f1, (0.8 + 2.0 / 3) / 2, 1e-12);
}

// Binary AUC with ties: y = 0 0 1 1 0 1, scores .1 .4 .35 .8 .4 .4 (shifted by -.3 as logits).
// Positives .35 (1 win), .8 (3 wins), .4 (1 win + 2 ties): 6/9.
// Predictions (logit > 0): 0 1 1 1 1 1 -> class 0: P 1, R 1/3, F .5; class 1: P 3/5, R 1, F .75.
TEST(ClassificationMetrics, BinaryAucWithTiesSingleLogitAndTwoColumns) {
  const std::vector<double> y = {0, 0, 1, 1, 0, 1};
  const std::vector<double> p = {0.1, 0.4, 0.35, 0.8, 0.4, 0.4};
  std::vector<double> logit, two;
  for (double v : p) {
    logit.push_back(v - 0.3);
    two.push_back(0.7);
    two.push_back(v + 0.4);
  }
  for (const auto& scores : {logit, two}) {
    const ClassificationMetrics m = classification_metrics(scores, y, 6, 2);
    EXPECT_NEAR(m.auc, 2.0 / 3, 1e-12);
    EXPECT_NEAR(m.accuracy, 4.0 / 6, 1e-12);
    EXPECT_NEAR(m.precision, 0.8, 1e-12);
    EXPECT_NEAR(m.recall, 2.0 / 3, 1e-12);
    EXPECT_NEAR(m.f1, 0.625, 1e-12);
  }
}

// Ranking within a class uses softmax probabilities, not raw logits: row B has the larger
// class-0 logit (5 > 0) but the smaller class-0 probability (0.0067 < 1/3).
TEST(ClassificationMetrics, MulticlassAucRanksSoftmaxProbabilities) {
  const std::vector<double> s = {0, 0,  0,   // label 0: p0 = 1/3
                                 5, 10, 0,   // label 1
                                 0, 0,  1};  // label 2: p0 = 1/(2+e)
  const ClassificationMetrics m = classification_metrics(s, {0, 1, 2}, 3, 3);
  EXPECT_NEAR(m.auc, 1.0, 1e-12);  // raw logits would give (0.25 + 1 + 1)/3
}

TEST(ClassificationMetrics, UndefinedAucIsNaN) {
  const ClassificationMetrics m = classification_metrics({0.2, -0.1, 0.3}, {1, 1, 1}, 3, 2);
  EXPECT_TRUE(std::isnan(m.auc));
  EXPECT_NEAR(m.accuracy, 2.0 / 3, 1e-12);
  const ClassificationMetrics e = classification_metrics({}, {}, 0, 3);
  EXPECT_TRUE(std::isnan(e.accuracy));
}

TEST(ClassificationMetrics, RejectsBadShapesAndLabels) {
  EXPECT_THROW(classification_metrics({1, 2, 3}, {0, 1}, 2, 3), Error);
  EXPECT_THROW(classification_metrics({1, 2, 3, 4, 5, 6}, {0, 3}, 2, 3), Error);
}

// Output 0: t 1 2 3, p 1 2 4 -> SS_tot 2, SS_res 1, R2 .5, MAE 1/3, RMSE sqrt(1/3).
// Output 1: t 2 4 6, p 4 4 6 -> SS_tot 8, SS_res 4, R2 .5, MAE 2/3, RMSE sqrt(4/3).
// RMSE is the mean of per-output RMSEs: sqrt(3)/2 (the pooled RMSE would be sqrt(5/6)).
TEST(RegressionMetrics, TwoOutputsHandComputed) {
  const std::vector<double> t = {1, 2, 2, 4, 3, 6};
  const std::vector<double> p = {1, 4, 2, 4, 4, 6};
  const RegressionMetrics m = regression_metrics(p, t, 3, 2);
  EXPECT_NEAR(m.r2, 0.5, 1e-12);
  EXPECT_NEAR(m.mae, 0.5, 1e-12);
  EXPECT_NEAR(m.rmse, std::sqrt(3.0) / 2, 1e-12);
}

TEST(RegressionMetrics, ConstantTargetFollowsSklearn) {
  EXPECT_DOUBLE_EQ(regression_metrics({2, 2, 2}, {2, 2, 2}, 3, 1).r2, 1.0);
  EXPECT_DOUBLE_EQ(regression_metrics({2, 2, 3}, {2, 2, 2}, 3, 1).r2, 0.0);
  EXPECT_NEAR(regression_metrics({1, 2, 3}, {1, 2, 3}, 3, 1).rmse, 0.0, 1e-15);
  EXPECT_THROW(regression_metrics({1, 2}, {1, 2, 3}, 3, 1), Error);
}

// Random data against scikit-learn (skipped without a Python that has it).
TEST(Metrics, MatchSklearnOnRandomData) {
  std::string py;
  for (const std::string cand : {test::python_exe(), std::string("/usr/bin/python3")}) {
    if (test::run_command(cand + " -c 'import sklearn, numpy'") == 0) {
      py = cand;
      break;
    }
  }
  if (py.empty()) GTEST_SKIP() << "no Python with scikit-learn";
  test::TempDir dir;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd;
  const int n = 300, C = 4;
  std::vector<double> s(n * C), y(n), logit(n), yb(n), t(n * 2), p(n * 2);
  for (int i = 0; i < n; ++i) {
    y[i] = static_cast<double>(rng() % C);
    for (int c = 0; c < C; ++c) s[i * C + c] = nd(rng) + (c == y[i] ? 1.0 : 0.0);
    yb[i] = static_cast<double>(rng() % 2);
    logit[i] = std::round((nd(rng) + yb[i]) * 4) / 4;  // quantised: many ties
    for (int k = 0; k < 2; ++k) {
      t[i * 2 + k] = nd(rng) * (k + 1);
      p[i * 2 + k] = t[i * 2 + k] + nd(rng) * 0.5;
    }
  }
  std::ofstream f(dir.file("data.txt"));
  f.precision(17);
  for (int i = 0; i < n; ++i) {
    for (int c = 0; c < C; ++c) f << s[i * C + c] << ' ';
    f << y[i] << ' ' << logit[i] << ' ' << yb[i] << ' ' << t[2 * i] << ' ' << t[2 * i + 1] << ' ' << p[2 * i] << ' '
      << p[2 * i + 1] << '\n';
  }
  f.close();
  const std::string script = R"(
import sys, numpy as np
from sklearn import metrics as M
d = np.loadtxt(sys.argv[1]); s = d[:, :4]; y = d[:, 4]; lg = d[:, 5]; yb = d[:, 6]; t = d[:, 7:9]; p = d[:, 9:11]
pr = np.exp(s - s.max(1, keepdims=True)); pr /= pr.sum(1, keepdims=True); yp = s.argmax(1)
pb = (lg > 0).astype(float)
out = [M.accuracy_score(y, yp), M.precision_score(y, yp, average='macro', zero_division=0),
       M.recall_score(y, yp, average='macro', zero_division=0), M.f1_score(y, yp, average='macro', zero_division=0),
       M.roc_auc_score(y, pr, multi_class='ovr', average='macro'),
       M.accuracy_score(yb, pb), M.precision_score(yb, pb, average='macro', zero_division=0),
       M.recall_score(yb, pb, average='macro', zero_division=0), M.f1_score(yb, pb, average='macro', zero_division=0),
       M.roc_auc_score(yb, lg),
       M.r2_score(t, p), M.mean_absolute_error(t, p), np.mean(np.sqrt(((t - p) ** 2).mean(0)))]
print(' '.join(repr(float(v)) for v in out))
)";
  test::write_text(dir.file("ref.py"), script);
  std::string out;
  ASSERT_EQ(test::run_command(py + " " + dir.file("ref.py") + " " + dir.file("data.txt"), &out), 0) << out;
  std::istringstream is(out);
  std::vector<double> ref;
  double v;
  while (is >> v) ref.push_back(v);
  ASSERT_EQ(ref.size(), 13u) << out;
  const auto mc = classification_metrics(s, y, n, C);
  const auto mb = classification_metrics(logit, yb, n, 2);
  const auto mr = regression_metrics(p, t, n, 2);
  const double got[13] = {mc.accuracy, mc.precision, mc.recall, mc.f1, mc.auc, mb.accuracy, mb.precision,
                          mb.recall,   mb.f1,        mb.auc,    mr.r2, mr.mae, mr.rmse};
  for (int k = 0; k < 13; ++k) EXPECT_NEAR(got[k], ref[k], 1e-9) << "metric " << k;
}
