// Config: defaults, every section, validation errors (file:line:key), --set overrides,
// the to_toml round trip, config_differences, and docs/config.md against the schema.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "test_util.h"

namespace {

using cn::ClipMode;
using cn::Config;
using cn::CurvatureKind;
using cn::DiagMode;
using cn::DType;
using cn::Init;
using cn::InputError;
using cn::LayerKind;
using cn::LossKind;
using cn::OptimKind;
using cn::ScheduleKind;
using cn::StopMetric;

// The InputError message from parsing `text` (as file `origin`), or "" when it parses.
std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {},
                     const std::string& origin = "examples/x.toml") {
  try {
    cn::parse_config(text, origin, overrides);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

#define EXPECT_HAS(s, part) EXPECT_TRUE(has(s, part)) << "message: " << (s) << "\nmissing: " << (part)

// Every field, compared one by one (independent of to_toml and config_differences).
void expect_same(const Config& a, const Config& b) {
#define SAME(f) EXPECT_EQ(a.f, b.f) << #f
  SAME(data.dataset);
  SAME(data.path);
  SAME(data.label_column);
  SAME(data.batch_size);
  SAME(data.shuffle);
  SAME(data.val_fraction);
  SAME(data.test_fraction);
  SAME(data.standardize);
  SAME(data.n_samples);
  SAME(data.noise);
  SAME(model.hidden);
  SAME(model.activation);
  SAME(model.leaky_slope);
  SAME(model.elu_alpha);
  SAME(model.batchnorm);
  SAME(model.bn_momentum);
  SAME(model.dropout);
  SAME(model.init);
  SAME(model.bias_init);
  SAME(model.init_constant);
  ASSERT_EQ(a.model.layers.size(), b.model.layers.size());
  for (size_t i = 0; i < a.model.layers.size(); ++i) {
    SAME(model.layers[i].type);
    SAME(model.layers[i].out);
    SAME(model.layers[i].init);
    SAME(model.layers[i].bias_init);
    SAME(model.layers[i].p);
    SAME(model.layers[i].slope);
    SAME(model.layers[i].alpha);
    SAME(model.layers[i].momentum);
    SAME(model.layers[i].eps);
  }
  SAME(loss.kind);
  SAME(optim.name);
  SAME(optim.lr);
  SAME(optim.momentum);
  SAME(optim.beta1);
  SAME(optim.beta2);
  SAME(optim.eps);
  SAME(optim.alpha);
  SAME(optim.weight_decay);
  SAME(optim.l1);
  SAME(optim.grad_noise_eta);
  SAME(optim.grad_noise_gamma);
  ASSERT_EQ(a.optim.per_layer.size(), b.optim.per_layer.size());
  for (size_t i = 0; i < a.optim.per_layer.size(); ++i) {
    SAME(optim.per_layer[i].layer);
    SAME(optim.per_layer[i].weight_decay);
    SAME(optim.per_layer[i].l1);
    SAME(optim.per_layer[i].lr_scale);
  }
  SAME(schedule.kind);
  SAME(schedule.warmup_steps);
  SAME(schedule.total_steps);
  SAME(schedule.step_size);
  SAME(schedule.gamma);
  SAME(schedule.min_lr);
  SAME(schedule.max_lr);
  SAME(clip.mode);
  SAME(clip.max_norm);
  SAME(clip.value);
  SAME(clip.agc_lambda);
  SAME(clip.agc_eps);
  SAME(train.epochs);
  SAME(train.steps);
  SAME(train.seed);
  SAME(train.device);
  SAME(train.dtype);
  SAME(train.eval_every);
  SAME(train.log_every);
  SAME(train.early_stopping_metric);
  SAME(train.patience);
  SAME(train.on_nonfinite);
  SAME(train.threads);
  SAME(checkpoint.every);
  SAME(diagnostics.every);
  SAME(diagnostics.kinds);
  SAME(diagnostics.mode);
  SAME(diagnostics.layers);
  SAME(diagnostics.batch_size);
  SAME(diagnostics.dense_max_params);
  SAME(diagnostics.budget);
  SAME(diagnostics.dtype);
  SAME(diagnostics.lanczos_k);
  SAME(diagnostics.probes);
  SAME(alarms.grad_norm_high);
  SAME(alarms.grad_norm_low);
  SAME(alarms.update_ratio_high);
  SAME(alarms.sigma);
#undef SAME
}

// A config that sets every key to a non-default value.
const char* kFull = R"(
[data]
dataset = "csv"
path = "data/x.csv"
label_column = "y"
batch_size = 64
shuffle = false
val_fraction = 0.25
test_fraction = 0.3
standardize = false
n_samples = 500
noise = 0.05

[model]
hidden = [32, 16, 8]
activation = "tanh"
leaky_slope = 0.2
elu_alpha = 0.5
batchnorm = true
bn_momentum = 0.05
dropout = 0.1
init = "xavier_uniform"
bias_init = "constant"
init_constant = 0.01

[[model.layers]]
type = "linear"
out = 20
init = "lecun_normal"

[[model.layers]]
type = "batchnorm"
momentum = 0.2
eps = 1e-3

[[model.layers]]
type = "leaky_relu"
slope = 0.3

[[model.layers]]
type = "dropout"
p = 0.5

[[model.layers]]
type = "elu"
alpha = 2

[[model.layers]]
type = "linear"
out = 3
bias_init = "zeros"

[loss]
kind = "mse"

[optim]
name = "adamw"
lr = 3e-4
momentum = 0.8
betas = [0.85, 0.995]
eps = 1e-7
alpha = 0.9
weight_decay = 0.01
l1 = 1e-5
grad_noise_eta = 0.3
grad_noise_gamma = 0.6

[[optim.per_layer]]
layer = 0
weight_decay = 0.0
lr_scale = 0.5

[[optim.per_layer]]
layer = 5
l1 = 0.001

[schedule]
kind = "cosine"
warmup_steps = 100
total_steps = 5000
step_size = 300
gamma = 0.5
min_lr = 1e-6
max_lr = 0.01

[clip]
mode = "agc"
max_norm = 5
value = 0.5
agc_lambda = 0.02
agc_eps = 1e-4

[train]
epochs = 7
steps = 1234
seed = 42
device = "cpu"
dtype = "float64"
eval_every = 50
log_every = 5
early_stopping_metric = "val_accuracy"
patience = 3
on_nonfinite = "continue"
threads = 4

[checkpoint]
every = 0

[diagnostics]
every = 200
kinds = ["ggn", "kfac", "full_top"]
mode = "eval"
layers = [0, 3]
batch_size = 128
dense_max_params = 4096
budget = 0.2
dtype = "float32"
lanczos_k = 30
probes = 5

[alarms]
grad_norm_high = 50.0
grad_norm_low = 0
update_ratio_high = 0.2
sigma = 2.5
)";

TEST(Config, EmptyFileGivesDefaults) {
  const Config c = cn::parse_config("", "examples/empty.toml");
  expect_same(c, Config{});
  EXPECT_EQ(c.name, "empty");
  EXPECT_EQ(c.source, "examples/empty.toml");
  EXPECT_FALSE(c.train.eval_every.has_value());
  EXPECT_FALSE(c.checkpoint.every.has_value());
  EXPECT_EQ(c.optim.beta1, 0.9);
  EXPECT_EQ(c.optim.beta2, 0.999);
  EXPECT_TRUE(cn::config_differences(c, Config{}).empty());
}

TEST(Config, EverySectionParsed) {
  const Config c = cn::parse_config(kFull, "full.toml");
  EXPECT_EQ(c.data.dataset, "csv");
  EXPECT_EQ(c.data.path, "data/x.csv");
  EXPECT_EQ(c.data.label_column, "y");
  EXPECT_EQ(c.data.batch_size, 64);
  EXPECT_FALSE(c.data.shuffle);
  EXPECT_DOUBLE_EQ(c.data.val_fraction, 0.25);
  EXPECT_EQ(c.model.hidden, (std::vector<int64_t>{32, 16, 8}));
  EXPECT_EQ(c.model.activation, LayerKind::tanh);
  EXPECT_TRUE(c.model.batchnorm);
  ASSERT_EQ(c.model.layers.size(), 6u);
  EXPECT_EQ(c.model.layers[0].type, LayerKind::linear);
  EXPECT_EQ(c.model.layers[0].out, 20);
  EXPECT_EQ(c.model.layers[0].init, Init::lecun_normal);
  EXPECT_EQ(c.model.layers[0].bias_init, std::nullopt);
  EXPECT_DOUBLE_EQ(c.model.layers[1].momentum, 0.2);
  EXPECT_DOUBLE_EQ(c.model.layers[1].eps, 1e-3);
  EXPECT_DOUBLE_EQ(c.model.layers[2].slope, 0.3);
  EXPECT_DOUBLE_EQ(c.model.layers[3].p, 0.5);
  EXPECT_DOUBLE_EQ(c.model.layers[4].alpha, 2.0);  // an integer for a float key
  EXPECT_EQ(c.loss.kind, LossKind::mse);
  EXPECT_EQ(c.optim.name, OptimKind::adamw);
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);
  EXPECT_DOUBLE_EQ(c.optim.beta1, 0.85);
  EXPECT_DOUBLE_EQ(c.optim.beta2, 0.995);
  ASSERT_EQ(c.optim.per_layer.size(), 2u);
  EXPECT_EQ(c.optim.per_layer[0].layer, 0);
  EXPECT_EQ(c.optim.per_layer[0].weight_decay, 0.0);
  EXPECT_FALSE(c.optim.per_layer[0].l1.has_value());
  EXPECT_DOUBLE_EQ(c.optim.per_layer[0].lr_scale, 0.5);
  EXPECT_EQ(c.optim.per_layer[1].layer, 5);
  EXPECT_FALSE(c.optim.per_layer[1].weight_decay.has_value());
  EXPECT_DOUBLE_EQ(*c.optim.per_layer[1].l1, 0.001);
  EXPECT_EQ(c.schedule.kind, ScheduleKind::cosine);
  EXPECT_EQ(c.schedule.total_steps, 5000);
  EXPECT_EQ(c.clip.mode, ClipMode::agc);
  EXPECT_DOUBLE_EQ(c.clip.max_norm, 5.0);
  EXPECT_EQ(c.train.steps, 1234);
  EXPECT_EQ(c.train.seed, 42u);
  EXPECT_EQ(c.train.eval_every, 50);
  EXPECT_EQ(c.train.early_stopping_metric, StopMetric::val_accuracy);
  EXPECT_EQ(c.train.threads, 4);
  ASSERT_TRUE(c.checkpoint.every.has_value());
  EXPECT_EQ(*c.checkpoint.every, 0);
  EXPECT_EQ(c.diagnostics.kinds,
            (std::vector<CurvatureKind>{CurvatureKind::ggn, CurvatureKind::kfac, CurvatureKind::full_top}));
  EXPECT_EQ(c.diagnostics.layers, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(c.diagnostics.mode, DiagMode::eval);
  EXPECT_DOUBLE_EQ(c.diagnostics.budget, 0.2);
  EXPECT_EQ(c.diagnostics.dtype, DType::float32);
  EXPECT_DOUBLE_EQ(c.alarms.sigma, 2.5);
  EXPECT_EQ(c.alarms.grad_norm_low, 0.0);
  EXPECT_EQ(c.name, "full");
  // Nearly every key differs from the defaults.
  EXPECT_GE(cn::config_differences(c, Config{}).size(), 60u);
}

TEST(Config, LoadFileSetsNameAndSource) {
  cn::test::TempDir dir;
  const std::string path = dir.file("my-run.toml");
  cn::test::write_text(path, "[optim]\nlr = 0.5\n");
  const Config c = cn::load_config(path);
  EXPECT_EQ(c.name, "my-run");
  EXPECT_EQ(c.source, path);
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.5);
  // A missing file is bad input naming the path.
  try {
    cn::load_config(dir.file("absent.toml"));
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), dir.file("absent.toml") + ": cannot read config file: No such file or directory");
  }
}

