#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/check.h"
#include "base/dtype.h"
#include "base/thread_pool.h"
#include "kernels/attention_bf16.h"
#include "kernels/convert.h"
#include "kernels/vec_math.h"

// The flash-style kernel needs AVX-512 F, BW (16-bit masked loads) and VL.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define CRESCENT_ATTN_AVX512 1
#else
#define CRESCENT_ATTN_AVX512 0
#endif

namespace crescent::kernels {

namespace {

struct Item {
  int32_t seq;
  int32_t kv_head;
  int64_t token;  // index within the sequence's new tokens
};

template <typename KvT>
inline KvT* Row(void* base, const KvLayerView& kv, const int32_t* table, int64_t t, int64_t g) {
  int64_t page = table[t / kv.page_tokens];
  int64_t slot = t % kv.page_tokens;
  return static_cast<KvT*>(base) + page * kv.page_elems() + (g * kv.page_tokens + slot) * kv.head_dim;
}

[[maybe_unused]] inline void LoadRow(const uint16_t* r, int64_t n, float* out) {
  for (int64_t d = 0; d < n; ++d) out[d] = crescent::Bf16ToF32(r[d]);
}
[[maybe_unused]] inline void LoadRow(const float* r, int64_t n, float* out) { std::copy(r, r + n, out); }
inline void StoreRow(const float* in, int64_t n, uint16_t* r) { F32ToBf16(in, r, n); }
inline void StoreRow(const float* in, int64_t n, float* r) { std::copy(in, in + n, r); }

// One (sequence, query token, kv head): all query heads of the group.
template <typename KvT, typename Out>
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
    LoadRow(Row<KvT>(kv.k, kv, s.block_table, lo + t, g), hd, row);
    for (int64_t j = 0; j < group; ++j) {
      const float* qj = qrow + j * hd;
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < hd; ++d) dot += qj[d] * row[d];
      scores[j * ctx + t] = dot * p.scale;
    }
  }
  for (int64_t j = 0; j < group; ++j) {
    float* sj = scores + j * ctx;
    float mx = *std::max_element(sj, sj + ctx);
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t t = 0; t < ctx; ++t) {
      sj[t] = std::exp(sj[t] - mx);
      sum += sj[t];
    }
    float inv = 1.0f / sum;
    for (int64_t t = 0; t < ctx; ++t) sj[t] *= inv;
  }
  std::fill(acc, acc + group * hd, 0.0f);
  for (int64_t t = 0; t < ctx; ++t) {
    LoadRow(Row<KvT>(kv.v, kv, s.block_table, lo + t, g), hd, row);
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


#if CRESCENT_ATTN_AVX512
// Flash-style kernel: one (sequence, kv head, block of query tokens). All query
// heads of the group for those tokens form R rows; keys stream through in chunks
// of up to 16 tokens of one page (the next chunk prefetched), staged in f32. A
// row's 16 scores come from K transposed to [head_dim][16] when there are many
// rows (prefill), or from 16 dot products folded across lanes when there are few
// (decode, where one transpose per chunk would cost more than the scoring); then
// an online softmax (running max m, running sum l) rescales the row's accumulator.
constexpr int64_t kQueryBlock = 16;
constexpr int64_t kDirectRows = 8;  // up to this many rows score without transposing K

// Converts n <= hd16 KV values to f32 at out (64-byte aligned); lanes [n, hd16) = 0.
inline void LoadRow16(const uint16_t* r, int64_t n, int64_t hd16, float* out) {
  for (int64_t d = 0; d < hd16; d += 16) {
    const __mmask16 m = n - d >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << (n - d)) - 1);
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, r + d));
    _mm512_store_ps(out + d, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
  }
}
inline void LoadRow16(const float* r, int64_t n, int64_t hd16, float* out) {
  for (int64_t d = 0; d < hd16; d += 16) {
    const __mmask16 m = n - d >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << (n - d)) - 1);
    _mm512_store_ps(out + d, _mm512_maskz_loadu_ps(m, r + d));
  }
}

