// SegmentDescriptor: what a peer needs to reach a registered segment: the
// owner engine's identity and UCX worker addresses, the segment's base address
// and length in the owner's address space, and its packed UCX remote key.
// Serialized as one JSON object (binary fields hex-encoded) into the
// MetadataStore under "<prefix><name>".
// Thread-safety: a value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace crescent::transfer {

struct SegmentDescriptor {
  std::string name;
  std::string owner;                          // unique per engine instance
  std::vector<std::string> worker_addresses;  // binary ucp worker addresses
  uint64_t base = 0;
  uint64_t length = 0;
  std::string rkey;  // binary, from ucp_rkey_pack

  std::string Encode() const;
  static Result<SegmentDescriptor> Decode(std::string_view text);
};

std::string HexEncode(std::string_view bytes);
Result<std::string> HexDecode(std::string_view hex);

}  // namespace crescent::transfer
