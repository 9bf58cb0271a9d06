// PdPlacement: the live Conductor of a prefill/decode front (docs/cluster.md).
// It owns the cluster view (conductor/live_cluster_view.h) the instances'
// reports feed, the online estimators (conductor/online_estimators.h), and
// the Conductor that places each request with the policy the simulator runs.
//
//   Report(slot)   the request for an instance's next report (its cursor)
//   OnReport       applies a report: KV events, load, timings (refits)
//   Place          block keys of the prompt (the system's page keys,
//                  base/kv_identity.h, at every view_block_tokens), the
//                  store's longest prefix (the master's index of chunk keys,
//                  one Exists, bounded by store_timeout_ms), then Conductor::Place.
//                  Admitted: the chosen instances, the prefix to reuse and
//                  how much may come from the store, accounted in the view at
//                  once. Refused by admission: ResourceExhausted (HTTP 429)
//                  with a Retry-After. No candidate: Unavailable (503).
// Admission is on only with an SLO and a fitted estimator for it (a profile,
// or enough timings): until then it says so in the log and in Stats().
// Thread-safety: all methods from any thread (one lock, never held across
// an RPC).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "conductor/conductor.h"
#include "conductor/live_cluster_view.h"
#include "conductor/online_estimators.h"
#include "proto/instance.pb.h"
#include "store/master_api.h"
#include "base/thread_annotations.h"

namespace crescent::server {

struct PdPlacementOptions {
  conductor::PolicyKind policy = conductor::PolicyKind::kGlobalCacheAware;
  conductor::PolicyOptions policy_options;  // block_tokens is set from the instances' geometry
  std::optional<conductor::Estimators> profile;  // from a measured profile
  double kv_bytes_per_token = 0;
  double stale_s = 2.0;  // reports older than this: the instance counts as saturated
  // The view's prefix granularity in tokens (whole pages; it divides the
  // store's chunk): finer than a chunk, so prefixes shared for less than a
  // chunk still route to where they are cached.
  int64_t view_block_tokens = 64;
  std::shared_ptr<store::MasterApi> store;  // the shared store's master (null: none)
  int64_t store_timeout_ms = 500;  // the master's index lookup, on the request's Submit
};

struct PlacementTicket {
  uint64_t id = 0;
  int prefill_slot = -1, decode_slot = -1;
  int64_t prefix_tokens = 0;        // the policy expects these reused
  int64_t max_external_tokens = 0;  // at most this many from the store (fetch decision)
  bool fetch = false;               // the policy chose to fetch a prefix it does not hold
  double predicted_ttft_s = 0, predicted_tbt_s = 0;
};

struct PlacementStats {
  int64_t placed = 0, rejected_ttft = 0, rejected_tbt = 0, no_instance = 0, fetches = 0;
  int64_t store_queries = 0, store_failures = 0;
  bool ttft_admission = false, tbt_admission = false;  // on now
  bool prefill_fitted = false, decode_fitted = false, transfer_measured = false;
  int64_t prefill_samples = 0, decode_samples = 0, refits = 0;
  int64_t view_resyncs = 0, view_events = 0;
  double ttft_correction_s = 0;
  std::vector<std::pair<std::string, int64_t>> placed_on;  // instance -> prefill placements
  // The hottest prefixes (by the key of their first block, requests decayed
  // with a 60 s half-life): requests, the prefill instances holding the
  // prefix's first block in their caches, and whether the store holds it.
  struct HotPrefix {
    std::string key;  // hex
    double requests = 0;
    int replicas = 0;
    bool in_store = false;
  };
  std::vector<HotPrefix> hot;
};

class PdPlacement {
 public:
  explicit PdPlacement(PdPlacementOptions options);

  // Geometry of the instances' KV (Info): page keys, the block size, the fingerprint.
  void SetGeometry(const Hash128& fingerprint, int64_t page_tokens, int64_t chunk_tokens);
  int AddInstance(bool prefill, const std::string& name);
  void RemoveInstance(int slot);
  void SetResponsive(int slot, bool responsive);
  proto::ReportRequest ReportRequestFor(int slot) const;
  void OnReport(int slot, const proto::ReportReply& reply);

