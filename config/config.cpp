// Config parsing, validation and writing (docs/design.md §5). One schema table below lists every
// key with its type, range and meaning; the reader, the writer (to_toml), the difference
// list and the reference table in docs/config.md (config_reference_markdown) all come from
// it, so a key added here is parsed, written, compared and documented at once.
#include "config/config.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include <toml++/toml.h>

#include "config/layer_kind.h"
#include "core/error.h"

namespace cn {
namespace {

using Names = std::vector<std::string>;

const Names kDatasets = {"fashion-mnist", "csv", "iris", "wine", "breast-cancer", "digits", "diabetes", "spirals",
                         "blobs", "xor", "teacher", "sine", "arff",
                         // The packaged suite (data/suite.cpp, docs/datasets.md "The packaged suite").
                         "pima-diabetes", "glass", "ionosphere", "german-credit", "image-segmentation", "house-votes",
                         "soybean", "breast-cancer-ljubljana", "unbalanced", "sonar", "vehicle", "vowel", "satellite",
                         "letter", "shuttle", "dna", "zoo", "penguins", "anes96-vote", "breast-cancer-wisconsin",
                         "affairs-any", "cars-origin", "linnerud", "boston-housing", "cpu", "ozone", "servo", "randhie",
                         "affairs", "star98", "grunfeld", "us-macro", "engel", "penguins-mass", "cars-mpg",
                         "state-crime", "longley", "stackloss", "ccard", "scotvote"};
// The activations of the layer-kind table, in its order.
Names activation_names() {
  Names out;
  for (const LayerKindName& k : kLayerKinds)
    if (is_activation(k.value)) out.push_back(k.name);
  return out;
}
const Names kActivations = activation_names();

std::string join(const Names& names, const char* sep = ", ") {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : sep) + n;
  return s;
}

bool contains(const Names& names, const std::string& s) {
  for (const auto& n : names)
    if (n == s) return true;
  return false;
}

// --- value text (TOML), used by the writer and in "got ..." messages

std::string fmt_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that round-trips
  std::string s(buf, r.ptr);
  const auto e = s.find('e');
  if (e != std::string::npos) {  // 1e-08 -> 1e-8
    size_t d = e + 1;
    if (d < s.size() && (s[d] == '-' || s[d] == '+')) ++d;
    while (d + 1 < s.size() && s[d] == '0') s.erase(d, 1);
  } else if (s.find('.') == std::string::npos) {
    s += ".0";  // keep it a TOML float
  }
  return s;
}

std::string fmt_int(int64_t v) { return std::to_string(v); }

std::string fmt_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\t':
        o += "\\t";
        break;
      case '\r':
        o += "\\r";
        break;
      case '\b':
        o += "\\b";
        break;
      case '\f':
        o += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

template <class T, class F>
std::string fmt_list(const std::vector<T>& v, F f) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + f(v[i]);
  return s + "]";
}

// A parsed node as short text for error messages.
std::string show(const toml::node& n) {
  std::string s;
  if (auto* v = n.as_string())
    s = fmt_string(v->get());
  else if (auto* v = n.as_integer())
    s = fmt_int(v->get());
  else if (auto* v = n.as_floating_point())
    s = fmt_double(v->get());
  else if (auto* v = n.as_boolean())
    s = v->get() ? "true" : "false";
  else if (auto* a = n.as_array()) {
    s = "[";
    for (size_t i = 0; i < a->size(); ++i) s += (i ? ", " : "") + show(*a->get(i));
    s += "]";
  } else if (n.is_table())
    s = "a table";
  else {
    std::ostringstream os;
    n.visit([&](auto&& x) { os << x; });
    s = os.str();
  }
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// --- locations and errors

struct Ctx {
  std::string origin;  // the file (or "<string>") the text came from
};

// "--set KEY=VALUE" for a value from an override, else "FILE:LINE".
std::string where(const toml::node& n, const Ctx& ctx) {
  const auto& src = n.source();
  const std::string path = src.path ? *src.path : ctx.origin;
  if (path.rfind("--set ", 0) == 0) return path;
  if (src.begin.line == 0) return path;
  return path + ":" + std::to_string(src.begin.line);
}

[[noreturn]] void fail(const toml::node& n, const Ctx& ctx, const std::string& key, const std::string& msg) {
  throw InputError(where(n, ctx) + ": " + quote_input(key) + ": " + msg);
}

[[noreturn]] void expected(const toml::node& n, const Ctx& ctx, const std::string& key, const std::string& what) {
  fail(n, ctx, key, "expected " + what + ", got " + show(n));
}

// --- ranges

struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;

  bool contains(double v) const {
    if (!std::isfinite(v)) return false;
    if (lo_open ? !(v > lo) : !(v >= lo)) return false;
    if (hi_open ? !(v < hi) : !(v <= hi)) return false;
    return true;
  }
  // "> 0", ">= 0", "[0, 1)", "any" — as in docs/config.md.
  std::string text() const {
    const bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
    auto num = [](double x) {
      if (x == std::floor(x) && std::abs(x) < 1e15) return fmt_int(static_cast<int64_t>(x));
      return fmt_double(x);
    };
    if (has_lo && has_hi) return std::string(lo_open ? "(" : "[") + num(lo) + ", " + num(hi) + (hi_open ? ")" : "]");
    if (has_lo) return std::string(lo_open ? "> " : ">= ") + num(lo);
    if (has_hi) return std::string(hi_open ? "< " : "<= ") + num(hi);
    return "any";
  }
  std::string describe(bool integer) const {
    const std::string t = text();
    const std::string noun = integer ? "an integer" : "a number";
    if (t == "any") return integer ? noun : "a finite number";
    if (t[0] == '[' || t[0] == '(') return noun + " in " + t;
    return noun + " " + t;
  }
};

Range any() { return {}; }
Range gt(double x) {
  Range r;
  r.lo = x;
  r.lo_open = true;
  return r;
}
Range ge(double x) {
  Range r;
  r.lo = x;
  return r;
}
Range co(double lo, double hi) {
  Range r;
  r.lo = lo;
  r.hi = hi;
  r.hi_open = true;
  return r;
}  // [lo, hi)
Range cc(double lo, double hi) {
  Range r;
  r.lo = lo;
  r.hi = hi;
  return r;
}  // [lo, hi]

// Upper bounds of sizes and counts: far above any run a machine can hold, low enough that
// products of them (buffers, step counts) fit their types; a larger value is a typo.
constexpr double kMaxBatch = 1e6;      // samples in a batch
constexpr double kMaxWidth = 1e6;      // units in a layer
constexpr double kMaxSamples = 1e8;    // synthetic samples
constexpr double kMaxEpochs = 1e6;     // passes over the training split
constexpr double kMaxSteps = 1e12;     // optimiser steps (and step intervals)
constexpr double kMaxWindow = 1e6;     // logged steps in an alarm window; evaluations of patience
constexpr double kMaxDense = 1e5;      // parameters of a block given a dense eigendecomposition
constexpr double kMaxIterative = 1e4;  // Lanczos iterations, random probes
constexpr double kMaxThreads = 4096;
constexpr double kMaxLayerIndex = 1e6;