TEST(Config, UnknownKeyNamesFileLineKeyAndValidKeys) {
  const std::string e = error_of("[data]\nbatch_size = 3\n\n[optim]\nname = \"sgd\"\nlrr = 0.1\n");
  EXPECT_HAS(e, "examples/x.toml:6: optim.lrr: unknown key");
  EXPECT_HAS(e, "lr, momentum, betas");  // the valid keys are listed
  EXPECT_EQ(e.find('\n'), std::string::npos) << "one line";
}

TEST(Config, UnknownSectionAndTopLevelKey) {
  EXPECT_HAS(error_of("[datta]\nx = 1\n"), "examples/x.toml:1: datta: unknown section; valid sections: data, model");
  EXPECT_HAS(error_of("lr = 0.1\n"), "examples/x.toml:1: lr: unknown key outside any section");
  EXPECT_HAS(error_of("data = 3\n"), "examples/x.toml:1: data: expected a table [data], got 3");
}

TEST(Config, WrongType) {
  EXPECT_HAS(error_of("[optim]\nlr = \"fast\"\n"), "examples/x.toml:2: optim.lr: expected a number >= 0, got \"fast\"");
  EXPECT_HAS(error_of("[data]\nshuffle = 1\n"), "examples/x.toml:2: data.shuffle: expected true or false, got 1");
  EXPECT_HAS(error_of("[data]\nbatch_size = 2.5\n"), "data.batch_size: expected an integer in [1, 1000000], got 2.5");
  EXPECT_HAS(error_of("[model]\nhidden = 64\n"),
             "model.hidden: expected an array of integers, each in [1, 1000000], got 64");
  EXPECT_HAS(error_of("[model]\nhidden = [64, \"a\"]\n"),
             "model.hidden[1]: expected an integer in [1, 1000000], got \"a\"");
  EXPECT_HAS(error_of("[data]\npath = 3\n"), "data.path: expected a string, got 3");
  EXPECT_HAS(error_of("[optim]\nbetas = 0.9\n"), "optim.betas: expected [beta1, beta2]");
  EXPECT_HAS(error_of("[model]\nlayers = 3\n"), "model.layers: expected an array of tables");
  // Integral floats are accepted for integer keys; integers for float keys.
  const Config c = cn::parse_config("[train]\nsteps = 1e4\n[optim]\nlr = 1\n", "x.toml");
  EXPECT_EQ(c.train.steps, 10000);
  EXPECT_EQ(c.optim.lr, 1.0);
}

