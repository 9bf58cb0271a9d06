// Coupled (vLLM-like) baselines: every node does prefill and decode on the same
// GPUs, N+M nodes for a fair comparison with N prefill + M decode.
//
//   coupled          prefill steps run alone and stall the node's decodes
//                    (prefill first, as vLLM's default scheduler); no prefix cache
//   coupled-prefix   the same, with an HBM-sized prefix cache per node
//   coupled-chunked  each step = all decodes + prefill chunks within a token
//                    budget (chunk_tokens), as many waiting prompts as fit
//                    (as vLLM's and crescent's schedulers pack them), with
//                    the prefix cache; a step pays its fixed cost once
//
// Requests are routed by the same Conductor code (num_decode() == 0): least
// loaded without a cache, local-cache-aware with one (a prefix-aware router, the
// best a coupled cluster can do). A request's prefix reuse is decided when its
// prefill starts. Running KV (input + output reserved at prefill start) is
// bounded by hbm_kv_tokens; the prefix cache has its own budget
// (coupled_cache_tokens), a static split standing in for vLLM's free blocks.
#include <algorithm>
#include <deque>
#include <limits>

#include "conductor/conductor.h"
#include "sim/block_lru.h"
#include "sim/sim_internal.h"

namespace crescent::sim::internal {
namespace {

struct Node {
  explicit Node(int64_t cap) : cache(cap) {}
  BlockLru cache;
  std::deque<int> waiting;
  std::vector<conductor::PrefillWork> waiting_work;  // parallel to waiting, for the view
  struct Prefilling {
    int req = -1;
    int64_t done = 0;   // tokens computed or reused so far
    int64_t chunk = 0;  // in the step in flight
  };
  std::vector<Prefilling> cur;  // requests in prefill, oldest first
  mutable std::vector<conductor::PrefillWork> view;  // GetPrefillLoad's queue: cur[1:] then waiting
  std::vector<Running> running;
  int64_t reserved = 0, ctx_sum = 0;
  bool stepping = false;
  int64_t step_chunk = 0;  // prefill tokens in the step in flight (all requests)
  bool step_decodes = false;
};

class CoupledSim final : public conductor::ClusterView {
 public:
  CoupledSim(const Trace& trace, const SimConfig& cfg, CoupledKind kind, conductor::Conductor conductor)
      : trace_(trace), cfg_(cfg), cost_(cfg.profile), kind_(kind), conductor_(std::move(conductor)),
        block_tokens_(static_cast<int64_t>(cfg.profile.block_tokens)), kv_cap_(cfg.profile.hbm_kv_tokens()) {
    const int64_t cap_blocks = kind == CoupledKind::kPlain ? 0 : cost_.coupled_cache_token_capacity() / block_tokens_;
    for (int i = 0; i < cfg.prefill + cfg.decode; ++i) nodes_.emplace_back(cap_blocks);
    tbt_.resize(trace.requests.size());
    result_.requests.resize(trace.requests.size());
    result_.requests_per_instance.assign(nodes_.size(), 0);
    result_.cache_capacity_blocks = cap_blocks;
    result_.kv_capacity_tokens = kv_cap_;
  }

  SimResult Run() {
    const size_t n = trace_.requests.size();
    size_t next = 0;
    while (next < n || !events_.empty()) {
      const double ta = next < n ? ArrivalSeconds(trace_.requests[next], cfg_.speedup)
                                 : std::numeric_limits<double>::infinity();
      if (!events_.empty() && events_.top().t <= ta) {
        const Event e = events_.Pop();
        now_ = e.t;
        OnStepDone(e.a);
      } else {
        now_ = ta;
        OnArrival(static_cast<int>(next++));
      }
    }
    result_.end_s = now_;
    return std::move(result_);
  }

