// `crescent bench offload --model DIR [--prefix 4096] [--chunk-tokens 256]
// [--ssd-dir DIR] [--json]`: the engine on its in-process KV store, each figure
// beside its limit measured in the same run:
//   recompute  the time to first token of a (prefix + 1)-token prompt computed
//   dram       the same prompt on a fresh engine whose prefix comes from the
//              DRAM tier: the connector's load time beside memcpy of the same
//              bytes (target: at most 1.25x), and the TTFT beside recompute
//   ssd        after the store restarts on the same SSD directory (DRAM empty),
//              the load time beside fio's sequential read of the same bytes on
//              that directory (target: at most 1.25x), and the TTFT
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "base/logging.h"
#include "cli/cli_store_baselines.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "engine/output_queue.h"
#include "server/store_kv_connector.h"
#include "store/store_stack.h"

namespace crescent::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Opts {
  std::string model, dtype = "auto", ssd_dir;
  int64_t prefix = 4096, chunk_tokens = 256;
  uint64_t seed = 3;
  bool json = false;
};

struct Tier {  // the store and its connector, built and torn down together
  std::unique_ptr<store::StoreStack> stack;
  std::unique_ptr<server::StoreKvConnector> conn;  // uses stack's client: goes first
  void Reset() {
    conn.reset();
    stack.reset();
  }
  Tier() = default;
  Tier(Tier&&) = default;
  Tier& operator=(Tier&&) = delete;  // would destroy the stack before the connector
  ~Tier() { Reset(); }
};

Tier MakeTier(const engine::ModelRunner& runner, const Opts& o, const std::string& ssd, uint64_t dram) {
  const engine::KvCacheShape shape = runner.kv_shape(16);
  store::StoreStackOptions so;
  so.master = "local";
  so.local_master.ramp_ms = 0;
  so.local_master.ssd_write_through = true;
  so.engine.transports = "self,sm";
  so.client.fingerprint = runner.KvFingerprint(16, o.chunk_tokens);
  store::StoreNodeOptions n;
  n.node_id = "bench-offload";
  n.dram_bytes = dram;
  n.ssd_dir = ssd;
  n.ssd_bytes = dram * 2;
  n.fingerprint = so.client.fingerprint;
  so.node = n;
  Tier t;
  t.stack = ValueOrThrow(store::StoreStack::Create(so));
  t.stack->node()->WaitForPrefault();
  server::StoreKvConnectorOptions co;
  co.chunk_tokens = o.chunk_tokens;
  co.page_tokens = 16;
  co.num_layers = shape.num_layers;
  co.page_bytes_per_layer = shape.page_bytes() / shape.num_layers / 2;
  t.conn = ValueOrThrow(server::StoreKvConnector::Create(co, &t.stack->client()));
  return t;
}

std::unique_ptr<engine::Engine> MakeEngine(const Opts& o, engine::KvConnector* conn) {
  auto runner = ValueOrThrow(LoadModel(o.model, o.dtype));
  engine::EngineOptions eo;
  eo.max_num_batched_tokens = std::max<int64_t>(2048, o.prefix + 1);
  eo.kv_cache_bytes = ((o.prefix + 64) / 16 + 8) * runner->kv_shape(16).page_bytes();
  // A serving engine's pages have been touched long ago; a fresh pool's first
  // touch (with huge-page compaction) would be billed to the load.
  eo.prefault_kv_cache = true;
  return ValueOrThrow(engine::Engine::Create(std::move(runner), nullptr, eo, conn));
}

// Seconds to the first token and the cached prompt tokens.
std::pair<double, int64_t> Ttft(engine::Engine& e, const std::vector<int32_t>& prompt) {
  engine::EngineRequest r;
  r.prompt = prompt;
  r.params.max_tokens = 1;
  r.params.ignore_eos = true;
  engine::OutputQueue q;
  ValueOrThrow(e.Submit(r, q.Callback()));
  engine::RequestOutput out = q.Next();
  if (out.finish_reason == engine::FinishReason::kError) throw CommandError(out.error.message());
  return {out.first_token_time_s, out.usage.cached_tokens};
}

double MemcpySeconds(uint64_t bytes) {
  auto* a = static_cast<std::byte*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto* b = static_cast<std::byte*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (a == MAP_FAILED || b == MAP_FAILED) throw CommandError("cannot map the memcpy buffers");
  std::memset(a, 1, bytes);
  std::memset(b, 0, bytes);
  const double gb_s = MemcpyGbS(a, b, bytes, 1);
  munmap(a, bytes);
  munmap(b, bytes);
  return static_cast<double>(bytes) / 1e9 / gb_s;
}

