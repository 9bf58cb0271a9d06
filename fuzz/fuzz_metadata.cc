// What crescent reads back from etcd (the input, split by its first byte):
// an etcd watch stream line, a transfer segment descriptor, a P/D instance
// record, and the hex/base64 and host:port codecs under them. Each is an
// error when malformed, never a crash; a descriptor that decodes encodes back
// to text that decodes to the same descriptor.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/instance_registry.h"
#include "transfer/base64.h"
#include "transfer/etcd_client.h"
#include "transfer/http_client.h"
#include "transfer/segment_descriptor.h"

namespace t = crescent::transfer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: (void)t::ParseWatchMessage(text); break;
    case 1: {
      crescent::Result<t::SegmentDescriptor> d = t::SegmentDescriptor::Decode(text);
      if (d.ok()) {
        crescent::Result<t::SegmentDescriptor> e = t::SegmentDescriptor::Decode(d->Encode());
        if (!e.ok() || e->name != d->name || e->owner != d->owner || e->base != d->base || e->length != d->length ||
            e->rkey != d->rkey || e->worker_addresses != d->worker_addresses) {
          std::abort();
        }
      }
      break;
    }
    case 2: (void)crescent::server::ParseInstanceRecord(text); break;
    case 3: {
      crescent::Result<std::string> b = t::HexDecode(text);
      if (b.ok() && t::HexEncode(*b).size() != text.size()) std::abort();
      break;
    }
    case 4: (void)t::Base64Decode(text); break;
    default: (void)t::ParseHttpEndpoint(text); break;
  }
  return 0;
}
