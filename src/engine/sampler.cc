#include "engine/sampler.h"

#include "kernels/vec_math.h"

#include <immintrin.h>

#include <algorithm>
#include <limits>
#include <cmath>
#include <cstring>
#include <numeric>

namespace crescent::engine {

namespace {
inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    s = z ^ (z >> 31);
  }
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }

void TokenHistory::SetPrompt(std::span<const int32_t> prompt) {
  prompt_tokens.assign(prompt.begin(), prompt.end());
  std::sort(prompt_tokens.begin(), prompt_tokens.end());
  prompt_tokens.erase(std::unique(prompt_tokens.begin(), prompt_tokens.end()), prompt_tokens.end());
}

void TokenHistory::AddOutput(int32_t token) {
  for (auto& [t, c] : output) {
    if (t == token) {
      ++c;
      return;
    }
  }
  output.emplace_back(token, 1);
}

namespace {
// log(sum(exp(row))) with the running max subtracted: f32 lanes of 1024
// elements (exp vectorizes), their sums in f64, ~1e-7 relative accuracy over
// vocabularies of 10^5.
double LogSumExp(const float* row, int64_t n) {
  const float mx = kernels::MaxOf(row, n);
  double sum = 0;
  thread_local std::vector<float> tmp(1024);
  for (int64_t b = 0; b < n; b += 1024) {
    const int64_t e = std::min(n, b + 1024);
    sum += kernels::ExpShiftSum(row + b, e - b, mx, tmp.data());
  }
  return mx + std::log(sum);
}

// Applies logit_bias and the penalties (when `h` is given) to a copy of the
// logits (only touched entries change).
const float* Processed(const float* logits, int64_t vocab, const SamplingParams& p, const TokenHistory* hist,
                       const uint64_t* allowed) {
  thread_local std::vector<float> buf;
  buf.assign(logits, logits + vocab);
  if (allowed) {  // a grammar's mask: nothing else can make a refused token possible
    constexpr float kRefused = -std::numeric_limits<float>::infinity();
    for (int64_t w = 0; w * 64 < vocab; ++w) {
      const uint64_t bits = allowed[w];
      const int64_t begin = w * 64, end = std::min<int64_t>(vocab, begin + 64);
      if (bits == ~uint64_t{0}) continue;
      if (bits == 0) {
        std::fill(buf.begin() + begin, buf.begin() + end, kRefused);
        continue;
      }
      for (int64_t t = begin; t < end; ++t) {
        if (((bits >> (t - begin)) & 1) == 0) buf[t] = kRefused;
      }
    }
  }
  for (auto [t, b] : p.logit_bias) {
    if (t >= 0 && t < vocab) buf[t] += b;
  }
  if (!hist) return buf.data();
  const TokenHistory& h = *hist;
  auto rep = [&](int32_t t) {
    if (t < 0 || t >= vocab) return;
    float& x = buf[t];
    x = x > 0 ? x / p.repetition_penalty : x * p.repetition_penalty;
  };
  if (p.repetition_penalty != 1.0f) {
    for (int32_t t : h.prompt_tokens) rep(t);
    for (auto [t, c] : h.output) {
      if (!std::binary_search(h.prompt_tokens.begin(), h.prompt_tokens.end(), t)) rep(t);
    }
  }
  for (auto [t, c] : h.output) {
    if (t < 0 || t >= vocab) continue;
    buf[t] -= p.frequency_penalty * static_cast<float>(c) + p.presence_penalty;
  }
  return buf.data();
}

// The `k` best ids by `key` (descending, lowest id first on ties), in that order.
std::vector<int32_t> TopIds(const float* key, int64_t n, int64_t k) {
  std::vector<int32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return key[a] != key[b] ? key[a] > key[b] : a < b; };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
  idx.resize(static_cast<size_t>(k));
  return idx;
}

// -log(u) for u in (0, 1): exponent and mantissa split, then the atanh series
// of log(m) for m in [sqrt(1/2), sqrt(2)) (relative error < 1e-7). The scalar
// form; ExponentialRace repeats the same arithmetic in AVX-512.
inline float NegLog(float u) {
  uint32_t bits;
  std::memcpy(&bits, &u, 4);
  int32_t e = static_cast<int32_t>(bits >> 23) - 127;
  uint32_t mb = (bits & 0x7FFFFFu) | 0x3F800000u;
  float m;
  std::memcpy(&m, &mb, 4);
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e += big ? 1 : 0;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float lm = 2.0f * s * (1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9)))));
  return -(static_cast<float>(e) * 0.693147181f + lm);
}

