// The HTML report: a fake run directory with every file, rendered by headless Chromium;
// every plot must be in the dumped DOM with data marks, and the file must be
// self-contained. A run with only metrics.jsonl still gives a report whose other
// sections say "no data".
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "io/files.h"
#include "io/report.h"
#include "io/report_svg.h"
#include "io/safetensors.h"
#include "test_util.h"

using cn::test::TempDir;

namespace {

// The headless browser, or "" when none is installed.
std::string chromium_exe() {
  for (const char* name : {"chromium", "chromium-browser"}) {
    std::string out;
    if (cn::test::run_command(std::string("command -v ") + name, &out) == 0 && !out.empty()) return name;
  }
  return "";
}

// The DOM after Chromium parsed the file (stderr, where Chromium chats, is dropped).
std::string dump_dom(const TempDir& tmp, const std::string& html_path) {
  const std::string dom_path = tmp.file("dom.html");
  const std::string cmd =
      "(timeout 180 " + chromium_exe() +
      " --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=" + tmp.file("chromium-profile") +
      " --dump-dom file://" + html_path + " 2>/dev/null) > " + dom_path;
  std::string out;
  const int rc = cn::test::run_command(cmd, &out);
  EXPECT_EQ(rc, 0) << cmd << "\n" << out;
  return cn::test::read_text(dom_path);
}

// The markup of the <svg> whose data-plot is `name` ("" when absent).
std::string plot_markup(const std::string& dom, const std::string& name) {
  const size_t at = dom.find("data-plot=\"" + name + "\"");
  if (at == std::string::npos) return "";
  const size_t open = dom.rfind("<svg", at);
  const size_t close = dom.find("</svg>", at);
  if (open == std::string::npos || close == std::string::npos) return "";
  return dom.substr(open, close - open);
}

size_t count_marks(const std::string& svg) {
  static const std::regex mark(R"(<(path|circle|rect)\b[^>]*\bclass="mark\b)");
  return static_cast<size_t>(std::distance(std::sregex_iterator(svg.begin(), svg.end(), mark), std::sregex_iterator()));
}

// The text of the <section data-section="name">.
std::string section_markup(const std::string& html, const std::string& name) {
  const size_t at = html.find("data-section=\"" + name + "\"");
  if (at == std::string::npos) return "";
  const size_t close = html.find("</section>", at);
  return html.substr(at, close == std::string::npos ? std::string::npos : close - at);
}

void expect_no_urls(const std::string& html) {
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
}

// A run directory with every file the report reads.
void make_full_run(const std::string& run) {
  std::filesystem::create_directories(run + "/spectra");
  cn::test::write_text(run + "/config.toml", "[data]\ndataset = \"spirals\"\n[train]\nsteps = 200\n");
  cn::test::write_text(run + "/meta.json", R"({"version":"0.1.0","device":"cpu","dtype":"float32","seed":0})");
  cn::JsonLinesWriter m(run + "/metrics.jsonl"), e(run + "/eval.jsonl"), s(run + "/stats.jsonl"),
      d(run + "/diagnostics.jsonl"), a(run + "/alarms.jsonl");
  for (int step = 10; step <= 200; step += 10) {
    m.write({{"step", step},
             {"epoch", step / 100},
             {"loss", 2.0 * std::exp(-0.01 * step)},
             {"lr", 1e-3},
             {"grad_norm", 1.0 / step},
             {"grad_norm_clipped", 1.0 / step},
             {"clipped", false},
             {"items_per_s", 1000.0},
             {"time_s", 0.01 * step}});
    for (int layer : {0, 2, 4}) {
      s.write({{"step", step},
               {"layer", layer},
               {"kind", "step"},
               {"type", "linear"},
               {"grad_l2", 0.1 * (layer + 1) / std::sqrt(step)},
               {"grad_linf", 0.01},
               {"weight_norm", 3.0 + layer},
               {"update_ratio", 1e-3 * (layer + 1)},
               {"dead_share", layer == 2 ? 0.002 * step : 0.0},
               {"saturated_share", 0.0}});
    }
    for (int layer : {1, 3})
      s.write({{"step", step},
               {"layer", layer},
               {"kind", "step"},
               {"type", "relu"},
               {"act_var", 1.0 / (layer + 1) * (1 + 0.001 * step)},
               {"dead_share", 0.0}});
    if (step % 50 == 0) {
      // A checkpoint row of other columns: the verdicts still show the last grad_l2.
      s.write({{"step", step},
               {"layer", 0},
               {"kind", "spectrum"},
               {"type", "linear"},
               {"rows", 8},
               {"cols", 2},
               {"weight_grad_corr", 0.3},
               {"grad_l2", nullptr}});
      e.write({{"step", step},
               {"epoch", step / 100},
               {"split", "val"},
               {"loss", 2.2 * std::exp(-0.008 * step)},
               {"accuracy", 0.5 + 0.002 * step},
               {"f1", 0.4 + 0.002 * step}});
      for (int layer : {0, 2, 4}) {
        d.write({{"step", step},
                 {"layer", layer},
                 {"kind", "loss"},
                 {"n_params", 100},
                 {"method", "dense"},
                 {"trace", 1.0 + layer},
                 {"condition", 1e3 * (layer + 1)},
                 {"lambda_max", 0.5 * step}});
        d.write({{"step", step},
                 {"layer", layer},
                 {"kind", "local"},
                 {"n_params", 100},
                 {"method", "dense"},
                 {"trace", 0.0},
                 {"condition", nullptr},
                 {"condition_status", "zero matrix"},
                 {"lambda_max", 0.0}});
      }
    }
  }
  e.write({{"step", 200}, {"epoch", 2}, {"split", "test"}, {"loss", 0.4}, {"accuracy", 0.88}, {"f1", 0.8}});
  a.write({{"step", 70},
           {"layer", nullptr},
           {"rule", "loss_spike"},
           {"value", 3.0},
           {"threshold", 2.0},
           {"message", "loss rose 3 sigma above its recent mean"}});
  for (int step : {100, 150, 200})
    a.write({{"step", step},
             {"layer", 2},
             {"rule", "dead_units"},
             {"value", 0.002 * step},
             {"threshold", 0.1},
             {"message", "share of dead units above threshold"}});
  for (int step : {0, 50, 100, 150, 200}) {
    cn::SafetensorsWriter w;
    std::vector<double> loss0(100), loss2(64);
    for (int i = 0; i < 100; ++i) loss0[i] = (i < 10 ? -1e-3 * i : 1e-6 * std::pow(1.15, i)) * (1 + 0.01 * step);
    for (int i = 0; i < 64; ++i) loss2[i] = 0.1 * i - 1.0;
    w.add<double>("loss.0.eigenvalues", {100}, loss0);
    w.add<double>("loss.2.eigenvalues", {64}, loss2);
    w.add<float>("local.0.eigenvalues", {16}, std::vector<float>(16, 0.0f));  // ReLU: the zero matrix
    std::vector<double> grid(50), density(50);
    for (int i = 0; i < 50; ++i) {
      grid[i] = -1.0 + 0.1 * i;
      density[i] = std::exp(-0.5 * std::pow((grid[i] - 1.0) / 0.5, 2));
    }
    w.add<double>("ggn.4.density_grid", {50}, grid);
    w.add<double>("ggn.4.density", {50}, density);
    w.add<float>("full_top.eigenvalues", {3}, std::vector<float>{10.0f + step, 5.0f, 1.0f});
    w.add<double>("diag.0.values", {4}, std::vector<double>{1, 2, 3, 4});           // not a spectrum: ignored
    w.add<double>("loss.4.lanczos_extremes", {2}, std::vector<double>{-0.1, 2.0});  // ignored
    w.add<double>("weights.0.singular_values", {2}, std::vector<double>{3.0 + 0.01 * step, 0.5});
    w.add<double>("grads.0.singular_values", {2}, std::vector<double>{0.1, 1e-3});
    w.write(run + "/spectra/step_" + std::to_string(step) + ".safetensors");
  }
}

const std::vector<std::string> kFullPlots = {
    "quality",
    "quality/other",
    "depth/act_var",
    "depth/grad_l2",
    "lr",
    "grad_norm",
    "layer/grad_l2",
    "layer/update_ratio",
    "layer/weight_norm",
    "activation/dead_share",
    "activation/saturated_share",
    "curvature/lambda_max",
    "curvature/condition",
    "spectrum/loss/layer0",
    "spectrum/loss/layer2",
    "spectrum/local/layer0",
    "spectrum/ggn/layer4",
    "spectrum/full_top",
    "singular_values/weights/layer0",
    "singular_values/grads/layer0",
    "alarms",
};

}  // namespace

