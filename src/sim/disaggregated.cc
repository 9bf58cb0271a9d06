// The disaggregated (Mooncake) cluster: N prefill nodes, each with a DRAM
// KVCache (BlockLru) and a FIFO of prefill jobs; M decode nodes doing
// continuous batching. Every arrival is placed by the Conductor through this
// file's ClusterView; a placement that fetches a remote prefix moves it over the
// destination's NIC (FIFO) and replicates it into the destination's cache.
//
//   arrival ──Place──> [fetch prefix over NIC] ──> prefill FIFO ──> prefill done
//     (first token; all blocks cached) ──KV streamed layer by layer──> decode
//     join ──> steps (one token per request per step) ──> finish
#include <algorithm>
#include <deque>
#include <limits>

#include "conductor/conductor.h"
#include "sim/block_lru.h"
#include "sim/sim_internal.h"

namespace crescent::sim::internal {
namespace {

using conductor::PrefillWork;

enum EventType { kPrefillDone, kPrefillWake, kDecodeJoin, kDecodeStepDone };

struct Job {
  int req = 0;
  int64_t prefix_tokens = 0;
  double ready_s = 0;  // when a fetched prefix has arrived
};

struct PrefillNode {
  explicit PrefillNode(int64_t cap) : cache(cap) {}
  BlockLru cache;
  std::deque<Job> queue;
  std::vector<PrefillWork> queued_work;  // parallel to queue, for the view
  bool busy = false;
  Job running;
  double running_start_s = 0;
  bool wake_pending = false;
  double nic_free_s = 0;
};

struct DecodeNode {
  std::vector<Running> running;
  std::deque<int> joined;  // KV arrived, waiting for room
  int64_t reserved = 0;    // input + output tokens of running requests
  int64_t ctx_sum = 0;
  bool stepping = false;
  // Placed here but not yet running (in prefill, in flight, or joined).
  int64_t assigned = 0, assigned_ctx = 0, assigned_need = 0;
};

class DisaggregatedSim final : public conductor::ClusterView {
 public:
  DisaggregatedSim(const Trace& trace, const SimConfig& cfg, conductor::Conductor conductor)
      : trace_(trace), cfg_(cfg), cost_(cfg.profile), conductor_(std::move(conductor)),
        block_tokens_(static_cast<int64_t>(cfg.profile.block_tokens)),
        kv_cap_(cfg.profile.hbm_kv_tokens()) {
    const int64_t cap_blocks = cfg.cache_tokens_per_node / block_tokens_;
    for (int i = 0; i < cfg.prefill; ++i) prefill_.emplace_back(cap_blocks);
    decode_.resize(cfg.decode);
    decode_of_.assign(trace.requests.size(), -1);
    tbt_.resize(trace.requests.size());
    result_.requests.resize(trace.requests.size());
    result_.requests_per_instance.assign(cfg.prefill, 0);
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
        switch (e.type) {
          case kPrefillDone: OnPrefillDone(e.a); break;
          case kPrefillWake: prefill_[e.a].wake_pending = false; TryStart(e.a); break;
          case kDecodeJoin: OnDecodeJoin(e.a); break;
          case kDecodeStepDone: OnStepDone(e.a); break;
        }
      } else {
        now_ = ta;
        OnArrival(static_cast<int>(next++));
      }
    }
    result_.end_s = now_;
    return std::move(result_);
  }

  // ClusterView.
  int num_prefill() const override { return static_cast<int>(prefill_.size()); }
  int num_decode() const override { return static_cast<int>(decode_.size()); }
  int64_t PrefixBlocks(int i, std::span<const BlockKey> keys) const override {
    return prefill_[i].cache.MatchPrefix(keys);
  }
  conductor::PrefillLoad GetPrefillLoad(int i) const override {
    const PrefillNode& p = prefill_[i];
    conductor::PrefillLoad l;
    l.running = p.busy;
    if (p.busy) {
      l.running_work = {trace_.requests[p.running.req].input_tokens, p.running.prefix_tokens};
      l.running_started_s = p.running_start_s;
    }
    l.queued = p.queued_work;
    return l;
  }
  conductor::DecodeLoad GetDecodeLoad(int d) const override {
    const DecodeNode& x = decode_[d];
    return conductor::DecodeLoad{static_cast<int64_t>(x.running.size()) + x.assigned, x.ctx_sum + x.assigned_ctx,
                                 kv_cap_ - x.reserved - x.assigned_need};
  }

