// PdFront: the request path of a prefill/decode split as the front (the
// `crescent conductor` process) drives it, behind the same Submit/Cancel
// contract as engine::Engine (every accepted request gets exactly one final
// output), so the OpenAI layer serves either (docs/disaggregation.md):
//
//   place P and D (the live Conductor, pd_placement.h: the configured
//   policy over the view the instances' reports feed; admission may refuse
//   the request here, before any work: ResourceExhausted, HTTP 429)
//   D.Reserve(prompt, max_tokens)         pages, held prefix, lease
//   P.Prefill(prompt, params, target)     P WRITEs the KV layer by layer;
//                                         first token + checksums (P keeps
//                                         D's lease meanwhile, and stops writing
//                                         if it lapses)
//   first output: P's token (its text comes with the next output)
//   D.Decode(commit)                      the rest, streamed
//
// Failures: a Reserve that fails or a Prefill that fails (its writes did not
// all land, P died) cancels the reservation and is retried once on other
// instances where there are; then the request ends with an error output
// (Unavailable). A decode stream that breaks before its final output ends
// the request with an error output, never a silent truncation. Every call
// has a deadline, and an instance that stops answering (SIGSTOP, a hang) is
// found by the prober (each round asks every instance for its Report, the
// view's feed) within about unresponsive_ms + probe_ms: its calls are
// cancelled as if it had failed. A retry goes to the instance with the
// fewest requests in flight other than the failed one. Cancel (or a client gone) cancels the call in flight.
// Thread-safety: all methods from any thread; callbacks come from the
// request's own thread, in order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "engine/engine.h"
#include "model/tokenizer.h"
#include "server/generation_backend.h"
#include "server/pd_placement.h"
#include "transfer/metadata_store.h"

namespace crescent::server {

struct PdFrontOptions {
  std::vector<std::string> prefill;  // host:port of KvInstance services
  std::vector<std::string> decode;
  // The model the front serves (engine::ModelHash of its config and weights):
  // instances whose Info names another are refused, and the rest must share
  // one KV fingerprint (prefill and decode compute the same KV).
  Hash128 model_hash;
  int64_t connect_timeout_ms = 30'000;  // for every instance to answer Info at Create
  // With a registry (etcd, instance_registry.h): instances are also found
  // there and re-listed every refresh_ms; one whose registration is gone
  // (stopped, or its lease expired) leaves.
  std::shared_ptr<transfer::MetadataStore> registry;
  int64_t refresh_ms = 1000;
  // Every probe_ms each instance is asked for its Report (the view's feed,
  // answered off its step thread, so a busy instance answers); one silent for unresponsive_ms
  // (stopped, hung, cut off) is not picked and the calls on it are
  // cancelled: a prefill is retried elsewhere, a decode stream ends with an
  // error output. 0: no prober (calls wait for their deadlines).
  int64_t probe_ms = 1000;
  int64_t unresponsive_ms = 5000;
  int64_t reserve_timeout_ms = 5'000;
  // A decode instance without KV room now is asked again (backing off) for
  // up to this long before the request fails: it waits for room.
  int64_t kv_wait_ms = 120'000;
  int64_t prefill_timeout_ms = 600'000;
  int64_t decode_timeout_ms = 3'600'000;
  int64_t max_model_len = 0;
  int64_t vocab_size = 0;
  // The model's tokenizer (outlives the front): with it the front streams
  // the first token's text as soon as the prefill instance sampled it (an
  // engine's detokenizer and stop checker over that token); without it the
  // text goes with the decode instance's first output.
  const model::Tokenizer* tokenizer = nullptr;
  // The Conductor: policy, SLOs and admission, a profile, the store master.
  PdPlacementOptions placement;
};

class PdFront final : public GenerationBackend {
 public:
  // Asks every instance for its Info; keeps those of this model (logging the
  // others). Without a registry, Unavailable when no prefill or no decode
  // instance is left; with one, requests get Unavailable until there are.
  static Result<std::unique_ptr<PdFront>> Create(PdFrontOptions options);
  ~PdFront();  // cancels what is in flight and waits for each request's final output
  Result<uint64_t> Submit(engine::EngineRequest request, engine::OutputCallback callback) override;
  void Cancel(uint64_t id) override;
  // running: requests in flight; prefix queries and hits: the prefill
  // instances' caches as their replies tell; generated tokens.
  engine::EngineStats Stats() const override;
  int64_t max_model_len() const override;
  int64_t vocab_size() const override;
  int64_t in_flight() const;
  Hash128 kv_fingerprint() const;
  int64_t retry_after_s() const override;
  std::string MetricsText() const override;  // crescent_conductor_* (docs/cluster.md)
  PlacementStats placement_stats() const;

  class Impl;

 private:
  explicit PdFront(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::server