TEST(Report, FullRunRendersEveryPlotInChromium) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  make_full_run(run);
  cn::write_report(run);
  const std::string path = run + "/report.html";
  ASSERT_TRUE(std::filesystem::exists(path));
  const std::string html = cn::read_file(path);
  expect_no_urls(html);
  EXPECT_EQ(html.find("no data"), std::string::npos) << "every section has data";
  for (const std::string& name : kFullPlots) EXPECT_GT(count_marks(plot_markup(html, name)), 0u) << name;
  // No leftover temporary files from the atomic write.
  for (const auto& entry : std::filesystem::directory_iterator(run))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();

  // The verdicts: layer 2 carries the rule that fired, the others are healthy.
  const std::string verdicts = section_markup(html, "verdicts");
  EXPECT_NE(verdicts.find("data-table=\"verdicts\""), std::string::npos);
  const std::regex row2(R"(<tr data-layer="2">.*dead_units \(3×, last at step 200\))");
  EXPECT_TRUE(std::regex_search(verdicts, row2)) << verdicts;
  const std::regex row0(
      R"(<tr data-layer="0"><td>layer 0</td><td>linear</td><td class="num">200</td><td class="num">0.007071</td>[^\n]*>healthy<)");
  EXPECT_TRUE(std::regex_search(verdicts, row0)) << verdicts;
  const std::regex net(R"(<tr data-layer="-1">[^\n]*loss_spike)");
  EXPECT_TRUE(std::regex_search(verdicts, net)) << verdicts;

  // Heat map columns: one per checkpoint.
  const std::string heat = plot_markup(html, "singular_values/weights/layer0");
  for (int step : {0, 50, 100, 150, 200})
    EXPECT_NE(heat.find("<title>step " + std::to_string(step) + ":"), std::string::npos) << step;
  // The zero matrix: all its mass in the zero bar, nothing beyond τ, at the last and first checkpoint.
  const std::string zero = plot_markup(html, "spectrum/local/layer0");
  EXPECT_NE(zero.find("data-zero-share=\"1\""), std::string::npos) << zero.substr(0, 400);
  EXPECT_EQ(count_marks(zero), 2u);  // the bar and the first checkpoint's outline
  // An older run's smoothed density is drawn as such, with its caveat.
  EXPECT_NE(plot_markup(html, "spectrum/ggn/layer4").find("data-fallback=\"density\""), std::string::npos);
  EXPECT_NE(section_markup(html, "spectra").find("Smoothed estimate"), std::string::npos);
  // The status box names the rules that fired.
  EXPECT_NE(section_markup(html, "status").find("data-status=\"alarms\""), std::string::npos);
  // Alarms: one circle each.
  EXPECT_EQ(count_marks(plot_markup(html, "alarms")), 4u);

  const std::string chromium = chromium_exe();
  if (chromium.empty())
    GTEST_SKIP() << "no headless Chromium installed (apt-get install chromium; scripts/setup-common.sh lists it "
                    "among the test packages): the DOM check is skipped, the file checks above passed";
  const std::string dom = dump_dom(tmp, path);
  ASSERT_NE(dom.find("</html>"), std::string::npos) << dom.substr(0, 500);
  for (const std::string& name : kFullPlots) {
    const std::string svg = plot_markup(dom, name);
    EXPECT_FALSE(svg.empty()) << "plot " << name << " missing from the DOM";
    EXPECT_GT(count_marks(svg), 0u) << "plot " << name << " has no data marks in the DOM";
  }
  EXPECT_NE(dom.find("data-table=\"verdicts\""), std::string::npos);
  EXPECT_NE(section_markup(dom, "status").find("data-rule=\"dead_units\""), std::string::npos);
  EXPECT_NE(dom.find("data-table=\"summary\""), std::string::npos);
  expect_no_urls(dom);
}

