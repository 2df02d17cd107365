// The trainer: resume bit-identity, run directory contents, no allocation in the step,
// and the PyTorch oracle for loss, gradients and Adam steps.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <new>
#include <set>
#include <sstream>
#include <tuple>

#include "io/files.h"
#include "io/safetensors.h"
#include "io/tensorboard.h"
#include "layers/model.h"
#include "quiet_run.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace cn;
namespace fs = std::filesystem;

#include "heap_counter.h"

namespace {

Config small_config(const std::string& extra = "") {
  return parse_config(R"(
[data]
dataset = "spirals"
n_samples = 600
batch_size = 64
[model]
hidden = [32, 16]
activation = "tanh"
dropout = 0.2
[optim]
name = "adam"
lr = 0.01
[train]
steps = 40
log_every = 5
eval_every = 10
device = "cpu"
[checkpoint]
every = 10
)" + extra,
                      "test.toml");
}

// The run's TensorBoard values (step, tag, value; a histogram as its count and sum),
// sorted: what TensorBoard shows, whatever order the events were written in.
std::vector<std::tuple<int64_t, std::string, double, double>> tensorboard_values(const std::string& run_dir) {
  std::vector<std::tuple<int64_t, std::string, double, double>> out;
  for (const std::string& path : TensorBoardWriter::event_files(run_dir))
    for (const std::string& record : tfevents::parse_records(test::read_text(path))) {
      const tfevents::EventInfo e = tfevents::decode_event(record);
      for (const auto& v : e.values) {
        const auto ends_with = [&](const std::string& tail) {
          return v.tag.size() >= tail.size() && v.tag.compare(v.tag.size() - tail.size(), tail.size(), tail) == 0;
        };
        if (ends_with("/time_s") || ends_with("/items_per_s") || ends_with("/seconds")) continue;  // wall clock
        out.emplace_back(e.step, v.tag, v.has_simple ? v.simple_value : v.histo.num, v.has_histo ? v.histo.sum : 0.0);
      }
    }
  std::sort(out.begin(), out.end());
  return out;
}

// Every log, spectra file and TensorBoard value of run `b` holds what run `a`'s does
// (evaluations: the validation ones when `val_only`).
void expect_same_logs(const std::string& a, const std::string& b, bool val_only = false) {
  for (const char* log : {"metrics.jsonl", "eval.jsonl", "stats.jsonl", "diagnostics.jsonl", "alarms.jsonl"}) {
    std::vector<nlohmann::json> ra = test::log_rows(a + "/" + log), rb = test::log_rows(b + "/" + log);
    if (val_only && std::string(log) == "eval.jsonl")
      for (auto* rows : {&ra, &rb})
        rows->erase(std::remove_if(rows->begin(), rows->end(), [](const auto& r) { return r["split"] != "val"; }),
                    rows->end());
    ASSERT_EQ(ra.size(), rb.size()) << log;
    for (size_t i = 0; i < ra.size(); ++i) EXPECT_EQ(ra[i], rb[i]) << log << " row " << i;
  }
  {
    auto ta = tensorboard_values(a), tb = tensorboard_values(b);
    if (val_only)
      for (auto* values : {&ta, &tb})
        values->erase(std::remove_if(values->begin(), values->end(),
                                     [](const auto& v) { return std::get<1>(v).rfind("test/", 0) == 0; }),
                      values->end());
    std::vector<std::tuple<int64_t, std::string, double, double>> only_a, only_b;
    std::set_difference(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(only_a));
    std::set_difference(tb.begin(), tb.end(), ta.begin(), ta.end(), std::back_inserter(only_b));
    EXPECT_TRUE(only_a.empty() && only_b.empty())
        << "TensorBoard: " << only_a.size() << " values only in " << a << ", " << only_b.size() << " only in " << b
        << (only_a.empty() ? ""
                           : "; first: step " + std::to_string(std::get<0>(only_a[0])) + " " + std::get<1>(only_a[0]))
        << (only_b.empty() ? ""
                           : "; first: step " + std::to_string(std::get<0>(only_b[0])) + " " + std::get<1>(only_b[0]));
  }
  for (const auto& f : fs::directory_iterator(a + "/spectra")) {
    const std::string other = b + "/spectra/" + f.path().filename().string();
    ASSERT_TRUE(fs::exists(other)) << other;
    const SafeTensorMap ta = read_safetensors(f.path().string()), tb = read_safetensors(other);
    ASSERT_EQ(ta.size(), tb.size()) << other;
    for (const auto& [name, t] : ta) {
      ASSERT_TRUE(tb.count(name)) << other << " " << name;
      EXPECT_EQ(t.bytes, tb.at(name).bytes) << other << " " << name;
    }
  }
}