// --- typed readers (each validates; errors name the location and the key)

bool read_bool(const toml::node& n, const Ctx& ctx, const std::string& key) {
  if (auto* b = n.as_boolean()) return b->get();
  expected(n, ctx, key, "true or false");
}

std::string read_string(const toml::node& n, const Ctx& ctx, const std::string& key) {
  if (auto* s = n.as_string()) return s->get();
  expected(n, ctx, key, "a string");
}

std::string read_enum(const toml::node& n, const Ctx& ctx, const std::string& key, const Names& allowed) {
  auto* s = n.as_string();
  if (!s || !contains(allowed, s->get())) expected(n, ctx, key, "one of " + join(allowed));
  return s->get();
}

// A kind the config holds, by its name in the enum's table.
template <class E, size_t N>
E read_enum(const toml::node& n, const Ctx& ctx, const std::string& key, const EnumName<E> (&table)[N]) {
  if (auto* s = n.as_string())
    if (const auto v = find_enum(table, s->get())) return *v;
  expected(n, ctx, key, "one of " + enum_names_joined(table));
}

// An activation kind: a name of the layer-kind table that is_activation accepts.
LayerKind read_activation(const toml::node& n, const Ctx& ctx, const std::string& key) {
  if (auto* s = n.as_string())
    if (const auto v = find_enum(kLayerKinds, s->get()); v && is_activation(*v)) return *v;
  expected(n, ctx, key, "one of " + join(kActivations));
}

// Integers; an integral float (1e4) is accepted too.
int64_t read_int(const toml::node& n, const Ctx& ctx, const std::string& key, const Range& r) {
  int64_t v = 0;
  if (auto* i = n.as_integer()) {
    v = i->get();
  } else if (auto* f = n.as_floating_point();
             f && std::isfinite(f->get()) && f->get() == std::floor(f->get()) && std::abs(f->get()) < 9.0e18) {
    v = static_cast<int64_t>(f->get());
  } else {
    expected(n, ctx, key, r.describe(true));
  }
  if (!r.contains(static_cast<double>(v))) expected(n, ctx, key, r.describe(true));
  return v;
}

// Floats; integers are accepted. Non-finite values never are.
double read_double(const toml::node& n, const Ctx& ctx, const std::string& key, const Range& r) {
  double v = 0;
  if (auto* f = n.as_floating_point())
    v = f->get();
  else if (auto* i = n.as_integer())
    v = static_cast<double>(i->get());
  else
    expected(n, ctx, key, r.describe(false));
  if (!r.contains(v)) expected(n, ctx, key, r.describe(false));
  return v;
}

const toml::array& read_array(const toml::node& n, const Ctx& ctx, const std::string& key, const std::string& what) {
  if (auto* a = n.as_array()) return *a;
  expected(n, ctx, key, what);
}

// --- the schema

using Reader = std::function<void(Config&, const toml::node&, const Ctx&, const std::string& key)>;
using Writer = std::function<std::optional<std::string>(const Config&)>;  // nullopt = not written

struct Field {
  std::string key;
  std::string type;   // for the reference table
  std::string range;  // for the reference table
  std::string doc;
  Reader read;
  Writer write;              // a value's TOML text, or for table arrays whole [[...]] blocks
  bool is_string = false;    // --set: a value that isn't a TOML string is taken as text
  bool table_array = false;  // [[section.key]]: written after the section, not settable by --set
  std::string default_text;  // for the reference table when write() gives nothing by default
};

struct Section {
  std::string name;
  std::string doc;
  std::vector<Field> fields;
};

Field field(std::string key, std::string type, std::string range, std::string doc, Reader read, Writer write) {
  Field f;
  f.key = std::move(key);
  f.type = std::move(type);
  f.range = std::move(range);
  f.doc = std::move(doc);
  f.read = std::move(read);
  f.write = std::move(write);
  return f;
}

template <class S, class T>
T& member(Config& c, S Config::*sec, T S::*m) {
  return c.*sec.*m;
}
template <class S, class T>
const T& member(const Config& c, S Config::*sec, T S::*m) {
  return c.*sec.*m;
}

template <class S>
Field f_double(const char* key, S Config::*sec, double S::*m, Range r, const char* doc) {
  return field(
      key, "float", r.text(), doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        member(c, sec, m) = read_double(n, ctx, k, r);
      },
      [=](const Config& c) -> std::optional<std::string> { return fmt_double(member(c, sec, m)); });
}

template <class S>
Field f_int(const char* key, S Config::*sec, int64_t S::*m, Range r, const char* doc) {
  return field(
      key, "integer", r.text(), doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        member(c, sec, m) = read_int(n, ctx, k, r);
      },
      [=](const Config& c) -> std::optional<std::string> { return fmt_int(member(c, sec, m)); });
}

template <class S>
Field f_opt_int(const char* key, S Config::*sec, std::optional<int64_t> S::*m, Range r, const char* doc,
                const char* absent) {
  Field f = field(
      key, "integer", r.text(), doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        member(c, sec, m) = read_int(n, ctx, k, r);
      },
      [=](const Config& c) -> std::optional<std::string> {
        const auto& v = member(c, sec, m);
        if (!v) return std::nullopt;
        return fmt_int(*v);
      });
  f.default_text = absent;
  return f;
}

template <class S>
Field f_bool(const char* key, S Config::*sec, bool S::*m, const char* doc) {
  return field(
      key, "bool", "", doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        member(c, sec, m) = read_bool(n, ctx, k);
      },
      [=](const Config& c) -> std::optional<std::string> { return member(c, sec, m) ? "true" : "false"; });
}

template <class S>
Field f_string(const char* key, S Config::*sec, std::string S::*m, const char* doc) {
  Field f = field(
      key, "string", "", doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        member(c, sec, m) = read_string(n, ctx, k);
      },
      [=](const Config& c) -> std::optional<std::string> { return fmt_string(member(c, sec, m)); });
  f.is_string = true;
  return f;
}

template <class S>
Field f_enum(const char* key, S Config::*sec, std::string S::*m, const Names* allowed, const char* doc) {
  Field f = field(
      key, "string", "one of: " + join(*allowed, " "), doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        member(c, sec, m) = read_enum(n, ctx, k, *allowed);
      },
      [=](const Config& c) -> std::optional<std::string> { return fmt_string(member(c, sec, m)); });
  f.is_string = true;
  return f;
}

template <class S>
Field f_activation(const char* key, S Config::*sec, LayerKind S::*m, const char* doc) {
  Field f = field(
      key, "string", "one of: " + join(kActivations, " "), doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        member(c, sec, m) = read_activation(n, ctx, k);
      },
      [=](const Config& c) -> std::optional<std::string> { return fmt_string(layer_kind_name(member(c, sec, m))); });
  f.is_string = true;
  return f;
}

