// STUDY.toml: parsing, the grid and each point's config (docs/study.md §1-2).
#include "apps/study.h"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "data/dataset.h"

namespace cn::study {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string at(const std::string& file, const toml::node& n) {
  const auto& src = n.source();
  return src.begin.line ? file + ":" + std::to_string(src.begin.line) : file;
}

[[noreturn]] void bad(const std::string& where, const std::string& key, const std::string& msg) {
  throw InputError(where + ": " + key + ": " + msg);
}

std::string read_text(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path + ": cannot read " + what + ": is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot read " + what);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// A value as TOML text (for --set) and as JSON (for index.jsonl).
std::string toml_text(const toml::node& n) {
  std::ostringstream os;
  n.visit([&](auto&& x) { os << toml::toml_formatter(x, toml::format_flags::none); });
  return os.str();
}

json to_json(const toml::node& n) {
  if (auto* v = n.as_string()) return v->get();
  if (auto* v = n.as_integer()) return v->get();
  if (auto* v = n.as_floating_point()) return v->get();
  if (auto* v = n.as_boolean()) return v->get();
  if (auto* a = n.as_array()) {
    json out = json::array();
    for (const auto& e : *a) out.push_back(to_json(e));
    return out;
  }
  return toml_text(n);
}

// Every settable "section.key" of the config: the sections and keys of the resolved defaults.
std::set<std::string> config_keys() {
  std::set<std::string> keys;
  const toml::table t = toml::parse(to_toml(Config{}));
  for (const auto& [sec, node] : t)
    if (const auto* s = node.as_table())
      for (const auto& [k, v] : *s)
        if (!v.is_array_of_tables()) keys.insert(std::string(sec.str()) + "." + std::string(k.str()));
  return keys;
}

int64_t read_positive(const std::string& file, const toml::node& n, const std::string& key, int64_t lo, int64_t hi) {
  const auto* v = n.as_integer();
  if (!v || v->get() < lo || v->get() > hi)
    bad(at(file, n), key, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v->get();
}

void read_sizes(const std::string& file, const toml::table& t, Study& s) {
  for (const auto& [name, node] : t) {
    const std::string key = "study.sizes." + std::string(name.str());
    const auto* spec = node.as_table();
    if (!spec) bad(at(file, node), key, "expected a table { params = N, depth = D }");
    SizeSpec size{std::string(name.str()), 0, 1};
    for (const auto& [k, v] : *spec) {
      if (k == "params")
        size.params = read_positive(file, v, key + ".params", 1, int64_t{1} << 40);
      else if (k == "depth")
        size.depth = read_positive(file, v, key + ".depth", 1, 64);
      else
        bad(at(file, v), key + "." + std::string(k.str()), "unknown key; expected params or depth");
    }
    if (size.params == 0) bad(at(file, node), key, "expected params = N");
    const auto it =
        std::find_if(s.sizes.begin(), s.sizes.end(), [&](const SizeSpec& x) { return x.name == size.name; });
    if (it != s.sizes.end())
      *it = size;
    else
      s.sizes.push_back(size);
  }
}

void read_study_table(const std::string& file, const toml::table& t, Study& s, toml::array* seeds) {
  for (const auto& [k, v] : t) {
    const std::string key = "study." + std::string(k.str());
    if (k == "checkpoints") {
      s.checkpoints = read_positive(file, v, key, 0, 100000);
      if (s.checkpoints == 1) bad(at(file, v), key, "expected 0 (the base's diagnostics.every) or at least 2");
    } else if (k == "threads") {
      s.threads = read_positive(file, v, key, 1, 1024);
    } else if (k == "seeds") {
      if (const auto* n = v.as_integer()) {
        if (n->get() < 1 || n->get() > 100000) bad(at(file, v), key, "expected a count >= 1 or an array of seeds");
        for (int64_t i = 0; i < n->get(); ++i) seeds->push_back(i);
      } else if (const auto* a = v.as_array()) {
        if (a->empty()) bad(at(file, v), key, "expected a non-empty array of seeds");
        for (const auto& e : *a) {
          if (!e.as_integer() || e.as_integer()->get() < 0) bad(at(file, e), key, "expected integer seeds >= 0");
          seeds->push_back(e.as_integer()->get());
        }
      } else {
        bad(at(file, v), key, "expected a count or an array of seeds");
      }
    } else if (k == "sizes") {
      if (!v.as_table()) bad(at(file, v), key, "expected a table of sizes");
      read_sizes(file, *v.as_table(), s);
    } else {
      bad(at(file, v), key, "unknown key; expected checkpoints, seeds, threads or sizes");
    }
  }
}

std::string formatted(const toml::table& t) {
  std::ostringstream os;
  os << toml::toml_formatter(t, toml::format_flags::none);
  return os.str();
}

}  // namespace

std::vector<SizeSpec> default_sizes() { return {{"small", 1000, 1}, {"medium", 10000, 2}, {"huge", 100000, 3}}; }

Study load_study(const std::string& path) {
  Study s;
  s.path = path;
  s.sizes = default_sizes();
  const std::string text = read_text(path, "study file");
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw InputError(path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  toml::table base_table;
  bool have_base = false;
  toml::array seeds;
  const toml::table* grid = nullptr;
  for (const auto& [k, v] : root) {
    if (k == "base") {
      if (const auto* p = v.as_string()) {
        const fs::path base_path = fs::path(path).parent_path() / p->get();
        s.base_origin = base_path.lexically_normal().string();
        std::error_code ec;
        if (!fs::is_regular_file(s.base_origin, ec))
          bad(at(path, v), "base", s.base_origin + ": no such config file (the path is relative to the study file)");
        const std::string base_text = read_text(s.base_origin, "base config");
        try {
          base_table = toml::parse(base_text, s.base_origin);
        } catch (const toml::parse_error& e) {
          throw InputError(s.base_origin + ":" + std::to_string(e.source().begin.line) + ": " +
                           std::string(e.description()));
        }
      } else if (const auto* t = v.as_table()) {
        base_table = *t;
        s.base_origin = path + " [base]";
      } else {
        bad(at(path, v), "base", "expected a config file path (relative to the study file) or a [base] table");
      }
      have_base = true;
    } else if (k == "grid") {
      grid = v.as_table();
      if (!grid) bad(at(path, v), "grid", "expected a table of dotted config keys to arrays");
    } else if (k == "study") {
      if (!v.as_table()) bad(at(path, v), "study", "expected a table");
      read_study_table(path, *v.as_table(), s, &seeds);
    } else {
      bad(at(path, v), std::string(k.str()), "unknown key; expected base, grid or study");
    }
  }
  if (!have_base) s.base_origin = path + " [base]";
  s.base_toml = formatted(base_table);
  // The base alone must be a valid config: its errors are the study's, not a point's. An
  // inline [base] is checked in its formatted form, whose line numbers are not the file's.
  try {
    (void)parse_config(s.base_toml, s.base_origin);
  } catch (const InputError& e) {
    std::string msg = e.what();
    if (!have_base || s.base_origin != path + " [base]") throw;
    const size_t colon = msg.find(": ", s.base_origin.size());
    throw InputError(path + ": [base] " + (colon == std::string::npos ? msg : msg.substr(colon + 2)));
  }
  if (const auto* loss = base_table["loss"].as_table(); loss && loss->contains("kind")) s.base_sets_loss = true;
  if (const auto* train = base_table["train"].as_table(); train && train->contains("eval_every"))
    s.base_sets_eval_every = true;

  const std::set<std::string> keys = config_keys();
  toml::table resolved_grid;
  if (grid)
    for (const auto& [k, v] : *grid) {
      const std::string key(k.str());
      const auto* values = v.as_array();
      if (!values || values->empty()) bad(at(path, v), "grid." + key, "expected a non-empty array of values");
      GridAxis axis{key, {}, {}};
      if (key == "size") {
        for (const auto& e : *values) {
          const auto* name = e.as_string();
          const bool known = name && std::any_of(s.sizes.begin(), s.sizes.end(),
                                                 [&](const SizeSpec& z) { return z.name == name->get(); });
          if (!known) {
            std::string names;
            for (const auto& z : s.sizes) names += (names.empty() ? "" : " ") + z.name;
            bad(at(path, e), "grid.size", "expected one of: " + names);
          }
        }
      } else if (!keys.count(key)) {
        bad(at(path, v), "grid." + key, "not a config key (expected section.key, e.g. \"data.dataset\")");
      }
      if (key == "size" && (grid->contains("model.hidden") || !parse_config(s.base_toml, "").model.layers.empty()))
        bad(at(path, v), "grid.size", "size sets model.hidden: drop model.hidden / [[model.layers]]");
      if (key == "train.seed" && !seeds.empty()) bad(at(path, v), "grid.train.seed", "seeds are given in [study]");
      if (key == "loss.kind") s.base_sets_loss = true;
      if (key == "train.eval_every") s.base_sets_eval_every = true;
      for (const auto& e : *values) {
        axis.toml_values.push_back(toml_text(e));
        axis.json_values.push_back(to_json(e));
      }
      s.axes.push_back(axis);
      resolved_grid.insert(key, *values);
    }
  // data.dataset and size first (a point's name reads data set, then size), the rest as sorted.
  std::stable_sort(s.axes.begin(), s.axes.end(), [](const GridAxis& a, const GridAxis& b) {
    const auto rank = [](const std::string& k) { return k == "data.dataset" ? 0 : k == "size" ? 1 : 2; };
    return rank(a.key) < rank(b.key);
  });
  if (!seeds.empty()) {
    GridAxis axis{"train.seed", {}, {}};
    for (const auto& e : seeds) {
      axis.toml_values.push_back(toml_text(e));
      axis.json_values.push_back(to_json(e));
    }
    s.axes.push_back(axis);
  }

  toml::table study_table;
  study_table.insert("checkpoints", s.checkpoints);
  study_table.insert("threads", s.threads);
  if (!seeds.empty()) study_table.insert("seeds", seeds);
  toml::table sizes;
  for (const auto& z : s.sizes) sizes.insert(z.name, toml::table{{"params", z.params}, {"depth", z.depth}});
  study_table.insert("sizes", sizes);
  toml::table out;
  out.insert("study", study_table);
  out.insert("base", base_table);
  out.insert("grid", resolved_grid);
  s.resolved = "# curvnet study, resolved (docs/study.md): the base inlined, every [study] key present\n" +
               formatted(out) + "\n";
  return s;
}

int64_t grid_size(const Study& s) {
  int64_t n = 1;
  for (const auto& a : s.axes) n *= static_cast<int64_t>(a.toml_values.size());
  return n;
}

namespace {
std::vector<size_t> digits(const Study& s, int64_t index) {
  std::vector<size_t> d(s.axes.size());
  for (size_t i = s.axes.size(); i-- > 0;) {
    const auto n = static_cast<int64_t>(s.axes[i].toml_values.size());
    d[i] = static_cast<size_t>(index % n);
    index /= n;
  }
  return d;
}
}  // namespace

json grid_point(const Study& s, int64_t index) {
  json p = json::object();
  const auto d = digits(s, index);
  for (size_t i = 0; i < s.axes.size(); ++i) p[s.axes[i].key] = s.axes[i].json_values[d[i]];
  return p;
}

int64_t mlp_params(int64_t n_in, int64_t width, int64_t depth, int64_t n_out) {
  return n_in * width + width + (depth - 1) * (width * width + width) + width * n_out + n_out;
}

int64_t width_for_budget(int64_t params, int64_t depth, int64_t n_in, int64_t n_out) {
  int64_t lo = 1, hi = 1;
  while (mlp_params(n_in, hi * 2, depth, n_out) <= params && hi < (int64_t{1} << 24)) hi *= 2;
  hi *= 2;
  while (hi - lo > 1) {  // mlp_params(lo) <= params (or lo = 1), mlp_params(hi) > params
    const int64_t mid = (lo + hi) / 2;
    (mlp_params(n_in, mid, depth, n_out) <= params ? lo : hi) = mid;
  }
  return lo;
}

int64_t curvature_count(int64_t total_steps, int64_t every) {
  return total_steps / every + 1 + (total_steps % every ? 1 : 0);
}

int64_t curvature_every(int64_t total_steps, int64_t checkpoints) {
  if (total_steps <= 0) return 1;
  int64_t lo = 1, hi = total_steps;  // count is non-increasing in every
  if (curvature_count(total_steps, lo) <= checkpoints) return lo;
  while (hi - lo > 1) {  // count(lo) > checkpoints >= count(hi)
    const int64_t mid = (lo + hi) / 2;
    (curvature_count(total_steps, mid) <= checkpoints ? hi : lo) = mid;
  }
  return hi;
}

ResolvedPoint resolve_point(const Study& s, int64_t index, ShapeCache& cache) {
  std::vector<std::string> sets;
  std::string size;
  const auto d = digits(s, index);
  for (size_t i = 0; i < s.axes.size(); ++i) {
    const std::string& v = s.axes[i].toml_values[d[i]];
    if (s.axes[i].key == "size")
      size = s.axes[i].json_values[d[i]].get<std::string>();
    else
      sets.push_back(s.axes[i].key + "=" + v);
  }
  const std::string origin = "point " + std::to_string(index);
  Config c = parse_config(s.base_toml, origin, sets);
  // The data's shape decides width, loss and cadence.
  Config data_only;
  data_only.data = c.data;
  data_only.train.seed = c.train.seed;
  const std::string data_key = to_toml(data_only);
  auto it = cache.find(data_key);
  if (it == cache.end()) {
    const Splits sp = load_splits(c.data, c.train.seed);
    DataShape shape;
    shape.n_train = sp.train.n;
    shape.n_in = sp.train.d;
    shape.classification = sp.train.task == Task::classification;
    shape.n_out = sp.train.n_outputs;
    it = cache.emplace(data_key, shape).first;
  }
  const DataShape& shape = it->second;
  if (shape.n_train == 0) throw InputError(origin + ": data: the training split is empty");
  json derived = json::object();
  if (!s.base_sets_loss) {
    const std::string kind = shape.classification ? "cross_entropy" : "mse";
    sets.push_back("loss.kind=\"" + kind + "\"");
    derived["loss"] = kind;
  }
  if (!size.empty()) {
    const auto z = std::find_if(s.sizes.begin(), s.sizes.end(), [&](const SizeSpec& x) { return x.name == size; });
    const int64_t n_out =
        shape.classification && shape.n_out == 2 && s.base_sets_loss && c.loss.kind == LossKind::bce_logits
            ? 1
            : shape.n_out;
    const int64_t width = width_for_budget(z->params, z->depth, shape.n_in, n_out);
    std::string hidden = "[";
    for (int64_t i = 0; i < z->depth; ++i) hidden += (i ? ", " : "") + std::to_string(width);
    sets.push_back("model.hidden=" + hidden + "]");
    derived["hidden"] = std::vector<int64_t>(static_cast<size_t>(z->depth), width);
    derived["params"] = mlp_params(shape.n_in, width, z->depth, n_out);
  }
  const int64_t batch = std::min<int64_t>(c.data.batch_size, shape.n_train);
  const int64_t per_epoch = (shape.n_train + batch - 1) / batch;
  const int64_t total = c.train.steps > 0 ? c.train.steps : c.train.epochs * per_epoch;
  derived["total_steps"] = total;
  if (s.checkpoints > 0) {
    const int64_t every = curvature_every(total, s.checkpoints);
    sets.push_back("diagnostics.every=" + std::to_string(every));
    derived["diagnostics_every"] = every;
    derived["curvature_checkpoints"] = curvature_count(total, every);
    // The quality metrics at every curvature checkpoint (the analysis pairs them), unless
    // the base chooses its own evaluation cadence.
    if (!s.base_sets_eval_every) sets.push_back("train.eval_every=" + std::to_string(every));
  }
  sets.push_back("train.threads=" + std::to_string(s.threads));
  ResolvedPoint r;
  r.config = parse_config(s.base_toml, origin, sets);
  r.toml = to_toml(r.config);
  r.derived = derived;
  return r;
}

}  // namespace cn::study