 private:
  int64_t Need(const TraceRequest& r) const { return r.input_tokens + r.output_tokens; }
  int64_t BlocksFor(int64_t tokens) const { return (tokens + block_tokens_ - 1) / block_tokens_; }
  void NoteCache(const PrefillNode& p) { result_.max_cache_blocks = std::max(result_.max_cache_blocks, p.cache.size()); }

  void OnArrival(int i) {
    const TraceRequest& r = trace_.requests[i];
    RequestOutcome& out = result_.requests[i];
    out.arrival_s = now_;
    out.input_tokens = r.input_tokens;
    if (Need(r) > kv_cap_) {  // could never fit one decode node's HBM
      out.rejected = true;
      return;
    }
    const std::span<const BlockKey> keys = trace_.Keys(r);
    const conductor::Request creq{r.input_tokens, r.output_tokens, keys};
    const conductor::Placement pl = conductor_.Place(creq, *this, now_);
    if (cfg_.on_place) cfg_.on_place(creq, *this, now_, pl);
    if (!pl.admitted()) {
      out.rejected = true;
      return;
    }
    const int pi = pl.prefill.prefill;
    PrefillNode& node = prefill_[pi];
    out.prefill_instance = pi;
    out.reused_tokens = pl.prefill.prefix_tokens;
    ++result_.requests_per_instance[pi];
    Job job{i, pl.prefill.prefix_tokens, now_};
    const auto prefix_keys = keys.first(std::min<size_t>(keys.size(), BlocksFor(pl.prefill.prefix_tokens)));
    if (pl.prefill.transfer_from >= 0) {
      prefill_[pl.prefill.transfer_from].cache.InsertChain(prefix_keys);  // read: refresh at the source
      const double start = std::max(now_, node.nic_free_s);
      node.nic_free_s = start + cost_.TransferSeconds(pl.prefill.transfer_tokens);
      job.ready_s = node.nic_free_s;
      ++result_.transfers;
      result_.transferred_tokens += pl.prefill.transfer_tokens;
    }
    node.cache.InsertChain(prefix_keys);  // refresh the local prefix, add the fetched replica
    NoteCache(node);
    node.queue.push_back(job);
    node.queued_work.push_back({r.input_tokens, job.prefix_tokens});
    if (r.output_tokens > 1) {
      const int d = pl.decode.decode;
      CHECK_GE(d, 0);
      decode_of_[i] = d;
      decode_[d].assigned += 1;
      decode_[d].assigned_ctx += r.input_tokens;
      decode_[d].assigned_need += Need(r);
    }
    TryStart(pi);
  }

  void TryStart(int pi) {
    PrefillNode& p = prefill_[pi];
    if (p.busy || p.queue.empty()) return;
    const Job& head = p.queue.front();
    if (head.ready_s > now_) {
      if (!p.wake_pending) {
        p.wake_pending = true;
        events_.Push(head.ready_s, kPrefillWake, pi);
      }
      return;
    }
    p.running = head;
    p.queue.pop_front();
    p.queued_work.erase(p.queued_work.begin());
    p.busy = true;
    p.running_start_s = now_;
    const TraceRequest& r = trace_.requests[p.running.req];
    events_.Push(now_ + cost_.PrefillSeconds(r.input_tokens, p.running.prefix_tokens), kPrefillDone, pi);
  }

  void OnPrefillDone(int pi) {
    PrefillNode& p = prefill_[pi];
    const int i = p.running.req;
    const TraceRequest& r = trace_.requests[i];
    RequestOutcome& out = result_.requests[i];
    const double duration = now_ - p.running_start_s;
    p.busy = false;
    result_.prefill_compute_s += duration;
    out.ttft_s = now_ - out.arrival_s;
    p.cache.InsertChain(trace_.Keys(r));
    NoteCache(p);
    if (r.output_tokens <= 1) {
      out.finish_s = now_;
    } else {
      // KV streams to the decode node layer by layer during prefill; what is left
      // is the transfer time not hidden by compute, at least one layer's share.
      const double kv = cost_.TransferSeconds(r.input_tokens);
      const double delay = std::max(kv - duration, kv / cfg_.profile.layers);
      events_.Push(now_ + delay, kDecodeJoin, i);
    }
    TryStart(pi);
  }

