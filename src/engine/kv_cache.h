// KvPagePool: the engine's KV memory, in pages (DESIGN.md "KV layout and keys").
//
//   storage: for each layer l: K pages then V pages
//     K(l): [num_pages][kv_heads][page_tokens][head_dim] in `dtype` (bf16 default)
//     V(l): same shape
//   A sequence's SequenceKv holds its block table (page ids in token order) and
//   the number of tokens whose K/V are stored.
//
//     tokens 0..15 -> pages[0], 16..31 -> pages[1], ...  (page_tokens = 16)
//
// This pool hands out whole pages from a free list; each page has one owner.
// (Sharing pages between sequences, prefix keys and LRU eviction of cached pages
// build on this in the paged-cache issue, behind the same block-table seam.)
// Thread-compatible: the engine's step thread owns the pool.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "kernels/attention.h"

namespace crescent::engine {

struct KvCacheShape {
  int64_t num_layers = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t page_tokens = 16;
  DType dtype = DType::kBF16;
  // Bytes of one page across all layers, K and V.
  int64_t page_bytes() const {
    return num_layers * 2 * kv_heads * page_tokens * head_dim * static_cast<int64_t>(DTypeSize(dtype));
  }
};

struct SequenceKv {
  std::vector<int32_t> pages;
  int64_t num_tokens = 0;  // tokens whose K/V are in the pages
};

class KvPagePool {
 public:
  KvPagePool(const KvCacheShape& shape, int64_t num_pages);
  ~KvPagePool();
  KvPagePool(const KvPagePool&) = delete;
  KvPagePool& operator=(const KvPagePool&) = delete;

  const KvCacheShape& shape() const { return shape_; }
  int64_t num_pages() const { return num_pages_; }
  int64_t num_free_pages() const { return static_cast<int64_t>(free_.size()); }
  kernels::KvLayerView Layer(int64_t layer) const;

  // Grows kv.pages to cover `tokens` tokens. On ResourceExhausted nothing changed.
  Status Reserve(SequenceKv& kv, int64_t tokens);
  // Returns all of kv's pages to the pool and empties it.
  void Release(SequenceKv& kv);

 private:
  KvCacheShape shape_;
  int64_t num_pages_;
  std::byte* data_ = nullptr;
  std::vector<int32_t> free_;  // LIFO: recently freed pages are warm in cache
};

}  // namespace crescent::engine