TEST(Report, OnlyMetricsGivesNoDataSections) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  std::filesystem::create_directories(run);
  {
    cn::JsonLinesWriter m(run + "/metrics.jsonl");
    for (int step = 0; step <= 50; step += 10) m.write({{"step", step}, {"loss", 1.0 / (1 + step)}});
  }
  // A torn last line (a crash mid-write) is skipped.
  std::ofstream(run + "/metrics.jsonl", std::ios::app) << "{\"step\": 60, \"lo";
  cn::write_report(run);
  const std::string html = cn::read_file(run + "/report.html");
  expect_no_urls(html);
  EXPECT_GT(count_marks(plot_markup(html, "quality")), 0u);
  for (const char* section :
       {"depth", "layers", "activations", "curvature", "spectra", "singular", "alarms", "verdicts"}) {
    const std::string text = section_markup(html, section);
    EXPECT_FALSE(text.empty()) << section;
    EXPECT_NE(text.find("no data"), std::string::npos) << section << ": " << text;
    EXPECT_EQ(text.find("<svg"), std::string::npos) << section;
  }
  EXPECT_NE(section_markup(html, "loss").find("quality metrics (eval.jsonl): no data"), std::string::npos);
  EXPECT_NE(section_markup(html, "loss").find("learning rate: no data"), std::string::npos);

  const std::string chromium = chromium_exe();
  if (chromium.empty()) GTEST_SKIP() << "no headless Chromium installed: the DOM check is skipped";
  const std::string dom = dump_dom(tmp, run + "/report.html");
  EXPECT_GT(count_marks(plot_markup(dom, "quality")), 0u);
  EXPECT_NE(section_markup(dom, "spectra").find("no data"), std::string::npos);
}