// A uniform in (0, 1) from (key, index): two rounds of murmur3's finalizer.
inline float HashUniform(uint32_t a, uint32_t b, uint32_t i) {
  uint32_t h = (i * 0x9E3779B1u) ^ a;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  h ^= b;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  // (2x + 1) / 2^24 for a 23-bit x: exact in a float and strictly inside (0, 1)
  // (with 24 bits, 1 - 2^-25 would round to 1, and -log(1) = 0 wins every race).
  return static_cast<float>(h >> 9) * (1.0f / 8388608.0f) + (1.0f / 16777216.0f);
}

// The draw: argmax over tokens of prob / E with E ~ Exp(1) independent per
// token (an exponential race, as vLLM samples). It picks token t with
// probability prob[t] / sum(prob), like inverse-CDF sampling, but a tiny change
// in the logits (a batch recomputed in another shape) moves the winner only when
// two race times nearly tie, where a cumulative sum over 10^5 tokens would move
// its boundaries. `key` (one draw of the request's Rng) seeds the race.
int32_t ExponentialRace(const float* prob, int64_t n, uint64_t key) {
  const uint32_t a = static_cast<uint32_t>(key), b = static_cast<uint32_t>(key >> 32);
  int64_t i = 0, best_i = 0;
  float best = -1.0f;
#if defined(__AVX512F__)
  // The same arithmetic as HashUniform and NegLog, 16 tokens at a time.
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  auto fmix = [](__m512i h) {
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
    h = _mm512_mullo_epi32(h, _mm512_set1_epi32(static_cast<int32_t>(0x85EBCA6Bu)));
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 13));
    h = _mm512_mullo_epi32(h, _mm512_set1_epi32(static_cast<int32_t>(0xC2B2AE35u)));
    return _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
  };
  __m512 vbest = _mm512_set1_ps(-1.0f);
  __m512i vbest_i = _mm512_setzero_si512();
  for (; i + 16 <= n; i += 16) {
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(i)), lane);
    __m512i h = _mm512_xor_si512(_mm512_mullo_epi32(idx, _mm512_set1_epi32(static_cast<int32_t>(0x9E3779B1u))),
                                 _mm512_set1_epi32(static_cast<int32_t>(a)));
    h = fmix(_mm512_xor_si512(fmix(h), _mm512_set1_epi32(static_cast<int32_t>(b))));
    const __m512 u = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(h, 9)), _mm512_set1_ps(1.0f / 8388608.0f),
                                     _mm512_set1_ps(1.0f / 16777216.0f));
    const __m512i bits = _mm512_castps_si512(u);
    __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(127));
    __m512 m = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFF)),
                                                   _mm512_set1_epi32(0x3F800000)));
    const __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
    e = _mm512_mask_add_epi32(e, big, e, _mm512_set1_epi32(1));
    const __m512 s = _mm512_div_ps(_mm512_sub_ps(m, _mm512_set1_ps(1.0f)), _mm512_add_ps(m, _mm512_set1_ps(1.0f)));
    const __m512 s2 = _mm512_mul_ps(s, s);
    __m512 poly = _mm512_fmadd_ps(s2, _mm512_set1_ps(1.0f / 9), _mm512_set1_ps(1.0f / 7));
    poly = _mm512_fmadd_ps(s2, poly, _mm512_set1_ps(1.0f / 5));
    poly = _mm512_fmadd_ps(s2, poly, _mm512_set1_ps(1.0f / 3));
    poly = _mm512_fmadd_ps(s2, poly, _mm512_set1_ps(1.0f));
    const __m512 lm = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f), s), poly);
    const __m512 neglog = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(e), _mm512_set1_ps(0.693147181f), _mm512_sub_ps(_mm512_setzero_ps(), lm));
    const __m512 score = _mm512_div_ps(_mm512_loadu_ps(prob + i), neglog);
    const __mmask16 gt = _mm512_cmp_ps_mask(score, vbest, _CMP_GT_OQ);  // strict: lowest index wins ties per lane
    vbest = _mm512_mask_mov_ps(vbest, gt, score);
    vbest_i = _mm512_mask_mov_epi32(vbest_i, gt, idx);
  }
  alignas(64) float bv[16];
  alignas(64) int32_t bi[16];
  _mm512_store_ps(bv, vbest);
  _mm512_store_si512(bi, vbest_i);
  for (int l = 0; l < 16; ++l) {
    if (bv[l] > best || (bv[l] == best && bi[l] < best_i)) {
      best = bv[l];
      best_i = bi[l];
    }
  }
#endif
  for (; i < n; ++i) {
    const float score = prob[i] / NegLog(HashUniform(a, b, static_cast<uint32_t>(i)));
    if (score > best) {
      best = score;
      best_i = i;
    }
  }
  return static_cast<int32_t>(best_i);
}

}  // namespace