void Run(const Opts& o) {
  if (o.prefix <= 0 || o.prefix % o.chunk_tokens != 0) throw CommandError("--prefix must be a multiple of --chunk-tokens");
  BenchDir bench_dir(o.ssd_dir, "offload");
  const std::string& dir = bench_dir.path();
  const std::string ssd = dir + "/tier";
  std::filesystem::remove_all(ssd);
  auto probe = ValueOrThrow(LoadModel(o.model, o.dtype));
  const int64_t vocab = probe->config().vocab_size;
  const int64_t chunks = o.prefix / o.chunk_tokens;
  std::mt19937_64 rng(o.seed);
  std::vector<int32_t> prompt(static_cast<size_t>(o.prefix + 1)), warm(static_cast<size_t>(o.prefix + 1));
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  for (auto& t : warm) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  const engine::KvCacheShape shape = probe->kv_shape(16);
  const uint64_t chunk_bytes = static_cast<uint64_t>(shape.page_bytes()) * static_cast<uint64_t>(o.chunk_tokens / 16);
  Tier tier;
  const uint64_t dram = std::max<uint64_t>(64 << 20, store::RecordBytes(chunk_bytes) * (2 * chunks + 4) * 2);
  Tier made = MakeTier(*probe, o, ssd, dram);
  tier.stack = std::move(made.stack);
  tier.conn = std::move(made.conn);
  const uint64_t bytes = chunk_bytes * static_cast<uint64_t>(chunks);

  // 1. Recompute (after a warm-up prompt of the same length).
  double recompute_s = 0, dram_s = 0, ssd_s = 0, dram_load_s = 0, ssd_load_s = 0;
  int64_t dram_cached = 0, ssd_cached = 0;
  {
    auto e = MakeEngine(o, tier.conn.get());
    Ttft(*e, warm);
    recompute_s = Ttft(*e, prompt).first;
    e.reset();  // waits for its saves
    if (!tier.stack->node()->Flush(30'000)) LOG_WARNING("bench offload: the SSD copies did not all settle");
  }
  // 2. From DRAM, on a fresh engine.
  {
    auto e = MakeEngine(o, tier.conn.get());
    const int64_t us0 = tier.conn->counters().load_us_total.load();
    std::tie(dram_s, dram_cached) = Ttft(*e, prompt);
    dram_load_s = static_cast<double>(tier.conn->counters().load_us_total.load() - us0) / 1e6;
  }
  tier.Reset();
  // 3. From SSD: the store restarts on the directory with an empty DRAM tier.
  {
    Tier again = MakeTier(*probe, o, ssd, dram);
    tier.stack = std::move(again.stack);
    tier.conn = std::move(again.conn);
    auto e = MakeEngine(o, tier.conn.get());
    const int64_t us0 = tier.conn->counters().load_us_total.load();
    std::tie(ssd_s, ssd_cached) = Ttft(*e, prompt);
    ssd_load_s = static_cast<double>(tier.conn->counters().load_us_total.load() - us0) / 1e6;
    e.reset();
    tier.Reset();
  }
  const double memcpy_s = MemcpySeconds(bytes);
  Result<FioFigures> fio = RunFio(dir, bytes);
  const double fio_s = fio.ok() && fio->read_gb_s > 0 ? static_cast<double>(bytes) / 1e9 / fio->read_gb_s : 0;

  if (o.json) {
    boost::json::object j{{"prefix_tokens", o.prefix},
                          {"chunk_tokens", o.chunk_tokens},
                          {"bytes", bytes},
                          {"recompute_ttft_s", recompute_s},
                          {"dram_ttft_s", dram_s},
                          {"dram_cached_tokens", dram_cached},
                          {"dram_load_s", dram_load_s},
                          {"memcpy_s", memcpy_s},
                          {"dram_load_over_memcpy", memcpy_s > 0 ? dram_load_s / memcpy_s : 0},
                          {"ssd_ttft_s", ssd_s},
                          {"ssd_cached_tokens", ssd_cached},
                          {"ssd_load_s", ssd_load_s},
                          {"fio_read_s", fio_s},
                          {"ssd_load_over_fio", fio_s > 0 ? ssd_load_s / fio_s : 0}};
    std::printf("%s\n", boost::json::serialize(j).c_str());
    return;
  }
  std::printf("offload: a %lld-token prefix in %lld chunks of %lld tokens, %.1f MiB of KV\n",
              static_cast<long long>(o.prefix), static_cast<long long>(chunks), static_cast<long long>(o.chunk_tokens),
              static_cast<double>(bytes) / (1 << 20));
  std::printf("  recompute   TTFT %8.1f ms\n", recompute_s * 1e3);
  std::printf("  DRAM tier   TTFT %8.1f ms (%.1fx faster), %lld tokens loaded in %.1f ms; memcpy %.1f ms (%.2fx)\n",
              dram_s * 1e3, dram_s > 0 ? recompute_s / dram_s : 0, static_cast<long long>(dram_cached),
              dram_load_s * 1e3, memcpy_s * 1e3, memcpy_s > 0 ? dram_load_s / memcpy_s : 0);
  std::printf("  SSD tier    TTFT %8.1f ms (%.1fx faster), %lld tokens loaded in %.1f ms; fio read %s\n", ssd_s * 1e3,
              ssd_s > 0 ? recompute_s / ssd_s : 0, static_cast<long long>(ssd_cached), ssd_load_s * 1e3,
              fio_s > 0 ? fmt::format("{:.1f} ms ({:.2f}x)", fio_s * 1e3, ssd_load_s / fio_s).c_str()
                        : ("unavailable: " + fio.status().ToString()).c_str());
}

}  // namespace

void RegisterBenchOffload(CLI::App& bench) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = bench.add_subcommand("offload", "Prefix loads from the DRAM and SSD tiers vs memcpy, fio and recompute");
  cmd->add_option("--model", o->model, "Model folder")->required();
  cmd->add_option("--dtype", o->dtype, "auto | bfloat16 | float32");
  cmd->add_option("--prefix", o->prefix, "Prefix tokens (a multiple of --chunk-tokens)")->capture_default_str();
  cmd->add_option("--chunk-tokens", o->chunk_tokens, "Tokens per store object")
      ->check(CLI::Range(int64_t{16}, int64_t{4096}))
      ->capture_default_str();
  cmd->add_option("--ssd-dir", o->ssd_dir, "Directory of the SSD tier (default: a temp folder in /var/tmp)");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] { Run(*o); });
}

}  // namespace crescent::cli