TEST(Report, EmptyDirectoryAndBrokenSpectraStillGiveAReport) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  std::filesystem::create_directories(run + "/spectra");
  cn::test::write_text(run + "/spectra/step_10.safetensors", "not a safetensors file");
  cn::test::write_text(run + "/alarms.jsonl", "");
  cn::write_report(run);
  const std::string html = cn::read_file(run + "/report.html");
  EXPECT_NE(section_markup(html, "loss").find("no data"), std::string::npos);
  EXPECT_NE(section_markup(html, "spectra").find("unreadable"), std::string::npos);
  EXPECT_NE(section_markup(html, "alarms").find("no alarms"), std::string::npos);
  EXPECT_NE(section_markup(html, "status").find("data-status=\"healthy\""), std::string::npos);
  EXPECT_EQ(html.find("data-plot="), std::string::npos);
}

// ---- the status box ---------------------------------------------------------------------------

namespace {

// A small run: metrics every 10 steps up to `last_step`, an empty alarms.jsonl, a config.
void make_small_run(const std::string& run, int last_step) {
  std::filesystem::create_directories(run);
  cn::test::write_text(run + "/config.toml",
                       "[data]\ndataset = \"spirals\"\n[model]\nhidden = [16, 16]\nactivation = \"tanh\"\n"
                       "init = \"xavier_normal\"\n[optim]\nname = \"sgd\"\nlr = 0.05\n[schedule]\nkind = \"cosine\"\n");
  cn::test::write_text(run + "/meta.json", R"({"version":"0.1.0","device":"cpu","dtype":"float32","seed":3})");
  cn::JsonLinesWriter m(run + "/metrics.jsonl");
  for (int step = 10; step <= last_step; step += 10) m.write({{"step", step}, {"loss", 1.0 / step}, {"lr", 0.05}});
  cn::test::write_text(run + "/alarms.jsonl", "");
}

std::string status_of(const std::string& html) {
  static const std::regex status(R"re(data-section="status" data-status="([a-z]+)")re");
  std::smatch m;
  return std::regex_search(html, m, status) ? m[1].str() : "";
}

}  // namespace

TEST(Report, StatusHealthyAndTheRunSummary) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  make_small_run(run, 100);
  const std::string html = cn::render_report(run);
  EXPECT_EQ(status_of(html), "healthy");
  EXPECT_NE(section_markup(html, "status").find("healthy: no alarms"), std::string::npos);
  // The status box comes before everything else.
  EXPECT_LT(html.find("data-section=\"status\""), html.find("data-section=\"summary\""));
  EXPECT_LT(html.find("data-section=\"summary\""), html.find("data-section=\"loss\""));
  const std::string summary = section_markup(html, "summary");
  for (const char* want : {"hidden [16, 16], tanh", "init xavier_normal", ">sgd<", ">0.05<", ">cosine", "spirals"})
    EXPECT_NE(summary.find(want), std::string::npos) << want << "\n" << summary;
  // A config from a newer curvnet with keys this one does not know: the rest still reads.
  cn::test::write_text(
      run + "/config.toml",
      "[model]\nhidden = [8]\nfuture_gain = 2.0\n[optim]\nname = \"adam\"\n[alarms]\nnew_rule_high = 3\n");
  const std::string newer = section_markup(cn::render_report(run), "summary");
  EXPECT_NE(newer.find("hidden [8]"), std::string::npos) << newer;
  EXPECT_NE(newer.find("left out:"), std::string::npos) << newer;
  for (const char* key : {" model.future_gain", " alarms.new_rule_high"})
    EXPECT_NE(newer.find(key), std::string::npos) << key << "\n" << newer;
  // No alarms.jsonl: the health is unknown, not "healthy".
  std::filesystem::remove(run + "/alarms.jsonl");
  EXPECT_EQ(status_of(cn::render_report(run)), "unknown");
}

