// The layout of one KV chunk outside the engine (DESIGN.md, "KV layout and
// keys"): all layers, layer-major — layer 0 K, layer 0 V, layer 1 K, ... —
// each side the chunk's pages back to back. Every KvConnector that moves a
// chunk as one object uses these two copies, so the layout lives here once.
#pragma once

#include <cstdint>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "engine/kv_connector.h"

namespace crescent::engine {

// Bytes of one chunk of `pages_per_chunk` pages.
int64_t KvChunkBytes(const KvPageAccess& pages, int64_t pages_per_chunk);

// Copies a whole chunk's pages (chunk.pages covers it) into `out`.
void GatherKvChunk(const KvChunkRef& chunk, KvPageAccess& pages, std::byte* out);

// Copies a chunk object into chunk.pages, which cover it from
// chunk.first_token on (whole pages of `page_tokens`). InvalidArgument when
// they do not fit a chunk of `pages_per_chunk` pages.
Status ScatterKvChunk(const std::byte* object, const KvChunkRef& chunk, int64_t page_tokens, int64_t pages_per_chunk,
                      KvPageAccess& pages);

// The same as a scatter list (base/hash.h): where each byte of the chunk
// object goes in chunk.pages (the pages before first_token skipped), for a
// reader that copies straight into the pages. Adjacent pieces are merged.
Result<std::vector<ScatterPart>> KvChunkScatterParts(const KvChunkRef& chunk, int64_t page_tokens,
                                                     int64_t pages_per_chunk, KvPageAccess& pages);

}  // namespace crescent::engine