template <class S, class E, size_t N>
Field f_enum(const char* key, S Config::*sec, E S::*m, const EnumName<E> (&table)[N], const char* doc) {
  const EnumName<E>(*t)[N] = &table;  // static storage: the lambdas keep a pointer
  Field f = field(
      key, "string", "one of: " + enum_names_joined(table, " "), doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        member(c, sec, m) = read_enum(n, ctx, k, *t);
      },
      [=](const Config& c) -> std::optional<std::string> { return fmt_string(enum_name(*t, member(c, sec, m))); });
  f.is_string = true;
  return f;
}

template <class S>
Field f_int_list(const char* key, S Config::*sec, std::vector<int64_t> S::*m, Range r, const char* doc) {
  const std::string t = r.text();
  const std::string each = (t[0] == '[' || t[0] == '(' ? "each in " : "each ") + t;
  return field(
      key, "array of integers", each, doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        const std::string what = "an array of integers, " + each;
        const toml::array& a = read_array(n, ctx, k, what);
        std::vector<int64_t> out;
        for (size_t i = 0; i < a.size(); ++i) {
          const toml::node& e = *a.get(i);
          const std::string ek = k + "[" + std::to_string(i) + "]";
          out.push_back(read_int(e, ctx, ek, r));
        }
        member(c, sec, m) = std::move(out);
      },
      [=](const Config& c) -> std::optional<std::string> { return fmt_list(member(c, sec, m), fmt_int); });
}

template <class S, class E, size_t N>
Field f_enum_list(const char* key, S Config::*sec, std::vector<E> S::*m, const EnumName<E> (&table)[N],
                  const char* doc) {
  const EnumName<E>(*t)[N] = &table;  // static storage: the lambdas keep a pointer
  return field(
      key, "array of strings", "each one of: " + enum_names_joined(table, " "), doc,
      [=](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
        const toml::array& a = read_array(n, ctx, k, "an array of strings, each one of " + enum_names_joined(*t));
        std::vector<E> out;
        for (size_t i = 0; i < a.size(); ++i)
          out.push_back(read_enum(*a.get(i), ctx, k + "[" + std::to_string(i) + "]", *t));
        member(c, sec, m) = std::move(out);
      },
      [=](const Config& c) -> std::optional<std::string> {
        return fmt_list(member(c, sec, m), [t](E v) { return fmt_string(enum_name(*t, v)); });
      });
}

// Keys of one [[model.layers]] entry, by type.
Names layer_keys(LayerKind type) {
  switch (type) {
    case LayerKind::linear:
      return {"type", "out", "init", "bias_init"};
    case LayerKind::leaky_relu:
      return {"type", "slope"};
    case LayerKind::elu:
      return {"type", "alpha"};
    case LayerKind::batchnorm:
      return {"type", "momentum", "eps"};
    case LayerKind::dropout:
      return {"type", "p"};
    default:
      return {"type"};
  }
}

const Range kBnMomentum = cc(0, 1), kBnEps = gt(0), kDropP = co(0, 1), kSlope = ge(0), kEluAlpha = ge(0);

LayerSpec read_layer(const toml::node& n, const Ctx& ctx, const std::string& key) {
  const toml::table* t = n.as_table();
  if (!t) expected(n, ctx, key, "a table (a [[model.layers]] entry)");
  LayerSpec s;
  const toml::node* type = t->get("type");
  if (!type) fail(n, ctx, key, "missing type (one of " + enum_names_joined(kLayerKinds) + ")");
  s.type = read_enum(*type, ctx, key + ".type", kLayerKinds);
  const Names allowed = layer_keys(s.type);
  for (auto&& [k, v] : *t) {
    const std::string kk = key + "." + std::string(k.str());
    if (!contains(allowed, std::string(k.str())))
      fail(v, ctx, kk,
           "not a key of a \"" + std::string(layer_kind_name(s.type)) + "\" layer; valid keys: " + join(allowed));
    if (k == "out")
      s.out = read_int(v, ctx, kk, cc(1, kMaxWidth));
    else if (k == "init")
      s.init = read_enum(v, ctx, kk, kInits);
    else if (k == "bias_init")
      s.bias_init = read_enum(v, ctx, kk, kInits);
    else if (k == "slope")
      s.slope = read_double(v, ctx, kk, kSlope);
    else if (k == "alpha")
      s.alpha = read_double(v, ctx, kk, kEluAlpha);
    else if (k == "momentum")
      s.momentum = read_double(v, ctx, kk, kBnMomentum);
    else if (k == "eps")
      s.eps = read_double(v, ctx, kk, kBnEps);
    else if (k == "p")
      s.p = read_double(v, ctx, kk, kDropP);
  }
  if (s.type == LayerKind::linear && !t->get("out"))
    fail(n, ctx, key, "a linear layer needs out = N (" + cc(1, kMaxWidth).describe(true) + ")");
  return s;
}

std::string write_layer(const LayerSpec& s) {
  std::string o = "[[model.layers]]\ntype = " + fmt_string(layer_kind_name(s.type)) + "\n";
  switch (s.type) {
    case LayerKind::linear:
      o += "out = " + fmt_int(s.out) + "\n";
      if (s.init) o += "init = " + fmt_string(enum_name(kInits, *s.init)) + "\n";
      if (s.bias_init) o += "bias_init = " + fmt_string(enum_name(kInits, *s.bias_init)) + "\n";
      break;
    case LayerKind::leaky_relu:
      o += "slope = " + fmt_double(s.slope) + "\n";
      break;
    case LayerKind::elu:
      o += "alpha = " + fmt_double(s.alpha) + "\n";
      break;
    case LayerKind::batchnorm:
      o += "momentum = " + fmt_double(s.momentum) + "\n";
      o += "eps = " + fmt_double(s.eps) + "\n";
      break;
    case LayerKind::dropout:
      o += "p = " + fmt_double(s.p) + "\n";
      break;
    default:
      break;
  }
  return o;
}

const Names kPerLayerKeys = {"layer", "weight_decay", "l1", "lr_scale"};

PerLayerOptim read_per_layer(const toml::node& n, const Ctx& ctx, const std::string& key) {
  const toml::table* t = n.as_table();
  if (!t) expected(n, ctx, key, "a table (an [[optim.per_layer]] entry)");
  PerLayerOptim p;
  for (auto&& [k, v] : *t) {
    const std::string kk = key + "." + std::string(k.str());
    if (k == "layer")
      p.layer = read_int(v, ctx, kk, cc(0, kMaxLayerIndex));
    else if (k == "weight_decay")
      p.weight_decay = read_double(v, ctx, kk, ge(0));
    else if (k == "l1")
      p.l1 = read_double(v, ctx, kk, ge(0));
    else if (k == "lr_scale")
      p.lr_scale = read_double(v, ctx, kk, ge(0));
    else
      fail(v, ctx, kk, "unknown key; valid keys: " + join(kPerLayerKeys));
  }
  if (!t->get("layer")) fail(n, ctx, key, "missing layer = N (the layer's index, an integer >= 0)");
  return p;
}