TEST(Report, StatusGroupsAlarmsByRuleWithAdvice) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  make_small_run(run, 100);
  {
    cn::JsonLinesWriter a(run + "/alarms.jsonl");
    a.write({{"step", 40}, {"layer", 2}, {"rule", "dead_units"}, {"message", "m"}, {"advice", "lower the bias"}});
    a.write({{"step", 20}, {"layer", 0}, {"rule", "dead_units"}, {"message", "m"}, {"advice", "lower the bias"}});
    a.write({{"step", 30}, {"layer", 0}, {"rule", "vanishing_by_depth"}, {"message", "first/last 1e-3"}});
    a.write({{"step", 60},
             {"layer", nullptr},
             {"rule", "loss_plateau"},
             {"message", "flat"},
             {"advice", "raise the learning rate"}});
  }
  const std::string html = cn::render_report(run);
  EXPECT_EQ(status_of(html), "alarms");
  const std::string box = section_markup(html, "status");
  const std::regex dead(
      R"re(<tr data-rule="dead_units"><td[^>]*>dead_units</td><td>0, 2</td><td class="num">20</td><td class="num">2</td><td class="advice">lower the bias</td>)re");
  EXPECT_TRUE(std::regex_search(box, dead)) << box;
  EXPECT_TRUE(std::regex_search(
      box,
      std::regex(
          R"re(<tr data-rule="loss_plateau"><td[^>]*>loss_plateau</td><td>network</td><td class="num">60</td>.*raise the learning rate)re")))
      << box;
  // A row without advice still shows its rule; rules in order of first firing.
  EXPECT_NE(box.find("data-rule=\"vanishing_by_depth\""), std::string::npos);
  EXPECT_LT(box.find("data-rule=\"dead_units\""), box.find("data-rule=\"vanishing_by_depth\""));
  EXPECT_LT(box.find("data-rule=\"vanishing_by_depth\""), box.find("data-rule=\"loss_plateau\""));
  // The full alarm table shows the advice too.
  EXPECT_NE(section_markup(html, "alarms").find("<td>raise the learning rate</td>"), std::string::npos);
}

TEST(Report, StatusDivergedNamesStepAndTensorAndDrawsTheLossUpToIt) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  make_small_run(run, 30);
  {
    cn::JsonLinesWriter a(run + "/alarms.jsonl");
    a.write({{"step", 5}, {"layer", nullptr}, {"rule", "grad_explosion"}, {"message", "big"}});
    a.write({{"step", 37},
             {"layer", 2},
             {"rule", "nonfinite"},
             {"pass", "backward"},
             {"tensor", "2.weight.grad"},
             {"value", nullptr},
             {"value_status", "nan"},
             {"message", "non-finite value (nan) first seen in the backward pass"}});
  }
  const std::string html = cn::render_report(run);
  EXPECT_EQ(status_of(html), "diverged");
  const std::string box = section_markup(html, "status");
  EXPECT_NE(box.find("diverged at step 37"), std::string::npos) << box;
  EXPECT_NE(box.find("<code>2.weight.grad</code> in the backward pass (layer 2)"), std::string::npos) << box;
  EXPECT_NE(box.find("data-rule=\"grad_explosion\""), std::string::npos);  // the other alarms too
  // The loss: the three logged steps, then the marker at the step the run stopped.
  const std::string q = plot_markup(html, "quality");
  EXPECT_EQ(count_marks(q), 4u) << q;  // a path and three points
  EXPECT_NE(q.find("class=\"marker\""), std::string::npos);
  EXPECT_NE(q.find("diverged at step 37"), std::string::npos);

  // Without the alarm row, a non-finite logged loss marks the step.
  cn::test::write_text(run + "/alarms.jsonl", "");
  std::ofstream(run + "/metrics.jsonl", std::ios::app) << R"({"step": 40, "loss": null, "loss_status": "nan"})"
                                                       << "\n";
  EXPECT_NE(section_markup(cn::render_report(run), "status").find("diverged at step 40"), std::string::npos);
}

