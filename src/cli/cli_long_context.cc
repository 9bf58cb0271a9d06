#include "cli/cli_long_context.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/check.h"
#include "base/dtype.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/sampler.h"
#include "kernels/attention.h"

namespace crescent::cli {

namespace {
double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

PrefillFlops SplitPrefillFlops(const model::ModelConfig& c, double total_flops, int64_t n) {
  const double keys = static_cast<double>(n) * (static_cast<double>(n) + 1) / 2.0;
  PrefillFlops f;
  f.attention = 4.0 * static_cast<double>(c.head_dim * c.num_heads * c.num_layers) * keys;
  f.matmul = total_flops - f.attention;
  return f;
}

StallProbe MeasureDecodeStall(engine::Engine& e, PromptMaker& pm, int64_t decoders, int64_t ctx, int64_t prompt_len,
                              int64_t max_tokens) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<double>> stamps(static_cast<size_t>(decoders));
  std::vector<uint64_t> ids;
  int64_t finished = 0;
  for (int64_t i = 0; i < decoders; ++i) {
    // Enough tokens to outlast the long prefill; cancelled when it is done.
    ids.push_back(ValueOrThrow(e.Submit(GreedyRequest(pm.Make(ctx), max_tokens), [&, i](engine::RequestOutput out) {
      std::lock_guard<std::mutex> lock(mu);
      for (size_t k = 0; k < out.tokens.size(); ++k) stamps[static_cast<size_t>(i)].push_back(Seconds());
      if (out.finished) {
        ++finished;
        cv.notify_all();
      }
    })));
  }
  // Let every decoder reach steady decoding (a few tokens each).
  for (;;) {
    std::unique_lock<std::mutex> lock(mu);
    if (std::all_of(stamps.begin(), stamps.end(), [](const auto& s) { return s.size() >= 8; })) break;
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double t_submit = Seconds();
  StallProbe r;
  r.ttft_s = TimeToFirstToken(e, pm.Make(prompt_len)).first;
  const double t_first = Seconds();
  for (uint64_t id : ids) e.Cancel(id);
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return finished == decoders; });
  double gaps = 0, before = 0;
  int64_t n = 0, nb = 0;
  for (const auto& s : stamps) {
    for (size_t k = 1; k < s.size(); ++k) {
      const double gap = s[k] - s[k - 1];
      if (s[k] > t_submit && s[k - 1] < t_first) {
        r.decode_gap_max_s = std::max(r.decode_gap_max_s, gap);
        gaps += gap;
        ++n;
      } else if (s[k] <= t_submit && k >= 4) {
        before += gap;
        ++nb;
      }
    }
  }
  r.decode_gap_mean_s = n > 0 ? gaps / static_cast<double>(n) : 0;
  r.decode_gap_before_s = nb > 0 ? before / static_cast<double>(nb) : 0;
  return r;
}

double PrefillAttentionGflops(const model::ModelConfig& c, int64_t n, int64_t chunk) {
  const int64_t page = 16, pages = (n + page - 1) / page;
  kernels::KvLayerView kv;
  kv.kv_heads = c.num_kv_heads;
  kv.head_dim = c.head_dim;
  kv.page_tokens = page;
  kv.dtype = DType::kBF16;
  std::vector<uint16_t> k(static_cast<size_t>(kv.page_elems() * pages)), v(k.size());
  engine::Rng rng(7);
  for (auto* buf : {&k, &v})
    for (auto& x : *buf) x = crescent::F32ToBf16(static_cast<float>(rng.Uniform()) - 0.5f);
  kv.k = k.data();
  kv.v = v.data();
  std::vector<int32_t> table(static_cast<size_t>(pages));
  for (int64_t p = 0; p < pages; ++p) table[static_cast<size_t>(p)] = static_cast<int32_t>(p);
  const int64_t qd = c.num_heads * c.head_dim;
  std::vector<float> q(static_cast<size_t>(chunk * qd));
  for (auto& x : q) x = static_cast<float>(rng.Uniform()) - 0.5f;
  std::vector<uint16_t> out(q.size());
  kernels::AttentionParams ap{c.num_heads, c.num_kv_heads, c.head_dim,
                              1.0f / std::sqrt(static_cast<float>(c.head_dim)), 0};
  const double t0 = Seconds();
  for (int64_t a = 0; a < n; a += chunk) {
    kernels::AttentionSeq seq{table.data(), a, std::min(chunk, n - a), 0};
    kernels::PagedAttention(ap, kv, {&seq, 1}, q.data(), qd, out.data());
  }
  const double s = Seconds() - t0;
  const double keys = static_cast<double>(n) * (static_cast<double>(n) + 1) / 2.0;
  return 4.0 * static_cast<double>(c.head_dim * c.num_heads) * keys / s / 1e9;
}

double DecodeAttentionGBs(const model::ModelConfig& c, int64_t ctx) {
  const int64_t page = 16, pages = (ctx + 1 + page - 1) / page;
  kernels::KvLayerView kv;
  kv.kv_heads = c.num_kv_heads;
  kv.head_dim = c.head_dim;
  kv.page_tokens = page;
  kv.dtype = DType::kBF16;
  const size_t elems = static_cast<size_t>(kv.page_elems() * pages);
  // One buffer per layer, as in the pool: a step reads every layer's KV once.
  std::vector<std::vector<uint16_t>> k(static_cast<size_t>(c.num_layers)), v(k.size());
  for (size_t l = 0; l < k.size(); ++l) {
    k[l].assign(elems, 0x3c00);  // 2^-7: finite values, the kernel's speed does not depend on them
    v[l].assign(elems, 0x3c00);
  }
  std::vector<int32_t> table(static_cast<size_t>(pages));
  for (int64_t p = 0; p < pages; ++p) table[static_cast<size_t>(p)] = static_cast<int32_t>(p);
  kernels::AttentionSeq seq{table.data(), ctx, 1, 0};
  kernels::AttentionParams ap{c.num_heads, c.num_kv_heads, c.head_dim, 1.0f / 8, 0};
  std::vector<float> q(static_cast<size_t>(c.num_heads * c.head_dim), 0.01f);
  std::vector<uint16_t> out(q.size());
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) {
    const double t0 = Seconds();
    for (size_t l = 0; l < k.size(); ++l) {
      kv.k = k[l].data();
      kv.v = v[l].data();
      kernels::PagedAttention(ap, kv, {&seq, 1}, q.data(), c.num_heads * c.head_dim, out.data());
    }
    best = std::min(best, Seconds() - t0);
  }
  const double bytes = 2.0 * static_cast<double>(ctx + 1) * static_cast<double>(c.num_kv_heads * c.head_dim) * 2.0 *
                       static_cast<double>(c.num_layers);
  return bytes / best / 1e9;
}

}  // namespace crescent::cli