// Resuming `run_dir` with `config` is bad input whose message contains `needle`.
void expect_resume_input_error(const Config& config, const std::string& run_dir, const std::string& needle) {
  TrainOptions o = quiet("");
  o.resume_dir = run_dir;
  try {
    train(config, o);
    ADD_FAILURE() << "expected an InputError naming " << needle;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Trainer, ResumeIsBitIdentical) {
  test::TempDir tmp;
  Config c = small_config();
  c.train.steps = 40;
  train(c, quiet(tmp.file("full")));

  c.train.steps = 20;
  train(c, quiet(tmp.file("half")));
  Config more = c;
  more.train.steps = 40;
  TrainOptions o = quiet("");
  o.resume_dir = tmp.file("half");
  train(more, o);

  const auto a = test::final_params(tmp.file("full")), b = test::final_params(tmp.file("half"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "parameter " << i;
  // Logs were cut back to the checkpoint before appending: no step appears twice. The
  // first start's test row at its last step stays.
  EXPECT_EQ(test::log_rows(tmp.file("half") + "/metrics.jsonl").size(), 8u);
  expect_same_logs(tmp.file("full"), tmp.file("half"), /*val_only=*/true);
}

// Stopped after step `stop` and resumed, a run writes the logs, spectra and TensorBoard
// values of the uninterrupted run: the doctor's rule states and windows, the loss since the
// last logged step and a curvature checkpoint due at the saved step all carry over.
// `interrupt`: stopped as SIGINT does (no curvature at the stop step; logged steps fall
// between checkpoints). Otherwise the first run ends at `stop` (its last step: curvature,
// a test evaluation) and is extended, so the resume drops that step's curvature rows,
// alarms, spectra and TensorBoard values and computes them again.
// `cut_at`: the step the interrupted run ends at (-1: `stop`; a stop asked for while a
// curvature checkpoint runs abandons it and ends the run at that checkpoint's step).
void resumed_run_matches(int64_t stop, bool interrupt, int64_t cut_at = -1) {
  if (cut_at < 0) cut_at = stop;
  test::TempDir tmp;
  Config c = small_config(R"(
[diagnostics]
every = 10
kinds = ["loss"]
[alarms]
grad_norm_high = 2.0
loss_spike_delta = 0.02
loss_spike_floor = 0.0
loss_spike_window = 3
condition_high = 10.0
outlier_window = 4
)");
  c.train.log_every = interrupt ? 3 : 5;
  c.model.activation = LayerKind::relu;  // dead-unit windows to carry over
  train(c, quiet(tmp.file("full")));

  TrainOptions o = quiet(tmp.file("cut"));
  Config first = c;
  if (interrupt)
    o.should_stop = [stop](int64_t step) { return step == stop; };
  else
    first.train.steps = stop;
  const TrainSummary cut = train(first, o);
  EXPECT_EQ(cut.interrupted, interrupt);
  EXPECT_EQ(cut.steps, cut_at);
  EXPECT_EQ(list_checkpoints(tmp.file("cut")).back(), cut_at);
  TrainOptions r = quiet("");
  r.resume_dir = tmp.file("cut");
  const TrainSummary resumed = train(c, r);
  EXPECT_FALSE(resumed.interrupted);
  EXPECT_EQ(resumed.steps, 40);

  EXPECT_EQ(test::final_params(tmp.file("full")), test::final_params(tmp.file("cut")));
  expect_same_logs(tmp.file("full"), tmp.file("cut"), /*val_only=*/!interrupt);
  // The rules fired, so their carried state was exercised.
  std::set<std::string> rules;
  for (const auto& row : test::log_rows(tmp.file("full") + "/alarms.jsonl")) rules.insert(row["rule"]);
  for (const char* rule : {"grad_explosion", "loss_spike", "ill_conditioned"}) EXPECT_TRUE(rules.count(rule)) << rule;
}

// A stop asked for at the step where early stopping ends the run anyway is no
// interruption: the run ends as the uninterrupted one does.
TEST(Trainer, AStopAskedAtTheEarlyStoppingStepIsNoInterruption) {
  test::TempDir tmp;
  Config c = small_config();
  c.train.patience = 2;
  c.model.dropout = 0;
  c.optim.lr = 0.5;  // val_loss stops improving: early stopping at step 20
  c.train.steps = 200;
  c.train.eval_every = 5;
  const TrainSummary plain = train(c, quiet(tmp.file("plain")));
  ASSERT_TRUE(plain.early_stopped);
  TrainOptions o = quiet(tmp.file("asked"));
  o.should_stop = [&plain](int64_t step) { return step == plain.steps; };
  const TrainSummary asked = train(c, o);
  EXPECT_TRUE(asked.early_stopped);
  EXPECT_FALSE(asked.interrupted);
  EXPECT_EQ(asked.steps, plain.steps);
  EXPECT_EQ(asked.final_eval, plain.final_eval);
}

// A cosine run records its horizon; an extension past it is refused (it would train at
// min_lr) unless schedule.total_steps is raised with it, which re-plans the rest of the curve.
TEST(Trainer, CosineExtensionIsRefusedOrReplanned) {
  test::TempDir tmp;
  Config c = small_config("[schedule]\nkind = \"cosine\"\n");
  c.train.steps = 20;
  train(c, quiet(tmp.file("run")));
  const Config saved = load_config(tmp.file("run") + "/config.toml");
  EXPECT_EQ(saved.schedule.total_steps, 20);
  Config more = c;
  more.train.steps = 40;
  expect_resume_input_error(more, tmp.file("run"), "--set schedule.total_steps=40");
  more.schedule.total_steps = 40;
  TrainOptions o = quiet("");
  o.resume_dir = tmp.file("run");
  train(more, o);
  // The rate after the re-plan is the cosine over 40 steps, far from min_lr = 0.
  bool seen = false;
  for (const auto& row : test::log_rows(tmp.file("run") + "/metrics.jsonl"))
    if (row.at("step") == 25) {  // the update after 24: (1 + cos(0.6π)) / 2 of optim.lr
      EXPECT_NEAR(row.at("lr").get<double>(), c.optim.lr * (1 + std::cos(0.6 * M_PI)) / 2, 1e-15);
      seen = true;
    }
  EXPECT_TRUE(seen);
  EXPECT_EQ(load_config(tmp.file("run") + "/config.toml").schedule.total_steps, 40);
}

// A spectra file a crash left half-written (its temporary name) does not stop a resume.
TEST(Trainer, ResumeDropsATornSpectraFile) {
  test::TempDir tmp;
  Config c = small_config("[diagnostics]\nevery = 10\nkinds = [\"loss\"]\n");
  TrainOptions o = quiet(tmp.file("run"));
  o.should_stop = [](int64_t step) { return step == 20; };
  ASSERT_TRUE(train(c, o).interrupted);
  const std::string torn = tmp.file("run") + "/spectra/step_20.safetensors.tmp.999.0";
  test::write_text(torn, "\x08\0\0\0");
  TrainOptions r = quiet("");
  r.resume_dir = tmp.file("run");
  EXPECT_EQ(train(c, r).steps, 40);
  EXPECT_FALSE(fs::exists(torn));
  EXPECT_TRUE(read_safetensors(tmp.file("run") + "/spectra/step_20.safetensors").count("loss.0.eigenvalues"));
}

// The saved step's curvature is computed again on resume with the resumed config's kinds
// (its earlier rows and spectra go); with curvature off, what it wrote stays.
TEST(Trainer, ResumeRecomputesTheSavedStepsCurvatureAsConfigured) {
  test::TempDir tmp;
  Config c = small_config("[diagnostics]\nevery = 10\nkinds = [\"loss\", \"ggn\"]\n");
  c.train.steps = 20;
  train(c, quiet(tmp.file("run")));
  auto kinds_at_20 = [&]() {
    std::set<std::string> rows, spectra;
    for (const auto& row : test::log_rows(tmp.file("run") + "/diagnostics.jsonl"))
      if (row["step"] == 20) rows.insert(row["kind"].get<std::string>());
    for (const auto& [name, t] : read_safetensors(tmp.file("run") + "/spectra/step_20.safetensors"))
      spectra.insert(name.substr(0, name.find('.')));
    return std::make_pair(rows, spectra);
  };
  EXPECT_EQ(kinds_at_20().first, (std::set<std::string>{"loss", "ggn"}));

  Config off = c;
  off.train.steps = 25;
  off.diagnostics.every = 0;
  TrainOptions o = quiet("");
  o.resume_dir = tmp.file("run");
  train(off, o);
  EXPECT_EQ(kinds_at_20().first, (std::set<std::string>{"loss", "ggn"}));

  // step_25 is the last checkpoint now: go back to step_20's by removing it.
  fs::remove_all(checkpoint_dir(tmp.file("run"), 25));
  Config fewer = c;
  fewer.train.steps = 25;
  fewer.diagnostics.kinds = {cn::CurvatureKind::loss};
  train(fewer, o);
  const auto [rows, spectra] = kinds_at_20();
  EXPECT_EQ(rows, (std::set<std::string>{"loss"}));
  EXPECT_EQ(spectra, (std::set<std::string>{"loss", "weights", "grads"}));
}

// A state file without the doctor's state and the log window (as older checkpoints are)
// resumes with them empty; a malformed doctor state is bad input naming the file.
TEST(Trainer, ResumeReadsOlderAndRejectsMalformedDoctorState) {
  test::TempDir tmp;
  Config c = small_config();
  c.train.steps = 10;
  train(c, quiet(tmp.file("run")));
  const std::string state = checkpoint_dir(tmp.file("run"), 10) + "/state.safetensors";
  auto rewrite = [&](const std::string& doctor) {
    std::map<std::string, std::string> metadata;
    SafetensorsWriter w;
    for (auto& [name, t] : read_safetensors(state, &metadata))
      if (name.rfind("log.", 0) != 0 && name != "curvature.due") w.add_raw(name, std::move(t));
    for (const auto& [key, value] : metadata)
      if (key != "doctor") w.metadata(key, value);
    if (!doctor.empty()) w.metadata("doctor", doctor);
    w.write(state);
  };
  rewrite("{\"alarms\": 3}");
  Config more = c;
  more.train.steps = 15;
  expect_resume_input_error(more, tmp.file("run"), "state.safetensors: metadata \"doctor\"");
  rewrite("");
  TrainOptions o = quiet("");
  o.resume_dir = tmp.file("run");
  EXPECT_EQ(train(more, o).steps, 15);
}

namespace {
// Holds RUN_DIR/.lock as another process running the run would, with `pid` in it.
int hold_lock(const std::string& run_dir, const std::string& pid) {
  const int fd = ::open((run_dir + "/.lock").c_str(), O_RDWR | O_CREAT, 0644);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(::write(fd, pid.data(), pid.size()), static_cast<ssize_t>(pid.size()));
  return fd;
}
}  // namespace

// While another process holds a run directory, neither a resume nor a fresh start into it
// writes anything: both are bad input naming the holder's pid. The lock is released (its
// file removed) when a run ends; a file a killed holder left behind does not count.
TEST(Trainer, ARunDirectoryInUseIsRefused) {
  test::TempDir tmp;
  const std::string run = tmp.file("run"), fresh = tmp.file("fresh");
  Config c = small_config();
  c.train.steps = 10;
  train(c, quiet(run));
  EXPECT_FALSE(fs::exists(run + "/.lock"));
  const std::string metrics = test::read_text(run + "/metrics.jsonl"), meta = test::read_text(run + "/meta.json");
  const int held_run = hold_lock(run, "4242\n");
  Config more = c;
  more.train.steps = 20;
  expect_resume_input_error(more, run, "run directory " + run + " is in use by process 4242");
  EXPECT_EQ(test::read_text(run + "/metrics.jsonl"), metrics);
  EXPECT_EQ(test::read_text(run + "/meta.json"), meta);
  EXPECT_EQ(list_checkpoints(run).back(), 10);

  fs::create_directories(fresh);
  const int held_fresh = hold_lock(fresh, "4243\n");
  try {
    train(c, quiet(fresh));
    ADD_FAILURE() << "a fresh start went into a held directory";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("run directory " + fresh + " is in use by process 4243"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(fresh + "/config.toml"));

  ::close(held_run);  // the holders end; their lock files stay behind
  ::close(held_fresh);
  TrainOptions o = quiet("");
  o.resume_dir = run;
  EXPECT_EQ(train(more, o).steps, 20);
  EXPECT_EQ(train(c, quiet(fresh)).steps, 10);
  EXPECT_FALSE(fs::exists(run + "/.lock"));
  EXPECT_FALSE(fs::exists(fresh + "/.lock"));
}

// The temporary files of whole-file writes a kill interrupted (a checkpoint's, meta.json's,
// an event file's) go on resume; other files stay.
TEST(Trainer, ResumeRemovesTheTemporariesOfKilledWrites) {
  test::TempDir tmp;
  const std::string run = tmp.file("run");
  Config c = small_config();
  TrainOptions o = quiet(run);
  o.should_stop = [](int64_t step) { return step == 20; };
  ASSERT_TRUE(train(c, o).interrupted);
  const std::vector<std::string> temporaries = {run + "/checkpoints/step_20/model.safetensors.tmp.999.4",
                                                run + "/checkpoints/step_20/state.safetensors.tmp.999.5",
                                                run + "/meta.json.tmp.999.6",
                                                run + "/events.out.tfevents.1.host.tmp.999.7"};
  for (const std::string& f : temporaries) test::write_text(f, "torn");
  test::write_text(run + "/notes.tmp.txt", "mine");
  TrainOptions r = quiet("");
  r.resume_dir = run;
  EXPECT_EQ(train(c, r).steps, 40);
  for (const std::string& f : temporaries) EXPECT_FALSE(fs::exists(f)) << f;
  EXPECT_TRUE(fs::exists(run + "/notes.tmp.txt"));
}

// A start killed between its first files and its step-0 checkpoint trained nothing: a
// resume starts it again in place (files of other names stay) and ends as a fresh run
// does. With checkpoints off there is nothing to resume from, and the message says what to do.
TEST(Trainer, AStartStoppedBeforeItsFirstCheckpointStartsAgainOnResume) {
  test::TempDir tmp;
  const std::string run = tmp.file("run"), fresh = tmp.file("fresh");
  const Config c = small_config();
  train(c, quiet(fresh));
  train(c, quiet(run));
  fs::remove_all(run + "/checkpoints");  // as if killed before step_0 was saved
  test::write_text(run + "/notes.txt", "mine");
  TrainOptions r = quiet("");
  r.resume_dir = run;
  EXPECT_EQ(train(c, r).steps, 40);
  expect_same_logs(fresh, run);
  EXPECT_EQ(list_checkpoints(run), list_checkpoints(fresh));
  EXPECT_TRUE(fs::exists(run + "/notes.txt"));

  Config off = c;
  off.checkpoint.every = 0;
  const std::string no_ckpt = tmp.file("no_checkpoints");
  train(off, quiet(no_ckpt));
  expect_resume_input_error(off, no_ckpt, "nothing to resume from; start a new run with --out");
}

// A resume keeps the first start's time and adds its wall time to the earlier parts';
// metrics.jsonl's time_s goes on from the resumed step's.
TEST(Trainer, ResumeContinuesTheRunsClock) {
  test::TempDir tmp;
  const std::string run = tmp.file("run");
  Config c = small_config();
  c.train.steps = 20;
  train(c, quiet(run));
  nlohmann::json meta = nlohmann::json::parse(test::read_text(run + "/meta.json"));
  ASSERT_TRUE(meta["wall_s"].is_number());
  // As if the first part had started long ago and taken 100 s, reaching step 20 at 90 s.
  meta["start_time"] = "2020-01-01T00:00:00Z";
  meta["wall_s"] = 100.0;
  test::write_text(run + "/meta.json", meta.dump(2) + "\n");
  std::ostringstream rewritten;
  for (nlohmann::json row : read_jsonl(run + "/metrics.jsonl")) {
    if (row["step"] == 20) row["time_s"] = 90.0;
    rewritten << row.dump() << "\n";
  }
  test::write_text(run + "/metrics.jsonl", rewritten.str());

  c.train.steps = 40;
  TrainOptions o = quiet("");
  o.resume_dir = run;
  const TrainSummary resumed = train(c, o);
  meta = nlohmann::json::parse(test::read_text(run + "/meta.json"));
  EXPECT_EQ(meta["start_time"], "2020-01-01T00:00:00Z");
  EXPECT_TRUE(meta["end_time"].is_string());
  EXPECT_NEAR(meta["wall_s"].get<double>(), 100.0 + resumed.wall_s, 1e-9);
  double last = 0;
  for (const auto& row : read_jsonl(run + "/metrics.jsonl")) {
    const double t = row["time_s"].get<double>();
    EXPECT_GE(t, last) << row.dump();
    if (row["step"].get<int64_t>() > 20) EXPECT_GT(t, 90.0) << row.dump();
    last = t;
  }
}

TEST(Trainer, InterruptedBetweenCheckpointsResumesAsIfUninterrupted) { resumed_run_matches(23, true); }
TEST(Trainer, InterruptedAtACurvatureStepResumesAsIfUninterrupted) { resumed_run_matches(20, true); }
// The stop arrives while step 20's curvature checkpoint runs (its blocks ask for step 21):
// the checkpoint is abandoned at once, the run ends at step 20 and the resume computes it.
TEST(Trainer, AStopDuringACurvatureCheckpointAbandonsItAndResumesAsIfUninterrupted) {
  resumed_run_matches(21, true, 20);
}
TEST(Trainer, ExtendedAfterACurvatureStepResumesAsIfUninterrupted) { resumed_run_matches(20, false); }

TEST(Trainer, RunDirectoryHoldsTheContract) {
  test::TempDir tmp;
  const auto s = train(small_config(), quiet(tmp.file("run")));
  for (const char* f : {"config.toml", "meta.json", "metrics.jsonl", "eval.jsonl", "alarms.jsonl",
                        "checkpoints/step_0/model.safetensors", "checkpoints/step_0/state.safetensors",
                        "checkpoints/step_40/model.safetensors", "stats.jsonl", "report.html"})
    EXPECT_TRUE(fs::exists(tmp.file("run") + "/" + f)) << f;
  int events = 0;
  for (const auto& f : fs::directory_iterator(tmp.file("run")))
    events += f.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  EXPECT_EQ(events, 1);
  EXPECT_EQ(s.steps, 40);
  EXPECT_EQ(s.final_eval["split"], "test");
  // The resolved config re-reads to the same config.
  const Config saved = load_config(tmp.file("run") + "/config.toml");
  EXPECT_TRUE(config_differences(saved, load_config(tmp.file("run") + "/config.toml")).empty());
  EXPECT_EQ(*saved.train.eval_every, 10);
  // Evaluating the last checkpoint reproduces the run's test row.
  const auto row = evaluate_checkpoint(tmp.file("run"), "test", "cpu");
  EXPECT_DOUBLE_EQ(row["loss"].get<double>(), s.final_eval["loss"].get<double>());
}

TEST(Trainer, ResumeRefusesAChangedKey) {
  test::TempDir tmp;
  Config c = small_config();
  c.train.steps = 10;
  train(c, quiet(tmp.file("run")));
  Config changed = c;
  changed.optim.lr = 0.5;
  expect_resume_input_error(changed, tmp.file("run"), "optim.lr");
}

TEST(Trainer, OutMustBeEmpty) {
  test::TempDir tmp;
  test::write_text(tmp.file("x"), "");
  EXPECT_THROW(train(small_config(), quiet(tmp.path().string())), InputError);
}

// Training `config` into a fresh run is bad input naming every needle, and nothing of the
// run is left: not its files, nor the directory the start made.
void expect_train_input_error(const Config& config, const std::vector<std::string>& needles) {
  test::TempDir tmp;
  try {
    train(config, quiet(tmp.file("run")));
    ADD_FAILURE() << "expected an InputError naming " << needles[0];
  } catch (const InputError& e) {
    for (const std::string& needle : needles)
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp.file("run")));  // the directory the start made is gone again
  // An empty directory the user made stays (without a lock file).
  fs::create_directories(tmp.file("mine"));
  EXPECT_THROW(train(config, quiet(tmp.file("mine"))), InputError);
  EXPECT_TRUE(fs::is_directory(tmp.file("mine")));
  EXPECT_TRUE(fs::is_empty(tmp.file("mine")));
}

TEST(Trainer, AnExplicitStackOfTheWrongOutputWidthIsRefused) {
  const std::string blobs = "\n[data]\ndataset = \"blobs\"\nn_samples = 300\n[train]\nsteps = 4\n";
  const std::string linear = "[[model.layers]]\ntype = \"linear\"\nout = ";
  // One output on three classes.
  expect_train_input_error(parse_config(blobs + linear + "1\n", "test.toml"),
                           {"model.layers[0]", "1 outputs", "expects 3"});
  // A stack ending in relu: its width is the last linear layer's.
  expect_train_input_error(parse_config(blobs + linear + "8\n" + "[[model.layers]]\ntype = \"relu\"\n", "test.toml"),
                           {"model.layers[1]", "set by model.layers[0], linear, out = 8", "expects 3"});
  // The matching width trains.
  test::TempDir tmp;
  EXPECT_NO_THROW(train(parse_config(blobs + linear + "3\n", "test.toml"), quiet(tmp.file("run"))));
}

TEST(Trainer, EarlyStoppingThatCannotFireIsRefused) {
  Config c = small_config();
  c.train.patience = 2;
  c.train.early_stopping_metric = StopMetric::val_r2;
  expect_train_input_error(c, {"train.early_stopping_metric", "val_r2", "classification"});
  Config r = parse_config(
      "[data]\ndataset = \"sine\"\nn_samples = 200\n[loss]\nkind = \"mse\"\n[train]\nsteps = 4\npatience = 2\n"
      "early_stopping_metric = \"val_accuracy\"\n",
      "test.toml");
  expect_train_input_error(r, {"train.early_stopping_metric", "val_accuracy", "regression"});
  Config nv = small_config();
  nv.train.patience = 2;
  nv.data.val_fraction = 0;
  expect_train_input_error(nv, {"train.patience", "data.val_fraction"});
}

// After the first steps, a training step allocates nothing (operator new is counted).
TEST(Trainer, NoAllocationInsideTheStep) {
  std::vector<cn::DeviceChoice> devices = {cn::DeviceChoice::cpu};
  if (cn::cuda_available()) devices.push_back(cn::DeviceChoice::cuda);
  for (const cn::DeviceChoice device : devices)
    for (const char* extra : {"", "[clip]\nmode = \"agc_unit\"\n[model]\nbatchnorm = true\n"}) {
      Config c = small_config();
      c.train.device = device;
      if (*extra) {
        c.clip.mode = cn::ClipMode::agc_unit;
        c.model.batchnorm = true;
      }
      StepRunner r(c);
      r.step();
      r.step();
      const std::string what = enum_name(cn::kDeviceChoices, device) + std::string(" ") + extra;
      const int64_t before = test::heap_allocations(), before_dev = host_allocation_count();
      for (int i = 0; i < 5; ++i) r.step();  // within one epoch: no new sample order is drawn
      EXPECT_EQ(test::heap_allocations() - before, 0) << what;
      EXPECT_EQ(host_allocation_count() - before_dev, 0) << what;
    }
}

// PyTorch as an independent implementation: a 3-layer MLP's loss, gradients and 10 Adam
// steps in float64, PyTorch loading curvnet's model.safetensors into nn.Sequential.
TEST(Oracle, MlpLossGradientsAndAdamMatchPyTorch) {
  if (!test::python_has("torch, safetensors")) GTEST_SKIP() << test::python_exe() << " lacks torch or safetensors";
  test::TempDir tmp;
  ModelConfig mc;
  mc.hidden = {7, 5};
  mc.activation = LayerKind::tanh;
  mc.init = cn::Init::xavier_normal;
  mc.bias_init = cn::Init::lecun_uniform;
  mc.batchnorm = true;
  const int64_t N = 16, I = 4, C = 3;
  Sequential<double> model(resolve_layers(mc, C), I);
  model.initialize(mc, 3);
  model.reserve(N);
  save_model(model, tmp.file("init.safetensors"));
  std::vector<double> x(N * I), y(N);
  PhiloxDraw d(9, RngStream::data, 0, 0);
  for (auto& v : x) v = d.normal();
  for (int64_t n = 0; n < N; ++n) y[n] = static_cast<double>(n % C);
  SafetensorsWriter w;
  w.add<double>("x", {N, I}, x);
  w.add<double>("y", {N}, y);
  w.write(tmp.file("data.safetensors"));

  Loss<double> loss(LossKind::cross_entropy);
  loss.reserve(Device::cpu, N, C);
  OptimConfig oc;
  oc.lr = 0.01;
  oc.weight_decay = 0.001;
  auto adam = make_optimizer<double>(oc, model.layout());
  PassCtx ctx;
  std::vector<double> losses, grad0;
  for (int s = 0; s < 10; ++s) {
    const double* z = model.forward(ctx, x.data(), N);
    losses.push_back(loss.forward_backward(ctx, z, y.data(), N, C));
    model.backward(ctx, loss.dz(), N);
    if (s == 0) grad0.assign(model.grads().data(), model.grads().data() + model.layout().total);
    adam->step(model.params().data(), model.grads().data(), oc.lr, s);
  }
  save_model(model, tmp.file("final.safetensors"));

  const std::string script = tmp.file("oracle.py");
  test::write_text(script, R"PY(
import sys, torch
from safetensors.torch import load_file
torch.set_default_dtype(torch.float64)
d = sys.argv[1]
init, data = load_file(d + "/init.safetensors"), load_file(d + "/data.safetensors")
net = torch.nn.Sequential(torch.nn.Linear(4, 7), torch.nn.BatchNorm1d(7), torch.nn.Tanh(),
                          torch.nn.Linear(7, 5), torch.nn.BatchNorm1d(5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
net.load_state_dict(init)
opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=0.001)
x, y = data["x"], data["y"].long()
for s in range(10):
    opt.zero_grad()
    l = torch.nn.functional.cross_entropy(net(x), y)
    l.backward()
    print("loss", repr(l.item()))
    if s == 0:
        print("grad", " ".join(repr(v) for p in net.parameters() for v in p.grad.flatten().tolist()))
    opt.step()
final = load_file(d + "/final.safetensors")
err = max((net.state_dict()[k].double() - final[k].double()).abs().max().item() for k in final)
print("param_err", repr(err))
)PY");
  std::string out;
  ASSERT_EQ(test::run_command(test::python_exe() + " " + script + " " + tmp.path().string(), &out), 0) << out;
  std::istringstream is(out);
  std::string tag;
  size_t li = 0;
  double param_err = 1;
  while (is >> tag) {
    if (tag == "loss") {
      double v;
      is >> v;
      ASSERT_LT(li, losses.size());
      EXPECT_NEAR(losses[li], v, 1e-10) << "step " << li;
      ++li;
    } else if (tag == "grad") {
      for (size_t i = 0; i < grad0.size(); ++i) {
        double v;
        is >> v;
        EXPECT_NEAR(grad0[i], v, 1e-10) << "gradient " << i;
      }
    } else if (tag == "param_err") {
      is >> param_err;
    }
  }
  EXPECT_EQ(li, 10u);
  EXPECT_LT(param_err, 1e-10);  // parameters and BatchNorm running statistics after 10 steps
}

// Curvature checkpoints: rows and spectra at every checkpoint, and training unchanged.
TEST(Trainer, DiagnosticsLeaveTrainingBitIdentical) {
  test::TempDir tmp;
  Config off = small_config();
  off.model.batchnorm = true;  // running statistics must not move during curvature passes
  off.train.steps = 20;
  Config on = off;
  on.diagnostics.every = 10;
  on.diagnostics.kinds = {cn::CurvatureKind::loss,    cn::CurvatureKind::local, cn::CurvatureKind::ggn,
                          cn::CurvatureKind::kfac,    cn::CurvatureKind::diag,  cn::CurvatureKind::fisher_diag,
                          cn::CurvatureKind::full_top};
  on.diagnostics.batch_size = 64;
  on.diagnostics.dense_max_params = 300;  // the 32×16 layer goes the iterative way
  train(off, quiet(tmp.file("off")));
  train(on, quiet(tmp.file("on")));
  EXPECT_EQ(test::final_params(tmp.file("off")), test::final_params(tmp.file("on")));
  for (int s : {0, 10, 20})
    EXPECT_TRUE(fs::exists(tmp.file("on") + "/spectra/step_" + std::to_string(s) + ".safetensors"));
  const std::string rows = test::read_text(tmp.file("on") + "/diagnostics.jsonl");
  EXPECT_NE(rows.find("\"kind\":\"full_top\""), std::string::npos);
  EXPECT_NE(rows.find("\"method\":\"lanczos+slq+hutchinson\""), std::string::npos);
  EXPECT_EQ(rows.find("\"checks\":\"failed"), std::string::npos) << rows;
  EXPECT_EQ(rows.find("NaN"), std::string::npos);
  // `curvnet hessian` on the saved checkpoint reproduces the run's last loss block.
  HessianOptions ho;
  ho.kinds = {cn::CurvatureKind::loss};
  ho.layers = {0};
  const CurvatureOutput out = checkpoint_curvature(tmp.file("on"), ho);
  ASSERT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.step, 20);
  SafetensorsFile f{"", read_safetensors(tmp.file("on") + "/spectra/step_20.safetensors"), {}};
  const auto saved = f.get<double>("loss.0.eigenvalues");
  ASSERT_EQ(saved.size(), out.spectra.at("loss.0.eigenvalues").size());
  for (size_t i = 0; i < saved.size(); ++i) EXPECT_NEAR(saved[i], out.spectra.at("loss.0.eigenvalues")[i], 1e-12);
}

// The default example at a learning rate of 10: an exploding alarm (grad_explosion or
// loss_spike) no later than one logged step after the loss starts to rise, i.e. the first
// logged step whose loss exceeds (1 + δ) × its running minimum over the last W logged
// steps (δ = alarms.loss_spike_delta, W = alarms.loss_spike_window).
TEST(Trainer, ExplodingAlarmOnTheDefaultExampleAtLearningRateTen) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "no Fashion-MNIST";
  test::TempDir tmp;
  Config c = load_config(std::string(CURVNET_SOURCE_DIR) + "/examples/fashion_mnist.toml",
                         {"optim.lr=10", "train.steps=40", "train.log_every=1", "diagnostics.every=0",
                          "checkpoint.every=0", "train.eval_every=0", "train.on_nonfinite=\"continue\""});
  train(c, quiet(tmp.file("run")));
  std::vector<std::pair<int64_t, double>> losses;
  {
    std::istringstream in(test::read_text(tmp.file("run") + "/metrics.jsonl"));
    for (std::string line; std::getline(in, line);) {
      const auto row = nlohmann::json::parse(line);
      losses.emplace_back(row["step"].get<int64_t>(), row["loss"].is_number() ? row["loss"].get<double>() : INFINITY);
    }
  }
  const double delta = c.alarms.loss_spike_delta;
  const int64_t W = c.alarms.loss_spike_window;
  int64_t rise = -1;
  for (size_t i = 1; i < losses.size() && rise < 0; ++i) {
    double lo = INFINITY;
    for (size_t j = i > static_cast<size_t>(W) ? i - W : 0; j < i; ++j) lo = std::min(lo, losses[j].second);
    if (losses[i].second > (1 + delta) * lo) rise = losses[i].first;
  }
  ASSERT_GE(rise, 0) << "the loss never rose at lr = 10";
  int64_t first_alarm = -1;
  std::istringstream in(test::read_text(tmp.file("run") + "/alarms.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    const std::string rule = row["rule"];
    if ((rule == "grad_explosion" || rule == "loss_spike") && first_alarm < 0) first_alarm = row["step"].get<int64_t>();
  }
  ASSERT_GE(first_alarm, 0) << "no exploding alarm";
  EXPECT_LE(first_alarm, rise + 1) << "loss rose at step " << rise;
}

namespace {
// Every file of a run directory but its lock, with its bytes.
std::map<std::string, std::string> run_files(const std::string& run) {
  std::map<std::string, std::string> files;
  for (const auto& f : fs::recursive_directory_iterator(run))
    if (f.is_regular_file() && f.path().filename() != ".lock") files[f.path().string()] = read_file(f.path().string());
  return files;
}
}  // namespace

// A state whose values no save writes (a step that is not the checkpoint's, counters out of
// range, flags other than 0/1, a non-finite loss) is bad input naming the file and the
// field, refused before anything in the run directory changes.
TEST(Trainer, ResumeRefusesStateValuesNoSaveWrites) {
  test::TempDir tmp;
  const std::string run = tmp.file("run");
  Config c = small_config();
  c.train.steps = 20;
  train(c, quiet(run));
  const std::string state = checkpoint_dir(run, 20) + "/state.safetensors";
  const std::string original = read_file(state);
  auto rewrite = [&](const std::string& field, auto value) {
    test::write_text(state, original);
    std::map<std::string, std::string> metadata;
    SafetensorsWriter w;
    for (auto& [name, t] : read_safetensors(state, &metadata))
      if (name != field) w.add_raw(name, std::move(t));
    for (const auto& [key, v] : metadata) w.metadata(key, v);
    w.add<decltype(value)>(field, {}, &value);
    w.write(state);
  };
  Config more = c;
  more.train.steps = 30;
  const std::vector<std::tuple<std::string, int64_t, std::string>> cases = {
      {"step", -5, "step"},
      {"step", 1000000000000000, "step"},
      {"step", 10, "step 10 differs from the checkpoint's step 20"},
      {"epoch", 7, "epoch"},
      {"early_stopping.has_best", 7, "early_stopping.has_best"},
      {"early_stopping.bad_evals", -1, "early_stopping.bad_evals"},
      {"schedule.first_total_steps", 0, "schedule.first_total_steps"},
      {"log.window_steps", 21, "log.window_steps"},
      {"curvature.due", 2, "curvature.due"},
  };
  rewrite("step", int64_t{20});
  const auto before = run_files(run);
  for (const auto& [field, value, needle] : cases) {
    rewrite(field, value);
    expect_resume_input_error(more, run, "state.safetensors: " + needle);
    test::write_text(state, original);
    EXPECT_EQ(run_files(run), before) << field << " = " << value;
  }
  rewrite("log.window_loss", std::nan(""));
  expect_resume_input_error(more, run, "state.safetensors: log.window_loss");
  test::write_text(state, original);
  TrainOptions o = quiet("");
  o.resume_dir = run;
  EXPECT_EQ(train(more, o).steps, 30);
}

// Resuming a run that has ended (its last step, or early stopping) changes nothing: no
// second test row, no rewritten config or meta.json.
TEST(Trainer, ResumeOfAFinishedRunChangesNothing) {
  test::TempDir tmp;
  Config c = small_config();
  c.train.steps = 20;
  train(c, quiet(tmp.file("run")));
  Config stopping = small_config();
  stopping.train.patience = 2;
  stopping.model.dropout = 0;
  stopping.optim.lr = 0.5;
  stopping.train.steps = 200;
  stopping.train.eval_every = 5;
  ASSERT_TRUE(train(stopping, quiet(tmp.file("stopped"))).early_stopped);
  for (const auto& [run, config] : {std::pair{tmp.file("run"), c}, std::pair{tmp.file("stopped"), stopping}}) {
    const auto before = run_files(run);
    TrainOptions o = quiet("");
    o.resume_dir = run;
    const TrainSummary again = train(config, o);
    EXPECT_EQ(again.steps, list_checkpoints(run).back());
    EXPECT_EQ(run_files(run), before) << run;
  }
}

// A total below the steps done would train nothing yet record the smaller total: refused,
// naming the key and the run's step, before anything changes.
TEST(Trainer, ResumeRefusesATotalBelowTheStepsDone) {
  test::TempDir tmp;
  const std::string run = tmp.file("run");
  Config c = small_config();
  c.train.steps = 30;
  train(c, quiet(run));
  const auto before = run_files(run);
  Config fewer = c;
  fewer.train.steps = 20;
  expect_resume_input_error(fewer, run, "train.steps gives 20 steps but the run is at step 30");
  EXPECT_EQ(run_files(run), before);
}