TEST(Config, OutOfRange) {
  EXPECT_HAS(error_of("\n[optim]\nlr = -1\n"), "examples/x.toml:3: optim.lr: expected a number >= 0, got -1");
  EXPECT_EQ(cn::parse_config("[optim]\nlr = 0\n", "x.toml").optim.lr, 0.0);  // nothing moves: a valid experiment
  EXPECT_HAS(error_of("[optim]\nlr = nan\n"), "optim.lr: expected a number >= 0, got nan");
  EXPECT_HAS(error_of("[data]\nbatch_size = 0\n"), "data.batch_size: expected an integer in [1, 1000000], got 0");
  EXPECT_HAS(error_of("[data]\nval_fraction = 1.0\n"), "data.val_fraction: expected a number in [0, 1), got 1.0");
  EXPECT_HAS(error_of("[model]\ndropout = 1\n"), "model.dropout: expected a number in [0, 1), got 1");
  EXPECT_HAS(error_of("[model]\nhidden = [8, 0]\n"), "model.hidden[1]: expected an integer in [1, 1000000], got 0");
  EXPECT_HAS(error_of("[optim]\nbetas = [0.9, 1.0]\n"), "optim.betas[1]: expected a number in [0, 1), got 1.0");
  EXPECT_HAS(error_of("[train]\nlog_every = 0\n"), "train.log_every: expected an integer in [1, 1000000000000], got 0");
  EXPECT_HAS(error_of("[train]\neval_every = -1\n"),
             "train.eval_every: expected an integer in [0, 1000000000000], got -1");
  EXPECT_HAS(error_of("[checkpoint]\nevery = -5\n"),
             "checkpoint.every: expected an integer in [0, 1000000000000], got -5");
  EXPECT_HAS(error_of("[diagnostics]\nbudget = 1\n"), "diagnostics.budget: expected a number in [0, 1), got 1");
  EXPECT_HAS(error_of("[train]\nepochs = 0\n"),
             "examples/x.toml:2: train.epochs: expected an integer >= 1 when train.steps = 0, got 0");
  EXPECT_EQ(error_of("[train]\nepochs = 0\nsteps = 10\n"), "");
  EXPECT_HAS(error_of("[train]\nepochs = -1\n"), "train.epochs: expected an integer in [0, 1000000], got -1");
  EXPECT_HAS(error_of("[data]\ndataset = \"csv\"\n"),
             "examples/x.toml:2: data.path: required when data.dataset = \"csv\"");
  EXPECT_HAS(error_of("[[optim.per_layer]]\nlayer = 2\n[[optim.per_layer]]\nlayer = 2\n"),
             "examples/x.toml:3: optim.per_layer[1].layer: layer 2 already has an entry (optim.per_layer[0])");
  EXPECT_HAS(error_of("[train]\nseed = -1\n"), "train.seed: expected an integer >= 0, got -1");
}

