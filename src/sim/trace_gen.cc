#include "sim/trace_gen.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>
#include <unordered_map>
#include <vector>

namespace crescent::sim {
namespace {

// SplitMix64 with hand-written distributions: std's distributions are not
// specified bit-for-bit, and a trace must be the same on every machine.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)
  bool Bernoulli(double p) { return Uniform() < p; }
  double Exponential(double mean) { return -mean * std::log1p(-Uniform()); }
  double Normal() {  // Box-Muller, one value per call
    const double u1 = 1.0 - Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  double LogNormal(double median, double sigma) { return median * std::exp(sigma * Normal()); }
  int64_t Range(int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }

 private:
  uint64_t s_;
};

// Index in [0, n) with P(i) proportional to 1 / (i + 1)^s.
class Zipf {
 public:
  Zipf(int n, double s) : cdf_(static_cast<size_t>(n)) {
    double sum = 0;
    for (int i = 0; i < n; ++i) cdf_[static_cast<size_t>(i)] = sum += 1.0 / std::pow(i + 1, s);
    for (double& c : cdf_) c /= sum;
  }
  int Draw(Rng& rng) const {
    const double u = rng.Uniform();
    return static_cast<int>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

int64_t Clamp(double v, int64_t lo, int64_t hi) {
  return std::clamp<int64_t>(static_cast<int64_t>(std::llround(v)), lo, hi);
}

// A request before block ids are renumbered: `blocks` are generator-wide ids.
struct Draft {
  double t_s = 0;
  int64_t input = 0;
  int64_t output = 0;
  std::vector<uint64_t> blocks;
};

class Builder {
 public:
  explicit Builder(int64_t block_tokens) : block_tokens_(block_tokens) {}
  uint64_t NewBlock() { return next_block_++; }
  // Extends `shared` (whole blocks of an earlier prompt) with fresh blocks up
  // to ceil(input / block_tokens).
  std::vector<uint64_t> Chain(std::vector<uint64_t> shared, int64_t input) {
    const size_t n = static_cast<size_t>((input + block_tokens_ - 1) / block_tokens_);
    if (shared.size() > n) shared.resize(n);
    while (shared.size() < n) shared.push_back(NewBlock());
    return shared;
  }
  int64_t block_tokens() const { return block_tokens_; }

 private:
  int64_t block_tokens_;
  uint64_t next_block_ = 0;
};

// Conversation-like: sessions of turns on top of a shared system prompt.
void Conversations(const TraceGenOptions& o, Rng& rng, std::vector<Draft>& out) {
  Builder b(o.block_tokens);
  const int64_t bt = o.block_tokens;
  const double rate = o.requests_per_s > 0 ? o.requests_per_s : 3.4;
  constexpr double kContinue = 0.39;  // P(another turn): 1.64 turns a session
  const double session_gap_s = (1.0 / (1.0 - kContinue)) / rate;
  // The system prompt every request starts with: its first block is common to
  // all (the rest shares a block with the user's text, so it is not).
  const int64_t system_tokens = bt + bt / 2 + 50;
  const std::vector<uint64_t> system = {b.NewBlock()};
  // A few application prompts after it (whole blocks), used by some sessions.
  constexpr int kApps = 6;
  std::vector<std::vector<uint64_t>> apps(kApps);
  for (auto& a : apps) {
    a = system;
    const int64_t extra = rng.Range(2, 8);
    for (int64_t i = 0; i < extra; ++i) a.push_back(b.NewBlock());
  }
  const Zipf app_pick(kApps, 1.2);

  double start_s = 0;
  // Stop once `requests` requests lie before the next session's start: later
  // sessions start later still, so the first `requests` by time are final.
  std::priority_queue<double, std::vector<double>, std::greater<>> pending;  // times not yet before start_s
  int64_t settled = 0;
  for (;;) {
    start_s += rng.Exponential(session_gap_s);
    while (!pending.empty() && pending.top() < start_s) {
      pending.pop();
      ++settled;
    }
    if (settled >= o.requests) break;
    std::vector<uint64_t> prefix = system;
    int64_t prompt = system_tokens;
    if (rng.Bernoulli(0.15)) {
      prefix = apps[static_cast<size_t>(app_pick.Draw(rng))];
      prompt = static_cast<int64_t>(prefix.size()) * bt + bt / 2;
    }
    // First message: mostly long (documents, code), some short questions.
    prompt += rng.Bernoulli(0.22) ? Clamp(rng.LogNormal(120, 0.8), 5, 4000)
                                  : Clamp(rng.LogNormal(7600, 1.05), 20, o.max_input_tokens);
    double t = start_s;
    for (;;) {
      Draft d;
      d.t_s = t;
      d.input = std::min(prompt, o.max_input_tokens);
      d.output = rng.Bernoulli(0.12) ? rng.Range(1, 40) : Clamp(rng.LogNormal(340, 0.55), 1, 2000);
      d.blocks = b.Chain(prefix, d.input);
      pending.push(t);
      // The next turn's prompt is this prompt, its answer and a new message;
      // it shares this prompt's whole blocks (the last one was partial).
      prefix.assign(d.blocks.begin(), d.blocks.begin() + static_cast<std::ptrdiff_t>(d.input / bt));
      const int64_t next = d.input + d.output + Clamp(rng.LogNormal(250, 1.7), 2, o.max_input_tokens);
      out.push_back(std::move(d));
      if (next > o.max_input_tokens || !rng.Bernoulli(kContinue)) break;
      prompt = next;
      t += 5.0 + rng.LogNormal(140, 1.2);
    }
  }
}

// Synthetic-like: questions about popular long documents, and standalone prompts.
void Documents(const TraceGenOptions& o, Rng& rng, std::vector<Draft>& out) {
  Builder b(o.block_tokens);
  const int64_t bt = o.block_tokens;
  const double rate = o.requests_per_s > 0 ? o.requests_per_s : 3.9;
  const int docs = static_cast<int>(std::max<int64_t>(8, o.requests / 8));
  std::vector<std::vector<uint64_t>> doc_blocks(static_cast<size_t>(docs));
  for (auto& d : doc_blocks) {
    const int64_t n = Clamp(rng.LogNormal(38, 0.6), 4, o.max_input_tokens / bt - 2);
    for (int64_t i = 0; i < n; ++i) d.push_back(b.NewBlock());
  }
  const Zipf doc_pick(docs, 0.7);
  double t = 0;
  for (int64_t i = 0; i < o.requests; ++i) {
    t += rng.Exponential(1.0 / rate);
    Draft d;
    d.t_s = t;
    std::vector<uint64_t> prefix;
    if (rng.Bernoulli(0.55)) {
      prefix = doc_blocks[static_cast<size_t>(doc_pick.Draw(rng))];
      d.input = static_cast<int64_t>(prefix.size()) * bt + Clamp(rng.LogNormal(200, 1.0), 5, 8 * bt);
    } else {
      d.input = rng.Bernoulli(0.58) ? Clamp(rng.LogNormal(50, 1.1), 2, 4 * bt)
                                    : Clamp(rng.LogNormal(13000, 0.8), 50, o.max_input_tokens);
    }
    d.input = std::min(d.input, o.max_input_tokens);
    d.output = Clamp(rng.LogNormal(60, 1.5), 1, 1024);
    d.blocks = b.Chain(std::move(prefix), d.input);
    out.push_back(std::move(d));
  }
}

}  // namespace

Result<Trace> GenerateTrace(const TraceGenOptions& o) {
  if (o.like != "conversation" && o.like != "synthetic") {
    return InvalidArgument("unknown trace kind '" + o.like + "' (conversation | synthetic)");
  }
  if (o.requests < 1 || o.requests > 10'000'000) return InvalidArgument("requests must be in [1, 10000000]");
  if (o.requests_per_s < 0 || !std::isfinite(o.requests_per_s)) return InvalidArgument("request rate must be >= 0");
  if (o.block_tokens < 1) return InvalidArgument("block_tokens must be >= 1");
  if (o.max_input_tokens < 4 * o.block_tokens) return InvalidArgument("max_input_tokens must be >= 4 blocks");
  Rng rng(o.seed);
  std::vector<Draft> drafts;
  if (o.like == "conversation") {
    Conversations(o, rng, drafts);
  } else {
    Documents(o, rng, drafts);
  }
  std::vector<size_t> order(drafts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return drafts[a].t_s < drafts[b].t_s; });
  order.resize(std::min(order.size(), static_cast<size_t>(o.requests)));

  Trace t;
  std::unordered_map<uint64_t, BlockKey> renumber;  // first appearance order
  const double t0 = order.empty() ? 0 : drafts[order.front()].t_s;
  for (size_t i : order) {
    const Draft& d = drafts[i];
    TraceRequest r;
    r.timestamp_ms = static_cast<int64_t>(std::floor((d.t_s - t0) * 1000.0));
    r.input_tokens = d.input;
    r.output_tokens = d.output;
    r.keys_begin = static_cast<uint32_t>(t.keys.size());
    for (uint64_t blk : d.blocks) {
      auto [it, fresh] = renumber.try_emplace(blk, conductor::TraceBlockKey(renumber.size()));
      t.keys.push_back(it->second);
    }
    r.keys_count = static_cast<uint32_t>(d.blocks.size());
    t.requests.push_back(r);
  }
  return t;
}

}  // namespace crescent::sim
