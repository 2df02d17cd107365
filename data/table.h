// Typed tables read from ARFF, delimited text and JSON record files, and their encoding into
// a Dataset (one-hot nominal columns, the missing-value rule): docs/datasets.md "Tables".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace cn {

// One column: numbers, or level indices into `levels` for a nominal column. NaN = missing.
struct TableColumn {
  std::string name;
  bool nominal = false;
  std::vector<std::string> levels;  // nominal: ARFF's declared order, else sorted (numerically when all are numbers)
  std::vector<double> values;
};

struct Table {
  std::string path;
  std::vector<TableColumn> columns;
  std::vector<int64_t> lines;  // each row's 1-based line in the file (JSON: record number)
  int64_t rows() const { return static_cast<int64_t>(lines.size()); }
};

// An ARFF file (docs/datasets.md "ARFF files"); malformed input names file and line.
Table read_arff_table(const std::string& path);

// A delimited text file with a header row. sep: ',' '\t' ';' or ' ' (any run of blanks).
// Columns named in `nominal` ("*" = every column) hold labels; every other cell must be a
// number or a missing mark ("", "NA", "?"). Header names lose surrounding single quotes.
Table read_text_table(const std::string& path, char sep, const std::vector<std::string>& nominal);

// A JSON array of flat records (the first record's keys, in file order, are the columns);
// null is missing; strings are allowed only in the `nominal` columns.
Table read_json_table(const std::string& path, const std::vector<std::string>& nominal);

// How a table becomes a Dataset.
enum class TargetRule {
  column,    // the target column(s) as they are
  positive,  // classification: class 1 when the (single) numeric target is > 0, else 0
  share,     // regression: targets[0] / targets[1]
};
struct Encoding {
  Task task = Task::classification;
  std::vector<std::string> targets;  // column names; empty = the last column
  std::vector<std::string> drop;     // columns that are neither features nor targets
  TargetRule rule = TargetRule::column;
};

// Rows with a missing target or a missing numeric feature are dropped; a missing nominal
// feature is a level of its own ("?", after the others). Each nominal feature becomes one
// 0/1 column per level present in the kept rows (in `levels` order, then "?"), named
// "column=level"; classes are the target levels present, in `levels` order (numeric
// targets: by value).
Dataset encode_table(const Table& table, const Encoding& enc);

}  // namespace cn
