#include "engine/kv_cache.h"

#include <sys/mman.h>

#include "base/kv_identity.h"


namespace crescent::engine {

Hash128 PageKey(const Hash128& parent, std::span<const int32_t> tokens, const Hash128& fingerprint) {
  return KvChainKey(parent, tokens, fingerprint);
}

void ExtendPageKeys(std::span<const int32_t> tokens, int64_t page_tokens, const Hash128& fingerprint,
                    std::vector<Hash128>& keys) {
  const size_t pt = static_cast<size_t>(page_tokens);
  for (size_t i = keys.size(); (i + 1) * pt <= tokens.size(); ++i) {
    keys.push_back(PageKey(i == 0 ? Hash128{} : keys.back(), tokens.subspan(i * pt, pt), fingerprint));
  }
}

KvPagePool::KvPagePool(const KvCacheShape& shape, int64_t num_pages, bool prefault)
    : shape_(shape), num_pages_(num_pages) {
  CHECK_GT(num_pages, 0);
  CHECK_LT(num_pages, int64_t{1} << 31);
  bytes_ = static_cast<size_t>(shape.page_bytes() * num_pages);
  // Anonymous memory: zero pages the kernel hands out on first touch, so a pool
  // of gigabytes costs no start-up time (a memset of 8 GB took ~20 s here), and
  // transparent huge pages where the kernel allows them, for fewer TLB misses
  // when attention walks the pages.
  auto mem = LargeBuffer::Allocate(bytes_);
  CHECK(mem.ok()) << "cannot map " << bytes_ << " bytes of KV cache";
  mem_ = std::move(*mem);
  if (prefault) madvise(mem_.data(), bytes_, MADV_POPULATE_WRITE);
  data_ = reinterpret_cast<std::byte*>(mem_.data());
  const size_t n = static_cast<size_t>(num_pages);
  ref_.assign(n, 0);
  prev_.assign(n, -1);
  next_.assign(n, -1);
  key_.assign(n, Hash128{});
  has_key_.assign(n, false);
  free_.reserve(n);
  for (int64_t p = num_pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
  num_free_ = num_pages;
}

KvPagePool::~KvPagePool() = default;

kernels::KvLayerView KvPagePool::Layer(int64_t layer) const {
  kernels::KvLayerView v;
  v.page_tokens = shape_.page_tokens;
  v.kv_heads = shape_.kv_heads;
  v.head_dim = shape_.head_dim;
  v.dtype = shape_.dtype;
  const int64_t per_side = v.page_elems() * num_pages_ * static_cast<int64_t>(DTypeSize(shape_.dtype));
  v.k = data_ + layer * 2 * per_side;
  v.v = data_ + layer * 2 * per_side + per_side;
  return v;
}

std::span<std::byte> KvPagePool::PageBytes(int64_t layer, bool value, int32_t page) const {
  return {data_ + KvPageOffset(shape_, num_pages_, layer, value, page),
          static_cast<size_t>(shape_.page_bytes() / shape_.num_layers / 2)};
}

void KvPagePool::LruRemove(int32_t p) {
  if (prev_[p] >= 0) next_[prev_[p]] = next_[p]; else lru_head_ = next_[p];
  if (next_[p] >= 0) prev_[next_[p]] = prev_[p]; else lru_tail_ = prev_[p];
  prev_[p] = next_[p] = -1;
  --num_cached_;
}

void KvPagePool::LruPushBack(int32_t p) {
  prev_[p] = lru_tail_;
  next_[p] = -1;
  if (lru_tail_ >= 0) next_[lru_tail_] = p; else lru_head_ = p;
  lru_tail_ = p;
  ++num_cached_;
}

int32_t KvPagePool::Allocate() {
  int32_t p;
  if (!free_.empty()) {
    p = free_.back();
    free_.pop_back();
    --num_free_;
  } else if (lru_head_ >= 0) {
    p = lru_head_;
    LruRemove(p);
    by_key_.erase(key_[p]);
    has_key_[p] = false;
    if (events_) events_->Record(false, key_[p]);
  } else {
    return -1;
  }
  ref_[p] = 1;
  return p;
}

void KvPagePool::Ref(int32_t page) {
  CHECK(page >= 0 && page < num_pages_);
  ++ref_[page];
}

void KvPagePool::Unref(int32_t page) {
  CHECK(page >= 0 && page < num_pages_);
  CHECK_GT(ref_[page], 0) << "page " << page;
  if (--ref_[page] > 0) return;
  if (has_key_[page]) {
    LruPushBack(page);
  } else {
    free_.push_back(page);
    ++num_free_;
  }
}

void KvPagePool::SetKey(int32_t page, const Hash128& key) {
  CHECK_GT(ref_[page], 0);
  if (has_key_[page]) return;
  if (!by_key_.emplace(key, page).second) return;  // another page holds this prefix
  key_[page] = key;
  has_key_[page] = true;
  if (events_) events_->Record(true, key);
}

int32_t KvPagePool::Lookup(const Hash128& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return -1;
  const int32_t p = it->second;
  if (ref_[p] == 0) {
    LruRemove(p);
    // Leaves the page "owned by nobody" until the caller's Ref: count it as owned.
  }
  return p;
}

void KvPagePool::ClearCache() {
  while (lru_head_ >= 0) {
    int32_t p = lru_head_;
    LruRemove(p);
    by_key_.erase(key_[p]);
    has_key_[p] = false;
    if (events_) events_->Record(false, key_[p]);
    free_.push_back(p);
    ++num_free_;
  }
}

Status KvPagePool::Reserve(SequenceKv& kv, int64_t tokens) {
  const int64_t need = (tokens + shape_.page_tokens - 1) / shape_.page_tokens;
  const int64_t more = need - static_cast<int64_t>(kv.pages.size());
  if (more <= 0) return Status::Ok();
  if (more > num_free_pages()) {
    return ResourceExhausted("KV cache full: need " + std::to_string(more) + " more pages, " +
                             std::to_string(num_free_pages()) + " free");
  }
  for (int64_t i = 0; i < more; ++i) kv.pages.push_back(Allocate());
  return Status::Ok();
}

void KvPagePool::Release(SequenceKv& kv) {
  for (int32_t p : kv.pages) Unref(p);
  kv.pages.clear();
  kv.num_tokens = 0;
}

}  // namespace crescent::engine
