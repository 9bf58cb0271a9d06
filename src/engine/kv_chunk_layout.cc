#include "engine/kv_chunk_layout.h"

#include <cstring>

namespace crescent::engine {

int64_t KvChunkBytes(const KvPageAccess& pages, int64_t pages_per_chunk) {
  return 2 * pages.num_layers() * pages_per_chunk * pages.page_bytes_per_layer();
}

void GatherKvChunk(const KvChunkRef& chunk, KvPageAccess& pages, std::byte* out) {
  const size_t per_page = static_cast<size_t>(pages.page_bytes_per_layer());
  for (int64_t l = 0; l < pages.num_layers(); ++l) {
    for (int32_t p : chunk.pages) out = static_cast<std::byte*>(std::memcpy(out, pages.K(l, p).data(), per_page)) + per_page;
    for (int32_t p : chunk.pages) out = static_cast<std::byte*>(std::memcpy(out, pages.V(l, p).data(), per_page)) + per_page;
  }
}

namespace {
// The pages a load skips at the head of each side of each layer.
Result<int64_t> SkippedPages(const KvChunkRef& chunk, int64_t page_tokens, int64_t pages_per_chunk) {
  const int64_t offset = chunk.first_token - chunk.chunk_start;
  const int64_t skip = offset / page_tokens;
  if (offset < 0 || offset % page_tokens != 0 || skip + static_cast<int64_t>(chunk.pages.size()) > pages_per_chunk) {
    return InvalidArgument("a load's pages do not fit its chunk");
  }
  return skip;
}

void Append(std::vector<ScatterPart>& parts, std::byte* data, size_t size) {
  if (size == 0) return;
  if (!parts.empty()) {
    ScatterPart& last = parts.back();
    if ((data == nullptr && last.data == nullptr) || (data != nullptr && last.data != nullptr && last.data + last.size == data)) {
      last.size += size;
      return;
    }
  }
  parts.push_back({data, size});
}
}  // namespace

Result<std::vector<ScatterPart>> KvChunkScatterParts(const KvChunkRef& chunk, int64_t page_tokens,
                                                     int64_t pages_per_chunk, KvPageAccess& pages) {
  ASSIGN_OR_RETURN(const int64_t skip, SkippedPages(chunk, page_tokens, pages_per_chunk));
  const size_t per_page = static_cast<size_t>(pages.page_bytes_per_layer());
  const size_t tail = static_cast<size_t>(pages_per_chunk - skip - static_cast<int64_t>(chunk.pages.size())) * per_page;
  std::vector<ScatterPart> parts;
  for (int64_t l = 0; l < pages.num_layers(); ++l) {
    for (int side = 0; side < 2; ++side) {
      Append(parts, nullptr, static_cast<size_t>(skip) * per_page);
      for (int32_t p : chunk.pages) Append(parts, (side == 0 ? pages.K(l, p) : pages.V(l, p)).data(), per_page);
      Append(parts, nullptr, tail);
    }
  }
  return parts;
}

Status ScatterKvChunk(const std::byte* object, const KvChunkRef& chunk, int64_t page_tokens, int64_t pages_per_chunk,
                      KvPageAccess& pages) {
  ASSIGN_OR_RETURN(const int64_t skip, SkippedPages(chunk, page_tokens, pages_per_chunk));
  const int64_t per_page = pages.page_bytes_per_layer();
  const int64_t side = per_page * pages_per_chunk;
  for (int64_t l = 0; l < pages.num_layers(); ++l) {
    const std::byte* k = object + (2 * l) * side;
    const std::byte* v = k + side;
    for (size_t i = 0; i < chunk.pages.size(); ++i) {
      const int64_t at = (skip + static_cast<int64_t>(i)) * per_page;
      std::memcpy(pages.K(l, chunk.pages[i]).data(), k + at, static_cast<size_t>(per_page));
      std::memcpy(pages.V(l, chunk.pages[i]).data(), v + at, static_cast<size_t>(per_page));
    }
  }
  return Status::Ok();
}

}  // namespace crescent::engine
