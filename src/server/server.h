// Server: `crescent serve` in one object — the HTTP front (listening at once,
// answering 503 while the model loads), the model loaded on a background thread
// with a progress line, the engine, and a graceful shutdown.
//
//   Start ──> listen ──> (loader thread) resolve --model, load weights, tokenizer,
//             chat template, create Engine ──> ready (/health 200)
//   Shutdown ──> 503 for new requests, stop accepting, close idle connections,
//                let requests in flight finish for `grace_s`, abort the rest
//                (Engine::Shutdown), flush their answers, stop the io threads.
//
// Ownership: owns everything it starts. Destruction shuts down.
// Thread-safety: all methods may be called from any thread (Shutdown once).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "server/generation_backend.h"
#include "server/http_server.h"
#include "server/kv_instance_service.h"
#include "server/model_source.h"
#include "server/openai_service.h"
#include "server/store_kv_connector.h"
#include "store/store_stack.h"

namespace crescent::server {

struct ServeOptions {
  ModelSource model;
  std::string served_model_name;  // "" = the --model value
  std::string dtype = "auto";
  std::string quantization;  // "" or a GGUF type to quantize to at load (engine/model_runner.h)
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  int64_t max_num_seqs = 64;
  int64_t max_num_batched_tokens = 512;  // tokens per engine step (EngineOptions)
  int64_t kv_cache_bytes = 0;     // 0 = the engine's default share of memory
  int64_t max_waiting = 1024;
  bool enable_prefix_caching = true;
  int io_threads = 2;
  HttpOptions http;               // limits and timeouts (handler is set by Server)
  // KV offload to the store (docs/store.md, "The engine on the store"): chunks
  // of computed prompts go to a DRAM tier (and an SSD one) and prefixes that
  // left the engine's pool are loaded back. -1: 20% of available memory (at
  // most 32 GiB, touched only as it fills); 0: off unless store_master is set.
  int64_t kv_offload_dram_bytes = -1;
  std::string kv_offload_ssd_dir;     // "" = no SSD tier
  int64_t kv_offload_ssd_bytes = 0;   // 0 with a directory: 64 GiB
  std::string store_master;           // "" = in-process; host:port or etcd://host:port = a shared store
  int64_t kv_chunk_tokens = 256;
  // Prefill/decode split (docs/disaggregation.md). "both": all-in-one;
  // "prefill" / "decode": also a KvInstance gRPC service on instance_listen
  // (its KV pool registered with a transfer engine on kv_transports);
  // "front": no weights, the OpenAI API over prefill_instances and
  // decode_instances (`crescent conductor`).
  std::string role = "both";
  std::string instance_listen = "127.0.0.1:0";
  std::string kv_transports = "self,sm,tcp";
  // Network devices UCX may use for KV between instances (UCX_NET_DEVICES):
  // loopback by default (one host); name the interface (e.g. eth0) or "all"
  // when the instances are on different hosts.
  std::string kv_net_devices = "lo";
  std::vector<std::string> prefill_instances, decode_instances;
  // host:port of etcd: instances register there under a lease (and leave
  // when they stop or die); the front finds them there.
  std::string etcd;
  // The front: an instance silent this long (its Info unanswered) is not
  // picked and its calls are cancelled (PdFrontOptions::unresponsive_ms).
  int64_t instance_timeout_ms = 5000;
  // The front's Conductor (docs/cluster.md): the policy, SLOs (0: none) for
  // admission (429), a measured profile to start the estimators from, the
  // store master whose key index gives the global best prefix.
  std::string policy = "global-cache";
  double ttft_slo_s = 0, tbt_slo_s = 0;
  double admission_hysteresis = 0.1;
  double kvcache_balancing_threshold = 1.0;
  std::string profile;
  int64_t report_stale_ms = 2000;
  // A decode instance: a reservation's lease, and how long its pages stay
  // quarantined after it ended (0: the engine's defaults, 10 s and 15 s).
  int64_t kv_lease_ms = 0, kv_quarantine_ms = 0;
};

class Server {
 public:
  // Listens and starts loading; returns before the model is ready.
  static Result<std::unique_ptr<Server>> Start(const ServeOptions& options);
  ~Server();

  int port() const { return http_->port(); }
  // Blocks until the model is ready (OK) or failed to load (its Status).
  Status WaitUntilLoaded();
  // Non-blocking: true once loading ended, with *status set.
  bool Loaded(Status* status) const;
  void Shutdown(double grace_s = 5.0);

  engine::Engine* engine() { return engine_.get(); }
  StoreKvConnector* kv_connector() { return connector_.get(); }
  OpenAiService& service() { return *service_; }

 private:
  Server() = default;
  void Load();
  // The KV store and its connector, when offload is on.
  Status StartStore(const engine::ModelRunner& runner, int64_t page_tokens);
  // role prefill/decode: the transfer engine and the KvInstance service.
  Status StartInstance();
  // role front: tokenizer and chat template, the PdFront.
  Status LoadFront(const std::string& dir);
  Status LoadTokenizer(const std::string& dir);
  Status ConnectRegistry();  // etcd at options_.etcd, into registry_

  ServeOptions options_;
  std::unique_ptr<OpenAiService> service_;
  std::unique_ptr<model::Tokenizer> tokenizer_;
  std::optional<model::ChatTemplate> chat_;
  // Declared before the engine: it goes first and waits for their work.
  std::unique_ptr<store::StoreStack> store_;
  std::unique_ptr<StoreKvConnector> connector_;
  OffloadStats OffloadFigures();  // for /metrics
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<GenerationBackend> backend_;  // the engine's, or the front's
  // Declared after the engine: they go first (the pool stays registered no
  // longer than it lives).
  std::unique_ptr<transfer::TransferEngine> transfer_;
  std::unique_ptr<KvInstanceService> instance_;
  std::shared_ptr<transfer::MetadataStore> registry_;  // etcd, with options_.etcd
  std::unique_ptr<HttpServer> http_;
  std::thread loader_;
  std::atomic<bool> loaded_{false};
  Status load_status_;  // written before loaded_ becomes true
  std::atomic<bool> shut_down_{false};
};

}  // namespace crescent::server
