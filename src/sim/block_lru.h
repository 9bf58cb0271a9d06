// BlockLru: one node's KVCache of prefix blocks with LRU eviction, counted in
// blocks (the simulator converts tokens per node to blocks).
//
// InsertChain refreshes a prompt's whole chain of keys, last block first, so a
// prefix always outlives its suffixes (a suffix is useless without its prefix).
// size() never exceeds capacity(). Single-threaded; O(1) per key.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>

#include "conductor/cluster_view.h"

namespace crescent::sim {

using conductor::BlockKey;

class BlockLru {
 public:
  explicit BlockLru(int64_t capacity_blocks);

  // Number of leading keys present. Does not refresh them.
  int64_t MatchPrefix(std::span<const BlockKey> keys) const;
  bool Contains(BlockKey k) const { return index_.contains(k); }
  // Inserts or refreshes every key (last first), evicting the least recent beyond capacity.
  void InsertChain(std::span<const BlockKey> keys);

  int64_t size() const { return static_cast<int64_t>(order_.size()); }
  int64_t capacity() const { return capacity_; }
  int64_t evictions() const { return evictions_; }

 private:
  void Touch(BlockKey k);
  int64_t capacity_;
  int64_t evictions_ = 0;
  std::list<BlockKey> order_;  // most recent first
  std::unordered_map<BlockKey, std::list<BlockKey>::iterator, conductor::BlockKeyHasher> index_;
};

}  // namespace crescent::sim