// Sizes and counts have upper bounds: a value past them is a located error with the range,
// never a huge allocation or a narrowed count.
TEST(Config, SizesHaveUpperBounds) {
  EXPECT_HAS(error_of("[data]\nbatch_size = 9e18\n"),
             "examples/x.toml:2: data.batch_size: expected an integer in [1, 1000000], got 9e+18");
  EXPECT_HAS(error_of("", {"data.batch_size=9e18"}),
             "--set data.batch_size=9e18: data.batch_size: expected an integer in [1, 1000000]");
  EXPECT_HAS(error_of("[diagnostics]\nlanczos_k = 1e12\n"),
             "examples/x.toml:2: diagnostics.lanczos_k: expected an integer in [1, 10000], got 1e+12");
  EXPECT_HAS(error_of("[diagnostics]\nprobes = 100000\n"), "diagnostics.probes: expected an integer in [1, 10000]");
  EXPECT_HAS(error_of("[diagnostics]\ndense_max_params = 1000000\n"),
             "diagnostics.dense_max_params: expected an integer in [1, 100000]");
  EXPECT_HAS(error_of("[diagnostics]\nbatch_size = 2000000\n"),
             "diagnostics.batch_size: expected an integer in [1, 1000000]");
  EXPECT_HAS(error_of("[model]\nhidden = [8, 5000000]\n"), "model.hidden[1]: expected an integer in [1, 1000000]");
  EXPECT_HAS(error_of("[[model.layers]]\ntype = \"linear\"\nout = 9000000000\n"),
             "examples/x.toml:3: model.layers[0].out: expected an integer in [1, 1000000]");
  EXPECT_HAS(error_of("[train]\nepochs = 4611686018427387904\n"),
             "train.epochs: expected an integer in [0, 1000000], got 4611686018427387904");
  EXPECT_HAS(error_of("[train]\nsteps = 2e12\n"), "train.steps: expected an integer in [0, 1000000000000]");
  EXPECT_HAS(error_of("[train]\nlog_every = 2e12\n"), "train.log_every: expected an integer in [1, 1000000000000]");
  EXPECT_HAS(error_of("[data]\nn_samples = 1e9\n"), "data.n_samples: expected an integer in [1, 100000000]");
  // The limits themselves are accepted.
  EXPECT_EQ(error_of("[data]\nbatch_size = 1000000\n[diagnostics]\nlanczos_k = 10000\n"), "");
}

