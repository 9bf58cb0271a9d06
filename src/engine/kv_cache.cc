#include "engine/kv_cache.h"

#include <cstdlib>
#include <cstring>

namespace crescent::engine {

KvPagePool::KvPagePool(const KvCacheShape& shape, int64_t num_pages) : shape_(shape), num_pages_(num_pages) {
  CHECK_GT(num_pages, 0);
  size_t bytes = static_cast<size_t>(shape.page_bytes() * num_pages);
  bytes = (bytes + 63) / 64 * 64;
  data_ = static_cast<std::byte*>(std::aligned_alloc(64, bytes));
  CHECK(data_ != nullptr) << "cannot allocate " << bytes << " bytes of KV cache";
  std::memset(data_, 0, bytes);
  free_.reserve(static_cast<size_t>(num_pages));
  for (int64_t p = num_pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
}

KvPagePool::~KvPagePool() { std::free(data_); }

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

Status KvPagePool::Reserve(SequenceKv& kv, int64_t tokens) {
  const int64_t need = (tokens + shape_.page_tokens - 1) / shape_.page_tokens;
  const int64_t more = need - static_cast<int64_t>(kv.pages.size());
  if (more <= 0) return Status::Ok();
  if (more > num_free_pages()) {
    return ResourceExhausted("KV cache full: need " + std::to_string(more) + " more pages, " +
                             std::to_string(num_free_pages()) + " free");
  }
  for (int64_t i = 0; i < more; ++i) {
    kv.pages.push_back(free_.back());
    free_.pop_back();
  }
  return Status::Ok();
}

void KvPagePool::Release(SequenceKv& kv) {
  for (int32_t p : kv.pages) free_.push_back(p);
  kv.pages.clear();
  kv.num_tokens = 0;
}

}  // namespace crescent::engine