// Lane t of the result = q . K[t] for the 16 rows of K ([16][hd16], aligned).
// 16 partial-sum vectors are folded by halving them pairwise (512 -> 256 -> 128
// bits, then within 128-bit lanes), which leaves lane 4k+p holding key 4p+k; one
// permute puts the keys in order.
inline __m512 Scores16(const float* q, const float* K, int64_t hd16) {
  __m512 a[16];
  for (int t = 0; t < 16; ++t) a[t] = _mm512_setzero_ps();
  for (int64_t d = 0; d < hd16; d += 16) {
    const __m512 qd = _mm512_load_ps(q + d);
    for (int t = 0; t < 16; ++t) a[t] = _mm512_fmadd_ps(qd, _mm512_load_ps(K + t * hd16 + d), a[t]);
  }
  __m512 b[8], c[4];
  for (int i = 0; i < 8; ++i)
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88), _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
  const __m512 d0 = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x44), _mm512_shuffle_ps(c[0], c[1], 0xEE));
  const __m512 d1 = _mm512_add_ps(_mm512_shuffle_ps(c[2], c[3], 0x44), _mm512_shuffle_ps(c[2], c[3], 0xEE));
  const __m512 e = _mm512_add_ps(_mm512_shuffle_ps(d0, d1, 0x88), _mm512_shuffle_ps(d0, d1, 0xDD));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), e);
}

