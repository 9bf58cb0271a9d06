#include "transfer/segment_descriptor.h"

#include <boost/json.hpp>

#include "base/json.h"

namespace crescent::transfer {

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

Result<std::string> HexDecode(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return DataLoss("hex string of odd length");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return DataLoss("bad hex digit");
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string SegmentDescriptor::Encode() const {
  boost::json::object o;
  o["name"] = name;
  o["owner"] = owner;
  boost::json::array workers;
  for (const auto& w : worker_addresses) workers.emplace_back(HexEncode(w));
  o["workers"] = std::move(workers);
  o["base"] = base;
  o["length"] = length;
  o["rkey"] = HexEncode(rkey);
  return boost::json::serialize(o);
}

Result<SegmentDescriptor> SegmentDescriptor::Decode(std::string_view text) {
  ASSIGN_OR_RETURN(boost::json::value v, ParseJson(text, "segment descriptor"));
  JsonReader r(v, "segment descriptor");
  SegmentDescriptor d;
  d.name = r.String("name");
  d.owner = r.String("owner");
  std::vector<std::string> workers = r.StringList("workers");
  int64_t base = r.Int("base");
  int64_t length = r.Int("length");
  std::string rkey_hex = r.String("rkey");
  RETURN_IF_ERROR(r.status());
  if (base < 0 || length <= 0 || workers.empty()) {
    return DataLoss("segment descriptor '" + d.name + "': bad base, length or workers");
  }
  d.base = static_cast<uint64_t>(base);
  d.length = static_cast<uint64_t>(length);
  for (const auto& w : workers) {
    ASSIGN_OR_RETURN(std::string addr, HexDecode(w));
    d.worker_addresses.push_back(std::move(addr));
  }
  ASSIGN_OR_RETURN(d.rkey, HexDecode(rkey_hex));
  return d;
}

}  // namespace crescent::transfer
