// Text helpers the file readers share (readers.cpp defines them): whole-file reads through
// zlib, number parsing and delimited rows. Every error is an InputError naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cn::text {

// The whole (decompressed) content of a gzip'd or plain file.
std::string read_whole(const std::string& path);
// Blanks, tabs and '\r' trimmed at both ends.
std::string_view trim(std::string_view s);
// A finite number (locale-independent); false for anything else.
bool parse_number(std::string_view s, double* out);
bool is_integer_value(double v);
// Input text in a message: quoted, escaped and cut, so the message stays one short line.
std::string quote(std::string_view s);

// One line split into cells at `sep`; double quotes protect separators ("" is a quote inside
// quotes). False on an unterminated quote.
bool split_csv_line(std::string_view line, char sep, std::vector<std::string>* cells);

struct CsvRow {
  int64_t line;  // 1-based
  std::vector<std::string> cells;
};
// Non-blank lines of a text as rows of cells; sep ' ' means any run of blanks or tabs.
std::vector<CsvRow> read_rows(const std::string& path, const std::string& text, char sep);

}  // namespace cn::text