// Input quoted in a message is escaped and cut: the message stays one short line.
TEST(Config, SetValuesInMessagesAreEscapedAndCut) {
  const std::string nl = error_of("", {"optim.lr=a\nb\nc"});
  EXPECT_EQ(nl.find('\n'), std::string::npos) << nl;
  EXPECT_HAS(nl, "--set optim.lr=a\\nb\\nc: optim.lr:");
  const std::string nul = error_of("", {std::string("optim.lr=a\0b", 12)});
  EXPECT_EQ(nul.find('\0'), std::string::npos) << nul;
  EXPECT_HAS(nul, "--set optim.lr=a\\x00b");
  const std::string big = error_of("", {"optim.lr=" + std::string(100000, 'x')});
  EXPECT_LT(big.size(), 400u) << big.substr(0, 400);
  EXPECT_HAS(big, "... (100009 bytes)");
  EXPECT_EQ(cn::quote_input("caf\xc3\xa9", 4), "caf... (5 bytes)");  // never inside a UTF-8 sequence
  EXPECT_EQ(cn::quote_input("a\tb\r\x7f"), "a\\tb\\r\\x7F");
}

TEST(Config, BadEnumListsAllowedValues) {
  EXPECT_HAS(
      error_of("[model]\nactivation = \"swish\"\n"),
      "examples/x.toml:2: model.activation: expected one of relu, leaky_relu, elu, sigmoid, tanh, identity, gelu, "
      "softplus, got \"swish\"");
  EXPECT_HAS(error_of("[data]\ndataset = \"mnist\"\n"), "data.dataset: expected one of fashion-mnist, csv, iris");
  EXPECT_HAS(error_of("[optim]\nname = \"lion\"\n"), "optim.name: expected one of sgd, momentum, nesterov");
  EXPECT_HAS(error_of("[train]\nearly_stopping_metric = \"loss\"\n"),
             "train.early_stopping_metric: expected one of val_loss, val_accuracy, val_f1, val_auc, val_r2, val_mae, "
             "val_rmse");
  EXPECT_HAS(error_of("[diagnostics]\nkinds = [\"loss\", \"hessian\"]\n"),
             "diagnostics.kinds[1]: expected one of loss, local, ggn, kfac, diag, fisher_diag, full_top");
  EXPECT_HAS(error_of("[train]\ndevice = \"gpu\"\n"), "train.device: expected one of auto, cpu, cuda");
  EXPECT_HAS(error_of("[clip]\nmode = \"global\"\n"), "clip.mode: expected one of none, norm, layer_norm");
}

