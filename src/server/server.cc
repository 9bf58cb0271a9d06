#include "server/server.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <thread>

#include <fmt/format.h>

#include "base/clock.h"
#include "base/logging.h"
#include "base/sys_info.h"
#include "engine/model_runner.h"
#include "model/weights_hash.h"
#include "server/instance_registry.h"
#include "server/pd_front.h"
#include "sim/cost_model.h"
#include "store/remote_master.h"
#include "transfer/etcd_metadata_store.h"
#include "transfer/in_process_metadata_store.h"

namespace crescent::server {

Result<std::unique_ptr<Server>> Server::Start(const ServeOptions& options) {
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  ServiceOptions so;
  so.served_model = options.served_model_name.empty() ? options.model.spec : options.served_model_name;
  so.api_key = options.api_key;
  s->service_ = std::make_unique<OpenAiService>(so);
  HttpOptions http = options.http;
  OpenAiService* svc = s->service_.get();
  http.handler = [svc](HttpRequest r, std::shared_ptr<HttpExchange> ex) { svc->Handle(std::move(r), std::move(ex)); };
  http.on_status = [svc](int status) { svc->metrics().OnStatus(status); };
  ASSIGN_OR_RETURN(s->http_, HttpServer::Start(options.host, options.port, std::move(http), options.io_threads));
  LOG_INFO("crescent serve: listening on http://{}:{} (model '{}' loading)", options.host, s->http_->port(),
           so.served_model);
  s->loader_ = std::thread([srv = s.get()] { srv->Load(); });
  return s;
}

Server::~Server() { Shutdown(0); }

Status Server::LoadTokenizer(const std::string& dir) {
  ASSIGN_OR_RETURN(model::Tokenizer tok, model::Tokenizer::FromDirectory(dir));
  tokenizer_ = std::make_unique<model::Tokenizer>(std::move(tok));
  if (!tokenizer_->chat_template().empty()) {
    auto t = model::ChatTemplate::Create(tokenizer_->chat_template());
    if (t.ok()) {
      chat_ = std::move(t).value();
    } else {
      LOG_WARNING("the chat template cannot be used ({}); /v1/chat/completions will answer 400", t.status().message());
    }
  }
  return Status::Ok();
}

Status Server::ConnectRegistry() {
  transfer::EtcdOptions eo;
  eo.endpoint = options_.etcd;
  ASSIGN_OR_RETURN(auto etcd, transfer::EtcdMetadataStore::Connect(eo));
  registry_ = std::move(etcd);
  return Status::Ok();
}

Status Server::LoadFront(const std::string& dir) {
  RETURN_IF_ERROR(LoadTokenizer(dir));
  // The model's identity without loading its weights: the config and the
  // content hash cached beside them (computed once if it is not there).
  ASSIGN_OR_RETURN(model::ModelConfig cfg, model::LoadModelConfig(dir));
  ASSIGN_OR_RETURN(model::WeightFiles files, model::WeightFiles::Open(dir));
  ASSIGN_OR_RETURN(Hash128 weights, model::WeightsContentHash(dir, files));
  PdFrontOptions fo;
  fo.prefill = options_.prefill_instances;
  fo.decode = options_.decode_instances;
  if (!options_.etcd.empty()) {
    RETURN_IF_ERROR(ConnectRegistry());
    fo.registry = registry_;
  }
  fo.model_hash = engine::ModelHash(cfg, weights);
  fo.unresponsive_ms = options_.instance_timeout_ms;
  fo.tokenizer = tokenizer_.get();
  // The prober's round is also the view's report interval.
  fo.probe_ms = std::clamp<int64_t>(options_.instance_timeout_ms / 4, 50, 200);
  PdPlacementOptions& po = fo.placement;
  ASSIGN_OR_RETURN(po.policy, conductor::ParsePolicyKind(options_.policy));
  po.policy_options.ttft_slo_s = options_.ttft_slo_s;
  po.policy_options.tbt_slo_s = options_.tbt_slo_s;
  po.policy_options.admission = options_.ttft_slo_s > 0 || options_.tbt_slo_s > 0;
  po.policy_options.admission_hysteresis = options_.admission_hysteresis;
  po.policy_options.kvcache_balancing_threshold = options_.kvcache_balancing_threshold;
  po.stale_s = static_cast<double>(options_.report_stale_ms) / 1000.0;
  po.kv_bytes_per_token = 2.0 * static_cast<double>(cfg.num_layers * cfg.kv_dim()) * 2.0;  // K and V, bf16
  if (!options_.profile.empty()) {
    ASSIGN_OR_RETURN(sim::CostProfile prof, sim::LoadCostProfile(options_.profile));
    ASSIGN_OR_RETURN(conductor::Estimators est, sim::FitEstimators(prof, /*with_prefix_load=*/true));
    po.profile = est;
    LOG_INFO("crescent conductor: estimators start from the profile {}", options_.profile);
  }
  if (!options_.store_master.empty()) {
    store::RemoteMasterOptions mo;
    mo.target = options_.store_master;
    mo.timeout_ms = po.store_timeout_ms;
    ASSIGN_OR_RETURN(po.store, store::RemoteMaster::Connect(mo));
  }
  LOG_INFO("crescent conductor: policy {}{}", options_.policy,
           po.policy_options.admission
               ? fmt::format(", admission with TTFT SLO {} s, TBT SLO {} s", options_.ttft_slo_s, options_.tbt_slo_s)
               : std::string(", no admission (no SLO)"));
  ASSIGN_OR_RETURN(std::unique_ptr<PdFront> front, PdFront::Create(fo));
  backend_ = std::move(front);
  // The instances' limits are read per request (they may join later).
  service_->SetReady(backend_.get(), tokenizer_.get(), chat_ ? &*chat_ : nullptr, std::numeric_limits<int32_t>::max());
  return Status::Ok();
}

Status Server::StartInstance() {
  transfer::EngineOptions to;
  to.transports = options_.kv_transports;
  to.net_devices = options_.kv_net_devices == "all" ? "" : options_.kv_net_devices;
  auto peers = std::make_shared<transfer::InProcessMetadataStore>();  // descriptors come in Reserve replies
  ASSIGN_OR_RETURN(transfer_, transfer::TransferEngine::Create(to, peers));
  KvInstanceOptions io;
  io.listen = options_.instance_listen;
  io.role = options_.role;
  if (connector_) {
    io.chunk_tokens = connector_->chunk_tokens();
    io.store_loads = [c = connector_.get()](int64_t* bytes, double* seconds) {
      *bytes = c->counters().bytes_loaded;
      *seconds = static_cast<double>(c->counters().load_us_total) * 1e-6;
    };
  }
  std::span<std::byte> pool = engine_->kv_memory();
  if (options_.role == "decode") {
    io.segment = fmt::format("crescent/kv/decode-{}-{}", ::getpid(), MonotonicClock::Get().NowNanos());
    RETURN_IF_ERROR(transfer_->RegisterLocalMemory(io.segment, pool.data(), pool.size()));
  } else {
    RETURN_IF_ERROR(transfer_->RegisterBuffer(pool.data(), pool.size()));
  }
  ASSIGN_OR_RETURN(instance_, KvInstanceService::Start(io, engine_.get(), transfer_.get(), peers));
  LOG_INFO("crescent serve: {} instance, KV service on {}", options_.role, instance_->address());
  service_->metrics().SetPdSource([this] {
    const engine::KvReservationStats r = engine_->Stats().kv_reservations;  // never waits for a step
    const KvInstanceStats i = instance_->stats();
    PdStats p;
    p.reserved = r.reserved;
    p.committed = r.committed;
    p.cancelled = r.cancelled;
    p.expired = r.expired;
    p.refused_commits = r.refused_commits;
    p.checksum_failures = r.checksum_failures;
    p.quarantined_pages = r.quarantined_pages;
    p.freed_after_quarantine = r.freed_after_quarantine;
    p.prefills = i.prefills;
    p.bytes_written = i.bytes_written;
    p.leases_lost = i.leases_lost;
    return p;
  });
  if (!options_.etcd.empty()) {
    RETURN_IF_ERROR(ConnectRegistry());
    RETURN_IF_ERROR(RegisterInstance(*registry_, {options_.role, instance_->address()}));
    LOG_INFO("crescent serve: registered in etcd {} (lease {} s)", options_.etcd, transfer::EtcdOptions{}.lease_ttl_s);
  }
  return Status::Ok();
}

void Server::Load() {
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(std::string dir, ResolveModelDir(options_.model));
    auto t0 = std::chrono::steady_clock::now();
    engine::RunnerOptions ro;
    ASSIGN_OR_RETURN(ro.dtype, engine::ParseComputeDType(options_.dtype));
    ro.quantization = options_.quantization;
    int last = -1;
    ro.progress = [&](int64_t done, int64_t total) {
      const int pct = total > 0 ? static_cast<int>(100 * done / total) : 100;
      if (pct / 10 != last / 10 || done == total) {
        LOG_INFO("loading weights from {}: {}%", dir, pct);
        last = pct;
      }
    };
    if (options_.role == "front") {
      RETURN_IF_ERROR(LoadFront(dir));
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      LOG_INFO("crescent conductor: ready in {:.2f} s on http://{}:{}", s, options_.host, http_->port());
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(auto runner, engine::ModelRunner::Load(dir, ro));
    RETURN_IF_ERROR(LoadTokenizer(dir));
    engine::EngineOptions eo;
    eo.max_num_seqs = options_.max_num_seqs;
    eo.max_num_batched_tokens = options_.max_num_batched_tokens;
    eo.kv_cache_bytes = options_.kv_cache_bytes;
    eo.max_waiting = options_.max_waiting;
    eo.enable_prefix_caching = options_.enable_prefix_caching;
    if (options_.kv_lease_ms > 0) eo.kv_lease_ms = options_.kv_lease_ms;
    if (options_.kv_quarantine_ms > 0) eo.kv_quarantine_ms = options_.kv_quarantine_ms;
    // Without its store an instance still serves (it recomputes): a master
    // away, or holding another model's KV, is logged, never fatal.
    if (Status st = StartStore(*runner, eo.page_tokens); !st.ok()) {
      LOG_ERROR("crescent serve: no KV offload: {}", st.ToString());
      connector_.reset();
      store_.reset();
    }
    ASSIGN_OR_RETURN(engine_, engine::Engine::Create(std::move(runner), tokenizer_.get(), eo, connector_.get()));
    const int64_t kv_tokens = engine_->Stats().kv_pages_total * eo.page_tokens;
    if (options_.role == "prefill" || options_.role == "decode") RETURN_IF_ERROR(StartInstance());
    backend_ = std::make_unique<EngineBackend>(engine_.get());
    service_->SetReady(backend_.get(), tokenizer_.get(), chat_ ? &*chat_ : nullptr, kv_tokens);
    const int64_t model_len = engine_->max_model_len();
    if (kv_tokens < model_len) {
      LOG_INFO("crescent serve: a request gets at most {} tokens of context (the KV pool's size; the model allows {}): "
               "/v1/models reports {}; --kv-cache-bytes raises it",
               kv_tokens, model_len, kv_tokens);
    } else {
      LOG_INFO("crescent serve: a request gets at most {} tokens of context (the model's limit)", model_len);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    LOG_INFO("crescent serve: ready in {:.2f} s on http://{}:{}", s, options_.host, http_->port());
    return Status::Ok();
  };
  Status st = run();
  if (!st.ok()) {
    LOG_ERROR("crescent serve: cannot load the model: {}", st.message());
    service_->SetLoadFailed(st.message());
  }
  load_status_ = st;
  loaded_.store(true);
}

Status Server::StartStore(const engine::ModelRunner& runner, int64_t page_tokens) {
  int64_t dram = options_.kv_offload_dram_bytes;
  if (dram < 0) dram = std::min<int64_t>(static_cast<int64_t>(AvailableMemory() / 5), int64_t{32} << 30);
  if (dram == 0 && options_.store_master.empty()) return Status::Ok();
  const engine::KvCacheShape shape = runner.kv_shape(page_tokens);
  // The store holds one model's KV: the master refuses clients of another.
  const Hash128 fp = runner.KvFingerprint(page_tokens, options_.kv_chunk_tokens);
  store::StoreStackOptions so;
  so.client.fingerprint = fp;
  // Loads scatter remote copies through the client's bounce area: room for
  // a chunk per connector worker at least, however large a model's chunks.
  const uint64_t chunk_bytes = static_cast<uint64_t>(shape.page_bytes()) *
                               static_cast<uint64_t>(options_.kv_chunk_tokens / page_tokens);
  so.client.scratch_bytes = std::max<uint64_t>(so.client.scratch_bytes, 2 * store::RecordBytes(chunk_bytes));
  // Lookups run on the step thread: an unreachable master costs one call of
  // at most this (then the connector leaves the store alone for 5 s).
  so.master_timeout_ms = 300;
  so.master = options_.store_master.empty() ? "local" : options_.store_master;
  so.local_master.ramp_ms = 0;  // one node: nothing to ramp against
  so.local_master.ssd_write_through = !options_.kv_offload_ssd_dir.empty();  // restart-safe prefixes
  so.engine.transports = options_.store_master.empty() ? "self,sm" : "self,sm,tcp";
  if (dram > 0) {
    store::StoreNodeOptions n;
    n.dram_bytes = static_cast<uint64_t>(dram);
    n.prefault = false;  // pages are touched as chunks arrive
    n.fingerprint = fp;
    if (!options_.kv_offload_ssd_dir.empty()) {
      n.ssd_dir = options_.kv_offload_ssd_dir;
      n.ssd_bytes = options_.kv_offload_ssd_bytes > 0 ? static_cast<uint64_t>(options_.kv_offload_ssd_bytes)
                                                     : uint64_t{64} << 30;
    }
    so.node = n;
  }
  ASSIGN_OR_RETURN(store_, store::StoreStack::Create(so));
  StoreKvConnectorOptions co;
  co.chunk_tokens = options_.kv_chunk_tokens;
  co.page_tokens = page_tokens;
  co.num_layers = shape.num_layers;
  co.page_bytes_per_layer = shape.page_bytes() / shape.num_layers / 2;
  co.observe_load_seconds = [h = service_->metrics().kv_load_seconds()](double s) { h->Observe(s); };
  ASSIGN_OR_RETURN(connector_, StoreKvConnector::Create(co, &store_->client()));
  service_->metrics().SetOffloadSource([this] { return OffloadFigures(); });
  LOG_INFO("crescent serve: KV offload to {} store: {} MiB DRAM{}, chunks of {} tokens ({:.1f} MiB)",
           options_.store_master.empty() ? "an in-process" : "the " + options_.store_master, dram >> 20,
           options_.kv_offload_ssd_dir.empty() ? std::string() : ", SSD in " + options_.kv_offload_ssd_dir,
           co.chunk_tokens, static_cast<double>(connector_->chunk_bytes()) / (1 << 20));
  return Status::Ok();
}

OffloadStats Server::OffloadFigures() {
  OffloadStats o;
  if (!connector_ || !store_) return o;
  const StoreKvCounters& c = connector_->counters();
  o.lookups = c.lookups;
  o.lookup_failures = c.lookup_failures;
  o.chunks_loaded = c.chunks_loaded;
  o.bytes_loaded = c.bytes_loaded;
  o.load_failures = c.load_failures;
  o.chunks_saved = c.chunks_saved;
  o.bytes_saved = c.bytes_saved;
  o.save_failures = c.save_failures;
  auto from = [&](store::ReadFrom f) { return c.tokens_from[static_cast<size_t>(f)].load(); };
  o.tokens_dram = from(store::ReadFrom::kLocalDram);
  o.tokens_ssd = from(store::ReadFrom::kLocalSsd);
  o.tokens_remote = from(store::ReadFrom::kRemoteDram) + from(store::ReadFrom::kRemoteSsd);
  o.checksum_failures = store_->client().counters().checksum_failures;
  if (Result<proto::StatReply> st = store_->client().Stat(); st.ok()) {
    o.have_usage = true;
    for (const auto& seg : st->segments()) {
      if (!seg.alive()) continue;
      const bool ssd = seg.tier() == proto::TIER_SSD;
      (ssd ? o.ssd_used : o.dram_used) += static_cast<int64_t>(seg.used());
      (ssd ? o.ssd_capacity : o.dram_capacity) += static_cast<int64_t>(seg.capacity());
    }
  }
  return o;
}

bool Server::Loaded(Status* status) const {
  if (!loaded_.load()) return false;
  *status = load_status_;
  return true;
}

Status Server::WaitUntilLoaded() {
  while (!loaded_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return load_status_;
}

void Server::Shutdown(double grace_s) {
  if (shut_down_.exchange(true)) return;
  if (loader_.joinable()) loader_.join();  // a load in progress finishes first
  service_->SetDraining();
  http_->StopAccepting();
  using Clock = std::chrono::steady_clock;
  auto wait_for = [](double seconds, auto done) {
    const auto end = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
    while (!done() && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  const int64_t busy = service_->in_flight();
  if (busy > 0) LOG_INFO("crescent serve: shutting down; {} request(s) in flight", busy);
  wait_for(grace_s, [&] { return service_->in_flight() == 0; });
  registry_.reset();  // deregistered at once (the lease is revoked): fronts stop sending
  service_->metrics().SetPdSource(nullptr);  // before what it reads goes
  instance_.reset();  // no new prefill/decode calls
  if (options_.role == "front") backend_.reset();  // the front cancels what is left and waits for it
  if (engine_) engine_->Shutdown();  // aborts the rest; each still gets its final output (and saves end)
  if (store_ && store_->node() && !options_.kv_offload_ssd_dir.empty() && !store_->node()->Flush(10'000)) {
    LOG_WARNING("crescent serve: some KV chunks may not have reached the SSD tier before stopping");
  }
  wait_for(2.0, [&] { return service_->in_flight() == 0 && http_->num_connections() == 0; });
  http_->Stop();
  service_->StopPreparing();  // nothing tokenizes once the tokenizer may go
  LOG_INFO("crescent serve: stopped");
}

}  // namespace crescent::server
