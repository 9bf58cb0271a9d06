#include "engine/sampler.h"

#include "kernels/vec_math.h"

#include <algorithm>
#include <cmath>
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

void LogSoftmax(float* row, int64_t n) {
  float mx = *std::max_element(row, row + n);
  // Sum in f32 lanes of 1024 elements, the lanes in f64: exp() vectorizes and the
  // total keeps ~1e-7 relative accuracy over vocabularies of 10^5.
  double sum = 0;
  thread_local std::vector<float> tmp(1024);
  for (int64_t b = 0; b < n; b += 1024) {
    const int64_t e = std::min(n, b + 1024);
    sum += kernels::ExpShiftSum(row + b, e - b, mx, tmp.data());
  }
  const float lse = mx + static_cast<float>(std::log(sum));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) row[i] -= lse;
}

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
// Applies the penalties to a copy of the logits (only touched entries change).
const float* Penalized(const float* logits, int64_t vocab, const SamplingParams& p, const TokenHistory& h) {
  thread_local std::vector<float> buf;
  buf.assign(logits, logits + vocab);
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
}  // namespace

SampledToken Sample(const float* raw_logits, int64_t vocab, const SamplingParams& p, Rng& rng,
                    const TokenHistory* history) {
  SampledToken out;
  const float* logits = (history && p.has_penalties()) ? Penalized(raw_logits, vocab, p, *history) : raw_logits;
  thread_local std::vector<float> lp;  // raw model log-probs (reported)
  lp.assign(raw_logits, raw_logits + vocab);
  LogSoftmax(lp.data(), vocab);
  if (p.logprobs > 0) {
    const int64_t k = std::min<int64_t>(p.logprobs, vocab);
    std::vector<int32_t> idx(static_cast<size_t>(vocab));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
      return lp[a] != lp[b] ? lp[a] > lp[b] : a < b;
    });
    for (int64_t i = 0; i < k; ++i) out.top.emplace_back(idx[i], lp[idx[i]]);
  }
  if (p.temperature <= 0.0f) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    out.token = static_cast<int32_t>(best);
    out.logprob = lp[best];
    return out;
  }
  // Candidates sorted by logit, best first (ties by id for determinism).
  std::vector<int32_t> cand(static_cast<size_t>(vocab));
  std::iota(cand.begin(), cand.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
  int64_t keep = vocab;
  if (p.top_k > 0 && p.top_k < vocab) {
    keep = p.top_k;
    std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(), better);
  } else {
    std::sort(cand.begin(), cand.end(), better);
  }
  std::vector<double> prob(static_cast<size_t>(keep));
  const double inv_t = 1.0 / p.temperature;
  const double top = logits[cand[0]];
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) {
    prob[i] = std::exp((logits[cand[i]] - top) * inv_t);
    sum += prob[i];
  }
  for (auto& x : prob) x /= sum;
  if (p.top_p < 1.0f) {
    double acc = 0;
    int64_t n = 0;
    while (n < keep) {
      acc += prob[n++];
      if (acc >= p.top_p) break;
    }
    keep = std::max<int64_t>(1, n);
  }
  if (p.min_p > 0.0f) {
    const double floor = p.min_p * prob[0];
    int64_t n = 1;
    while (n < keep && prob[n] >= floor) ++n;
    keep = n;
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += prob[i];
  double u = rng.Uniform() * total;
  int64_t pick = keep - 1;
  for (int64_t i = 0; i < keep; ++i) {
    u -= prob[i];
    if (u < 0) {
      pick = i;
      break;
    }
  }
  out.token = cand[pick];
  out.logprob = lp[out.token];
  return out;
}

}  // namespace crescent::engine