TEST(Config, LayerEntriesValidated) {
  EXPECT_HAS(error_of("[[model.layers]]\ntype = \"conv\"\n"),
             "examples/x.toml:2: model.layers[0].type: expected one of linear");
  EXPECT_HAS(error_of("[[model.layers]]\ntype = \"linear\"\nout = 4\n[[model.layers]]\ntype = \"relu\"\nslope = 0.1\n"),
             "examples/x.toml:6: model.layers[1].slope: not a key of a \"relu\" layer; valid keys: type");
  EXPECT_HAS(error_of("[[model.layers]]\ntype = \"linear\"\n"), "model.layers[0]: a linear layer needs out = N");
  EXPECT_HAS(error_of("[[model.layers]]\nout = 3\n"), "model.layers[0]: missing type");
  EXPECT_HAS(error_of("[[model.layers]]\ntype = \"dropout\"\np = 1.5\n"),
             "model.layers[0].p: expected a number in [0, 1)");
  EXPECT_HAS(error_of("[[model.layers]]\ntype = \"batchnorm\"\neps = 0\n"),
             "model.layers[0].eps: expected a number > 0");
  EXPECT_HAS(error_of("[[optim.per_layer]]\nlr_scale = 2\n"), "optim.per_layer[0]: missing layer");
  EXPECT_HAS(
      error_of("[[optim.per_layer]]\nlayer = 1\nmomentum = 2\n"),
      "examples/x.toml:3: optim.per_layer[0].momentum: unknown key; valid keys: layer, weight_decay, l1, lr_scale");
}

TEST(Config, TomlSyntaxErrorHasLineAndColumn) {
  const std::string e = error_of("[data]\nbatch_size = \n");
  EXPECT_HAS(e, "examples/x.toml:2:");
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  const std::string e2 = error_of("[data]\nbatch_size = [1,\n");
  EXPECT_TRUE(e2.rfind("examples/x.toml:", 0) == 0) << e2;
}

TEST(Config, SetNumberArrayBareWordAndString) {
  const Config c =
      cn::parse_config("[optim]\nlr = 0.1\nname = \"adam\"\n", "x.toml",
                       {"optim.lr=0.25", "model.hidden=[512,512]", "optim.name=sgd", "data.path=data/my file.csv",
                        "train.eval_every=0", "optim.betas=[0.8, 0.9]", "data.label_column=3", "data.shuffle=false"});
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.25);
  EXPECT_EQ(c.model.hidden, (std::vector<int64_t>{512, 512}));
  EXPECT_EQ(c.optim.name, OptimKind::sgd);
  EXPECT_EQ(c.data.path, "data/my file.csv");
  EXPECT_EQ(c.train.eval_every, 0);
  EXPECT_DOUBLE_EQ(c.optim.beta1, 0.8);
  EXPECT_DOUBLE_EQ(c.optim.beta2, 0.9);
  EXPECT_EQ(c.data.label_column, "3");
  EXPECT_FALSE(c.data.shuffle);
  // A quoted TOML string works too, and a section absent from the file is created.
  const Config d = cn::parse_config("", "x.toml", {"loss.kind=\"mse\"", "diagnostics.kinds=[\"ggn\"]"});
  EXPECT_EQ(d.loss.kind, LossKind::mse);
  EXPECT_EQ(d.diagnostics.kinds, (std::vector<CurvatureKind>{CurvatureKind::ggn}));
  // Later overrides win.
  EXPECT_EQ(cn::parse_config("", "x.toml", {"train.steps=5", "train.steps=7"}).train.steps, 7);
}