SampledToken Sample(const float* raw_logits, int64_t vocab, const SamplingParams& p, Rng& rng,
                    const TokenHistory* history, const uint64_t* allowed) {
  SampledToken out;
  const bool penalize = history && p.has_penalties();
  const float* logits = penalize || !p.logit_bias.empty() || allowed
                            ? Processed(raw_logits, vocab, p, penalize ? history : nullptr, allowed)
                            : raw_logits;
  // Raw model log-probs (what is reported): logit - logsumexp, computed only
  // where needed rather than over the whole row.
  const double lse = LogSumExp(raw_logits, vocab);
  auto raw_lp = [&](int32_t t) { return static_cast<float>(raw_logits[t] - lse); };
  if (p.logprobs > 0) {
    for (int32_t t : TopIds(raw_logits, vocab, std::min<int64_t>(p.logprobs, vocab))) out.top.emplace_back(t, raw_lp(t));
  }
  if (p.temperature <= 0.0f) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    out.token = static_cast<int32_t>(best);
    out.logprob = raw_lp(out.token);
    return out;
  }
  // Unnormalized probabilities exp((logit - max) / T) over the whole vocabulary.
  thread_local std::vector<float> prob;
  prob.resize(static_cast<size_t>(vocab));
  const float inv_t = 1.0f / p.temperature;
  const float top = kernels::MaxOf(logits, vocab);
  for (int64_t i = 0; i < vocab; ++i) prob[i] = (logits[i] - top) * inv_t;
  double total = 0;
  for (int64_t b = 0; b < vocab; b += 1024) {
    total += kernels::ExpShiftSum(prob.data() + b, std::min<int64_t>(1024, vocab - b), 0.0f, prob.data() + b);
  }
  // Filters zero the probability of what they drop. top-k and top-p need the
  // best-first order of a prefix only, never a sort of the whole vocabulary.
  std::vector<int32_t> kept;  // best first, when a filter produced it
  if (p.top_k > 0 && p.top_k < vocab) kept = TopIds(logits, vocab, p.top_k);
  if (p.top_p < 1.0f) {
    // Smallest best-first prefix reaching top_p of the (renormalized) mass: sort
    // a prefix, and grow it only while its mass falls short.
    const bool have = !kept.empty();
    double mass = total;
    if (have) {
      mass = 0;
      for (int32_t t : kept) mass += prob[t];
    }
    const int64_t limit = have ? static_cast<int64_t>(kept.size()) : vocab;
    for (int64_t k = std::min<int64_t>(limit, 256);; k = std::min<int64_t>(limit, k * 4)) {
      std::vector<int32_t> prefix = have ? std::vector<int32_t>(kept.begin(), kept.begin() + k) : TopIds(logits, vocab, k);
      double acc = 0;
      int64_t n = 0;
      while (n < k && acc < p.top_p * mass) acc += prob[prefix[n++]];
      if (acc >= p.top_p * mass || k == limit) {
        prefix.resize(static_cast<size_t>(std::max<int64_t>(1, n)));
        kept = std::move(prefix);
        break;
      }
    }
  }
  if (!kept.empty()) {
    thread_local std::vector<float> keep;
    keep.assign(static_cast<size_t>(vocab), 0.0f);
    for (int32_t t : kept) keep[t] = prob[t];
    prob.swap(keep);
  }
  // min-p: the best token has unnormalized probability 1 (its logit is the max,
  // and every filter keeps it), so the floor is min_p itself.
  if (p.min_p > 0.0f) {
    for (int64_t i = 0; i < vocab; ++i) prob[i] = prob[i] < p.min_p ? 0.0f : prob[i];
  }
  const int32_t pick = ExponentialRace(prob.data(), vocab, rng.Next());
  out.token = pick;
  out.logprob = raw_lp(out.token);
  return out;
}

SampledToken ScoreToken(const float* logits, int64_t vocab, int32_t token, int32_t top) {
  SampledToken out;
  const double lse = LogSumExp(logits, vocab);
  out.token = token;
  out.logprob = static_cast<float>(logits[token] - lse);
  if (top > 0) {
    for (int32_t t : TopIds(logits, vocab, std::min<int64_t>(top, vocab))) {
      out.top.emplace_back(t, static_cast<float>(logits[t] - lse));
    }
  }
  return out;
}

void LogSoftmax(float* row, int64_t n) {
  const float lse = static_cast<float>(LogSumExp(row, n));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) row[i] -= lse;
}

}  // namespace crescent::engine