template <typename KvT, typename Out>
void AttendBlock(const AttentionParams& p, const KvLayerView& kv, const AttentionSeq& s, int64_t g, int64_t i0,
                 int64_t i1, const float* q, int64_t q_stride, Out* out, std::vector<float>& scratch) {
  const int64_t hd = p.head_dim;
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t rows = (i1 - i0) * group;
  const int64_t hd16 = (hd + 15) / 16 * 16;
  scratch.resize(static_cast<size_t>(rows * hd16 * 2 + hd16 * 16 * 3 + rows * 2 + 64));
  // 64-byte aligned base: Kt rows are read with aligned loads.
  float* Q = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t{63});  // [rows][hd16]
  float* O = Q + rows * hd16;      // [rows][hd16]
  float* Kt = O + rows * hd16;     // [hd][16]
  float* Ks = Kt + hd16 * 16;      // [16][hd16]
  float* V = Ks + 16 * hd16;       // [16][hd16]
  float* M = V + 16 * hd16;        // [rows] running max
  float* L = M + rows;             // [rows] running sum

  for (int64_t r = 0; r < rows; ++r) {
    const int64_t tok = i0 + r / group, j = r % group;
    const float* src = q + (s.row + tok) * q_stride + (g * group + j) * hd;
    for (int64_t d = 0; d < hd16; ++d) Q[r * hd16 + d] = d < hd ? src[d] * p.scale : 0.0f;
    std::fill(O + r * hd16, O + (r + 1) * hd16, 0.0f);
    M[r] = -INFINITY;
    L[r] = 0.0f;
  }
  const int64_t pos_first = s.start_pos + i0, pos_last = s.start_pos + i1 - 1;
  const int64_t lo_first = p.sliding_window > 0 ? std::max<int64_t>(0, pos_first - p.sliding_window + 1) : 0;
  const int64_t chunk = std::min<int64_t>(16, kv.page_tokens);
  for (int64_t t0 = lo_first / chunk * chunk; t0 <= pos_last; t0 += chunk) {
    const int64_t n = std::min<int64_t>(chunk, pos_last + 1 - t0);
    // Prefetch the next chunk: its K and V rows are contiguous within a page.
    if (const int64_t tp = t0 + chunk; tp <= pos_last) {
      const int64_t nn = std::min<int64_t>(chunk, pos_last + 1 - tp);
      if (tp % kv.page_tokens + nn <= kv.page_tokens) {
        const char* kn = reinterpret_cast<const char*>(Row<KvT>(kv.k, kv, s.block_table, tp, g));
        const char* vn = reinterpret_cast<const char*>(Row<KvT>(kv.v, kv, s.block_table, tp, g));
        const int64_t bytes = nn * hd * static_cast<int64_t>(sizeof(KvT));
        for (int64_t b = 0; b < bytes; b += 64) {
          _mm_prefetch(kn + b, _MM_HINT_T0);
          _mm_prefetch(vn + b, _MM_HINT_T0);
        }
      }
    }
    // Stage this chunk of K and V in f32, [16][hd16], zero past n and hd.
    for (int64_t t = 0; t < 16; ++t) {
      if (t < n) {
        LoadRow16(Row<KvT>(kv.k, kv, s.block_table, t0 + t, g), hd, hd16, Ks + t * hd16);
        LoadRow16(Row<KvT>(kv.v, kv, s.block_table, t0 + t, g), hd, hd16, V + t * hd16);
      } else {
        std::fill(Ks + t * hd16, Ks + (t + 1) * hd16, 0.0f);
      }
    }
    // Many rows: transpose K to [hd][16] once, so a row's 16 scores are hd
    // broadcast-FMAs. Few rows (decode): 16 dot products per row, summed across
    // lanes by a transpose-add tree, which beats paying for the transpose.
    const bool transposed = rows > kDirectRows;
    if (transposed) {
      for (int64_t t = 0; t < 16; ++t)
        for (int64_t d = 0; d < hd; ++d) Kt[d * 16 + t] = Ks[t * hd16 + d];
    }
    // Rows in groups of 4: four independent FMA chains share each K and V load.
    for (int64_t r0 = 0; r0 < rows; r0 += 4) {
      const int nr = static_cast<int>(std::min<int64_t>(4, rows - r0));
      __m512 sc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      const float* q0 = Q + r0 * hd16;
      if (transposed) {
        for (int64_t d = 0; d < hd; ++d) {
          const __m512 kt = _mm512_load_ps(Kt + d * 16);
          for (int i = 0; i < nr; ++i) sc[i] = _mm512_fmadd_ps(_mm512_set1_ps(q0[i * hd16 + d]), kt, sc[i]);
        }
      } else {
        for (int i = 0; i < nr; ++i) sc[i] = Scores16(q0 + i * hd16, Ks, hd16);
      }
      alignas(64) float prob[4][16];
      float rescale[4];
      int64_t t_lo = 16, t_hi = -1;
      for (int i = 0; i < nr; ++i) {
        const int64_t r = r0 + i;
        const int64_t pos = s.start_pos + i0 + r / group;
        const int64_t lo = p.sliding_window > 0 ? std::max<int64_t>(0, pos - p.sliding_window + 1) : 0;
        // Valid lanes: lo <= t0 + lane <= pos and lane < n.
        const int64_t first = std::max<int64_t>(0, lo - t0);
        const int64_t last = std::min<int64_t>(n - 1, pos - t0);
        if (first > last) {  // nothing visible to this row in this chunk
          rescale[i] = 1.0f;
          _mm512_store_ps(prob[i], _mm512_setzero_ps());
          continue;
        }
        t_lo = std::min(t_lo, first);
        t_hi = std::max(t_hi, last);
        const __mmask16 valid = static_cast<__mmask16>(((1u << (last + 1)) - 1) & ~((1u << first) - 1));
        const __m512 masked = _mm512_mask_blend_ps(valid, _mm512_set1_ps(-INFINITY), sc[i]);
        const float m_new = std::max(M[r], ReduceMax512(masked));
        rescale[i] = M[r] == -INFINITY ? 0.0f : std::exp(M[r] - m_new);
        const __m512 pr = _mm512_maskz_mov_ps(valid, Exp512(_mm512_sub_ps(masked, _mm512_set1_ps(m_new))));
        L[r] = L[r] * rescale[i] + ReduceAdd512(pr);
        M[r] = m_new;
        _mm512_store_ps(prob[i], pr);
      }
      if (t_hi < 0) continue;
      for (int64_t d = 0; d < hd16; d += 16) {
        __m512 acc[4];
        for (int i = 0; i < nr; ++i) acc[i] = _mm512_mul_ps(_mm512_loadu_ps(O + (r0 + i) * hd16 + d), _mm512_set1_ps(rescale[i]));
        for (int64_t t = t_lo; t <= t_hi; ++t) {
          const __m512 vv = _mm512_loadu_ps(V + t * hd16 + d);
          for (int i = 0; i < nr; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(prob[i][t]), vv, acc[i]);
        }
        for (int i = 0; i < nr; ++i) _mm512_storeu_ps(O + (r0 + i) * hd16 + d, acc[i]);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t tok = i0 + r / group, j = r % group;
    float* o = O + r * hd16;
    const float inv = 1.0f / L[r];
    for (int64_t d = 0; d < hd; ++d) o[d] *= inv;
    Out* dst = out + (s.row + tok) * p.num_heads * hd + (g * group + j) * hd;
    if constexpr (sizeof(Out) == 2) {
      F32ToBf16(o, reinterpret_cast<uint16_t*>(dst), hd);
    } else {
      std::copy(o, o + hd, dst);
    }
  }
}
#endif

template <typename Out>
void Run(const AttentionParams& p, const KvLayerView& kv, std::span<const AttentionSeq> seqs, const float* q,
         int64_t q_stride, Out* out) {
  CHECK(p.num_kv_heads > 0 && p.num_heads % p.num_kv_heads == 0);
  CHECK_EQ(p.num_kv_heads, kv.kv_heads);
  CHECK_EQ(p.head_dim, kv.head_dim);
  CHECK_LE(p.head_dim, 256);
  AttentionKernel kernel = p.kernel == AttentionKernel::kAuto ? AutoAttentionKernel(kv.dtype, p.head_dim) : p.kernel;
  CHECK(AttentionKernelAvailable(kernel, kv.dtype, p.head_dim)) << AttentionKernelName(kernel) << " is not available";
  const bool flash_bf16 = kernel == AttentionKernel::kBf16Avx512 || kernel == AttentionKernel::kBf16Amx;
  const bool amx = kernel == AttentionKernel::kBf16Amx;
#if CRESCENT_ATTN_AVX512
  const int64_t block =
      flash_bf16 ? internal::Bf16FlashBlockTokens(p.num_heads / p.num_kv_heads) : kQueryBlock;
#else
  const int64_t block = flash_bf16 ? internal::Bf16FlashBlockTokens(p.num_heads / p.num_kv_heads) : 1;
#endif
  std::vector<Item> items;  // token = first query of a block of `block` tokens
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int64_t i = 0; i < seqs[s].num_tokens; i += block) {
      for (int64_t g = 0; g < p.num_kv_heads; ++g) items.push_back({static_cast<int32_t>(s), static_cast<int32_t>(g), i});
    }
  }
  // Later tokens see more keys: interleave so each thread gets a fair share.
  ThreadPool::Default().RunOnAll([&](int t, int nt) {
    thread_local std::vector<float> scratch;
    for (size_t k = static_cast<size_t>(t); k < items.size(); k += static_cast<size_t>(nt)) {
      const Item& it = items[k];
      const int64_t end = std::min(it.token + block, seqs[it.seq].num_tokens);
      if (flash_bf16) {
        internal::Bf16FlashBlock(p, kv, seqs[it.seq], it.kv_head, it.token, end, q, q_stride, out, scratch, amx);
        continue;
      }
#if CRESCENT_ATTN_AVX512
      if (kv.dtype == DType::kF32) {
        AttendBlock<float>(p, kv, seqs[it.seq], it.kv_head, it.token, end, q, q_stride, out, scratch);
      } else {
        AttendBlock<uint16_t>(p, kv, seqs[it.seq], it.kv_head, it.token, end, q, q_stride, out, scratch);
      }
#else
      if (kv.dtype == DType::kF32) {
        AttendOne<float>(p, kv, seqs[it.seq], it.token, it.kv_head, q, q_stride, out, scratch);
      } else {
        AttendOne<uint16_t>(p, kv, seqs[it.seq], it.token, it.kv_head, q, q_stride, out, scratch);
      }
#endif
    }
  });
}

}  // namespace