TEST(Config, SetErrorsNameTheOverride) {
  EXPECT_EQ(error_of("", {"optim.lr=-1"}), "--set optim.lr=-1: optim.lr: expected a number >= 0, got -1");
  EXPECT_EQ(error_of("", {"optim.lr"}), "--set optim.lr: expected section.key=value");
  EXPECT_EQ(error_of("", {"lr=0.1"}), "--set lr=0.1: expected section.key=value");
  EXPECT_EQ(error_of("", {".lr=0.1"}), "--set .lr=0.1: expected section.key=value");
  EXPECT_HAS(error_of("", {"optim.lrr=0.1"}),
             "--set optim.lrr=0.1: optim.lrr: unknown key; valid keys in [optim]: name, lr");
  EXPECT_HAS(error_of("", {"optimizer.lr=0.1"}),
             "--set optimizer.lr=0.1: optimizer: unknown section; valid sections: data");
  EXPECT_HAS(error_of("", {"model.layers=[]"}),
             "--set model.layers=[]: model.layers: an array of tables ([[model.layers]]) can't be set with --set");
  EXPECT_HAS(error_of("", {"optim.per_layer.0.l1=0.1"}),
             "optim.per_layer: an array of tables ([[optim.per_layer]]) can't be set with --set");
  EXPECT_HAS(error_of("", {"optim.lr.x=1"}), "--set optim.lr.x=1: optim.lr has no sub-keys");
  EXPECT_EQ(error_of("", {"optim.lr=abc"}), "--set optim.lr=abc: optim.lr: expected a number >= 0, got \"abc\"");
  EXPECT_HAS(error_of("", {"model.hidden=[512,0]"}),
             "--set model.hidden=[512,0]: model.hidden[1]: expected an integer in [1, 1000000], got 0");
  EXPECT_HAS(error_of("", {"model.activation=swish"}),
             "--set model.activation=swish: model.activation: expected one of relu");
  // A value no TOML string can hold is refused, not thrown through (found by fuzz_config).
  EXPECT_HAS(error_of("", {"data.dataset=ab\xff\xfe"}), "data.dataset: the value is not valid TOML text");
  // The file's own values keep their file:line.
  EXPECT_HAS(error_of("[optim]\nlr = -2\n", {"optim.name=sgd"}), "examples/x.toml:2: optim.lr");
  // An override replaces a bad file value before validation.
  EXPECT_EQ(error_of("[optim]\nlr = -2\n", {"optim.lr=0.1"}), "");
}

TEST(Config, RoundTripThroughToml) {
  for (const char* text : {"", kFull}) {
    const Config a = cn::parse_config(text, "a.toml");
    const std::string toml = cn::to_toml(a);
    const Config b = cn::parse_config(toml, "b.toml");
    expect_same(a, b);
    EXPECT_TRUE(cn::config_differences(a, b).empty());
    EXPECT_EQ(cn::to_toml(b), toml);
  }
  // Awkward doubles and strings survive exactly.
  Config c;
  c.optim.lr = 0.1 + 0.2;
  c.optim.eps = 1.0 / 3.0;
  c.data.noise = 5e-324;
  c.model.init_constant = -1.7976931348623157e308;
  c.alarms.sigma = 1e22;
  c.data.path = "a \"quoted\" path\\with\ttab and ü";
  c.train.eval_every = 123;
  c.model.layers = {{LayerKind::linear, 7}, {LayerKind::gelu}, {LayerKind::linear, 2}};
  c.model.layers[0].bias_init = cn::Init::constant;
  const Config d = cn::parse_config(cn::to_toml(c), "c.toml");
  expect_same(c, d);
  EXPECT_TRUE(cn::config_differences(c, d).empty());
  // Optional keys appear only when set.
  const std::string dflt = cn::to_toml(Config{});
  EXPECT_FALSE(has(dflt, "eval_every"));
  EXPECT_FALSE(has(dflt, "[checkpoint]\nevery"));
  EXPECT_HAS(cn::to_toml(c), "eval_every = 123");
  EXPECT_HAS(dflt, "lr = 0.001\n");
  EXPECT_HAS(dflt, "betas = [0.9, 0.999]\n");
  EXPECT_HAS(dflt, "eps = 1e-8\n");
}

