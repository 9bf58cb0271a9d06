// Policy equivalence (docs/cluster.md): a recorded simulation — every
// request and the cluster state the simulator's view showed when it was
// placed — replayed as instance reports into the live cluster's view
// (conductor/live_cluster_view.h) gives the same placements, policy by
// policy. The two views are the only difference: the policies, estimators
// and Conductor are the same code.
#include <gtest/gtest.h>

#include <vector>

#include "conductor/live_cluster_view.h"
#include "sim/simulation.h"
#include "sim/trace_gen.h"

namespace crescent::sim {
namespace {

struct Recorded {
  std::vector<conductor::BlockKey> keys;
  int64_t input = 0, output = 0;
  double now = 0;
  std::vector<int64_t> prefix_blocks;          // per prefill instance
  std::vector<conductor::PrefillLoad> loads;   // queued copied below
  std::vector<std::vector<conductor::PrefillWork>> queued;
  std::vector<conductor::DecodeLoad> decode;
  conductor::Placement placement;
};

TEST(LiveViewEquivalenceTest, ARecordedRunPlacesAlikeThroughTheLiveView) {
  TraceGenOptions g;
  g.requests = 400;
  g.requests_per_s = 6;  // queues build up: load matters, not only the caches
  Result<Trace> trace = GenerateTrace(g);
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  for (const char* policy : {"random", "least-loaded", "local-cache", "global-cache"}) {
    SimConfig c;
    c.policy = policy;
    c.prefill = 4;
    c.decode = 2;
    c.cache_tokens_per_node = 400'000;  // evictions happen
    c.ttft_slo_s = 20;                  // and some rejections
    c.tbt_slo_s = 0.2;
    std::vector<Recorded> rec;
    c.on_place = [&](const conductor::Request& r, const conductor::ClusterView& v, double now,
                     const conductor::Placement& p) {
      Recorded x;
      x.keys.assign(r.block_keys.begin(), r.block_keys.end());
      x.input = r.input_tokens;
      x.output = r.output_tokens;
      x.now = now;
      for (int i = 0; i < v.num_prefill(); ++i) {
        x.prefix_blocks.push_back(v.PrefixBlocks(i, r.block_keys));
        const conductor::PrefillLoad l = v.GetPrefillLoad(i);
        x.loads.push_back(l);
        x.queued.emplace_back(l.queued.begin(), l.queued.end());
      }
      for (int d = 0; d < v.num_decode(); ++d) x.decode.push_back(v.GetDecodeLoad(d));
      x.placement = p;
      rec.push_back(std::move(x));
    };
    Result<SimResult> sim = Simulate(*trace, c);
    ASSERT_TRUE(sim.ok()) << sim.status().ToString();
    ASSERT_EQ(rec.size(), trace->requests.size()) << policy;

    Result<conductor::Estimators> est = FitEstimators(c.profile, /*with_prefix_load=*/true);
    ASSERT_TRUE(est.ok());
    conductor::Conductor live(*conductor::ParsePolicyKind(policy), ConductorOptions(c), *est);
    // The simulator's world: a prefix is fetched from another instance's cache.
    conductor::LiveClusterView view({static_cast<int64_t>(c.profile.block_tokens), /*stale_s=*/1e9,
                                     /*fetch_from_instances=*/true});
    std::vector<int> pslots, dslots;
    for (int i = 0; i < c.prefill; ++i) pslots.push_back(view.AddInstance(true, std::to_string(i)));
    for (int d = 0; d < c.decode; ++d) dslots.push_back(view.AddInstance(false, std::to_string(d)));
    int64_t differ = 0, rejected = 0, fetched = 0;
    uint64_t seq = 0;
    for (const Recorded& x : rec) {
      // Each instance reports what the simulator's view showed: the held
      // prefix (a resync of its keys), its queue, its batch.
      for (int i = 0; i < c.prefill; ++i) {
        conductor::InstanceReport r;
        r.epoch = 7;
        r.last_seq = ++seq;
        r.resync = true;
        r.held.assign(x.keys.begin(), x.keys.begin() + x.prefix_blocks[i]);
        uint64_t job = 1;
        if (x.loads[i].running) {
          r.jobs.push_back({job++, x.loads[i].running_work, true, x.now - x.loads[i].running_started_s});
        }
        for (const conductor::PrefillWork& w : x.queued[i]) r.jobs.push_back({job++, w, false, 0});
        view.Apply(pslots[i], r, x.now);
      }
      for (int d = 0; d < c.decode; ++d) {
        conductor::InstanceReport r;
        r.epoch = 7;
        r.decode = x.decode[d];
        view.Apply(dslots[d], r, x.now);
      }
      view.Freeze(x.now);
      const conductor::Placement p = live.Place({x.input, x.output, x.keys}, view, x.now);
      const conductor::Placement& want = x.placement;
      const bool same = p.verdict == want.verdict && p.prefill.prefill == want.prefill.prefill &&
                        p.prefill.prefix_tokens == want.prefill.prefix_tokens &&
                        p.prefill.transfer_from == want.prefill.transfer_from && p.decode.decode == want.decode.decode;
      differ += same ? 0 : 1;
      rejected += want.admitted() ? 0 : 1;
      fetched += want.prefill.transfer_from >= 0 ? 1 : 0;
    }
    EXPECT_EQ(differ, 0) << policy << ": placements that differ out of " << rec.size();
    std::printf("%-13s %zu placements, %lld rejected, %lld fetches: %lld differ\n", policy, rec.size(),
                static_cast<long long>(rejected), static_cast<long long>(fetched), static_cast<long long>(differ));
  }
}

}  // namespace
}  // namespace crescent::sim
