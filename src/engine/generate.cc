#include "engine/generate.h"

#include <algorithm>
#include <chrono>

namespace crescent::engine {

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Result<std::vector<GenerateResult>> GenerateBatch(ModelRunner& runner, KvPagePool& pool,
                                                  const std::vector<GenerateRequest>& requests,
                                                  GenerateTimings* timings) {
  const int64_t vocab = runner.config().vocab_size;
  const int64_t n = static_cast<int64_t>(requests.size());
  std::vector<SequenceKv> kvs(static_cast<size_t>(n));
  std::vector<Rng> rngs;
  std::vector<GenerateResult> results(static_cast<size_t>(n));
  struct Releaser {
    KvPagePool& pool;
    std::vector<SequenceKv>& kvs;
    ~Releaser() {
      for (auto& kv : kvs) pool.Release(kv);
    }
  } releaser{pool, kvs};

  for (int64_t i = 0; i < n; ++i) {
    const GenerateRequest& r = requests[i];
    if (r.prompt.empty()) return InvalidArgument("request " + std::to_string(i) + ": empty prompt");
    if (r.max_tokens < 0) return InvalidArgument("max_tokens must be >= 0");
    const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.max_tokens;
    if (total > runner.config().max_position_embeddings) {
      return InvalidArgument("prompt + max_tokens = " + std::to_string(total) + " exceeds the model's context of " +
                             std::to_string(runner.config().max_position_embeddings) + " tokens");
    }
    RETURN_IF_ERROR(pool.Reserve(kvs[i], total));
    rngs.emplace_back(r.seed);
  }

  // Prefill: every prompt in one batch.
  std::vector<ForwardSeq> batch;
  std::vector<int64_t> active;
  for (int64_t i = 0; i < n; ++i) {
    if (requests[i].max_tokens == 0) {
      results[i].finish_reason = "length";
      continue;
    }
    batch.push_back({requests[i].prompt, 0, &kvs[i], true});
    active.push_back(i);
  }
  std::vector<float> logits;
  double t0 = Now();
  if (!batch.empty()) RETURN_IF_ERROR(runner.Forward(batch, pool, &logits));
  if (timings) timings->prefill_s = Now() - t0;

  std::vector<int32_t> last(static_cast<size_t>(n));
  auto take = [&](size_t row, int64_t i) {
    const GenerateRequest& r = requests[i];
    SampledToken s = Sample(logits.data() + row * vocab, vocab, r.sampling, rngs[i]);
    results[i].tokens.push_back(s.token);
    last[i] = s.token;
    const bool stop = std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), s.token) != r.stop_token_ids.end();
    results[i].samples.push_back(std::move(s));
    if (stop) results[i].finish_reason = "stop";
    else if (static_cast<int64_t>(results[i].tokens.size()) >= r.max_tokens) results[i].finish_reason = "length";
    return results[i].finish_reason.empty();
  };
  std::vector<int64_t> still;
  for (size_t row = 0; row < active.size(); ++row) {
    if (take(row, active[row])) still.push_back(active[row]);
  }
  active.swap(still);

  t0 = Now();
  int64_t steps = 0;
  while (!active.empty()) {
    batch.clear();
    for (int64_t i : active) {
      const int64_t pos = kvs[i].num_tokens;
      batch.push_back({std::span<const int32_t>(&last[i], 1), pos, &kvs[i], true});
    }
    RETURN_IF_ERROR(runner.Forward(batch, pool, &logits));
    ++steps;
    still.clear();
    for (size_t row = 0; row < active.size(); ++row) {
      if (take(row, active[row])) still.push_back(active[row]);
    }
    active.swap(still);
  }
  if (timings) {
    timings->decode_s = Now() - t0;
    timings->decode_steps = steps;
  }
  return results;
}

}  // namespace crescent::engine