  Result<PlacementTicket> Place(std::span<const int32_t> prompt, int64_t max_tokens);
  void PrefillEnded(const PlacementTicket& t);
  void DecodeReserved(const PlacementTicket& t);
  void DecodeStarted(const PlacementTicket& t);
  void DecodeFailed(const PlacementTicket& t);
  // The request's first token came `ttft_s` after it was placed: the 90th
  // percentile of (measured - predicted) over the last 64 of the last 30 s
  // (at least 16 of them) becomes the Conductor's TTFT correction for
  // admission, between 0 and half the SLO.
  void FirstToken(const PlacementTicket& t, double ttft_s);

  // Seconds a refused client should wait (Retry-After).
  int64_t retry_after_s() const { return retry_after_s_.load(); }
  PlacementStats Stats() const;
  conductor::PolicyKind policy() const { return options_.policy; }

 private:
  // The key of every whole block of `per_block` pages (the page key at each block's end).
  static std::vector<conductor::BlockKey> BlockKeys(std::span<const Hash128> pages, int64_t per_block);
  int64_t StoreBlocks(std::span<const conductor::BlockKey> keys);
  void UpdateAdmission() REQUIRES(mu_);

  PdPlacementOptions options_;
  mutable Mutex mu_;
  Hash128 fingerprint_ GUARDED_BY(mu_);
  int64_t page_tokens_ GUARDED_BY(mu_) = 16;
  int64_t block_tokens_ GUARDED_BY(mu_) = 64;  // the view's block
  int64_t chunk_tokens_ GUARDED_BY(mu_) = 0;  // the store's chunk (0: no store)
  conductor::LiveClusterView view_ GUARDED_BY(mu_);
  conductor::OnlineEstimators estimators_ GUARDED_BY(mu_);
  conductor::Conductor conductor_ GUARDED_BY(mu_);
  std::map<int, uint64_t> samples_after_ GUARDED_BY(mu_);  // prefill timings seen per slot
  std::map<int, int64_t> decode_step_ GUARDED_BY(mu_);  // last decode step seen per slot
  std::map<int, std::pair<int64_t, double>> store_loads_ GUARDED_BY(mu_);
  std::map<int, std::string> names_ GUARDED_BY(mu_);
  std::map<int, int64_t> placed_on_ GUARDED_BY(mu_);
  PlacementStats stats_ GUARDED_BY(mu_);  // counters
  // The TTFT correction: the 90th percentile of the misses of the last 30 s
  // (at most 64, at least 16 or none), within [0, SLO / 2].
  void UpdateCorrection(double now) REQUIRES(mu_);
  std::deque<std::pair<double, double>> ttft_misses_ GUARDED_BY(mu_);  // (when, measured - predicted TTFT)
  std::map<int, uint64_t> epoch_ GUARDED_BY(mu_);  // each slot's last reported epoch
  struct Heat {
    double requests = 0, at_s = 0;
    bool in_store = false;
  };
  std::unordered_map<conductor::BlockKey, Heat, conductor::BlockKeyHasher> heat_ GUARDED_BY(mu_);
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  bool logged_admission_ GUARDED_BY(mu_) = false;
  std::atomic<int64_t> retry_after_s_{1};
  std::atomic<int64_t> store_skip_until_ns_{0};
};

// /metrics lines of the Conductor (docs/cluster.md):
//   crescent_conductor_placements_total{instance}, _rejected_total{slo},
//   _no_instance_total, _fetches_total, _store_queries_total, _store_failures_total,
//   _admission_enabled{slo} (0 while its estimator is not fitted),
//   _estimator_fitted{estimator}, _estimator_samples{estimator}, _refits_total,
//   _view_resyncs_total, _view_events_total, _ttft_correction_seconds,
//   _hot_prefix_{requests,replicas,in_store}{prefix} for the 8 hottest (and the front adds _kv_waits_total:
//   requests that waited for a decode instance's KV room)
std::string ConductorMetricsText(const PdPlacement& placement);

}  // namespace crescent::server