  void OnDecodeJoin(int i) {
    DecodeNode& d = decode_[decode_of_[i]];
    d.joined.push_back(i);
    if (!d.stepping) {
      Admit(decode_of_[i]);
      StartStep(decode_of_[i]);
    }
  }

  void Admit(int di) {
    DecodeNode& d = decode_[di];
    while (!d.joined.empty()) {
      const int i = d.joined.front();
      const TraceRequest& r = trace_.requests[i];
      if (d.reserved + Need(r) > kv_cap_ && !d.running.empty()) break;
      d.joined.pop_front();
      d.reserved += Need(r);
      d.assigned -= 1;
      d.assigned_ctx -= r.input_tokens;
      d.assigned_need -= Need(r);
      const RequestOutcome& out = result_.requests[i];
      d.running.push_back({i, r.input_tokens + 1, r.output_tokens - 1, out.arrival_s + out.ttft_s});
      d.ctx_sum += r.input_tokens + 1;
      tbt_[i].Reset(r.output_tokens - 1);
      result_.max_kv_tokens = std::max(result_.max_kv_tokens, d.reserved);
    }
  }

  void StartStep(int di) {
    DecodeNode& d = decode_[di];
    d.stepping = !d.running.empty();
    if (!d.stepping) return;
    events_.Push(now_ + cost_.DecodeStepSeconds(static_cast<int64_t>(d.running.size()), d.ctx_sum),
                 kDecodeStepDone, di);
  }

  void OnStepDone(int di) {
    DecodeNode& d = decode_[di];
    size_t kept = 0;
    for (size_t k = 0; k < d.running.size(); ++k) {
      Running x = d.running[k];
      tbt_[x.req].Add(now_ - x.last_token_s);
      x.last_token_s = now_;
      ++x.ctx;
      ++d.ctx_sum;
      if (--x.remaining > 0) {
        d.running[kept++] = x;
        continue;
      }
      RequestOutcome& out = result_.requests[x.req];
      out.tbt_s = tbt_[x.req].Mean();
      out.finish_s = now_;
      tbt_[x.req].Release();
      d.reserved -= Need(trace_.requests[x.req]);
      d.ctx_sum -= x.ctx;
    }
    d.running.resize(kept);
    Admit(di);
    StartStep(di);
  }

  const Trace& trace_;
  const SimConfig& cfg_;
  const CostProfile& cost_;
  conductor::Conductor conductor_;
  const int64_t block_tokens_;
  const int64_t kv_cap_;
  double now_ = 0;
  EventQueue events_;
  std::vector<PrefillNode> prefill_;
  std::vector<DecodeNode> decode_;
  std::vector<int> decode_of_;
  std::vector<TopIntervals> tbt_;
  SimResult result_;
};

}  // namespace

Result<SimResult> RunDisaggregated(const Trace& trace, const SimConfig& config, conductor::PolicyKind kind) {
  if (config.decode < 1) return InvalidArgument("a disaggregated policy needs at least one decode instance");
  ASSIGN_OR_RETURN(conductor::Estimators est, FitEstimators(config.profile, /*with_prefix_load=*/true));
  DisaggregatedSim sim(trace, config, conductor::Conductor(kind, ConductorOptions(config), std::move(est)));
  return sim.Run();
}

}  // namespace crescent::sim::internal

namespace crescent::sim {

conductor::PolicyOptions ConductorOptions(const SimConfig& config) {
  conductor::PolicyOptions opt;
  opt.block_tokens = static_cast<int64_t>(config.profile.block_tokens);
  opt.kvcache_balancing_threshold = config.kvcache_balancing_threshold;
  opt.admission = config.admission;
  opt.ttft_slo_s = config.ttft_slo_s;
  opt.tbt_slo_s = config.tbt_slo_s;
  opt.seed = config.seed;
  return opt;
}

}  // namespace crescent::sim
