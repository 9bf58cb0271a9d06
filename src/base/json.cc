#include "base/json.h"

#include <boost/json/parse.hpp>

#include <cmath>

#include "base/file.h"

namespace crescent {

namespace json = boost::json;

Result<json::value> ParseJson(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return InvalidArgument(std::string(what) + ": malformed JSON: " + ec.message());
  return v;
}

Result<json::value> ReadJsonFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseJson(text, path);
}

std::string_view JsonKindName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "boolean";
    case json::kind::int64:
    case json::kind::uint64: return "integer";
    case json::kind::double_: return "number";
    case json::kind::string: return "string";
    case json::kind::array: return "array";
    case json::kind::object: return "object";
  }
  return "unknown";
}

JsonReader::JsonReader(const json::value& v, std::string where) : where_(std::move(where)) {
  if (v.is_object()) {
    obj_ = &v.get_object();
  } else {
    status_ = InvalidArgument(where_ + ": expected a JSON object, got " + std::string(JsonKindName(v)));
  }
}

void JsonReader::Fail(std::string_view key, std::string_view what) {
  if (!status_.ok()) return;
  status_ = InvalidArgument(where_ + ": field '" + std::string(key) + "': " + std::string(what));
}

bool JsonReader::Has(std::string_view key) const {
  if (!obj_) return false;
  auto it = obj_->find(json::string_view(key.data(), key.size()));
  return it != obj_->end() && !it->value().is_null();
}

const json::value* JsonReader::Get(std::string_view key, bool required) {
  if (!obj_) return nullptr;
  auto it = obj_->find(json::string_view(key.data(), key.size()));
  if (it == obj_->end() || it->value().is_null()) {
    if (required) Fail(key, "missing");
    return nullptr;
  }
  return &it->value();
}

namespace {
std::string WrongType(std::string_view want, const json::value& v) {
  return "expected " + std::string(want) + ", got " + std::string(JsonKindName(v));
}
}  // namespace

std::optional<int64_t> ExactInt64(const boost::json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(v.get_uint64());
  return std::nullopt;
}

int64_t JsonReader::Int(std::string_view key) {
  const json::value* v = Get(key, true);
  if (!v) return 0;
  if (std::optional<int64_t> i = ExactInt64(*v)) return *i;
  if (v->is_uint64()) {
    Fail(key, "integer " + std::to_string(v->get_uint64()) + " out of range");
    return 0;
  }
  if (v->is_double()) {
    double d = v->get_double();
    if (std::floor(d) == d && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  Fail(key, WrongType("an integer", *v));
  return 0;
}

int64_t JsonReader::IntOr(std::string_view key, int64_t dflt) { return Has(key) ? Int(key) : dflt; }

double JsonReader::Number(std::string_view key) {
  const json::value* v = Get(key, true);
  if (!v) return 0;
  if (v->is_number()) return v->to_number<double>();
  Fail(key, WrongType("a number", *v));
  return 0;
}

double JsonReader::NumberOr(std::string_view key, double dflt) { return Has(key) ? Number(key) : dflt; }

bool JsonReader::Bool(std::string_view key) {
  const json::value* v = Get(key, true);
  if (!v) return false;
  if (v->is_bool()) return v->get_bool();
  Fail(key, WrongType("a boolean", *v));
  return false;
}

bool JsonReader::BoolOr(std::string_view key, bool dflt) { return Has(key) ? Bool(key) : dflt; }

std::string JsonReader::String(std::string_view key) {
  const json::value* v = Get(key, true);
  if (!v) return {};
  if (v->is_string()) return std::string(v->get_string());
  Fail(key, WrongType("a string", *v));
  return {};
}

std::string JsonReader::StringOr(std::string_view key, std::string dflt) {
  return Has(key) ? String(key) : dflt;
}

std::vector<std::string> JsonReader::StringList(std::string_view key) {
  std::vector<std::string> out;
  const json::value* v = Get(key, true);
  if (!v) return out;
  if (!v->is_array()) {
    Fail(key, WrongType("an array of strings", *v));
    return out;
  }
  for (const auto& e : v->get_array()) {
    if (!e.is_string()) {
      Fail(key, WrongType("an array of strings", e) + " element");
      return {};
    }
    out.emplace_back(e.get_string());
  }
  return out;
}

const json::value* JsonReader::Object(std::string_view key, bool optional) {
  const json::value* v = Get(key, !optional);
  if (!v) return nullptr;
  if (!v->is_object()) {
    Fail(key, WrongType("an object", *v));
    return nullptr;
  }
  return v;
}

}  // namespace crescent