// ---- spectra ----------------------------------------------------------------------------------

namespace {

// Gauss quadrature of `probes` probes, each with `per` nodes: node j of probe p is
// values[(p * per + j) % values.size()], weights equal within a probe (each probe sums to 1/probes).
struct Quadrature {
  std::vector<double> nodes, weights, steps;
};
Quadrature quadrature(const std::vector<double>& values, int probes, int per) {
  Quadrature q;
  for (int p = 0; p < probes; ++p) {
    for (int j = 0; j < per; ++j) {
      q.nodes.push_back(values[(p * per + j) % values.size()]);
      q.weights.push_back(1.0 / (probes * per) * (j % 2 ? 1.5 : 0.5));  // unequal within the probe
    }
    q.steps.push_back(per);
  }
  return q;
}

double share_where(const Quadrature& q, const std::function<bool(double)>& in) {
  double s = 0, t = 0;
  for (size_t i = 0; i < q.nodes.size(); ++i) {
    t += q.weights[i];
    if (in(q.nodes[i])) s += q.weights[i];
  }
  return s / t;
}

double attr(const std::string& svg, const std::string& name) {
  const std::regex re(name + "=\"([^\"]+)\"");
  std::smatch m;
  return std::regex_search(svg, m, re) ? std::stod(m[1].str()) : NAN;
}

// Sum of data-share over the marks with class `cls` ("mark bar pos").
double bar_sum(const std::string& svg, const std::string& cls) {
  const std::regex re("class=\"" + cls + "\" data-share=\"([^\"]+)\"");
  double s = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    s += std::stod((*it)[1].str());
  return s;
}

}  // namespace

TEST(Report, SpectraDrawMassAtZeroAndEachSignAsItIs) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  make_small_run(run, 100);
  std::filesystem::create_directories(run + "/spectra");
  const double tau = 1e-6;
  // A PSD, rank-deficient block: zeros (some just inside ±τ) and positive values over 6 decades.
  const std::vector<double> psd = {0, 0, 3e-7, -5e-7, 0, 1e-4, 2e-3, 0.5, 0, 7.0, -2e-7, 40.0, 0};
  // An indefinite block.
  const std::vector<double> indef = {-3.0, -0.02, 0, 0.1, 1.5, 9e-7, 20.0, -4e-5, 0.3};
  const Quadrature qp = quadrature(psd, 10, 8), qi = quadrature(indef, 10, 6);
  for (int step : {0, 100}) {
    cn::SafetensorsWriter w;
    w.add<double>("loss.2.ritz_nodes", {static_cast<int64_t>(qp.nodes.size())}, qp.nodes);
    w.add<double>("loss.2.ritz_weights", {static_cast<int64_t>(qp.weights.size())}, qp.weights);
    w.add<double>("loss.2.ritz_probe_steps", {static_cast<int64_t>(qp.steps.size())}, qp.steps);
    w.add<double>("loss.2.tau", {1}, std::vector<double>{tau});
    w.add<double>("loss.0.ritz_nodes", {static_cast<int64_t>(qi.nodes.size())}, qi.nodes);
    w.add<double>("loss.0.ritz_weights", {static_cast<int64_t>(qi.weights.size())}, qi.weights);
    w.add<double>("loss.0.ritz_probe_steps", {static_cast<int64_t>(qi.steps.size())}, qi.steps);
    w.add<double>("loss.0.tau", {1}, std::vector<double>{tau});
    // A dense block whose τ comes from its diagnostics row.
    w.add<double>("loss.4.eigenvalues", {6}, std::vector<double>{-1e-9, 0, 2e-9, 0.5, 1.0, 2.0});
    w.write(run + "/spectra/step_" + std::to_string(step) + ".safetensors");
  }
  {
    cn::JsonLinesWriter d(run + "/diagnostics.jsonl");
    d.write({{"step", 100},
             {"layer", 4},
             {"kind", "loss"},
             {"tau", 1e-8},
             {"near_zero_share", 0.5},
             {"negative_share", 0.0},
             {"lambda_max", 2.0}});
  }
  const std::string html = cn::render_report(run);

  // The PSD block: no negative mass, no negative panel; the zero bar is the weights' share in ±τ.
  const std::string p = plot_markup(html, "spectrum/loss/layer2");
  ASSERT_FALSE(p.empty());
  const double zero_p = share_where(qp, [&](double v) { return std::fabs(v) <= tau; });
  EXPECT_GT(zero_p, 0.3);
  EXPECT_NEAR(attr(p, "data-zero-share"), zero_p, 1e-3);
  EXPECT_NEAR(bar_sum(p, "mark bar zero"), zero_p, 1e-3);
  EXPECT_EQ(attr(p, "data-negative-share"), 0.0);
  EXPECT_EQ(p.find("mark bar neg"), std::string::npos);
  EXPECT_EQ(p.find("λ &lt; −τ</text>"), std::string::npos) << "a PSD block has no negative panel";
  EXPECT_NEAR(bar_sum(p, "mark bar pos"), 1 - zero_p, 3e-3);
  EXPECT_NE(p.find("±"), std::string::npos) << "the probes' standard error";
  EXPECT_GT(count_marks(p), 0u);

  // The indefinite block: both sides, each with the weights' share.
  const std::string q = plot_markup(html, "spectrum/loss/layer0");
  const double neg_i = share_where(qi, [&](double v) { return v < -tau; });
  const double zero_i = share_where(qi, [&](double v) { return std::fabs(v) <= tau; });
  EXPECT_NEAR(attr(q, "data-negative-share"), neg_i, 1e-3);
  EXPECT_NEAR(bar_sum(q, "mark bar neg"), neg_i, 3e-3);
  EXPECT_NEAR(attr(q, "data-zero-share"), zero_i, 1e-3);
  EXPECT_NE(q.find("λ &lt; −τ</text>"), std::string::npos);

  // The dense block: τ from diagnostics.jsonl, 3 of 6 eigenvalues within it.
  const std::string d = plot_markup(html, "spectrum/loss/layer4");
  EXPECT_DOUBLE_EQ(attr(d, "data-tau"), 1e-8);
  EXPECT_NEAR(attr(d, "data-zero-share"), 0.5, 1e-9);
  EXPECT_NE(section_markup(html, "spectra").find("near_zero_share 0.5"), std::string::npos);
  EXPECT_EQ(section_markup(html, "spectra").find("Smoothed estimate"), std::string::npos);
}

