// ARFF, delimited-text and JSON-record tables, and their encoding into a Dataset
// (docs/datasets.md "Tables", "ARFF files"). Every malformed input is an InputError naming
// the file, the line (or record) and what was expected.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "data/table.h"
#include "data/text.h"

namespace cn {
namespace {

using text::quote;
using text::trim;

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

[[noreturn]] void fail_at(const std::string& path, int64_t line, const std::string& what) {
  throw InputError(path + ": line " + std::to_string(line) + ": " + what);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// ---- ARFF ----

// Splits `s` at commas outside '...' or "..." quotes; a backslash escapes the next character
// inside quotes. Cells are trimmed and unquoted; `quoted[i]` says whether cell i was quoted
// (a quoted '?' is a value, not the missing mark). False with `why` on an unterminated quote.
bool split_arff(std::string_view s, std::vector<std::string>* cells, std::vector<bool>* quoted, std::string* why) {
  cells->clear();
  quoted->clear();
  size_t i = 0;
  for (;;) {
    while (i < s.size() && is_blank(s[i])) ++i;
    std::string cur;
    bool q = false;
    if (i < s.size() && (s[i] == '\'' || s[i] == '"')) {
      const char mark = s[i++];
      q = true;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          cur.push_back(s[i + 1]);
          i += 2;
          continue;
        }
        if (s[i] == mark) {
          closed = true;
          ++i;
          break;
        }
        cur.push_back(s[i++]);
      }
      if (!closed) {
        *why = std::string("expected a closing ") + mark + " quote, line ends";
        return false;
      }
      while (i < s.size() && is_blank(s[i])) ++i;
      if (i < s.size() && s[i] != ',') {
        *why = "expected a comma after the quoted value " + quote(cur) + ", found " + quote(s.substr(i, 1));
        return false;
      }
    } else {
      const size_t j0 = i;
      while (i < s.size() && s[i] != ',') ++i;
      cur = std::string(trim(s.substr(j0, i - j0)));
    }
    cells->push_back(std::move(cur));
    quoted->push_back(q);
    if (i >= s.size()) break;
    ++i;  // the comma
  }
  return true;
}

// The attribute name at the start of `rest` (quoted or a bare word); `rest` keeps what follows.
bool take_name(std::string_view* rest, std::string* name) {
  std::string_view s = trim(*rest);
  name->clear();
  if (s.empty()) return false;
  if (s.front() == '\'' || s.front() == '"') {
    const char mark = s.front();
    size_t i = 1;
    while (i < s.size() && s[i] != mark) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      name->push_back(s[i++]);
    }
    if (i >= s.size()) return false;
    *rest = s.substr(i + 1);
    return true;
  }
  size_t i = 0;
  while (i < s.size() && !is_blank(s[i]) && s[i] != '{') ++i;
  *name = std::string(s.substr(0, i));
  *rest = s.substr(i);
  return true;
}

void arff_attribute(const std::string& path, int64_t line_no, std::string_view rest, Table* t) {
  TableColumn col;
  if (!take_name(&rest, &col.name) || col.name.empty())
    fail_at(path, line_no, "expected an attribute name after @attribute");
  for (const auto& c : t->columns)
    if (c.name == col.name)
      fail_at(path, line_no, "expected a new attribute name, found " + quote(col.name) + " again");
  const std::string_view type = trim(rest);
  if (!type.empty() && type.front() == '{') {
    if (type.back() != '}')
      fail_at(path, line_no, "expected the nominal values of " + quote(col.name) + " to end with }");
    std::vector<bool> quoted;
    std::string why;
    if (!split_arff(type.substr(1, type.size() - 2), &col.levels, &quoted, &why)) fail_at(path, line_no, why);
    std::set<std::string> seen;
    for (const auto& v : col.levels) {
      if (v.empty()) fail_at(path, line_no, "expected a non-empty nominal value in {...} of " + quote(col.name));
      if (!seen.insert(v).second)
        fail_at(path, line_no,
                "expected distinct nominal values of " + quote(col.name) + ", found " + quote(v) + " twice");
    }
    col.nominal = true;
  } else {
    const std::string kind = lower(type);
    if (kind == "string" || kind.rfind("date", 0) == 0 || kind == "relational")
      fail_at(path, line_no,
              "attribute " + quote(col.name) + ": expected numeric, real, integer or {values}; " + quote(type) +
                  " attributes are not supported");
    if (kind != "numeric" && kind != "real" && kind != "integer")
      fail_at(path, line_no,
              "attribute " + quote(col.name) + ": expected a type numeric, real, integer or {values}, found " +
                  quote(type));
  }
  t->columns.push_back(std::move(col));
}

}  // namespace

