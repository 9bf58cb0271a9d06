// JSON helpers on Boost.JSON: parsing with readable errors, and JsonReader,
// which reads typed fields from an object and remembers the first error, naming
// the field ("config.json: field 'hidden_size': expected an integer, got string").
// Include only in .cc files: Boost.JSON headers are not light.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace crescent {

Result<boost::json::value> ParseJson(std::string_view text, std::string_view what);
Result<boost::json::value> ReadJsonFile(const std::string& path);

// The value as an int64 when it is an integer that fits (a uint64 past INT64_MAX
// is nullopt, where Boost's to_number<int64_t> would throw), else nullopt.
std::optional<int64_t> ExactInt64(const boost::json::value& v);

// Type name for messages: "string", "integer", "object", ...
std::string_view JsonKindName(const boost::json::value& v);

// Reads fields of one object; after a batch of reads, check status().
// The `Or` forms return the default when the field is absent or null; a field
// that is present with the wrong type is always an error.
class JsonReader {
 public:
  // `where` prefixes every message, e.g. "config.json".
  JsonReader(const boost::json::value& v, std::string where);

  bool Has(std::string_view key) const;  // present and not null
  int64_t Int(std::string_view key);
  int64_t IntOr(std::string_view key, int64_t dflt);
  double Number(std::string_view key);  // integer or float
  double NumberOr(std::string_view key, double dflt);
  bool Bool(std::string_view key);
  bool BoolOr(std::string_view key, bool dflt);
  std::string String(std::string_view key);
  std::string StringOr(std::string_view key, std::string dflt);
  std::vector<std::string> StringList(std::string_view key);
  // The nested object, or nullptr (and an error unless optional) when absent.
  const boost::json::value* Object(std::string_view key, bool optional);

  void Fail(std::string_view key, std::string_view what);
  const Status& status() const { return status_; }
  const boost::json::object* object() const { return obj_; }

 private:
  const boost::json::value* Get(std::string_view key, bool required);
  const boost::json::object* obj_ = nullptr;
  std::string where_;
  Status status_;
};

}  // namespace crescent