TEST(Report, TwelveSeriesAreDistinguishable) {
  TempDir tmp;
  const std::string run = tmp.file("run");
  make_small_run(run, 50);
  {
    cn::JsonLinesWriter s(run + "/stats.jsonl");
    for (int step = 10; step <= 50; step += 10)
      for (int layer = 0; layer < 12; ++layer)
        s.write({{"step", step}, {"layer", layer}, {"grad_l2", (layer + 1) * 0.01 * step}});
  }
  const std::string svg = plot_markup(cn::render_report(run), "layer/grad_l2");
  const std::regex path(
      R"re(<path class="mark line" data-series="[^"]*" fill="none" stroke="([^"]+)"( stroke-dasharray="([^"]+)")?)re");
  std::set<std::string> styles;
  size_t paths = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), path); it != std::sregex_iterator(); ++it, ++paths)
    styles.insert((*it)[1].str() + "|" + (*it)[3].str());
  EXPECT_EQ(paths, 12u);
  EXPECT_EQ(styles.size(), 12u);
  // Neighbours differ in colour and in dash pattern.
  for (size_t i = 0; i + 1 < 12; ++i) {
    EXPECT_NE(cn::report::series_style(i).color, cn::report::series_style(i + 1).color);
    EXPECT_NE(cn::report::series_style(i).dash, cn::report::series_style(i + 1).dash);
  }
}

// ---- several runs -----------------------------------------------------------------------------

namespace {

// A run with stats at step 0 and 100 for linear layers 0, 2, 4 and activation layers 1, 3:
// activation variance shrinking by `shrink` per layer, and λmax rows.
void make_depth_run(const std::string& run, double shrink) {
  make_small_run(run, 100);
  cn::JsonLinesWriter s(run + "/stats.jsonl"), d(run + "/diagnostics.jsonl");
  for (int step : {0, 100}) {
    for (int layer : {0, 2, 4}) s.write({{"step", step}, {"layer", layer}, {"grad_l2", 0.1 * (layer + 1)}});
    for (int layer : {1, 3}) s.write({{"step", step}, {"layer", layer}, {"act_var", std::pow(shrink, -layer)}});
    d.write({{"step", step}, {"layer", 2}, {"kind", "loss"}, {"lambda_max", 3.0 + step}});
  }
}

}  // namespace

