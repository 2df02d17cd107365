// Name tables of the enums the config holds: one `{value, "name"}` table per enum, next to
// the enum, and the lookups every reader, writer and error message takes names from.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace cn {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

// The name of `value` ("" for a value the table lacks).
template <class E, size_t N>
const char* enum_name(const EnumName<E> (&table)[N], E value) {
  for (const auto& e : table)
    if (e.value == value) return e.name;
  return "";
}

template <class E, size_t N>
std::optional<E> find_enum(const EnumName<E> (&table)[N], std::string_view name) {
  for (const auto& e : table)
    if (name == e.name) return e.value;
  return std::nullopt;
}

// Every name, in table order.
template <class E, size_t N>
std::vector<std::string> enum_names(const EnumName<E> (&table)[N]) {
  std::vector<std::string> out;
  for (const auto& e : table) out.emplace_back(e.name);
  return out;
}

// "a, b, c" (or joined by `sep`).
template <class E, size_t N>
std::string enum_names_joined(const EnumName<E> (&table)[N], const char* sep = ", ") {
  std::string s;
  for (const auto& e : table) s += (s.empty() ? "" : sep) + std::string(e.name);
  return s;
}

// The value named `name`; InputError "KEY: expected one of a, b, c, got \"name\"" (the
// config parser's wording) otherwise. `key` names what was read: a config key, a flag.
template <class E, size_t N>
E parse_enum(const EnumName<E> (&table)[N], std::string_view name, const std::string& key) {
  if (const auto v = find_enum(table, name)) return *v;
  throw InputError(key + ": expected one of " + enum_names_joined(table) + ", got \"" + std::string(name) + "\"");
}

}  // namespace cn