TEST(Config, Differences) {
  Config a, b;
  EXPECT_TRUE(cn::config_differences(a, b).empty());
  b.train.steps = 100;
  b.optim.beta2 = 0.99;
  b.checkpoint.every = 10;
  b.model.layers.push_back({LayerKind::linear, 4});
  b.diagnostics.kinds.push_back(cn::CurvatureKind::ggn);
  EXPECT_EQ(cn::config_differences(a, b), (std::vector<std::string>{"model.layers", "optim.betas", "train.steps",
                                                                    "checkpoint.every", "diagnostics.kinds"}));
  // A value differing only in the last bit is a difference.
  Config c;
  c.optim.lr = std::nextafter(c.optim.lr, 1.0);
  EXPECT_EQ(cn::config_differences(a, c), (std::vector<std::string>{"optim.lr"}));
}

TEST(Config, DocsListEveryKey) {
  const std::string ref = cn::config_reference_markdown();
  // docs/config.md embeds the generated tables between two markers; to refresh them after a
  // schema change: CURVNET_UPDATE_DOCS=1 test_config --gtest_filter=Config.DocsListEveryKey
  for (const char* doc : {"/docs/config.md"}) {
    const std::string path = std::string(CURVNET_SOURCE_DIR) + doc;
    std::string docs = cn::test::read_text(path);
    const std::string begin = "<!-- BEGIN generated by config_reference_markdown() -->\n";
    const std::string end = "<!-- END generated -->";
    auto b = docs.find(begin), e = docs.find(end);
    ASSERT_NE(b, std::string::npos) << path << " lacks the marker " << begin;
    ASSERT_NE(e, std::string::npos) << path << " lacks the marker " << end;
    if (const char* u = std::getenv("CURVNET_UPDATE_DOCS"); u && *u == '1') {
      docs = docs.substr(0, b + begin.size()) + ref + docs.substr(e);
      cn::test::write_text(path, docs);
      e = docs.find(end);
    }
    EXPECT_EQ(docs.substr(b + begin.size(), e - b - begin.size()), ref)
        << path << " is out of date: run CURVNET_UPDATE_DOCS=1 test_config --gtest_filter=Config.DocsListEveryKey";
  }
  // Every key of the resolved config appears in the reference.
  Config c = cn::parse_config(kFull, "x.toml");
  const std::string toml = cn::to_toml(c);
  std::string section;
  std::istringstream in(toml);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("[[", 0) == 0) continue;
    if (line.rfind("[", 0) == 0) section = line.substr(1, line.size() - 2);
    const auto eq = line.find(" = ");
    if (eq == std::string::npos || line[0] == '#') continue;
    const std::string key = line.substr(0, eq);
    if (section == "model" || section == "optim") {
      if (has(ref, "`" + section + "." + key + "`") || has(ref, "| `" + key + "` |")) continue;
    }
    EXPECT_HAS(ref, "`" + section + "." + key + "`");
  }
}

// Every kind's name table: each value named once, each name parsed back to its value; an
// unknown name is an InputError naming the key and listing the names as the parser does.
template <class E, size_t N>
void expect_table_round_trip(const cn::EnumName<E> (&table)[N]) {
  for (const auto& e : table) {
    EXPECT_EQ(cn::parse_enum(table, e.name, "k"), e.value) << e.name;
    EXPECT_STREQ(cn::enum_name(table, e.value), e.name);
    int same = 0;
    for (const auto& f : table) same += f.value == e.value;
    EXPECT_EQ(same, 1) << e.name;
  }
}

TEST(Config, EnumTablesRoundTrip) {
  expect_table_round_trip(cn::kOptimKinds);
  expect_table_round_trip(cn::kClipModes);
  expect_table_round_trip(cn::kScheduleKinds);
  expect_table_round_trip(cn::kLossKinds);
  expect_table_round_trip(cn::kInits);
  expect_table_round_trip(cn::kDeviceChoices);
  expect_table_round_trip(cn::kDTypes);
  expect_table_round_trip(cn::kOnNonfinite);
  expect_table_round_trip(cn::kStopMetrics);
  expect_table_round_trip(cn::kDiagModes);
  expect_table_round_trip(cn::kCurvatureKinds);
  try {
    cn::parse_enum(cn::kClipModes, "global", "clip.mode");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "clip.mode: expected one of none, norm, layer_norm, value, agc, agc_unit, got \"global\"");
  }
  // The parser's message for the same value adds the location.
  EXPECT_HAS(error_of("[clip]\nmode = \"global\"\n"),
             "clip.mode: expected one of none, norm, layer_norm, value, agc, agc_unit, got \"global\"");
}

}  // namespace
