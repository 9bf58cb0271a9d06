// Engine: the serving loop. Requests come in from any thread (Submit, Cancel);
// one dedicated step thread schedules them with continuous batching and chunked
// prefill over a paged, prefix-cached KV pool, runs the model, samples, and hands
// each request's outputs to its callback.
//
//   Submit ──> waiting queue ──> Scheduler (token budget, max seqs, FCFS,
//              (thread-safe)      preempt-by-recompute when pages run out)
//                                   │
//   step thread:  KV pages (prefix cache, LRU) ─> ModelRunner::Forward ─> Sampler
//                                   │
//   OutputCallback(RequestOutput) <─┘  (tokens, text delta, finish, usage)
//
// Contract:
// - Submit validates the request (empty prompt, prompt + max_tokens beyond the
//   model's context, a request that can never fit in the KV pool: InvalidArgument;
//   waiting queue full: ResourceExhausted, which HTTP maps to 429; shutting down:
//   Unavailable) and returns its id. Nothing is called back for a refused request.
// - Every accepted request gets exactly one output with finished = true, whatever
//   happens (completion, Cancel, Shutdown, an internal error). A model step that
//   fails or throws (a library's exception on the step thread) ends the requests
//   it carried with kError (Internal); the engine goes on with the others.
// - Callbacks run on the step thread, in order per request; they must be quick and
//   must not call back into the Engine synchronously except Cancel.
// - Cancel is thread-safe and idempotent; the request's pages are freed by the
//   next step.
// Thread-safety: all public methods are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "base/status.h"
#include "engine/kv_connector.h"
#include "engine/kv_reservations.h"
#include "engine/model_runner.h"
#include "engine/request.h"

namespace crescent::model {
class Tokenizer;
}

namespace crescent::engine {

struct EngineOptions {
  int64_t max_num_seqs = 64;              // running sequences at most
  // Tokens per step (decode + prefill chunks). 512 from `crescent bench engine
  // --chunk-sweep` (docs/engine.md): against 1024 it nearly halves the token
  // gap of running decodes while a long prompt prefills, for ~2% more TTFT.
  int64_t max_num_batched_tokens = 512;
  int64_t page_tokens = 16;
  int64_t kv_cache_bytes = 0;             // 0: kv_cache_fraction of available memory
  double kv_cache_fraction = 0.4;
  bool enable_prefix_caching = true;
  int64_t max_waiting = 1024;             // queued requests beyond this are refused
  int64_t max_model_len = 0;              // 0: the model's max_position_embeddings
  bool prefault_kv_cache = false;         // touch the whole pool at start (benchmarks of a warm engine)
  // Reservations for a prefill instance's writes (ReserveKv): their lease, and
  // how long the pages of one that ended uncommitted stay fenced after it
  // (>= the peer's transfer timeout + clock skew; kv_reservations.h).
  int64_t kv_lease_ms = 10'000;
  int64_t kv_quarantine_ms = 15'000;
};

// What a prefill instance sends once every write into a reservation ended.
struct KvCommit {
  uint64_t reservation = 0;
  uint64_t generation = 0;
  std::vector<uint64_t> checksums;  // KvPagesChecksum per group of written pages
  int32_t first_token = 0;          // sampled by the prefill instance
  bool first_text_sent = false;     // its text went to the client already (not sent again)
};

struct EngineStats {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_pages_total = 0;
  int64_t kv_pages_used = 0;         // held by live sequences
  int64_t kv_pages_cached = 0;       // free but holding a reusable prefix
  int64_t prefix_query_tokens = 0;   // prompt tokens looked up in the prefix cache
  int64_t prefix_hit_tokens = 0;     // of which found
  int64_t preemptions = 0;
  int64_t steps = 0;
  int64_t prompt_tokens = 0;         // computed + cached, all requests so far
  int64_t generation_tokens = 0;
  // The KvConnector (zero without one): sequences waiting for a load, loads
  // started and failed (recomputed), prompt tokens loaded, saves started and failed.
  int64_t loading = 0;
  int64_t kv_loads = 0, kv_load_failures = 0, kv_loaded_tokens = 0;
  int64_t kv_saves = 0, kv_save_failures = 0;
  // A decode instance's reservations as of the last step (kv_reservation_stats()
  // waits for the step thread instead; this does not).
  KvReservationStats kv_reservations;
  // Load as a Conductor sees it: KV tokens of the live requests (prompt and
  // generated so far, waiting ones included).
  int64_t context_tokens = 0;
  // The last step that only decoded (no prompt token): its index (steps),
  // batch, context tokens and seconds (a decode step estimator's sample).
  struct StepSample {
    int64_t step = 0, batch = 0, context_tokens = 0;
    double seconds = 0;
  } last_decode_step;
};

using OutputCallback = std::function<void(RequestOutput)>;

class Engine {
 public:
  // `tokenizer` may be null (no text deltas, no stop strings); it must outlive the
  // Engine. `connector` may be null; it must outlive the Engine too.
  static Result<std::unique_ptr<Engine>> Create(std::unique_ptr<ModelRunner> runner, const model::Tokenizer* tokenizer,
                                                const EngineOptions& options, KvConnector* connector = nullptr);
  ~Engine();  // Shutdown()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Result<uint64_t> Submit(EngineRequest request, OutputCallback callback);
  void Cancel(uint64_t request_id);

  // A decode instance's side of the P/D KV path (DESIGN.md, kv_reservations.h).
  // ReserveKv: pages for `prompt` + `max_tokens`; the leading pages the prefix
  // cache holds are shared (held_tokens; the peer writes only the rest).
  // ResourceExhausted when the pool has not the room now.
  Result<KvReservation> ReserveKv(std::span<const int32_t> prompt, int64_t max_tokens);
  // Admits a request whose prompt K/V a prefill instance wrote into the
  // reservation: it decodes from its second token on (the first,
  // commit.first_token, was the prefill instance's: it is not emitted again,
  // but counts in usage and in max_tokens, and its text comes with the first
  // output here, so the text is what one engine would have written). Refused
  // with nothing admitted for another generation (the reservation stays: its
  // owner may still commit), and with the reservation ended for an ended
  // lease or pages that do not match their checksums; InvalidArgument as Submit, and
  // for max_tokens < 2 (nothing to decode). Outputs as Submit's.
  Result<uint64_t> SubmitPrefilled(EngineRequest request, const KvCommit& commit, OutputCallback callback);
  void CancelKv(uint64_t reservation);
  // The reservation's lease runs kv_lease_ms more; NotFound once it ended,
  // FailedPrecondition for another generation.
  Status ExtendKv(uint64_t reservation, uint64_t generation);
  KvReservationStats kv_reservation_stats() const;
  int64_t kv_lease_ms() const;
  // The KV pool: its pages (a peer's writes land here) and its memory.
  KvPageAccess& kv_pages();
  const KvCacheShape& kv_shape() const;
  std::span<std::byte> kv_memory() const;
  // Stops accepting, aborts everything in flight (each gets its final output),
  // joins the step thread. Idempotent.
  void Shutdown();

  EngineStats Stats() const;
  // The KV fingerprint its keys carry (base/kv_identity.h).
  const Hash128& fingerprint() const;
  // The prefix cache's keys as events (kv_events.h), for a Conductor's view.
  const KvEventLog& kv_events() const;
  // The model's identity without the KV geometry: its config and its weights' content.
  Hash128 model_hash() const;
  const model::ModelConfig& config() const;
  const model::Tokenizer* tokenizer() const;
  int64_t max_model_len() const;

 private:
  Engine();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::engine