std::string write_per_layer(const PerLayerOptim& p) {
  std::string o = "[[optim.per_layer]]\nlayer = " + fmt_int(p.layer) + "\n";
  if (p.weight_decay) o += "weight_decay = " + fmt_double(*p.weight_decay) + "\n";
  if (p.l1) o += "l1 = " + fmt_double(*p.l1) + "\n";
  o += "lr_scale = " + fmt_double(p.lr_scale) + "\n";
  return o;
}

std::vector<Section> build_schema() {
  using C = Config;
  std::vector<Section> s;

  s.push_back(
      {"data",
       "the data set and its batching",
       {
           f_enum("dataset", &C::data, &DataConfig::dataset, &kDatasets, "the data set"),
           f_string("path", &C::data, &DataConfig::path,
                    "csv, arff: the file; a packaged set: another directory holding its files"),
           f_string("label_column", &C::data, &DataConfig::label_column,
                    "csv: the label column, by name or 0-based index; arff: the target attribute (default: the last)"),
           f_int("batch_size", &C::data, &DataConfig::batch_size, cc(1, kMaxBatch), "training mini-batch size"),
           f_bool("shuffle", &C::data, &DataConfig::shuffle, "reshuffle the training split every epoch"),
           f_double("val_fraction", &C::data, &DataConfig::val_fraction, co(0, 1),
                    "share of the training split held out for validation"),
           f_double("test_fraction", &C::data, &DataConfig::test_fraction, co(0, 1),
                    "share held out for testing (only data sets without their own test split)"),
           f_bool("standardize", &C::data, &DataConfig::standardize,
                  "standardise features with statistics of the training split"),
           f_int("n_samples", &C::data, &DataConfig::n_samples, cc(1, kMaxSamples),
                 "synthetic sets: number of samples"),
           f_double("noise", &C::data, &DataConfig::noise, ge(0), "synthetic sets: noise level"),
           f_int("teacher_hidden", &C::data, &DataConfig::teacher_hidden, cc(1, 4096),
                 "teacher: hidden width of the generated teacher network (a known capacity)"),
       }});
  {  // label_column: a string, or an integer index (stored as its text)
    Field& f = s.back().fields[2];
    f.type = "string or integer";
    f.range = "a name, or an index >= 0";
    f.read = [](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
      if (n.is_integer())
        c.data.label_column = fmt_int(read_int(n, ctx, k, ge(0)));
      else if (auto* str = n.as_string())
        c.data.label_column = str->get();
      else
        expected(n, ctx, k, "a column name (string) or a 0-based index (integer >= 0)");
    };
  }

  s.push_back(
      {"model",
       "the network",
       {
           f_int_list("hidden", &C::model, &ModelConfig::hidden, cc(1, kMaxWidth),
                      "hidden widths of the MLP shorthand (empty = a linear model)"),
           f_activation("activation", &C::model, &ModelConfig::activation, "activation after each hidden layer"),
           f_double("leaky_slope", &C::model, &ModelConfig::leaky_slope, kSlope, "leaky_relu: negative-side slope"),
           f_double("elu_alpha", &C::model, &ModelConfig::elu_alpha, kEluAlpha, "elu: alpha"),
           f_bool("batchnorm", &C::model, &ModelConfig::batchnorm, "BatchNorm after each hidden Linear"),
           f_double("bn_momentum", &C::model, &ModelConfig::bn_momentum, kBnMomentum,
                    "BatchNorm running-statistics momentum (PyTorch's meaning)"),
           f_double("dropout", &C::model, &ModelConfig::dropout, kDropP,
                    "drop probability after each hidden activation (0 = no Dropout layer)"),
           f_enum("init", &C::model, &ModelConfig::init, kInits, "weight initialiser"),
           f_enum("bias_init", &C::model, &ModelConfig::bias_init, kInits, "bias initialiser"),
           f_double("init_constant", &C::model, &ModelConfig::init_constant, any(),
                    "the value for init/bias_init = \"constant\""),
           f_double("init_scale", &C::model, &ModelConfig::init_scale, gt(0),
                    "factor on the random weight initialisers' standard deviation (1 = the initialiser's own)"),
       }});
  {
    Field f;
    f.key = "layers";
    f.type = "array of tables";
    f.range = "see [[model.layers]]";
    f.doc = "an explicit layer stack; non-empty replaces the hidden/activation shorthand";
    f.table_array = true;
    f.default_text = "(none)";
    f.read = [](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
      const toml::array& a = read_array(n, ctx, k, "an array of tables ([[model.layers]] entries)");
      std::vector<LayerSpec> out;
      for (size_t i = 0; i < a.size(); ++i)
        out.push_back(read_layer(*a.get(i), ctx, k + "[" + std::to_string(i) + "]"));
      c.model.layers = std::move(out);
    };
    f.write = [](const Config& c) -> std::optional<std::string> {
      if (c.model.layers.empty()) return std::nullopt;
      std::string o;
      for (const auto& l : c.model.layers) o += "\n" + write_layer(l);
      return o;
    };
    s.back().fields.push_back(std::move(f));
  }

  s.push_back(
      {"loss",
       "the training loss (a mean over the batch)",
       {
           f_enum("kind", &C::loss, &LossConfig::kind, kLossKinds, "loss function (MSE: mean over batch and outputs)"),
       }});

  s.push_back(
      {"optim",
       "the optimiser (torch.optim semantics)",
       {
           f_enum("name", &C::optim, &OptimConfig::name, kOptimKinds, "update rule"),
           f_double("lr", &C::optim, &OptimConfig::lr, ge(0), "learning rate (0 = the weights do not move)"),
           f_double("momentum", &C::optim, &OptimConfig::momentum, co(0, 1), "momentum, nesterov: momentum factor"),
       }});
  {
    Field f;
    f.key = "betas";
    f.type = "array of 2 floats";
    f.range = "each [0, 1)";
    f.doc = "adam adamw nadam amsgrad: [beta1, beta2]";
    f.read = [](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
      const std::string what = "[beta1, beta2], each a number in [0, 1)";
      const toml::array* a = n.as_array();
      if (!a || a->size() != 2) expected(n, ctx, k, what);
      c.optim.beta1 = read_double(*a->get(0), ctx, k + "[0]", co(0, 1));
      c.optim.beta2 = read_double(*a->get(1), ctx, k + "[1]", co(0, 1));
    };
    f.write = [](const Config& c) -> std::optional<std::string> {
      return "[" + fmt_double(c.optim.beta1) + ", " + fmt_double(c.optim.beta2) + "]";
    };
    s.back().fields.push_back(std::move(f));
  }
  for (Field f : {
           f_double("eps", &C::optim, &OptimConfig::eps, gt(0),
                    "denominator term (adagrad's torch default is 1e-10: set it explicitly)"),
           f_double("alpha", &C::optim, &OptimConfig::alpha, co(0, 1), "rmsprop: smoothing constant"),
           f_double("weight_decay", &C::optim, &OptimConfig::weight_decay, ge(0),
                    "L2 penalty on every parameter (decoupled for adamw)"),
           f_double("l1", &C::optim, &OptimConfig::l1, ge(0), "L1 penalty on every parameter"),
           f_double("grad_noise_eta", &C::optim, &OptimConfig::grad_noise_eta, ge(0),
                    "gradient noise: sigma_t^2 = eta / (1 + t)^gamma; 0 = off"),
           f_double("grad_noise_gamma", &C::optim, &OptimConfig::grad_noise_gamma, ge(0),
                    "gradient noise decay exponent"),
       })
    s.back().fields.push_back(std::move(f));
  {
    Field f;
    f.key = "per_layer";
    f.type = "array of tables";
    f.range = "see [[optim.per_layer]]";
    f.doc = "per-layer overrides of weight_decay, l1 and a learning-rate factor";
    f.table_array = true;
    f.default_text = "(none)";
    f.read = [](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
      const toml::array& a = read_array(n, ctx, k, "an array of tables ([[optim.per_layer]] entries)");
      std::vector<PerLayerOptim> out;
      for (size_t i = 0; i < a.size(); ++i)
        out.push_back(read_per_layer(*a.get(i), ctx, k + "[" + std::to_string(i) + "]"));
      c.optim.per_layer = std::move(out);
    };
    f.write = [](const Config& c) -> std::optional<std::string> {
      if (c.optim.per_layer.empty()) return std::nullopt;
      std::string o;
      for (const auto& p : c.optim.per_layer) o += "\n" + write_per_layer(p);
      return o;
    };
    s.back().fields.push_back(std::move(f));
  }

  s.push_back(
      {"schedule",
       "the learning-rate schedule (in optimiser steps)",
       {
           f_enum("kind", &C::schedule, &ScheduleConfig::kind, kScheduleKinds, "schedule shape"),
           f_int("warmup_steps", &C::schedule, &ScheduleConfig::warmup_steps, cc(0, kMaxSteps),
                 "linear warm-up steps in front of any kind"),
           f_int("total_steps", &C::schedule, &ScheduleConfig::total_steps, cc(0, kMaxSteps),
                 "horizon for cosine; 0 = the run's total at its first start"),
           f_int("step_size", &C::schedule, &ScheduleConfig::step_size, cc(1, kMaxSteps),
                 "step: steps between decays; cosine_restarts/cyclic: period"),
           f_double("gamma", &C::schedule, &ScheduleConfig::gamma, gt(0), "step/exponential: decay factor"),
           f_double("min_lr", &C::schedule, &ScheduleConfig::min_lr, ge(0), "lower bound (cosine, cyclic)"),
           f_double("max_lr", &C::schedule, &ScheduleConfig::max_lr, ge(0), "cyclic: upper bound; 0 = 10 x optim.lr"),
       }});

  s.push_back(
      {"clip",
       "gradient clipping",
       {
           f_enum("mode", &C::clip, &ClipConfig::mode, kClipModes, "clipping rule"),
           f_double("max_norm", &C::clip, &ClipConfig::max_norm, gt(0), "norm, layer_norm: the largest gradient norm"),
           f_double("value", &C::clip, &ClipConfig::value, gt(0), "value: clip each element to [-value, value]"),
           f_double("agc_lambda", &C::clip, &ClipConfig::agc_lambda, gt(0),
                    "agc (per layer), agc_unit (per output unit): the ratio lambda"),
           f_double("agc_eps", &C::clip, &ClipConfig::agc_eps, ge(0), "agc, agc_unit: the floor on the parameter norm"),
       }});

  s.push_back({"train",
               "the training loop (every count is in optimiser steps)",
               {
                   f_int("epochs", &C::train, &TrainConfig::epochs, cc(0, kMaxEpochs),
                         "passes over the training split (ignored when steps > 0; >= 1 when steps = 0)"),
                   f_int("steps", &C::train, &TrainConfig::steps, cc(0, kMaxSteps),
                         "> 0: train for this many steps instead of epochs"),
               }});
  {
    Field f;
    f.key = "seed";
    f.type = "integer";
    f.range = ">= 0";
    f.doc = "seed of every random stream (init, shuffling, dropout, probes)";
    f.read = [](Config& c, const toml::node& n, const Ctx& ctx, const std::string& k) {
      c.train.seed = static_cast<uint64_t>(read_int(n, ctx, k, ge(0)));
    };
    f.write = [](const Config& c) -> std::optional<std::string> {
      // TOML integers are 64-bit signed: seeds above 2^63-1 are written as their bit pattern.
      return fmt_int(static_cast<int64_t>(c.train.seed));
    };
    s.back().fields.push_back(std::move(f));
  }
  for (Field f : {
           f_enum("device", &C::train, &TrainConfig::device, kDeviceChoices,
                  "auto = cuda when a GPU is visible, else cpu"),
           f_enum("dtype", &C::train, &TrainConfig::dtype, kDTypes, "training precision"),
           f_opt_int("eval_every", &C::train, &TrainConfig::eval_every, cc(0, kMaxSteps),
                     "steps between validations; 0 = off", "absent = one epoch"),
           f_int("log_every", &C::train, &TrainConfig::log_every, cc(1, kMaxSteps), "steps between metrics/stats rows"),
           f_enum("early_stopping_metric", &C::train, &TrainConfig::early_stopping_metric, kStopMetrics,
                  "the validation metric early stopping watches"),
           f_int("patience", &C::train, &TrainConfig::patience, cc(0, kMaxWindow),
                 "evaluations without improvement before stopping; 0 = off"),
           f_enum("on_nonfinite", &C::train, &TrainConfig::on_nonfinite, kOnNonfinite,
                  "what a NaN/inf loss or gradient does"),
           f_int("threads", &C::train, &TrainConfig::threads, cc(0, kMaxThreads), "CPU threads; 0 = all cores"),
           f_enum("fused_mlp", &C::train, &TrainConfig::fused_mlp, kFusedMlpModes,
                  "CUDA training step: forward and backward of Linear+activation stacks with outputs <= 128 "
                  "wide in fused kernels; auto = when the model is eligible, on = required (else an error), "
                  "ignored on the CPU"),
       })
    s.back().fields.push_back(std::move(f));

  s.push_back({"checkpoint",
               "model and optimiser checkpoints",
               {
                   f_opt_int("every", &C::checkpoint, &CheckpointConfig::every, cc(0, kMaxSteps),
                             "steps between checkpoints; 0 = off", "absent = one epoch"),
               }});

  s.push_back({"diagnostics",
               "curvature checkpoints (Hessian blocks and spectra)",
               {
                   f_int("every", &C::diagnostics, &DiagnosticsConfig::every, cc(0, kMaxSteps),
                         "steps between curvature checkpoints; 0 = off"),
                   f_enum_list("kinds", &C::diagnostics, &DiagnosticsConfig::kinds, kCurvatureKinds,
                               "which Hessians to compute"),
                   f_enum("mode", &C::diagnostics, &DiagnosticsConfig::mode, kDiagModes,
                          "train: batch statistics and a Dropout mask; eval: running statistics, no Dropout"),
                   f_int_list("layers", &C::diagnostics, &DiagnosticsConfig::layers, cc(0, kMaxLayerIndex),
                              "layer indices; empty = every layer with parameters"),
                   f_int("batch_size", &C::diagnostics, &DiagnosticsConfig::batch_size, cc(1, kMaxBatch),
                         "the fixed curvature batch (first samples of the training split)"),
                   f_int("dense_max_params", &C::diagnostics, &DiagnosticsConfig::dense_max_params, cc(1, kMaxDense),
                         "largest block given a full eigendecomposition; above it, iterative methods"),
                   f_double("budget", &C::diagnostics, &DiagnosticsConfig::budget, co(0, 1),
                            "> 0: space curvature checkpoints to cost at most this share of wall time"),
                   f_enum("dtype", &C::diagnostics, &DiagnosticsConfig::dtype, kDTypes,
                          "precision of Hessian products and eigensolvers"),
                   f_int("lanczos_k", &C::diagnostics, &DiagnosticsConfig::lanczos_k, cc(1, kMaxIterative),
                         "Lanczos iterations / top eigenvalues for iterative methods"),
                   f_int("probes", &C::diagnostics, &DiagnosticsConfig::probes, cc(1, kMaxIterative),
                         "random probes for Hutchinson and SLQ"),
                   f_double("tau_rel", &C::diagnostics, &DiagnosticsConfig::tau_rel, co(0, 1),
                            "eigenvalues with |lambda| <= tau_rel x max|lambda| count as zero (rank, near-zero share, "
                            "condition); 0 = per method: 1e-10 dense float64, 1e-4 dense float32, 1e-4 SLQ, the dense "
                            "value per K-FAC factor"),
               }});

  s.push_back(
      {"alarms",
       "alarm thresholds; 0 switches a rule off",
       {
           f_double("grad_norm_high", &C::alarms, &AlarmsConfig::grad_norm_high, ge(0),
                    "grad_explosion: gradient norm above this; 0 = off"),
           f_double("grad_norm_low", &C::alarms, &AlarmsConfig::grad_norm_low, ge(0),
                    "grad_vanishing: gradient norm below this; 0 = off"),
           f_double("update_ratio_high", &C::alarms, &AlarmsConfig::update_ratio_high, ge(0),
                    "update_ratio: norm(dw) / norm(w) above this; 0 = off"),
           f_double("sigma", &C::alarms, &AlarmsConfig::sigma, ge(0),
                    "outlier: a layer's log10 relative gradient this many standard deviations above its own history, "
                    "after the network-wide shift is removed; 0 = off"),
           f_double("loss_spike_delta", &C::alarms, &AlarmsConfig::loss_spike_delta, ge(0),
                    "loss_spike: logged loss above (1 + delta) x its running minimum; 0 = off"),
           f_int("loss_spike_window", &C::alarms, &AlarmsConfig::loss_spike_window, cc(1, kMaxWindow),
                 "loss_spike: logged steps in the running minimum"),
           f_double("loss_spike_floor", &C::alarms, &AlarmsConfig::loss_spike_floor, ge(0),
                    "loss_spike: the rise above the running minimum must also exceed this (in loss units)"),
           f_double("plateau_delta", &C::alarms, &AlarmsConfig::plateau_delta, ge(0),
                    "loss_plateau: the loss within this fraction of the first logged loss ...; 0 = off"),
           f_int("plateau_steps", &C::alarms, &AlarmsConfig::plateau_steps, cc(1, kMaxWindow),
                 "loss_plateau: ... for this many logged steps in a row"),
           f_double("loss_high_ratio", &C::alarms, &AlarmsConfig::loss_high_ratio, ge(0),
                    "grad_vanishing, frozen_layer: the loss counts as still high above this x the first logged loss"),
           f_double("frozen_grad_low", &C::alarms, &AlarmsConfig::frozen_grad_low, ge(0),
                    "frozen_layer: a layer's weight-gradient norm below this while the loss is still high; 0 = off"),
           f_double("frozen_update_low", &C::alarms, &AlarmsConfig::frozen_update_low, ge(0),
                    "frozen_layer: a layer's update ratio below this x the largest layer's while the loss is still "
                    "high; 0 = off"),
           f_double("depth_ratio_low", &C::alarms, &AlarmsConfig::depth_ratio_low, ge(0),
                    "vanishing_by_depth: a Linear layer's weight-gradient norm below this x the last Linear layer's; "
                    "0 = off"),
           f_double("depth_ratio_high", &C::alarms, &AlarmsConfig::depth_ratio_high, ge(0),
                    "exploding_by_depth: a Linear layer's weight-gradient norm above this x the last Linear layer's; "
                    "0 = off"),
           f_double("unit_spread_low", &C::alarms, &AlarmsConfig::unit_spread_low, ge(0),
                    "symmetric_units: a hidden Linear layer's unit_spread below this; 0 = off"),
           f_double("collapse_factor", &C::alarms, &AlarmsConfig::collapse_factor, cc(0, 1),
                    "signal_collapse: pre-activation variance shrinking by more than this per activation layer at "
                    "the first logged step; 0 = off"),
           f_double("dead_share_high", &C::alarms, &AlarmsConfig::dead_share_high, cc(0, 1),
                    "dead_units: share of ReLU-family units inactive over the window above this; 0 = off"),
           f_int("dead_window", &C::alarms, &AlarmsConfig::dead_window, cc(1, kMaxWindow),
                 "dead_units: logged batches a unit must stay inactive to count as dead"),
           f_double("saturation_high", &C::alarms, &AlarmsConfig::saturation_high, cc(0, 1),
                    "saturation: share of saturated sigmoid/tanh units above this; 0 = off"),
           f_double("weight_norm_high", &C::alarms, &AlarmsConfig::weight_norm_high, ge(0),
                    "weight_norm: RMS of a layer's weights above this; 0 = off"),
           f_int("outlier_window", &C::alarms, &AlarmsConfig::outlier_window, cc(2, kMaxWindow),
                 "outlier: logged steps of a layer's own history"),
           f_double("condition_high", &C::alarms, &AlarmsConfig::condition_high, ge(0),
                    "ill_conditioned: condition over the eigenvalues above tau (K-FAC: the worse factor) above this; 0 "
                    "= off"),
           f_double("near_zero_high", &C::alarms, &AlarmsConfig::near_zero_high, cc(0, 1),
                    "spectrum_at_zero: near-zero share above the structurally forced share 1 - structural_rank/n by "
                    "more than "
                    "this; 0 = off"),
           f_double("saddle_symmetry", &C::alarms, &AlarmsConfig::saddle_symmetry, cc(0, 1),
                    "saddle: loss-Hessian spectrum symmetry at or above this (with saddle_negative_share); 0 = off"),
           f_double("saddle_negative_share", &C::alarms, &AlarmsConfig::saddle_negative_share, cc(0, 1),
                    "saddle: negative-eigenvalue share at or above this (with saddle_symmetry)"),
           f_double("sharpness_fraction", &C::alarms, &AlarmsConfig::sharpness_fraction, ge(0),
                    "sharpness_edge: full_top lambda_max at or above this x the optimiser's stability limit; 0 = off"),
       }});

  s.push_back(
      {"growth",
       "widening hidden Linear layers during training at validation plateaus (docs/capacity.md, Growth)",
       {
           f_bool("enabled", &C::growth, &GrowthConfig::enabled, "grow hidden layers at plateaus"),
           f_int("units", &C::growth, &GrowthConfig::units, cc(1, kMaxWidth), "units added per growth event"),
           f_int("max_width", &C::growth, &GrowthConfig::max_width, cc(1, kMaxWidth),
                 "a layer grows no wider than this"),
           f_int_list("layers", &C::growth, &GrowthConfig::layers, cc(0, kMaxLayerIndex),
                      "Linear layer indices that may grow; empty = every hidden Linear"),
           f_enum("select", &C::growth, &GrowthConfig::select, kGrowthSelects,
                  "which layer grows: round_robin, or rank_ratio (highest activation effective rank / width)"),
           f_enum("init", &C::growth, &GrowthConfig::init, kGrowthInits, "how new units' incoming weights start"),
           f_int("patience", &C::growth, &GrowthConfig::patience, cc(1, kMaxWindow),
                 "evaluations without a relative val_loss improvement of min_delta before growing"),
           f_double("min_delta", &C::growth, &GrowthConfig::min_delta, co(0, 1),
                    "relative improvement of the best val_loss that resets the plateau count"),
           f_int("batch_size", &C::growth, &GrowthConfig::batch_size, cc(1, kMaxBatch),
                 "training samples (first in file order) the highest_loss and rank_ratio rules read"),
       }});
  return s;
}

