#include "engine/in_process_kv_connector.h"

#include <cstring>

#include "base/check.h"

namespace crescent::engine {

InProcessKvConnector::InProcessKvConnector(int64_t chunk_tokens, int64_t page_tokens)
    : chunk_tokens_(chunk_tokens), page_tokens_(page_tokens) {
  CHECK(page_tokens > 0 && chunk_tokens > 0 && chunk_tokens % page_tokens == 0);
}

int64_t InProcessKvConnector::ExternalPrefixTokens(std::span<const int32_t> tokens,
                                                   std::span<const Hash128> chunk_keys, int64_t local_hit_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  while (n < static_cast<int64_t>(chunk_keys.size()) && chunks_.count(chunk_keys[n])) ++n;
  const int64_t found = n * chunk_tokens_;
  return found > local_hit_tokens ? found : 0;
}

Status InProcessKvConnector::LoadPrefix(std::span<const KvChunkRef> chunks, KvPageAccess& pages) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t per_page = pages.page_bytes_per_layer();
  const int64_t pages_per_chunk = chunk_tokens_ / page_tokens_;
  const int64_t side = per_page * pages_per_chunk;
  for (const KvChunkRef& c : chunks) {
    auto it = chunks_.find(c.key);
    if (it == chunks_.end()) return NotFound("KV chunk " + c.key.ToHex() + " is gone");
    const int64_t skip = (c.first_token - c.chunk_start) / page_tokens_;
    for (int64_t l = 0; l < pages.num_layers(); ++l) {
      const std::byte* k = it->second.data() + (2 * l) * side;
      const std::byte* v = k + side;
      for (size_t i = 0; i < c.pages.size(); ++i) {
        std::memcpy(pages.K(l, c.pages[i]).data(), k + (skip + static_cast<int64_t>(i)) * per_page, per_page);
        std::memcpy(pages.V(l, c.pages[i]).data(), v + (skip + static_cast<int64_t>(i)) * per_page, per_page);
      }
    }
    ++loads_;
  }
  return Status::Ok();
}

void InProcessKvConnector::SaveChunk(const KvChunkRef& chunk, KvPageAccess& pages) {
  const int64_t pages_per_chunk = chunk_tokens_ / page_tokens_;
  if (chunk.first_token != chunk.chunk_start || static_cast<int64_t>(chunk.pages.size()) != pages_per_chunk) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (chunks_.count(chunk.key)) return;
  const int64_t per_page = pages.page_bytes_per_layer();
  std::vector<std::byte> bytes(static_cast<size_t>(2 * pages.num_layers() * pages_per_chunk * per_page));
  std::byte* out = bytes.data();
  for (int64_t l = 0; l < pages.num_layers(); ++l) {
    for (int32_t p : chunk.pages) out = static_cast<std::byte*>(std::memcpy(out, pages.K(l, p).data(), per_page)) + per_page;
    for (int32_t p : chunk.pages) out = static_cast<std::byte*>(std::memcpy(out, pages.V(l, p).data(), per_page)) + per_page;
  }
  chunks_.emplace(chunk.key, std::move(bytes));
}

Status InProcessKvConnector::SendKv(const std::string& peer, std::span<const KvChunkRef> chunks, KvPageAccess& pages) {
  // In one process every peer reads the same map.
  for (const KvChunkRef& c : chunks) SaveChunk(c, pages);
  return Status::Ok();
}

int64_t InProcessKvConnector::num_chunks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(chunks_.size());
}

int64_t InProcessKvConnector::loads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return loads_;
}

}  // namespace crescent::engine