TEST(Report, ComparisonOverlaysRunsInChromium) {
  TempDir tmp;
  make_depth_run(tmp.file("plain_uniform"), 6.0);
  make_depth_run(tmp.file("he_normal"), 1.0);
  const std::string out = tmp.file("cmp.html");
  cn::write_comparison({tmp.file("plain_uniform"), tmp.file("he_normal")}, out);
  const std::string html = cn::read_file(out);
  expect_no_urls(html);
  const std::string runs = section_markup(html, "runs");
  EXPECT_NE(runs.find("data-run=\"plain_uniform\" data-status=\"healthy\""), std::string::npos) << runs;
  EXPECT_NE(runs.find("data-run=\"he_normal\""), std::string::npos);
  for (const char* name : {"compare/loss", "compare/grad_l2", "compare/act_var", "compare/lambda_max"}) {
    const std::string svg = plot_markup(html, name);
    EXPECT_GT(count_marks(svg), 0u) << name;
    EXPECT_NE(svg.find("data-series=\"plain_uniform"), std::string::npos) << name;
    EXPECT_NE(svg.find("data-series=\"he_normal"), std::string::npos) << name;
  }
  // Activation variance against depth: each run's step-0 points at its own values.
  const std::string act = plot_markup(html, "compare/act_var");
  EXPECT_NE(act.find("plain_uniform step 0: layer 3, " + cn::report::num(std::pow(6.0, -3))), std::string::npos) << act;
  EXPECT_NE(act.find("he_normal step 0: layer 3, 1<"), std::string::npos);

  const std::string chromium = chromium_exe();
  if (chromium.empty()) GTEST_SKIP() << "no headless Chromium installed: the DOM check is skipped";
  const std::string dom = dump_dom(tmp, out);
  for (const char* name : {"compare/loss", "compare/grad_l2", "compare/act_var", "compare/lambda_max"})
    EXPECT_GT(count_marks(plot_markup(dom, name)), 0u) << name;
}

TEST(Report, CommandLineOneRunSeveralRunsAndBadInput) {
  TempDir tmp;
  make_depth_run(tmp.file("a"), 2.0);
  make_depth_run(tmp.file("b"), 3.0);
  std::string out;
  const std::string exe = cn::test::curvnet_exe();
  ASSERT_EQ(cn::test::run_command(exe + " report " + tmp.file("a"), &out), 0) << out;
  EXPECT_TRUE(std::filesystem::exists(tmp.file("a") + "/report.html"));
  ASSERT_EQ(cn::test::run_command(exe + " report " + tmp.file("a") + " --out " + tmp.file("one.html"), &out), 0);
  EXPECT_TRUE(std::filesystem::exists(tmp.file("one.html")));
  // Several runs: --out, or the default file in the current directory, named on stdout.
  ASSERT_EQ(cn::test::run_command(
                exe + " report " + tmp.file("a") + " " + tmp.file("b") + " --out " + tmp.file("ab.html"), &out),
            0)
      << out;
  EXPECT_NE(cn::read_file(tmp.file("ab.html")).find("data-plot=\"compare/loss\""), std::string::npos);
  std::filesystem::create_directories(tmp.file("cwd"));
  ASSERT_EQ(cn::test::run_command(
                "cd " + tmp.file("cwd") + " && " + exe + " report " + tmp.file("a") + " " + tmp.file("b"), &out),
            0);
  EXPECT_NE(out.find(cn::kComparisonFile), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(tmp.file("cwd") + "/" + cn::kComparisonFile));
  // A path that is not a run directory: one line naming it, exit 2, nothing written.
  for (const std::string& bad : {tmp.file("nothing"), tmp.file("cwd")}) {
    EXPECT_EQ(
        cn::test::run_command(exe + " report " + tmp.file("a") + " " + bad + " --out " + tmp.file("x.html"), &out), 2);
    EXPECT_NE(out.find(bad + ": not a run directory"), std::string::npos) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    EXPECT_FALSE(std::filesystem::exists(tmp.file("x.html")));
  }
}