const std::vector<Section>& schema() {
  static const std::vector<Section> s = build_schema();
  return s;
}

const Section* find_section(const std::string& name) {
  for (const auto& s : schema())
    if (s.name == name) return &s;
  return nullptr;
}

const Field* find_field(const Section& sec, const std::string& key) {
  for (const auto& f : sec.fields)
    if (f.key == key) return &f;
  return nullptr;
}

std::string section_names() {
  Names n;
  for (const auto& s : schema()) n.push_back(s.name);
  return join(n);
}

std::string field_names(const Section& sec) {
  Names n;
  for (const auto& f : sec.fields) n.push_back(f.key);
  return join(n);
}

// --- parsing

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool valid_bare_key(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

toml::table parse_toml(const std::string& text, const std::string& origin) {
  try {
    return toml::parse(std::string_view(text), std::string_view(origin));
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    std::string desc(e.description());
    for (char& c : desc)
      if (c == '\n') c = ' ';
    throw InputError(origin + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " + desc);
  }
}

// Puts one `--set section.key=value` into the parsed document; the value's node carries
// the override as its source, so later errors about it name the override.
void apply_override(toml::table& root, const std::string& ov) {
  const std::string label = "--set " + quote_input(ov);
  const auto bad = [&]() { return InputError(label + ": expected section.key=value"); };
  const auto eq = ov.find('=');
  if (eq == std::string::npos) throw bad();
  const std::string lhs = trim(ov.substr(0, eq)), rhs = trim(ov.substr(eq + 1));
  Names parts;
  for (size_t b = 0;;) {
    const auto d = lhs.find('.', b);
    parts.push_back(lhs.substr(b, d == std::string::npos ? std::string::npos : d - b));
    if (d == std::string::npos) break;
    b = d + 1;
  }
  for (const auto& p : parts)
    if (!valid_bare_key(p)) throw bad();
  if (parts.size() < 2) throw bad();
  const Section* sec = find_section(parts[0]);
  if (!sec) throw InputError(label + ": " + parts[0] + ": unknown section; valid sections: " + section_names());
  const std::string key = parts[0] + "." + parts[1];
  const Field* f = find_field(*sec, parts[1]);
  if (!f)
    throw InputError(label + ": " + key + ": unknown key; valid keys in [" + sec->name + "]: " + field_names(*sec));
  if (f->table_array)
    throw InputError(label + ": " + key + ": an array of tables ([[" + key +
                     "]]) can't be set with --set; write it in the config file");
  if (parts.size() > 2) throw InputError(label + ": " + key + " has no sub-keys; expected section.key=value");

  std::optional<toml::table> parsed;
  try {
    toml::table t = toml::parse(std::string_view("v = " + rhs), std::string_view(label));
    if (t.size() == 1 && t.get("v") && !(f->is_string && !t.get("v")->is_string())) parsed = std::move(t);
  } catch (const toml::parse_error&) {}
  if (!parsed) {  // a bare word; what even a quoted string can't hold (invalid UTF-8, a NUL) is refused
    try {
      parsed = toml::parse(std::string_view("v = " + fmt_string(rhs)), std::string_view(label));
    } catch (const toml::parse_error& e) {
      throw InputError(label + ": " + key + ": the value is not valid TOML text (" + std::string(e.description()) +
                       ")");
    }
  }

  if (!root.contains(parts[0])) root.insert(parts[0], toml::table{});
  toml::table* t = root.get(parts[0])->as_table();
  if (!t) return;  // the file's own [section] error is reported by validation
  t->insert_or_assign(parts[1], std::move(*parsed->get("v")));
}

const toml::node* node_at(const toml::table& root, const std::string& sec, const std::string& key) {
  const toml::table* t = root.get(sec) ? root.get(sec)->as_table() : nullptr;
  return t ? t->get(key) : nullptr;
}

// Rules that involve more than one key. The error points at the first key named.
void check_across_keys(const Config& c, const toml::table& root, const Ctx& ctx) {
  // `near`: a key whose line is shown when `key` itself is absent from the file.
  auto fail_key = [&](const std::string& sec, const std::string& key, const std::string& msg,
                      const std::string& near = "") {
    const toml::node* n = node_at(root, sec, key);
    if (!n && !near.empty()) n = node_at(root, sec, near);
    if (n) fail(*n, ctx, sec + "." + key, msg);
    throw InputError(ctx.origin + ": " + sec + "." + key + ": " + msg);
  };
  if (c.train.epochs == 0 && c.train.steps == 0)
    fail_key("train", "epochs", "expected an integer >= 1 when train.steps = 0, got 0");
  if (c.data.dataset == "csv" && c.data.path.empty())
    fail_key("data", "path", "required when data.dataset = \"csv\" (the CSV file)", "dataset");
  if (c.data.dataset == "arff" && c.data.path.empty())
    fail_key("data", "path", "required when data.dataset = \"arff\" (the ARFF file)", "dataset");
  if (c.growth.enabled && c.data.val_fraction <= 0)
    fail_key("growth", "enabled", "growth watches the validation loss; expected data.val_fraction > 0");
  if (c.growth.enabled && c.optim.name == OptimKind::nadam)
    fail_key("growth", "enabled",
             "optim.name = \"nadam\" shares one momentum-schedule product across parameters, so new units cannot "
             "have their own step count; expected another optimiser");
  if (c.growth.enabled && c.train.eval_every && *c.train.eval_every == 0)
    fail_key("growth", "enabled", "growth watches the validation loss; expected train.eval_every > 0");
  for (size_t i = 0; i < c.optim.per_layer.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (c.optim.per_layer[i].layer == c.optim.per_layer[j].layer) {
        const toml::node* arr = node_at(root, "optim", "per_layer");
        const toml::node* e = arr && arr->as_array() ? arr->as_array()->get(i) : nullptr;
        const std::string key = "optim.per_layer[" + std::to_string(i) + "].layer";
        const std::string msg = "layer " + std::to_string(c.optim.per_layer[i].layer) +
                                " already has an entry (optim.per_layer[" + std::to_string(j) + "])";
        if (e) fail(*e, ctx, key, msg);
        throw InputError(ctx.origin + ": " + key + ": " + msg);
      }
}

Config build(const toml::table& root, const Ctx& ctx) {
  Config c;
  for (auto&& [k, v] : root) {
    const std::string name(k.str());
    const Section* sec = find_section(name);
    if (!sec) {
      if (v.is_table()) fail(v, ctx, name, "unknown section; valid sections: " + section_names());
      fail(v, ctx, name, "unknown key outside any section; keys belong in a section: " + section_names());
    }
    const toml::table* t = v.as_table();
    if (!t) expected(v, ctx, name, "a table [" + name + "]");
    for (auto&& [fk, fv] : *t) {
      const std::string key = name + "." + std::string(fk.str());
      const Field* f = find_field(*sec, std::string(fk.str()));
      if (!f) fail(fv, ctx, key, "unknown key; valid keys in [" + name + "]: " + field_names(*sec));
      f->read(c, fv, ctx, key);
    }
  }
  check_across_keys(c, root, ctx);
  return c;
}

std::string stem_of(const std::string& origin) {
  if (origin.empty()) return "run";
  const std::string s = std::filesystem::path(origin).stem().string();
  return s.empty() ? "run" : s;
}

}  // namespace

Config parse_config(const std::string& toml_text, const std::string& origin,
                    const std::vector<std::string>& overrides) {
  const Ctx ctx{origin.empty() ? std::string("<config>") : origin};
  toml::table root = parse_toml(toml_text, ctx.origin);
  for (const auto& ov : overrides) apply_override(root, ov);
  Config c = build(root, ctx);
  c.name = stem_of(origin);
  c.source = origin;
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(path + ": cannot read config file: is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot read config file: " + std::strerror(errno));
  std::ostringstream text;
  text << f.rdbuf();
  return parse_config(text.str(), path, overrides);
}

std::string to_toml(const Config& c) {
  std::string o = "# curvnet config, resolved: every key present\n";
  for (const auto& sec : schema()) {
    o += "\n[" + sec.name + "]\n";
    std::string blocks;
    for (const auto& f : sec.fields) {
      const auto v = f.write(c);
      if (!v) continue;
      if (f.table_array)
        blocks += *v;
      else
        o += f.key + " = " + *v + "\n";
    }
    o += blocks;
  }
  return o;
}

std::vector<std::string> config_differences(const Config& a, const Config& b) {
  std::vector<std::string> out;
  for (const auto& sec : schema())
    for (const auto& f : sec.fields)
      if (f.write(a) != f.write(b)) out.push_back(sec.name + "." + f.key);
  return out;
}

std::string config_reference_markdown() {
  const Config d;
  std::string o;
  for (const auto& sec : schema()) {
    std::string doc = sec.doc;
    if (!doc.empty()) doc[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(doc[0])));
    o += "### [" + sec.name + "]\n\n" + doc + ".\n\n";
    o += "| key | type | default | range | meaning |\n| --- | --- | --- | --- | --- |\n";
    for (const auto& f : sec.fields) {
      std::string def = f.default_text;
      if (def.empty()) def = "`" + f.write(d).value_or("") + "`";
      o += "| `" + sec.name + "." + f.key + "` | " + f.type + " | " + def + " | " + f.range + " | " + f.doc + " |\n";
    }
    o += "\n";
  }
  o += "### [[model.layers]] entries\n\n";
  o += "Each entry is one layer, indexed from 0 in file order. `type` is required.\n\n";
  o += "| key | type | default | range | meaning |\n| --- | --- | --- | --- | --- |\n";
  o += "| `type` | string | (required) | one of: " + enum_names_joined(kLayerKinds, " ") + " | the layer |\n";
  o += "| `out` | integer | (required for linear) | " + cc(1, kMaxWidth).text() + " | linear: output width |\n";
  o += "| `init` | string | model.init | one of: " + enum_names_joined(kInits, " ") +
       " | linear: weight initialiser |\n";
  o += "| `bias_init` | string | model.bias_init | one of: " + enum_names_joined(kInits, " ") +
       " | linear: bias initialiser |\n";
  o += "| `slope` | float | `" + fmt_double(LayerSpec{}.slope) + "` | " + kSlope.text() +
       " | leaky_relu: negative-side slope |\n";
  o += "| `alpha` | float | `" + fmt_double(LayerSpec{}.alpha) + "` | " + kEluAlpha.text() + " | elu: alpha |\n";
  o += "| `momentum` | float | `" + fmt_double(LayerSpec{}.momentum) + "` | " + kBnMomentum.text() +
       " | batchnorm: running-statistics momentum |\n";
  o += "| `eps` | float | `" + fmt_double(LayerSpec{}.eps) + "` | " + kBnEps.text() +
       " | batchnorm: variance epsilon |\n";
  o += "| `p` | float | `" + fmt_double(LayerSpec{}.p) + "` | " + kDropP.text() + " | dropout: drop probability |\n\n";
  o += "### [[optim.per_layer]] entries\n\n";
  o += "| key | type | default | range | meaning |\n| --- | --- | --- | --- | --- |\n";
  o += "| `layer` | integer | (required) | " + cc(0, kMaxLayerIndex).text() + " | the layer's index in the stack |\n";
  o += "| `weight_decay` | float | optim.weight_decay | >= 0 | L2 penalty for this layer |\n";
  o += "| `l1` | float | optim.l1 | >= 0 | L1 penalty for this layer |\n";
  o += "| `lr_scale` | float | `1.0` | >= 0 | factor on the learning rate for this layer |\n";
  return o;
}

}  // namespace cn