  int num_prefill() const override { return static_cast<int>(nodes_.size()); }
  int num_decode() const override { return 0; }
  int64_t PrefixBlocks(int i, std::span<const BlockKey> keys) const override { return nodes_[i].cache.MatchPrefix(keys); }
  conductor::PrefillLoad GetPrefillLoad(int i) const override {
    const Node& x = nodes_[i];
    conductor::PrefillLoad l;
    if (x.cur.size() <= 1) {
      l.queued = x.waiting_work;
    } else {
      x.view.clear();
      for (size_t k = 1; k < x.cur.size(); ++k) x.view.push_back({trace_.requests[x.cur[k].req].input_tokens, x.cur[k].done});
      x.view.insert(x.view.end(), x.waiting_work.begin(), x.waiting_work.end());
      l.queued = x.view;
    }
    if (!x.cur.empty()) {  // what is left of the oldest, as if started now
      l.running = true;
      l.running_work = {trace_.requests[x.cur[0].req].input_tokens, x.cur[0].done};
      l.running_started_s = now_;
    }
    return l;
  }
  conductor::DecodeLoad GetDecodeLoad(int) const override { return {}; }

 private:
  int64_t Need(const TraceRequest& r) const { return r.input_tokens + r.output_tokens; }

  void OnArrival(int i) {
    const TraceRequest& r = trace_.requests[i];
    RequestOutcome& out = result_.requests[i];
    out.arrival_s = now_;
    out.input_tokens = r.input_tokens;
    if (Need(r) > kv_cap_) {
      out.rejected = true;
      return;
    }
    const conductor::Placement pl = conductor_.Place({r.input_tokens, r.output_tokens, trace_.Keys(r)}, *this, now_);
    if (!pl.admitted()) {
      out.rejected = true;
      return;
    }
    const int ni = pl.prefill.prefill;
    out.prefill_instance = ni;
    ++result_.requests_per_instance[ni];
    nodes_[ni].waiting.push_back(i);
    nodes_[ni].waiting_work.push_back({r.input_tokens, pl.prefill.prefix_tokens});
    if (!nodes_[ni].stepping) Schedule(ni);
  }

  // Moves the first waiting request into prefill; false if none or no KV room.
  bool Admit(Node& x) {
    if (x.waiting.empty()) return false;
    const int i = x.waiting.front();
    const TraceRequest& r = trace_.requests[i];
    if (x.reserved + Need(r) > kv_cap_ && !(x.running.empty() && x.cur.empty())) return false;
    x.waiting.pop_front();
    x.waiting_work.erase(x.waiting_work.begin());
    x.reserved += Need(r);
    result_.max_kv_tokens = std::max(result_.max_kv_tokens, x.reserved);
    const std::span<const BlockKey> keys = trace_.Keys(r);
    const int64_t blocks = x.cache.MatchPrefix(keys);
    const int64_t reused = conductor::PrefixTokens(blocks, block_tokens_, r.input_tokens);
    x.cache.InsertChain(keys.first(blocks));
    result_.requests[i].reused_tokens = reused;
    x.cur.push_back({i, std::min(reused, r.input_tokens - 1), 0});
    return true;
  }

  // Starts the node's next step, or leaves it idle.
  void Schedule(int ni) {
    Node& x = nodes_[ni];
    x.step_chunk = 0;
    x.step_decodes = !x.running.empty();
    const int64_t batch = static_cast<int64_t>(x.running.size());
    double prefill_s = 0;
    int chunks = 0;
    if (kind_ == CoupledKind::kChunked) {
      // Continue the prompts in progress, then admit waiting ones, while the budget lasts.
      int64_t budget = static_cast<int64_t>(cost_.chunk_tokens) - batch;
      for (size_t k = 0;; ++k) {
        if (k == x.cur.size() && (budget <= 0 || !Admit(x))) break;
        Node::Prefilling& c = x.cur[k];
        c.chunk = std::clamp<int64_t>(budget, 0, trace_.requests[c.req].input_tokens - c.done);
        budget -= c.chunk;
        if (c.chunk == 0) continue;
        x.step_chunk += c.chunk;
        prefill_s += cost_.PrefillComputeSeconds(c.done + c.chunk, c.done);
        ++chunks;
      }
    } else {
      if (x.cur.empty()) Admit(x);
      if (!x.cur.empty()) {  // the whole prompt alone; decodes stall
        Node::Prefilling& c = x.cur.front();
        c.chunk = trace_.requests[c.req].input_tokens - c.done;
        x.step_chunk = c.chunk;
        prefill_s = cost_.PrefillComputeSeconds(c.done + c.chunk, c.done);
        chunks = 1;
        x.step_decodes = false;
      }
    }
    if (chunks > 1) prefill_s -= (chunks - 1) * cost_.prefill_fixed_s;  // one forward pass: its fixed cost once
    result_.prefill_compute_s += prefill_s;
    double dur = 0;
    if (x.step_chunk > 0) {
      dur = prefill_s;
      if (x.step_decodes) dur = cost_.MixedStepSeconds(dur, batch, x.ctx_sum);
    } else if (x.step_decodes) {
      dur = cost_.DecodeStepSeconds(batch, x.ctx_sum);
    }
    x.stepping = x.step_chunk > 0 || x.step_decodes;
    if (x.stepping) events_.Push(now_ + dur, 0, ni);
  }

