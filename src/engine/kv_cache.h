// KvPagePool: the engine's KV memory in pages, with reference counts and a
// prefix cache (DESIGN.md "KV layout and keys"; vLLM v1's block pool).
//
//   storage, per layer l:  K(l): [num_pages][kv_heads][page_tokens][head_dim]
//                          V(l): same shape, in `dtype` (bf16 by default)
//   A sequence's SequenceKv holds its block table (page ids in token order):
//
//     tokens 0..15 -> pages[0], 16..31 -> pages[1], ...     (page_tokens = 16)
//
// Page life cycle:
//
//   free ──Allocate──> owned (ref >= 1) ──last Unref──> free         (no key)
//                        │  SetKey (page is full)        └─> cached  (keyed: LRU list)
//                        └─ Lookup(key) + Ref share it      │  Lookup(key) revives it
//                                                           └─ Allocate evicts the LRU one
//
// A page key names its whole prefix: key = XXH3-128(parent key, the page's token
// ids, model fingerprint), so equal keys mean equal K/V and reuse never copies.
// Allocation takes a never-keyed free page first, then evicts the least recently
// used cached page (O(1), intrusive list).
// Thread-compatible: the engine's step thread owns the pool.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/dtype.h"
#include "base/hash.h"
#include "base/large_buffer.h"
#include "base/status.h"
#include "engine/kv_connector.h"
#include "engine/kv_events.h"
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

// Byte offset of page `page`'s K (value false) or V of `layer` in a pool of
// `num_pages` pages of `shape` (what KvPagePool::PageBytes addresses; a peer
// writing into another instance's pool computes the same).
inline uint64_t KvPageOffset(const KvCacheShape& shape, int64_t num_pages, int64_t layer, bool value, int32_t page) {
  const int64_t page_side = shape.page_bytes() / shape.num_layers / 2;
  return static_cast<uint64_t>((layer * 2 + (value ? 1 : 0)) * num_pages * page_side + page * page_side);
}

// The key of a page: chains the parent's key, the page's tokens and the model
// (base/kv_identity.h's KvChainKey, the one derivation the store shares).
Hash128 PageKey(const Hash128& parent, std::span<const int32_t> tokens, const Hash128& fingerprint);
// Extends `keys` (the page keys of a prefix of `tokens`, in order) to every
// full page of `tokens`: the one chain the scheduler and the P/D paths use.
void ExtendPageKeys(std::span<const int32_t> tokens, int64_t page_tokens, const Hash128& fingerprint,
                    std::vector<Hash128>& keys);

class KvPagePool final : public KvPageAccess {
 public:
  // `prefault`: fault every page in now (MADV_POPULATE_WRITE; with huge pages
  // where the kernel gives them) instead of on first use.
  KvPagePool(const KvCacheShape& shape, int64_t num_pages, bool prefault = false);
  ~KvPagePool();
  KvPagePool(const KvPagePool&) = delete;
  KvPagePool& operator=(const KvPagePool&) = delete;

  const KvCacheShape& shape() const { return shape_; }
  int64_t num_pages() const { return num_pages_; }
  // Pages Allocate can hand out now (free + cached).
  int64_t num_free_pages() const { return num_free_ + num_cached_; }
  int64_t num_cached_pages() const { return num_cached_; }
  kernels::KvLayerView Layer(int64_t layer) const;
  // All of the pool's memory (what a transfer engine registers for peers' writes).
  std::span<std::byte> memory() const { return {data_, bytes_}; }
  std::span<std::byte> PageBytes(int64_t layer, bool value, int32_t page) const;
  // KvPageAccess
  int64_t num_layers() const override { return shape_.num_layers; }
  int64_t page_bytes_per_layer() const override { return shape_.page_bytes() / shape_.num_layers / 2; }
  std::span<std::byte> K(int64_t layer, int32_t page) override { return PageBytes(layer, false, page); }
  std::span<std::byte> V(int64_t layer, int32_t page) override { return PageBytes(layer, true, page); }

  // A page with ref 1, or -1 when every page is owned.
  int32_t Allocate();
  void Ref(int32_t page);
  void Unref(int32_t page);
  int32_t ref_count(int32_t page) const { return ref_[page]; }

  // Registers a full page under `key` (first writer wins; a page has one key).
  void SetKey(int32_t page, const Hash128& key);
  // The page holding `key`, or -1. A cached page found here leaves the LRU list;
  // the caller must Ref it before the next Allocate.
  int32_t Lookup(const Hash128& key);
  // Drops every cached page's key (they become plain free pages).
  void ClearCache();
  // Keys set and dropped from now on are recorded there (null: not recorded);
  // `log` must outlive the pool.
  void set_event_log(KvEventLog* log) { events_ = log; }

  // Grows kv.pages to cover `tokens` tokens. On ResourceExhausted nothing changed.
  Status Reserve(SequenceKv& kv, int64_t tokens);
  // Unrefs all of kv's pages and empties it.
  void Release(SequenceKv& kv);

 private:
  void LruRemove(int32_t p);
  void LruPushBack(int32_t p);

  KvCacheShape shape_;
  int64_t num_pages_;
  LargeBuffer mem_;             // zeroed on first touch, huge pages where allowed
  std::byte* data_ = nullptr;  // mem_.data()
  size_t bytes_ = 0;
  std::vector<int32_t> ref_;
  std::vector<int32_t> free_;  // never-keyed free pages, LIFO (warm in cache)
  int64_t num_free_ = 0;
  // Cached pages: ref 0 with a key, least recently used at the head.
  std::vector<int32_t> prev_, next_;
  int32_t lru_head_ = -1, lru_tail_ = -1;
  int64_t num_cached_ = 0;
  std::vector<Hash128> key_;
  std::vector<bool> has_key_;
  std::unordered_map<Hash128, int32_t, Hash128Hasher> by_key_;
  KvEventLog* events_ = nullptr;
};

}  // namespace crescent::engine
