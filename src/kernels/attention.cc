#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/check.h"
#include "base/dtype.h"
#include "base/thread_pool.h"
#include "kernels/convert.h"

namespace crescent::kernels {

namespace {

struct Item {
  int32_t seq;
  int32_t kv_head;
  int64_t token;  // index within the sequence's new tokens
};

inline const uint16_t* Row(const uint16_t* base, const KvLayerView& kv, const int32_t* table, int64_t t,
                           int64_t g) {
  int64_t page = table[t / kv.page_tokens];
  int64_t slot = t % kv.page_tokens;
  return base + page * kv.page_elems() + (g * kv.page_tokens + slot) * kv.head_dim;
}

// One (sequence, query token, kv head): all query heads of the group.
template <typename Out>
void AttendOne(const AttentionParams& p, const KvLayerView& kv, const AttentionSeq& s, int64_t i, int64_t g,
               const float* q, int64_t q_stride, Out* out, std::vector<float>& scratch) {
  const int64_t hd = p.head_dim;
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t pos = s.start_pos + i;
  const int64_t lo = p.sliding_window > 0 ? std::max<int64_t>(0, pos - p.sliding_window + 1) : 0;
  const int64_t ctx = pos + 1 - lo;
  scratch.resize(static_cast<size_t>(group * ctx + hd + group * hd));
  float* scores = scratch.data();            // [group][ctx]
  float* row = scores + group * ctx;         // [hd]
  float* acc = row + hd;                     // [group][hd]
  const float* qrow = q + (s.row + i) * q_stride + g * group * hd;

  for (int64_t t = 0; t < ctx; ++t) {
    const uint16_t* kr = Row(kv.k, kv, s.block_table, lo + t, g);
    for (int64_t d = 0; d < hd; ++d) row[d] = crescent::Bf16ToF32(kr[d]);
    for (int64_t j = 0; j < group; ++j) {
      const float* qj = qrow + j * hd;
      float dot = 0;
      for (int64_t d = 0; d < hd; ++d) dot += qj[d] * row[d];
      scores[j * ctx + t] = dot * p.scale;
    }
  }
  for (int64_t j = 0; j < group; ++j) {
    float* sj = scores + j * ctx;
    float mx = *std::max_element(sj, sj + ctx);
    float sum = 0;
    for (int64_t t = 0; t < ctx; ++t) {
      sj[t] = std::exp(sj[t] - mx);
      sum += sj[t];
    }
    float inv = 1.0f / sum;
    for (int64_t t = 0; t < ctx; ++t) sj[t] *= inv;
  }
  std::fill(acc, acc + group * hd, 0.0f);
  for (int64_t t = 0; t < ctx; ++t) {
    const uint16_t* vr = Row(kv.v, kv, s.block_table, lo + t, g);
    for (int64_t d = 0; d < hd; ++d) row[d] = crescent::Bf16ToF32(vr[d]);
    for (int64_t j = 0; j < group; ++j) {
      const float w = scores[j * ctx + t];
      float* aj = acc + j * hd;
      for (int64_t d = 0; d < hd; ++d) aj[d] += w * row[d];
    }
  }
  Out* o = out + (s.row + i) * p.num_heads * hd + g * group * hd;
  if constexpr (sizeof(Out) == 2) {
    F32ToBf16(acc, reinterpret_cast<uint16_t*>(o), group * hd);
  } else {
    std::copy(acc, acc + group * hd, o);
  }
}

template <typename Out>
void Run(const AttentionParams& p, const KvLayerView& kv, std::span<const AttentionSeq> seqs, const float* q,
         int64_t q_stride, Out* out) {
  CHECK(p.num_kv_heads > 0 && p.num_heads % p.num_kv_heads == 0);
  CHECK_EQ(p.num_kv_heads, kv.kv_heads);
  CHECK_EQ(p.head_dim, kv.head_dim);
  std::vector<Item> items;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int64_t i = 0; i < seqs[s].num_tokens; ++i) {
      for (int64_t g = 0; g < p.num_kv_heads; ++g) items.push_back({static_cast<int32_t>(s), static_cast<int32_t>(g), i});
    }
  }
  // Later tokens see more keys: interleave so each thread gets a fair share.
  ThreadPool::Default().RunOnAll([&](int t, int nt) {
    thread_local std::vector<float> scratch;
    for (size_t k = static_cast<size_t>(t); k < items.size(); k += static_cast<size_t>(nt)) {
      const Item& it = items[k];
      AttendOne(p, kv, seqs[it.seq], it.token, it.kv_head, q, q_stride, out, scratch);
    }
  });
}

}  // namespace

void WriteKvPages(const KvLayerView& kv, std::span<const AttentionSeq> seqs, const float* k, const float* v,
                  int64_t stride) {
  for (const AttentionSeq& s : seqs) {
    for (int64_t i = 0; i < s.num_tokens; ++i) {
      const int64_t t = s.start_pos + i;
      const float* kr = k + (s.row + i) * stride;
      const float* vr = v + (s.row + i) * stride;
      for (int64_t g = 0; g < kv.kv_heads; ++g) {
        F32ToBf16(kr + g * kv.head_dim, const_cast<uint16_t*>(Row(kv.k, kv, s.block_table, t, g)), kv.head_dim);
        F32ToBf16(vr + g * kv.head_dim, const_cast<uint16_t*>(Row(kv.v, kv, s.block_table, t, g)), kv.head_dim);
      }
    }
  }
}

void PagedAttention(const AttentionParams& p, const KvLayerView& kv, std::span<const AttentionSeq> seqs,
                    const float* q, int64_t q_stride, uint16_t* out) {
  Run(p, kv, seqs, q, q_stride, out);
}

void PagedAttentionF32(const AttentionParams& p, const KvLayerView& kv, std::span<const AttentionSeq> seqs,
                       const float* q, int64_t q_stride, float* out) {
  Run(p, kv, seqs, q, q_stride, out);
}

}  // namespace crescent::kernels