  void OnStepDone(int ni) {
    Node& x = nodes_[ni];
    if (x.step_decodes) {
      size_t kept = 0;
      for (size_t k = 0; k < x.running.size(); ++k) {
        Running y = x.running[k];
        tbt_[y.req].Add(now_ - y.last_token_s);
        y.last_token_s = now_;
        ++y.ctx;
        ++x.ctx_sum;
        if (--y.remaining > 0) {
          x.running[kept++] = y;
          continue;
        }
        RequestOutcome& out = result_.requests[y.req];
        out.tbt_s = tbt_[y.req].Mean();
        out.finish_s = now_;
        tbt_[y.req].Release();
        x.reserved -= Need(trace_.requests[y.req]);
        x.ctx_sum -= y.ctx;
      }
      x.running.resize(kept);
    }
    size_t kept_cur = 0;
    for (size_t k = 0; k < x.cur.size(); ++k) {
      Node::Prefilling c = x.cur[k];
      const int i = c.req;
      const TraceRequest& r = trace_.requests[i];
      c.done += c.chunk;
      c.chunk = 0;
      if (c.done < r.input_tokens) {
        x.cur[kept_cur++] = c;
        continue;
      }
      {
        RequestOutcome& out = result_.requests[i];
        out.ttft_s = now_ - out.arrival_s;
        x.cache.InsertChain(trace_.Keys(r));
        result_.max_cache_blocks = std::max(result_.max_cache_blocks, x.cache.size());
        if (r.output_tokens > 1) {
          x.running.push_back({i, r.input_tokens + 1, r.output_tokens - 1, now_});
          x.ctx_sum += r.input_tokens + 1;
          tbt_[i].Reset(r.output_tokens - 1);
        } else {
          out.finish_s = now_;
          x.reserved -= Need(r);
        }
      }
    }
    x.cur.resize(kept_cur);
    Schedule(ni);
  }

  const Trace& trace_;
  const SimConfig& cfg_;
  const CostProfile& cost_;
  const CoupledKind kind_;
  conductor::Conductor conductor_;
  const int64_t block_tokens_;
  const int64_t kv_cap_;
  double now_ = 0;
  EventQueue events_;
  std::vector<Node> nodes_;
  std::vector<TopIntervals> tbt_;
  SimResult result_;
};

}  // namespace

Result<SimResult> RunCoupled(const Trace& trace, const SimConfig& config, CoupledKind kind) {
  ASSIGN_OR_RETURN(conductor::Estimators est, FitEstimators(config.profile, /*with_prefix_load=*/false));
  conductor::PolicyOptions opt;
  opt.block_tokens = static_cast<int64_t>(config.profile.block_tokens);
  opt.admission = config.admission;
  opt.ttft_slo_s = config.ttft_slo_s;
  opt.seed = config.seed;
  const conductor::PolicyKind router =
      kind == CoupledKind::kPlain ? conductor::PolicyKind::kLeastLoaded : conductor::PolicyKind::kLocalCacheAware;
  CoupledSim sim(trace, config, kind, conductor::Conductor(router, opt, std::move(est)));
  return sim.Run();
}

}  // namespace crescent::sim::internal
