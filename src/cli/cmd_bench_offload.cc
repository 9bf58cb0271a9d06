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
//   pace       --decoders requests decode while the prefix loads from DRAM:
//              their inter-token gaps before the load and while it runs (the
//              load runs off the step thread, so they should not grow by
//              more than a step)
//   multi-turn --conversations take --turns turns each, round robin, on an
//              engine pool that holds about one of them: hit rate and mean
//              TTFT with offload off, to DRAM, and to a small DRAM tier over SSD
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
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
  int64_t decoders = 4;
  int64_t conversations = 4, turns = 3, turn_tokens = 512, reply_tokens = 16;
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
  so.local_master.ssd_write_through = !ssd.empty();
  so.engine.transports = "self,sm";
  so.client.fingerprint = runner.KvFingerprint(16, o.chunk_tokens);
  store::StoreNodeOptions n;
  n.node_id = "bench-offload";
  n.dram_bytes = dram;
  n.ssd_dir = ssd;
  n.ssd_bytes = ssd.empty() ? 0 : std::max<uint64_t>(dram * 2, uint64_t{8} << 30);
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

// An engine whose pool holds `pool_tokens` (and a few pages more).
std::unique_ptr<engine::Engine> MakeEngine(const Opts& o, engine::KvConnector* conn, int64_t pool_tokens) {
  auto runner = ValueOrThrow(LoadModel(o.model, o.dtype));
  engine::EngineOptions eo;
  eo.max_num_batched_tokens = std::max<int64_t>(2048, o.prefix + 1);
  eo.kv_cache_bytes = ((pool_tokens + 64) / 16 + 8) * runner->kv_shape(16).page_bytes();
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

double MsNow() {
  return std::chrono::duration<double, std::milli>(Clock::now().time_since_epoch()).count();
}

// The decoders' inter-token gaps before a prefix load and while it runs.
struct Pace {
  double mean_before_ms = 0, max_before_ms = 0, max_during_ms = 0, window_ms = 0;
  int64_t gaps_during = 0;
};

Pace MeasurePace(engine::Engine& e, const Opts& o, const std::vector<int32_t>& prompt, int64_t vocab) {
  struct Stream {
    std::mutex mu;
    std::vector<double> at_ms;  // one per token
    bool finished = false;
  };
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<uint64_t> ids;
  std::mt19937_64 rng(o.seed + 1);
  for (int64_t d = 0; d < o.decoders; ++d) {
    auto st = std::make_unique<Stream>();
    engine::EngineRequest r;
    r.prompt.resize(16);
    for (auto& t : r.prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
    r.params.max_tokens = 2048 - 16;  // within the room MakeEngine gives each decoder
    r.params.ignore_eos = true;
    Stream* sp = st.get();
    ids.push_back(ValueOrThrow(e.Submit(r, [sp](engine::RequestOutput out) {
      const double now = MsNow();
      std::lock_guard lock(sp->mu);
      for (size_t i = 0; i < out.tokens.size(); ++i) sp->at_ms.push_back(now);
      sp->finished = out.finished;
    })));
    streams.push_back(std::move(st));
  }
  auto tokens_of = [](Stream& st) {
    std::lock_guard lock(st.mu);
    return st.at_ms.size();
  };
  const auto give_up = Clock::now() + std::chrono::minutes(5);
  for (auto& st : streams) {
    while (tokens_of(*st) < 16 && Clock::now() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double start = MsNow();
  Ttft(e, prompt);
  const double first = MsNow();
  // One more step each, so a gap that spans the end of the window is seen.
  std::vector<size_t> seen;
  for (auto& st : streams) seen.push_back(tokens_of(*st));
  for (size_t i = 0; i < streams.size(); ++i) {
    while (tokens_of(*streams[i]) < seen[i] + 2 && Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  for (uint64_t id : ids) e.Cancel(id);
  Pace p;
  p.window_ms = first - start;
  double sum_before = 0;
  int64_t n_before = 0;
  for (auto& st : streams) {
    for (;;) {
      {
        std::lock_guard lock(st->mu);
        if (st->finished) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const std::vector<double>& at = st->at_ms;
    for (size_t k = 4; k < at.size(); ++k) {  // the first gaps include the decoders' own prefill
      const double gap = at[k] - at[k - 1];
      if (at[k] <= start) {
        sum_before += gap;
        ++n_before;
        p.max_before_ms = std::max(p.max_before_ms, gap);
      } else if (at[k - 1] < first) {
        p.max_during_ms = std::max(p.max_during_ms, gap);
        ++p.gaps_during;
      }
    }
  }
  p.mean_before_ms = n_before > 0 ? sum_before / static_cast<double>(n_before) : 0;
  return p;
}

struct MultiTurnFigures {
  int64_t prompt_tokens = 0, cached_tokens = 0, requests = 0;
  double ttft_sum_s = 0;
  double hit_rate() const { return prompt_tokens > 0 ? static_cast<double>(cached_tokens) / prompt_tokens : 0; }
  double mean_ttft_s() const { return requests > 0 ? ttft_sum_s / static_cast<double>(requests) : 0; }
};

// Conversations in rounds: each turn appends --turn-tokens of user text to
// the conversation's history (its earlier prompts and greedy replies). The
// engine pool holds about one conversation, so a returning one has been
// evicted from it; only the store can bring its prefix back.
MultiTurnFigures MultiTurn(const Opts& o, engine::KvConnector* conn, int64_t vocab) {
  const int64_t context = o.turns * (o.turn_tokens + o.reply_tokens);
  auto e = MakeEngine(o, conn, context + context / 2);
  std::mt19937_64 rng(o.seed + 2);  // the same conversations in every mode
  std::vector<std::vector<int32_t>> history(static_cast<size_t>(o.conversations));
  MultiTurnFigures f;
  for (int64_t t = 0; t < o.turns; ++t) {
    for (auto& h : history) {
      for (int64_t i = 0; i < o.turn_tokens; ++i) h.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
      engine::EngineRequest r;
      r.prompt = h;
      r.params.max_tokens = o.reply_tokens;
      r.params.ignore_eos = true;
      r.params.sampling.temperature = 0;
      engine::OutputQueue q;
      ValueOrThrow(e->Submit(r, q.Callback()));
      for (;;) {
        engine::RequestOutput out = q.Next();
        if (out.finish_reason == engine::FinishReason::kError) throw CommandError(out.error.message());
        h.insert(h.end(), out.tokens.begin(), out.tokens.end());
        if (!out.finished) continue;
        f.prompt_tokens += out.usage.prompt_tokens;
        f.cached_tokens += out.usage.cached_tokens;
        f.ttft_sum_s += out.first_token_time_s;
        ++f.requests;
        break;
      }
    }
  }
  return f;
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
    auto e = MakeEngine(o, tier.conn.get(), o.prefix);
    Ttft(*e, warm);
    recompute_s = Ttft(*e, prompt).first;
    e.reset();  // waits for its saves
    if (!tier.stack->node()->Flush(30'000)) LOG_WARNING("bench offload: the SSD copies did not all settle");
  }
  // 2. From DRAM, on a fresh engine.
  {
    auto e = MakeEngine(o, tier.conn.get(), o.prefix);
    const int64_t us0 = tier.conn->counters().load_us_total.load();
    std::tie(dram_s, dram_cached) = Ttft(*e, prompt);
    dram_load_s = static_cast<double>(tier.conn->counters().load_us_total.load() - us0) / 1e6;
  }
  // 2b. The same load while others decode, on another fresh engine.
  Pace pace;
  if (o.decoders > 0) {
    auto e = MakeEngine(o, tier.conn.get(), o.prefix + o.decoders * 2048);
    pace = MeasurePace(*e, o, prompt, vocab);
  }
  tier.Reset();
  // 3. From SSD: the store restarts on the directory with an empty DRAM tier.
  {
    Tier again = MakeTier(*probe, o, ssd, dram);
    tier.stack = std::move(again.stack);
    tier.conn = std::move(again.conn);
    auto e = MakeEngine(o, tier.conn.get(), o.prefix);
    const int64_t us0 = tier.conn->counters().load_us_total.load();
    std::tie(ssd_s, ssd_cached) = Ttft(*e, prompt);
    ssd_load_s = static_cast<double>(tier.conn->counters().load_us_total.load() - us0) / 1e6;
    e.reset();
    tier.Reset();
  }
  // 4. Multi-turn: offload off, DRAM (room for everything), a DRAM tier
  // of a third of the conversations' chunks over SSD.
  MultiTurnFigures turns_off, turns_dram, turns_ssd;
  const bool multi_turn = o.conversations > 0 && o.turns > 0;
  if (multi_turn) {
    turns_off = MultiTurn(o, nullptr, vocab);
    const int64_t context = o.turns * (o.turn_tokens + o.reply_tokens);
    const uint64_t all = store::RecordBytes(chunk_bytes) *
                         static_cast<uint64_t>(o.conversations * (context / o.chunk_tokens + 1));
    {
      Tier t = MakeTier(*probe, o, "", std::max<uint64_t>(64 << 20, all * 2));
      turns_dram = MultiTurn(o, t.conn.get(), vocab);
    }
    std::filesystem::remove_all(ssd);
    {
      Tier t = MakeTier(*probe, o, ssd, std::max<uint64_t>(store::RecordBytes(chunk_bytes) * 4, all / 3));
      turns_ssd = MultiTurn(o, t.conn.get(), vocab);
    }
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
                          {"ssd_load_over_fio", fio_s > 0 ? ssd_load_s / fio_s : 0},
                          {"pace_decoders", o.decoders},
                          {"pace_mean_gap_before_ms", pace.mean_before_ms},
                          {"pace_max_gap_before_ms", pace.max_before_ms},
                          {"pace_max_gap_during_load_ms", pace.max_during_ms},
                          {"pace_load_window_ms", pace.window_ms}};
    auto turns_json = [](const MultiTurnFigures& f) {
      return boost::json::object{{"requests", f.requests}, {"hit_rate", f.hit_rate()}, {"mean_ttft_s", f.mean_ttft_s()}};
    };
    if (multi_turn) {
      j["multi_turn"] = boost::json::object{{"conversations", o.conversations}, {"turns", o.turns},
                                            {"off", turns_json(turns_off)}, {"dram", turns_json(turns_dram)},
                                            {"dram_ssd", turns_json(turns_ssd)}};
    }
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
  if (o.decoders > 0) {
    std::printf("  pace        %lld decoding: gap %.1f ms mean (max %.1f) before; max %.1f ms (%.2f steps) while the "
                "prefix loaded (%.1f ms to its first token)\n",
                static_cast<long long>(o.decoders), pace.mean_before_ms, pace.max_before_ms, pace.max_during_ms,
                pace.mean_before_ms > 0 ? pace.max_during_ms / pace.mean_before_ms : 0, pace.window_ms);
  }
  if (multi_turn) {
    std::printf("  multi-turn  %lld conversations x %lld turns of %lld tokens (+%lld reply), engine pool ~1.5 of them:\n",
                static_cast<long long>(o.conversations), static_cast<long long>(o.turns),
                static_cast<long long>(o.turn_tokens), static_cast<long long>(o.reply_tokens));
    for (auto [name, f] : {std::pair<const char*, const MultiTurnFigures*>{"offload off", &turns_off},
                           {"DRAM", &turns_dram},
                           {"DRAM 1/3 + SSD", &turns_ssd}}) {
      std::printf("    %-15s hit rate %5.1f%%  mean TTFT %8.1f ms\n", name, 100 * f->hit_rate(), f->mean_ttft_s() * 1e3);
    }
  }
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
  cmd->add_option("--decoders", o->decoders, "Requests decoding while the prefix loads (0: skip)")
      ->check(CLI::Range(int64_t{0}, int64_t{64}))
      ->capture_default_str();
  cmd->add_option("--conversations", o->conversations, "Multi-turn conversations (0: skip)")
      ->check(CLI::Range(int64_t{0}, int64_t{256}))
      ->capture_default_str();
  cmd->add_option("--turns", o->turns, "Turns per conversation")->check(CLI::Range(int64_t{1}, int64_t{64}))->capture_default_str();
  cmd->add_option("--turn-tokens", o->turn_tokens, "New prompt tokens per turn")
      ->check(CLI::Range(int64_t{1}, int64_t{65536}))
      ->capture_default_str();
  cmd->add_option("--reply-tokens", o->reply_tokens, "Generated tokens per turn")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))
      ->capture_default_str();
  cmd->add_option("--ssd-dir", o->ssd_dir, "Directory of the SSD tier (default: a temp folder in /var/tmp)");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] { Run(*o); });
}

}  // namespace crescent::cli
