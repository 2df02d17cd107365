// The packaged tabular suite: data sets read from files that Debian packages install
// (weka's ARFF examples, statsmodels' CSVs, palmerpenguins, vega cars, sklearn's linnerud)
// and from r-cran-mlbench's .rda files exported once to CSV (scripts/export-mlbench.R).
// docs/datasets.md "The packaged suite" is the reference of every set.
#include "data/suite.h"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/table.h"
#include "data/text.h"

namespace cn {
namespace {

constexpr Task C = Task::classification;
constexpr Task R = Task::regression;

const char* const kWekaLicence = "weka: GPL-2+; data: UCI repository (no separate statement)";
const char* const kMlbenchLicence = "r-cran-mlbench: GPL-2; data: UCI repository";
const char* const kStatsmodelsPD = "statsmodels data.py COPYRIGHT: public domain";
const char* const kStatsmodelsPermission = "statsmodels data.py COPYRIGHT: used with express permission of the author";

const std::vector<SuiteSet>& table() {
  // name, task, origin, format, files, targets, drop, nominal (text/JSON files), rule,
  // n_samples, n_features, n_outputs, licence, description
  // clang-format off
  static const std::vector<SuiteSet> sets = {
      // ---- classification ----
      {"pima-diabetes", C, Origin::weka, Format::arff, {"diabetes.arff"}, {"class"}, {}, {}, TargetRule::column, 768,
       8, 2, kWekaLicence, "Pima Indians diabetes onset"},
      {"glass", C, Origin::weka, Format::arff, {"glass.arff"}, {"Type"}, {}, {}, TargetRule::column, 214, 9, 6,
       kWekaLicence, "glass type from oxide content (6 of the 7 declared types occur)"},
      {"ionosphere", C, Origin::weka, Format::arff, {"ionosphere.arff"}, {"class"}, {}, {}, TargetRule::column, 351,
       34, 2, kWekaLicence, "radar returns from the ionosphere, good or bad"},
      {"german-credit", C, Origin::weka, Format::arff, {"credit-g.arff"}, {"class"}, {}, {}, TargetRule::column, 1000,
       61, 2, kWekaLicence, "German credit risk: 7 numeric and 13 nominal attributes"},
      {"image-segmentation", C, Origin::weka, Format::arff, {"segment-challenge.arff", "segment-test.arff"},
       {"class"}, {}, {}, TargetRule::column, 2310, 19, 7, kWekaLicence,
       "outdoor image regions, 7 classes (weka's two parts, 1500 + 810 rows, joined)"},
      {"house-votes", C, Origin::weka, Format::arff, {"vote.arff"}, {"Class"}, {}, {}, TargetRule::column, 435, 48, 2,
       kWekaLicence, "1984 US congressional votes (y/n/? per bill), party"},
      {"soybean", C, Origin::weka, Format::arff, {"soybean.arff"}, {"class"}, {}, {}, TargetRule::column, 683, 133,
       19, kWekaLicence, "soybean disease: 35 nominal attributes, ? as a level"},
      {"breast-cancer-ljubljana", C, Origin::weka, Format::arff, {"breast-cancer.arff"}, {"Class"}, {}, {},
       TargetRule::column, 286, 43, 2, kWekaLicence, "Ljubljana breast cancer recurrence: 9 nominal attributes"},
      {"unbalanced", C, Origin::weka, Format::arff, {"unbalanced.arff"}, {"Outcome"}, {}, {}, TargetRule::column, 856,
       32, 2, kWekaLicence, "bioassay activity, strongly imbalanced classes"},
      {"sonar", C, Origin::mlbench, Format::csv, {"Sonar.csv"}, {"Class"}, {}, {}, TargetRule::column, 208, 60, 2,
       kMlbenchLicence, "sonar returns, mine or rock"},
      {"vehicle", C, Origin::mlbench, Format::csv, {"Vehicle.csv"}, {"Class"}, {}, {}, TargetRule::column, 846, 18, 4,
       kMlbenchLicence, "vehicle silhouettes, 4 vehicle types"},
      {"vowel", C, Origin::mlbench, Format::csv, {"Vowel.csv"}, {"Class"}, {}, {"V1"}, TargetRule::column, 990, 24,
       11, kMlbenchLicence, "vowel recognition: speaker (15 levels) and 9 acoustic features"},
      {"satellite", C, Origin::mlbench, Format::csv, {"Satellite.csv"}, {"classes"}, {}, {}, TargetRule::column, 6435,
       36, 6, kMlbenchLicence, "Landsat multi-spectral 3x3 neighbourhoods, 6 soil types"},
      {"letter", C, Origin::mlbench, Format::csv, {"LetterRecognition.csv"}, {"lettr"}, {}, {}, TargetRule::column,
       20000, 16, 26, kMlbenchLicence, "letter recognition from 16 glyph statistics"},
      {"shuttle", C, Origin::mlbench, Format::csv, {"Shuttle.csv"}, {"Class"}, {}, {}, TargetRule::column, 58000, 9,
       7, kMlbenchLicence, "Statlog shuttle radiator states (very imbalanced)"},
      {"dna", C, Origin::mlbench, Format::csv, {"DNA.csv"}, {"Class"}, {}, {"*"}, TargetRule::column, 3186, 360, 3,
       kMlbenchLicence, "primate splice junctions: 180 binary indicator factors"},
      {"zoo", C, Origin::mlbench, Format::csv, {"Zoo.csv"}, {"type"}, {}, {}, TargetRule::column, 101, 16, 7,
       kMlbenchLicence, "animal type from 15 yes/no traits and the number of legs"},
      {"penguins", C, Origin::penguins, Format::csv, {"penguins.csv"}, {"species"}, {"year"}, {"island", "sex"},
       TargetRule::column, 342, 10, 3, "palmerpenguins: data CC0", "Palmer penguins species"},
      {"anes96-vote", C, Origin::statsmodels, Format::tsv, {"anes96/anes96.csv"}, {"vote"}, {}, {},
       TargetRule::column, 944, 9, 2, kStatsmodelsPD, "1996 American National Election Study: vote Clinton or Dole"},
      {"breast-cancer-wisconsin", C, Origin::mlbench, Format::csv, {"BreastCancer.csv"}, {"Class"}, {"Id"}, {"Class"},
       TargetRule::column, 683, 9, 2, kMlbenchLicence, "original Wisconsin breast cancer: 9 ordinal scores 1..10"},
      {"affairs-any", C, Origin::statsmodels, Format::csv, {"fair/fair.csv"}, {"affairs"}, {}, {},
       TargetRule::positive, 6366, 8, 2, "statsmodels data.py COPYRIGHT: included with permission of the author",
       "Fair's affairs survey: any time in affairs (affairs > 0)"},
      {"cars-origin", C, Origin::vega, Format::json, {"cars.json"}, {"Origin"}, {"Name", "Year"}, {"Origin"},
       TargetRule::column, 392, 6, 3, "python3-vega-datasets: public domain", "1970s cars: origin from 6 measures"},
      // ---- regression ----
      {"linnerud", R, Origin::sklearn, Format::linnerud, {"linnerud_exercise.csv", "linnerud_physiological.csv"}, {},
       {}, {}, TargetRule::column, 20, 3, 3, "python3-sklearn: BSD-3-Clause",
       "Linnerud: 3 exercises -> 3 physiological measures (multi-output)"},
      {"boston-housing", R, Origin::mlbench, Format::csv, {"BostonHousing2.csv"}, {"cmedv"}, {"town", "tract", "medv",
       "b"}, {"chas"}, TargetRule::column, 506, 15, 1, kMlbenchLicence,
       "Boston housing, corrected median value cmedv (without the feature b)"},
      {"cpu", R, Origin::weka, Format::arff, {"cpu.arff"}, {"class"}, {}, {}, TargetRule::column, 209, 6, 1,
       kWekaLicence, "CPU relative performance (PRP)"},
      {"ozone", R, Origin::mlbench, Format::csv, {"Ozone.csv"}, {"V4"}, {}, {"V1", "V2", "V3"}, TargetRule::column,
       203, 57, 1, kMlbenchLicence, "Los Angeles daily maximum ozone (month, day, weekday as factors)"},
      {"servo", R, Origin::mlbench, Format::csv, {"Servo.csv"}, {"Class"}, {}, {"Motor", "Screw", "Pgain", "Vgain"},
       TargetRule::column, 167, 19, 1, kMlbenchLicence, "servo rise time from 4 factors"},
      {"randhie", R, Origin::statsmodels, Format::csv, {"randhie/randhie.csv"}, {"mdvis"}, {}, {}, TargetRule::column,
       20190, 9, 1, kStatsmodelsPD, "RAND health insurance experiment: outpatient visits"},
      {"affairs", R, Origin::statsmodels, Format::csv, {"fair/fair.csv"}, {"affairs"}, {}, {}, TargetRule::column,
       6366, 8, 1, "statsmodels data.py COPYRIGHT: included with permission of the author",
       "Fair's affairs survey: time spent in affairs"},
      {"star98", R, Origin::statsmodels, Format::csv, {"star98/star98.csv"}, {"PR50M", "MATHTOT"}, {}, {},
       TargetRule::share, 303, 20, 1,
       "statsmodels data.py COPYRIGHT: used with express permission; the author retains all rights",
       "California STAR 1998 maths: share of pupils above the median (PR50M / MATHTOT)"},
      {"grunfeld", R, Origin::statsmodels, Format::csv, {"grunfeld/grunfeld.csv"}, {"invest"}, {}, {"firm"},
       TargetRule::column, 220, 14, 1, kStatsmodelsPD, "Grunfeld investment of 11 US firms, 1935-1954"},
      {"us-macro", R, Origin::statsmodels, Format::csv, {"macrodata/macrodata.csv"}, {"realinv"}, {}, {},
       TargetRule::column, 203, 13, 1, kStatsmodelsPD, "US quarterly macro data 1959-2009: real investment"},
      {"engel", R, Origin::statsmodels, Format::csv, {"engel/engel.csv"}, {"foodexp"}, {}, {}, TargetRule::column,
       235, 1, 1, kStatsmodelsPD, "Engel food expenditure from income"},
      {"penguins-mass", R, Origin::penguins, Format::csv, {"penguins.csv"}, {"body_mass_g"}, {"year"}, {"species",
       "island", "sex"}, TargetRule::column, 342, 12, 1, "palmerpenguins: data CC0", "Palmer penguins body mass"},
      {"cars-mpg", R, Origin::vega, Format::json, {"cars.json"}, {"Miles_per_Gallon"}, {"Name", "Year"}, {"Origin"},
       TargetRule::column, 392, 8, 1, "python3-vega-datasets: public domain", "1970s cars: miles per gallon"},
      {"state-crime", R, Origin::statsmodels, Format::csv, {"statecrime/statecrime.csv"}, {"murder"}, {"state"}, {},
       TargetRule::column, 51, 6, 1, kStatsmodelsPD, "US states 2009: murder rate"},
      {"longley", R, Origin::statsmodels, Format::csv, {"longley/longley.csv"}, {"TOTEMP"}, {"Obs"}, {},
       TargetRule::column, 16, 6, 1, kStatsmodelsPD, "Longley's ill-conditioned employment data"},
      {"stackloss", R, Origin::statsmodels, Format::csv, {"stackloss/stackloss.csv"}, {"STACKLOSS"}, {}, {},
       TargetRule::column, 21, 3, 1, kStatsmodelsPD, "Brownlee's stack loss plant data"},
      {"ccard", R, Origin::statsmodels, Format::csv, {"ccard/ccard.csv"}, {"AVGEXP"}, {}, {}, TargetRule::column, 72,
       4, 1, kStatsmodelsPermission, "credit card spending"},
      {"scotvote", R, Origin::statsmodels, Format::csv, {"scotland/scotvote.csv"}, {"YES"}, {"COUNCILDIST"}, {},
       TargetRule::column, 32, 7, 1, kStatsmodelsPermission, "Scottish 1997 devolution referendum: share voting yes"},
  };
  // clang-format on
  return sets;
}

std::string join(const std::string& dir, const std::string& file) {
  return (std::filesystem::path(dir) / file).string();
}

// mlbench's data set name in R (the export's file stem).
std::string r_name(const SuiteSet& s) { return std::filesystem::path(s.files[0]).stem().string(); }

Table read_one(const SuiteSet& s, const std::string& path) {
  // A class target and the columns left out are read as labels (in text and JSON files; ARFF
  // declares its types), so an identifier or a name column never has to be a number.
  std::vector<std::string> nominal = s.nominal;
  nominal.insert(nominal.end(), s.drop.begin(), s.drop.end());
  if (s.task == Task::classification && s.rule == TargetRule::column)
    nominal.insert(nominal.end(), s.targets.begin(), s.targets.end());
  switch (s.format) {
    case Format::arff:
      return read_arff_table(path);
    case Format::csv:
      return read_text_table(path, ',', nominal);
    case Format::tsv:
      return read_text_table(path, '\t', nominal);
    case Format::json:
      return read_json_table(path, nominal);
    case Format::linnerud:
      return read_text_table(path, ' ', nominal);
  }
  return {};
}

// Appends b's rows to a (same columns, same declared levels), as for weka's two segment files.
void append_rows(Table* a, const Table& b) {
  bool same = a->columns.size() == b.columns.size();
  for (size_t j = 0; same && j < b.columns.size(); ++j)
    same = a->columns[j].name == b.columns[j].name && a->columns[j].nominal == b.columns[j].nominal &&
           a->columns[j].levels == b.columns[j].levels;
  if (!same) throw InputError(b.path + ": expected the same attributes as " + a->path);
  for (size_t j = 0; j < b.columns.size(); ++j)
    a->columns[j].values.insert(a->columns[j].values.end(), b.columns[j].values.begin(), b.columns[j].values.end());
  a->lines.insert(a->lines.end(), b.lines.begin(), b.lines.end());
}

}  // namespace

const std::vector<SuiteSet>& suite_sets() { return table(); }

const SuiteSet* find_suite_set(const std::string& name) {
  for (const auto& s : table())
    if (name == s.name) return &s;
  return nullptr;
}

std::string system_dir(const std::string& dir) {
  const char* root = std::getenv("CURVNET_DATA_ROOT");
  if (!root || !*root) return dir;
  return (std::filesystem::path(root) / std::filesystem::path(dir).relative_path()).string();
}

std::string data_cache_dir() {
  if (const char* c = std::getenv("CURVNET_DATA_CACHE"); c && *c) return c;
  const char* home = std::getenv("HOME");
  return join(home && *home ? home : ".", ".cache/curvnet/datasets");
}

OriginInfo origin_info(Origin o) {
  switch (o) {
    case Origin::weka:
      return {"/usr/share/doc/weka/examples", "weka"};
    case Origin::statsmodels:
      return {"/usr/lib/python3/dist-packages/statsmodels/datasets", "python3-statsmodels"};
    case Origin::sklearn:
      return {kSklearnDataDir, "python3-sklearn"};
    case Origin::penguins:
      return {"/usr/lib/R/site-library/palmerpenguins/extdata", "r-cran-palmerpenguins"};
    case Origin::vega:
      return {"/usr/lib/python3/dist-packages/vega_datasets/_data", "python3-vega-datasets"};
    case Origin::mlbench:
      return {kMlbenchDataDir, "r-cran-mlbench"};
  }
  return {"", ""};
}

std::string suite_dir(const SuiteSet& s, const std::string& path_override) {
  if (!path_override.empty()) return path_override;
  if (s.origin == Origin::mlbench) return join(data_cache_dir(), "mlbench");
  return system_dir(origin_info(s.origin).dir);
}

std::vector<std::string> suite_files(const SuiteSet& s, const std::string& path_override) {
  std::vector<std::string> out;
  const std::string dir = suite_dir(s, path_override);
  for (const char* f : s.files) out.push_back(join(dir, f));
  return out;
}

std::string suite_package_file(const SuiteSet& s) {
  const OriginInfo o = origin_info(s.origin);
  if (s.origin == Origin::mlbench) return join(o.dir, r_name(s) + ".rda");
  std::string out;
  for (const char* f : s.files) out += (out.empty() ? "" : " + ") + join(o.dir, f);
  return out;
}

std::string suite_install_hint(const SuiteSet& s) {
  const OriginInfo o = origin_info(s.origin);
  if (s.origin != Origin::mlbench) return "apt-get install " + o.package;
  std::error_code ec;
  if (std::filesystem::is_regular_file(system_dir(join(o.dir, r_name(s) + ".rda")), ec))
    return "scripts/setup-study (exports " + r_name(s) + " from r-cran-mlbench to CSV)";
  return "apt-get install r-cran-mlbench, then scripts/setup-study";
}

bool suite_available(const SuiteSet& s, const std::string& path_override) {
  std::error_code ec;
  for (const auto& f : suite_files(s, path_override))
    if (!std::filesystem::is_regular_file(f, ec)) return false;
  return true;
}

Dataset load_suite_set(const SuiteSet& s, const std::string& path_override) {
  const std::vector<std::string> files = suite_files(s, path_override);
  std::error_code ec;
  for (const auto& f : files)
    if (!std::filesystem::is_regular_file(f, ec))
      throw InputError("data.dataset = \"" + std::string(s.name) + "\": " + f + ": file not found; " +
                       suite_install_hint(s) + " brings it");
  Dataset ds;
  if (s.format == Format::linnerud) {
    // Features and targets in two whitespace-separated files of the same rows.
    const Table x = read_one(s, files[0]);
    const Table y = read_one(s, files[1]);
    if (y.rows() != x.rows())
      throw InputError(files[1] + ": expected " + std::to_string(x.rows()) + " rows (as " + files[0] + "), found " +
                       std::to_string(y.rows()));
    Table both = x;
    for (const auto& c : y.columns) both.columns.push_back(c);
    Encoding enc;
    enc.task = s.task;
    for (const auto& c : y.columns) enc.targets.push_back(c.name);
    ds = encode_table(both, enc);
  } else {
    Table t = read_one(s, files[0]);
    for (size_t i = 1; i < files.size(); ++i) append_rows(&t, read_one(s, files[i]));
    Encoding enc;
    enc.task = s.task;
    enc.targets = s.targets;
    enc.drop = s.drop;
    enc.rule = s.rule;
    ds = encode_table(t, enc);
  }
  ds.name = s.name;
  return ds;
}

}  // namespace cn