bool AttentionKernelAvailable(AttentionKernel k, DType kv_dtype, int64_t head_dim) {
  switch (k) {
    case AttentionKernel::kAuto:
    case AttentionKernel::kF32:
      return true;
    case AttentionKernel::kBf16Avx512:
      return kv_dtype == DType::kBF16 && internal::Bf16FlashApplies(head_dim);
    case AttentionKernel::kBf16Amx:
      return kv_dtype == DType::kBF16 && internal::AmxFlashApplies(head_dim);
  }
  return false;
}

AttentionKernel AutoAttentionKernel(DType kv_dtype, int64_t head_dim) {
  for (AttentionKernel k : {AttentionKernel::kBf16Amx, AttentionKernel::kBf16Avx512}) {
    if (AttentionKernelAvailable(k, kv_dtype, head_dim)) return k;
  }
  return AttentionKernel::kF32;
}

const char* AttentionKernelName(AttentionKernel k) {
  switch (k) {
    case AttentionKernel::kAuto: return "auto";
    case AttentionKernel::kF32: return "f32";
    case AttentionKernel::kBf16Avx512: return "bf16-avx512";
    case AttentionKernel::kBf16Amx: return "bf16-amx";
  }
  return "?";
}

void WriteKvPages(const KvLayerView& kv, std::span<const AttentionSeq> seqs, const float* k, const float* v,
                  int64_t stride) {
  for (const AttentionSeq& s : seqs) {
    for (int64_t i = 0; i < s.num_tokens; ++i) {
      const int64_t t = s.start_pos + i;
      const float* kr = k + (s.row + i) * stride;
      const float* vr = v + (s.row + i) * stride;
      for (int64_t g = 0; g < kv.kv_heads; ++g) {
        if (kv.dtype == DType::kF32) {
          StoreRow(kr + g * kv.head_dim, kv.head_dim, Row<float>(kv.k, kv, s.block_table, t, g));
          StoreRow(vr + g * kv.head_dim, kv.head_dim, Row<float>(kv.v, kv, s.block_table, t, g));
        } else {
          StoreRow(kr + g * kv.head_dim, kv.head_dim, Row<uint16_t>(kv.k, kv, s.block_table, t, g));
          StoreRow(vr + g * kv.head_dim, kv.head_dim, Row<uint16_t>(kv.v, kv, s.block_table, t, g));
        }
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
