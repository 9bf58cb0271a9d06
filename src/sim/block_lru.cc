#include "sim/block_lru.h"

#include "base/check.h"

namespace crescent::sim {

BlockLru::BlockLru(int64_t capacity_blocks) : capacity_(capacity_blocks < 0 ? 0 : capacity_blocks) {}

int64_t BlockLru::MatchPrefix(std::span<const BlockKey> keys) const {
  int64_t n = 0;
  while (n < static_cast<int64_t>(keys.size()) && index_.contains(keys[n])) ++n;
  return n;
}

void BlockLru::Touch(BlockKey k) {
  if (capacity_ == 0) return;
  auto it = index_.find(k);
  if (it != index_.end()) {
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  order_.push_front(k);
  index_.emplace(k, order_.begin());
  if (static_cast<int64_t>(order_.size()) > capacity_) {
    index_.erase(order_.back());
    order_.pop_back();
    ++evictions_;
  }
  DCHECK(static_cast<int64_t>(order_.size()) <= capacity_);
}

void BlockLru::InsertChain(std::span<const BlockKey> keys) {
  for (size_t i = keys.size(); i-- > 0;) Touch(keys[i]);
}

}  // namespace crescent::sim