Table read_arff_table(const std::string& path) {
  const std::string content = text::read_whole(path);
  Table t;
  t.path = path;
  std::vector<std::map<std::string, double>> level_index;
  bool in_data = false;
  std::vector<std::string> cells;
  std::vector<bool> quoted;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string::npos) end = content.size();
    const std::string_view line = trim(std::string_view(content).substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty() || line.front() == '%') continue;
    if (!in_data) {
      if (line.front() != '@') fail_at(path, line_no, "expected @relation, @attribute or @data, found " + quote(line));
      size_t k = 1;
      while (k < line.size() && !is_blank(line[k]) && line[k] != '{' && line[k] != '\'' && line[k] != '"') ++k;
      const std::string keyword = lower(line.substr(1, k - 1));
      const std::string_view rest = line.substr(k);
      if (keyword == "relation") continue;
      if (keyword == "attribute") {
        arff_attribute(path, line_no, rest, &t);
        continue;
      }
      if (keyword == "data") {
        if (t.columns.empty()) fail_at(path, line_no, "expected at least one @attribute before @data");
        in_data = true;
        for (const auto& c : t.columns) {
          std::map<std::string, double> m;
          for (size_t i = 0; i < c.levels.size(); ++i) m[c.levels[i]] = static_cast<double>(i);
          level_index.push_back(std::move(m));
        }
        continue;
      }
      fail_at(path, line_no, "expected @relation, @attribute or @data, found @" + std::string(line.substr(1, k - 1)));
    }
    if (line.front() == '{')
      fail_at(path, line_no, "expected a dense data row; sparse {index value} rows are not supported");
    std::string why;
    if (!split_arff(line, &cells, &quoted, &why)) fail_at(path, line_no, why);
    if (cells.size() != t.columns.size())
      fail_at(path, line_no,
              "expected " + std::to_string(t.columns.size()) + " values (one per @attribute), found " +
                  std::to_string(cells.size()));
    for (size_t j = 0; j < cells.size(); ++j) {
      TableColumn& col = t.columns[j];
      if (!quoted[j] && cells[j] == "?") {
        col.values.push_back(kMissing);
        continue;
      }
      if (col.nominal) {
        const auto it = level_index[j].find(cells[j]);
        if (it == level_index[j].end()) {
          std::string allowed;
          for (const auto& v : col.levels) allowed += (allowed.empty() ? "" : ",") + v;
          fail_at(path, line_no,
                  "attribute " + quote(col.name) + ": expected one of {" + quote_input(allowed, 60) + "} or ?, found " +
                      quote(cells[j]));
        }
        col.values.push_back(it->second);
      } else {
        double v = 0;
        if (!text::parse_number(cells[j], &v))
          fail_at(path, line_no, "attribute " + quote(col.name) + ": expected a number or ?, found " + quote(cells[j]));
        col.values.push_back(v);
      }
    }
    t.lines.push_back(line_no);
  }
  if (!in_data) fail_at(path, line_no + 1, "expected @data, file ends");
  if (t.lines.empty()) fail_at(path, line_no + 1, "expected at least one data row after @data, file ends");
  return t;
}

namespace {

bool is_missing_mark(std::string_view s) { return s.empty() || s == "NA" || s == "?"; }

// Levels of a label column: distinct values sorted numerically when all are numbers, else byte-wise.
void build_levels(const std::vector<std::string>& cells, TableColumn* col) {
  std::set<std::string> distinct;
  for (const auto& c : cells)
    if (!is_missing_mark(c)) distinct.insert(c);
  col->levels.assign(distinct.begin(), distinct.end());
  bool numeric = true;
  std::map<std::string, double> num;
  for (const auto& s : col->levels) {
    double v = 0;
    numeric = numeric && text::parse_number(s, &v);
    num[s] = v;
  }
  if (numeric)
    std::stable_sort(col->levels.begin(), col->levels.end(),
                     [&](const std::string& a, const std::string& b) { return num[a] < num[b]; });
  std::map<std::string, double> index;
  for (size_t i = 0; i < col->levels.size(); ++i) index[col->levels[i]] = static_cast<double>(i);
  col->values.clear();
  for (const auto& c : cells) col->values.push_back(is_missing_mark(c) ? kMissing : index[c]);
}

bool listed(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), "*") != names.end() ||
         std::find(names.begin(), names.end(), name) != names.end();
}

