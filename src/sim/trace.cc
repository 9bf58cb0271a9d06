#include "sim/trace.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "base/file.h"
#include "base/json.h"

namespace crescent::sim {
namespace json = boost::json;

namespace {

Status ParseLine(std::string_view line, const std::string& where, Trace& out) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(line.data(), line.size()), ec);
  if (ec) return InvalidArgument(where + ": malformed JSON: " + ec.message());
  JsonReader r(v, where);
  TraceRequest req;
  req.timestamp_ms = r.Int("timestamp");
  req.input_tokens = r.Int("input_length");
  req.output_tokens = r.Int("output_length");
  RETURN_IF_ERROR(r.status());
  if (req.timestamp_ms < 0) return InvalidArgument(where + ": field 'timestamp': negative");
  if (req.input_tokens <= 0) return InvalidArgument(where + ": field 'input_length': must be positive");
  if (req.output_tokens < 0) return InvalidArgument(where + ": field 'output_length': negative");
  auto it = r.object()->find("hash_ids");
  if (it == r.object()->end() || !it->value().is_array()) {
    return InvalidArgument(where + ": field 'hash_ids': expected an array of integers");
  }
  req.keys_begin = static_cast<uint32_t>(out.keys.size());
  for (const json::value& k : it->value().get_array()) {
    if (k.is_int64() && k.get_int64() >= 0) {
      out.keys.push_back(conductor::TraceBlockKey(static_cast<uint64_t>(k.get_int64())));
    } else if (k.is_uint64()) {
      out.keys.push_back(conductor::TraceBlockKey(k.get_uint64()));
    } else {
      return InvalidArgument(where + ": field 'hash_ids': expected non-negative integers, got " +
                             std::string(JsonKindName(k)));
    }
  }
  req.keys_count = static_cast<uint32_t>(out.keys.size() - req.keys_begin);
  out.requests.push_back(req);
  return Status::Ok();
}

}  // namespace

Result<Trace> ParseTrace(std::string_view text, std::string_view name) {
  Trace t;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    RETURN_IF_ERROR(ParseLine(line, std::string(name) + ":" + std::to_string(line_no), t));
  }
  if (t.requests.empty()) return InvalidArgument(std::string(name) + ": no requests");
  std::stable_sort(t.requests.begin(), t.requests.end(),
                   [](const TraceRequest& a, const TraceRequest& b) { return a.timestamp_ms < b.timestamp_ms; });
  return t;
}

Result<Trace> LoadTrace(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseTrace(text, path);
}

std::string FormatTrace(const Trace& trace) {
  std::string out;
  out.reserve(trace.requests.size() * 96 + trace.keys.size() * 7);
  for (const TraceRequest& r : trace.requests) {
    fmt::format_to(std::back_inserter(out), "{{\"timestamp\": {}, \"input_length\": {}, \"output_length\": {}, \"hash_ids\": [",
                   r.timestamp_ms, r.input_tokens, r.output_tokens);
    const auto keys = trace.Keys(r);
    for (size_t i = 0; i < keys.size(); ++i) fmt::format_to(std::back_inserter(out), "{}{}", i ? ", " : "", keys[i].lo);
    out += "]}\n";
  }
  return out;
}

Trace Trace::Prefix(size_t n) const {
  if (n == 0 || n >= requests.size()) return *this;
  Trace t;
  t.requests.assign(requests.begin(), requests.begin() + static_cast<std::ptrdiff_t>(n));
  for (TraceRequest& r : t.requests) {
    const uint32_t begin = static_cast<uint32_t>(t.keys.size());
    t.keys.insert(t.keys.end(), keys.begin() + r.keys_begin, keys.begin() + r.keys_begin + r.keys_count);
    r.keys_begin = begin;
  }
  return t;
}

}  // namespace crescent::sim