std::string unquote_header(std::string s) {
  if (s.size() >= 2 && s.front() == '\'' && s.back() == '\'') s = s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

Table read_text_table(const std::string& path, char sep, const std::vector<std::string>& nominal) {
  const std::string content = text::read_whole(path);
  const std::vector<text::CsvRow> rows = text::read_rows(path, content, sep);
  if (rows.empty()) fail_at(path, 1, "expected a header row, file is empty");
  if (rows.size() < 2) fail_at(path, rows[0].line + 1, "expected at least one data row after the header, file ends");
  Table t;
  t.path = path;
  const size_t ncol = rows[0].cells.size();
  for (const auto& h : rows[0].cells) {
    TableColumn col;
    col.name = unquote_header(h);
    col.nominal = listed(nominal, col.name);
    t.columns.push_back(std::move(col));
  }
  std::vector<std::vector<std::string>> labels(ncol);
  for (size_t r = 1; r < rows.size(); ++r) {
    const text::CsvRow& row = rows[r];
    if (row.cells.size() != ncol)
      fail_at(
          path, row.line,
          "expected " + std::to_string(ncol) + " cells (as in the header), found " + std::to_string(row.cells.size()));
    for (size_t j = 0; j < ncol; ++j) {
      TableColumn& col = t.columns[j];
      const std::string_view cell = trim(row.cells[j]);
      if (col.nominal) {
        labels[j].emplace_back(cell);
        continue;
      }
      double v = 0;
      if (is_missing_mark(cell)) {
        col.values.push_back(kMissing);
      } else if (text::parse_number(cell, &v)) {
        col.values.push_back(v);
      } else {
        fail_at(path, row.line,
                "column " + std::to_string(j + 1) + " (" + quote(col.name) +
                    "): expected a number or a missing mark (empty, NA, ?), found " + quote(cell));
      }
    }
    t.lines.push_back(row.line);
  }
  for (size_t j = 0; j < ncol; ++j)
    if (t.columns[j].nominal) build_levels(labels[j], &t.columns[j]);
  return t;
}

Table read_json_table(const std::string& path, const std::vector<std::string>& nominal) {
  const std::string content = text::read_whole(path);
  nlohmann::ordered_json doc;
  try {
    doc = nlohmann::ordered_json::parse(content);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(path + ": byte " + std::to_string(e.byte) + ": expected valid JSON (" + e.what() + ")");
  }
  if (!doc.is_array() || doc.empty() || !doc[0].is_object())
    throw InputError(path + ": expected a JSON array of records (objects), found " + std::string(doc.type_name()));
  Table t;
  t.path = path;
  for (const auto& kv : doc[0].items()) {
    TableColumn col;
    col.name = kv.key();
    col.nominal = listed(nominal, col.name);
    t.columns.push_back(std::move(col));
  }
  std::vector<std::vector<std::string>> labels(t.columns.size());
  for (size_t r = 0; r < doc.size(); ++r) {
    const auto& rec = doc[r];
    const std::string where = path + ": record " + std::to_string(r + 1);
    if (!rec.is_object()) throw InputError(where + ": expected an object");
    for (size_t j = 0; j < t.columns.size(); ++j) {
      TableColumn& col = t.columns[j];
      const auto it = rec.find(col.name);
      if (it == rec.end()) throw InputError(where + ": expected a field " + quote(col.name) + " (as in record 1)");
      if (col.nominal) {
        labels[j].push_back(it->is_null() ? "" : it->is_string() ? it->get<std::string>() : it->dump());
      } else if (it->is_null()) {
        col.values.push_back(kMissing);
      } else if (it->is_number()) {
        col.values.push_back(it->get<double>());
      } else {
        throw InputError(where + ", field " + quote(col.name) + ": expected a number or null, found " +
                         quote(it->dump()));
      }
    }
    t.lines.push_back(static_cast<int64_t>(r + 1));
  }
  for (size_t j = 0; j < t.columns.size(); ++j)
    if (t.columns[j].nominal) build_levels(labels[j], &t.columns[j]);
  return t;
}

namespace {

size_t column_index(const Table& t, const std::string& name, const char* role) {
  for (size_t j = 0; j < t.columns.size(); ++j)
    if (t.columns[j].name == name) return j;
  std::string names;
  for (const auto& c : t.columns) names += (names.empty() ? "" : ", ") + quote(c.name);
  throw InputError(t.path + ": expected a column " + quote(name) + " (" + role + "); the file has " +
                   quote_input(names, 200));
}

}  // namespace

Dataset encode_table(const Table& t, const Encoding& enc) {
  std::vector<size_t> target_cols;
  if (enc.targets.empty()) {
    target_cols.push_back(t.columns.size() - 1);
  } else {
    for (const auto& name : enc.targets) target_cols.push_back(column_index(t, name, "the target"));
  }
  std::vector<bool> is_feature(t.columns.size(), true);
  for (size_t j : target_cols) is_feature[j] = false;
  for (const auto& name : enc.drop) is_feature[column_index(t, name, "a column to leave out")] = false;
  if (enc.rule == TargetRule::share && target_cols.size() != 2)
    throw InputError(t.path + ": a share target needs two columns (numerator, denominator)");
  if (enc.rule == TargetRule::positive && target_cols.size() != 1)
    throw InputError(t.path + ": a positive-value target needs one column");
  for (size_t j : target_cols) {
    const TableColumn& c = t.columns[j];
    const bool nominal_ok = enc.task == Task::classification && enc.rule == TargetRule::column;
    if (c.nominal && !nominal_ok)
      throw InputError(t.path + ": column " + quote(c.name) + ": expected a numeric target, found a nominal column");
  }
  if (enc.task == Task::classification && enc.rule == TargetRule::column && target_cols.size() != 1)
    throw InputError(t.path + ": a classification target is one column");

  // The rows kept: the target present and every numeric feature present.
  std::vector<int64_t> keep;
  for (int64_t r = 0; r < t.rows(); ++r) {
    bool ok = true;
    for (size_t j : target_cols) ok = ok && !std::isnan(t.columns[j].values[static_cast<size_t>(r)]);
    for (size_t j = 0; j < t.columns.size() && ok; ++j)
      if (is_feature[j] && !t.columns[j].nominal) ok = !std::isnan(t.columns[j].values[static_cast<size_t>(r)]);
    if (ok) keep.push_back(r);
  }
  if (keep.empty())
    throw InputError(t.path + ": expected at least one row with its target and numeric features present, found none");

  Dataset ds;
  ds.task = enc.task;
  ds.n = static_cast<int64_t>(keep.size());

  // Feature layout: per column, the output offset and, for nominal ones, level -> slot.
  struct Slot {
    size_t col;
    std::vector<int64_t> level_slot;  // nominal: slot per level (-1 = absent in kept rows)
    int64_t missing_slot = -1;        // nominal: the "?" slot when missing values occur
    int64_t offset = 0;
  };
  std::vector<Slot> slots;
  int64_t width = 0;
  for (size_t j = 0; j < t.columns.size(); ++j) {
    if (!is_feature[j]) continue;
    const TableColumn& c = t.columns[j];
    Slot s{j, {}, -1, width};
    if (!c.nominal) {
      ds.feature_names.push_back(c.name);
      width += 1;
    } else {
      std::vector<bool> present(c.levels.size(), false);
      bool missing = false;
      for (int64_t r : keep) {
        const double v = c.values[static_cast<size_t>(r)];
        if (std::isnan(v))
          missing = true;
        else
          present[static_cast<size_t>(v)] = true;
      }
      s.level_slot.assign(c.levels.size(), -1);
      int64_t k = 0;
      for (size_t l = 0; l < c.levels.size(); ++l)
        if (present[l]) {
          s.level_slot[l] = k++;
          ds.feature_names.push_back(c.name + "=" + c.levels[l]);
        }
      if (missing) {
        s.missing_slot = k++;
        ds.feature_names.push_back(c.name + "=?");
      }
      width += k;
    }
    slots.push_back(std::move(s));
  }
  ds.d = width;
  ds.x.assign(static_cast<size_t>(ds.n * ds.d), 0.0);
  for (int64_t i = 0; i < ds.n; ++i) {
    const size_t r = static_cast<size_t>(keep[static_cast<size_t>(i)]);
    double* row = ds.x.data() + i * ds.d;
    for (const Slot& s : slots) {
      const TableColumn& c = t.columns[s.col];
      const double v = c.values[r];
      if (!c.nominal)
        row[s.offset] = v;
      else
        row[s.offset + (std::isnan(v) ? s.missing_slot : s.level_slot[static_cast<size_t>(v)])] = 1.0;
    }
  }

  // Targets.
  if (enc.task == Task::regression) {
    const bool share = enc.rule == TargetRule::share;
    ds.n_outputs = share ? 1 : static_cast<int64_t>(target_cols.size());
    ds.y.resize(static_cast<size_t>(ds.n * ds.n_outputs));
    for (int64_t i = 0; i < ds.n; ++i) {
      const size_t r = static_cast<size_t>(keep[static_cast<size_t>(i)]);
      if (share) {
        const double den = t.columns[target_cols[1]].values[r];
        if (den == 0)
          fail_at(t.path, t.lines[r],
                  "column " + quote(t.columns[target_cols[1]].name) + ": expected a non-zero denominator");
        ds.y[static_cast<size_t>(i)] = t.columns[target_cols[0]].values[r] / den;
      } else {
        for (int64_t k = 0; k < ds.n_outputs; ++k)
          ds.y[static_cast<size_t>(i * ds.n_outputs + k)] = t.columns[target_cols[static_cast<size_t>(k)]].values[r];
      }
    }
    return ds;
  }
  const TableColumn& tc = t.columns[target_cols[0]];
  std::vector<double> raw(static_cast<size_t>(ds.n));
  for (int64_t i = 0; i < ds.n; ++i)
    raw[static_cast<size_t>(i)] = tc.values[static_cast<size_t>(keep[static_cast<size_t>(i)])];
  std::map<double, int64_t> cls;  // raw value (level index or number) -> class
  if (enc.rule == TargetRule::positive) {
    for (double& v : raw) v = v > 0 ? 1.0 : 0.0;
    cls = {{0.0, 0}, {1.0, 1}};
    ds.class_names = {tc.name + " = 0", tc.name + " > 0"};
  } else {
    std::set<double> present(raw.begin(), raw.end());
    if (!tc.nominal)
      for (double v : present)
        if (!text::is_integer_value(v))
          throw InputError(t.path + ": column " + quote(tc.name) + ": expected integer class labels, found " +
                           quote(std::to_string(v)));
    for (double v : present) {  // ascending: declaration order for levels, numeric order for numbers
      cls[v] = static_cast<int64_t>(ds.class_names.size());
      ds.class_names.push_back(tc.nominal ? tc.levels[static_cast<size_t>(v)]
                                          : std::to_string(static_cast<long long>(v)));
    }
  }
  ds.n_outputs = static_cast<int64_t>(cls.size());
  if (ds.n_outputs < 2)
    throw InputError(t.path + ": column " + quote(tc.name) + ": expected at least 2 classes, found " +
                     std::to_string(ds.n_outputs));
  ds.y.resize(static_cast<size_t>(ds.n));
  for (int64_t i = 0; i < ds.n; ++i)
    ds.y[static_cast<size_t>(i)] = static_cast<double>(cls[raw[static_cast<size_t>(i)]]);
  return ds;
}

Dataset read_arff(const std::string& path, const std::string& target) {
  const Table t = read_arff_table(path);
  Encoding enc;
  if (!target.empty()) enc.targets = {target};
  const TableColumn& tc = t.columns[target.empty() ? t.columns.size() - 1 : column_index(t, target, "the target")];
  enc.task = tc.nominal ? Task::classification : Task::regression;
  Dataset ds = encode_table(t, enc);
  return ds;
}

}  // namespace cn
