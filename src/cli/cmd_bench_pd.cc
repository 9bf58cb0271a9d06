// `crescent bench pd`: what a prefill/decode split costs a request, in one
// run on the same cores (docs/disaggregation.md):
//   - TTFT of a --prompt-token prompt on one engine (all-in-one) against the
//     same-length prompt through the front, a prefill instance and a decode
//     instance (KV pushed layer by layer over the transfer engine);
//   - how much of the KV transfer was hidden behind the prefill: the exposed
//     part is the time the prefill instance waited for its last writes after
//     its first token, beside the time the same bytes take on the transport
//     in one batch at the same entry size (a page of one layer);
//   - the transport's GB/s at that entry size.
// Everything runs in this process: two engines (the prefill one is also the
// all-in-one reference: fresh prompts, so no cache hit), two transfer
// engines, the KvInstance services on 127.0.0.1 and the front.
#include <chrono>
#include <memory>
#include <random>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "cli/cli_pd_interference.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "engine/output_queue.h"
#include "server/kv_instance_service.h"
#include "server/pd_front.h"
#include "transfer/in_process_metadata_store.h"

namespace crescent::cli {
namespace {

struct Opts {
  std::string model, dtype = "auto", transports = "self,sm";
  int64_t prompt = 4096;
  int repeat = 2;
  uint64_t seed = 1;
  bool json = false;
  bool skip_interference = false;
  InterferenceOptions interference;
};

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Seconds to the first output of `r` on `backend`; waits for the whole request.
template <class B>
double Ttft(B& backend, engine::EngineRequest r) {
  engine::OutputQueue q;
  const auto t0 = Clock::now();
  double first = -1;
  auto cb = q.Callback();
  ValueOrThrow(backend.Submit(std::move(r), [&, cb](engine::RequestOutput o) {
    if (first < 0 && !o.tokens.empty()) first = Since(t0);
    cb(std::move(o));
  }));
  engine::Completion c = engine::Collect(q.WaitFinished(1)[0]);
  if (!c.error.ok()) throw CommandError("bench pd: a request failed: " + c.error.ToString());
  return first;
}

engine::EngineRequest Prompt(std::mt19937_64& rng, int64_t n, int64_t vocab, int64_t max_tokens) {
  engine::EngineRequest r;
  r.prompt.resize(static_cast<size_t>(n));
  for (auto& t : r.prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  r.params.sampling.temperature = 0;
  return r;
}

void Run(const Opts& o) {
  auto make = [&](int64_t extra_tokens) {
    auto runner = ValueOrThrow(LoadModel(o.model, o.dtype));
    engine::EngineOptions eo;
    eo.max_num_batched_tokens = std::max<int64_t>(2048, o.prompt);  // one chunk per prompt, as bench offload
    eo.kv_cache_bytes = ((o.prompt * (o.repeat + 2) + extra_tokens) / 16 + 16) * runner->kv_shape(16).page_bytes();
    eo.prefault_kv_cache = true;
    return ValueOrThrow(engine::Engine::Create(std::move(runner), nullptr, eo));
  };
  auto p = make(0);
  auto d = make(0);
  auto meta_p = std::make_shared<transfer::InProcessMetadataStore>();
  auto meta_d = std::make_shared<transfer::InProcessMetadataStore>();
  transfer::EngineOptions to;
  to.transports = o.transports;
  auto tp = ValueOrThrow(transfer::TransferEngine::Create(to, meta_p));
  auto td = ValueOrThrow(transfer::TransferEngine::Create(to, meta_d));
  ThrowIfError(tp->RegisterBuffer(p->kv_memory().data(), p->kv_memory().size()));
  ThrowIfError(td->RegisterLocalMemory("bench-pd/d/kv", d->kv_memory().data(), d->kv_memory().size()));
  server::KvInstanceOptions dopt;
  dopt.role = "decode";
  dopt.segment = "bench-pd/d/kv";
  auto svc_d = ValueOrThrow(server::KvInstanceService::Start(dopt, d.get(), td.get(), meta_d));
  auto svc_p = ValueOrThrow(server::KvInstanceService::Start(server::KvInstanceOptions{}, p.get(), tp.get(), meta_p));
  server::PdFrontOptions fo;
  fo.prefill = {svc_p->address()};
  fo.decode = {svc_d->address()};
  fo.model_hash = p->model_hash();
  auto front = ValueOrThrow(server::PdFront::Create(fo));

  std::mt19937_64 rng(o.seed);
  const int64_t vocab = p->config().vocab_size;
  Ttft(*p, Prompt(rng, 64, vocab, 2));  // warm both paths
  Ttft(*front, Prompt(rng, 64, vocab, 2));
  const server::KvInstanceStats s0 = svc_p->stats();
  double all_s = 0, pd_s = 0;
  for (int i = 0; i < o.repeat; ++i) {  // alternate, fresh prompts: no cache hits
    all_s += Ttft(*p, Prompt(rng, o.prompt, vocab, 2));
    pd_s += Ttft(*front, Prompt(rng, o.prompt, vocab, 2));
  }
  all_s /= o.repeat;
  pd_s /= o.repeat;
  const server::KvInstanceStats s1 = svc_p->stats();
  const double bytes = static_cast<double>(s1.bytes_written - s0.bytes_written) / o.repeat;
  const double exposed_s = static_cast<double>(s1.write_wait_us - s0.write_wait_us) / 1e6 / o.repeat;

  // The transport at the entry size the sink uses: one page of one layer, K or V.
  const engine::KvCacheShape shape = p->kv_shape();
  const uint64_t entry = static_cast<uint64_t>(shape.page_bytes() / shape.num_layers / 2);
  const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(bytes) / entry + 1, d->kv_memory().size() / entry);
  transfer::SegmentId seg = ValueOrThrow(tp->OpenSegment("bench-pd/d/kv"));
  double link_gb_s = 0;
  for (int round = 0; round < 3; ++round) {
    std::vector<transfer::TransferRequest> reqs;
    for (uint64_t i = 0; i < n; ++i) {
      reqs.push_back({transfer::OpKind::kWrite, p->kv_memory().data() + (i * entry) % (p->kv_memory().size() - entry),
                      seg, i * entry, entry});
    }
    transfer::TransferBatch b = tp->NewBatch(reqs.size());
    const auto t0 = Clock::now();
    ThrowIfError(tp->Submit(b, reqs));
    ThrowIfError(b.Wait());
    link_gb_s = std::max(link_gb_s, static_cast<double>(n * entry) / Since(t0) / 1e9);
  }
  const double transfer_s = link_gb_s > 0 ? bytes / 1e9 / link_gb_s : 0;
  const double hidden = transfer_s > 0 ? std::clamp(1.0 - exposed_s / transfer_s, 0.0, 1.0) : 0;
  front.reset();
  // The interference part starts its own processes on these cores: this
  // process's instances go first (services, then transfer engines, then the
  // engines whose pools they registered).
  svc_p.reset();
  svc_d.reset();
  tp.reset();
  td.reset();
  p.reset();
  d.reset();
  InterferenceResult inter;
  if (!o.skip_interference) {
    InterferenceOptions io = o.interference;
    io.model = o.model;
    io.transports = o.transports;
    inter = MeasureInterference(io);
  }
  const InterferenceOptions& io = o.interference;
  auto side_json = [](const InterferenceSide& s) {
    return boost::json::object{{"itl_p50_s", s.itl_p50_s}, {"itl_p99_s", s.itl_p99_s}, {"tbt_p99_s", s.tbt_p99_s},
                               {"long_prompt_ttft_mean_s", s.long_ttft_mean_s}};
  };

  if (o.json) {
    boost::json::object j{{"prompt_tokens", o.prompt},       {"transports", o.transports},
                          {"ttft_all_in_one_s", all_s},      {"ttft_pd_s", pd_s},
                          {"pd_over_all_in_one", pd_s / all_s}, {"kv_bytes", bytes},
                          {"exposed_transfer_s", exposed_s}, {"transfer_alone_s", transfer_s},
                          {"hidden_fraction", hidden},       {"entry_bytes", entry},
                          {"link_gb_s", link_gb_s}};
    if (!o.skip_interference) {
      j["interference"] = boost::json::object{{"decoders", io.decoders},
                                              {"long_prompt_tokens", io.long_prompt},
                                              {"long_prompts", io.long_prompts},
                                              {"all_in_one", side_json(inter.all_in_one)},
                                              {"pd", side_json(inter.pd)},
                                              {"itl_p99_pd_over_all_in_one",
                                               inter.all_in_one.itl_p99_s > 0
                                                   ? inter.pd.itl_p99_s / inter.all_in_one.itl_p99_s
                                                   : 0.0}};
    }
    fmt::print("{}\n", boost::json::serialize(j));
    return;
  }
  fmt::print("pd: a {}-token prompt, {:.1f} MiB of KV pushed in {}-byte entries over {}\n", o.prompt, bytes / 1048576.0,
             entry, o.transports);
  fmt::print("  TTFT all-in-one  {:9.1f} ms\n", all_s * 1e3);
  fmt::print("  TTFT P/D         {:9.1f} ms ({:.3f}x; target <= 1.05x)\n", pd_s * 1e3, pd_s / all_s);
  fmt::print("  transfer         {:.1f} ms alone at {:.2f} GB/s; {:.1f} ms exposed after the first token ({:.0f}% hidden)\n",
             transfer_s * 1e3, link_gb_s, exposed_s * 1e3, hidden * 100);
  if (o.skip_interference) return;
  fmt::print("interference: {} requests decoding while {} prompts of {} tokens arrive, one every {:g} s\n",
             io.decoders, io.long_prompts, io.long_prompt, io.long_gap_s);
  auto line = [](const char* name, const InterferenceSide& s) {
    fmt::print("  {:<40} ITL p50 {:7.1f} ms  p99 {:7.1f} ms  TBT p99 {:7.1f} ms  long-prompt TTFT {:7.2f} s\n", name,
               s.itl_p50_s * 1e3, s.itl_p99_s * 1e3, s.tbt_p99_s * 1e3, s.long_ttft_mean_s);
  };
  line("all-in-one (cores 0-1, chunked prefill)", inter.all_in_one);
  line("P/D (prefill core 0, decode core 1)", inter.pd);
  if (inter.all_in_one.itl_p99_s > 0) {
    fmt::print("  p99 ITL: P/D {:.2f}x all-in-one (P/D should stay flat)\n", inter.pd.itl_p99_s / inter.all_in_one.itl_p99_s);
  }
}

}  // namespace

void RegisterBenchPd(CLI::App& bench) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = bench.add_subcommand("pd", "TTFT through a prefill/decode split vs one engine; KV transfer hidden");
  cmd->add_option("--model", o->model, "Model folder")->required();
  cmd->add_option("--dtype", o->dtype, "auto | bfloat16 | float32");
  cmd->add_option("--prompt", o->prompt, "Prompt tokens")->check(CLI::Range(int64_t{16}, int64_t{131072}))->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "Prompts per path (averaged)")->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_option("--transports", o->transports, "UCX transports between the instances (self,sm | tcp)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->add_flag("--skip-interference", o->skip_interference, "Skip the interference part (processes on cores 0 and 1)");
  cmd->add_option("--decoders", o->interference.decoders, "Interference: requests decoding")
      ->check(CLI::Range(int64_t{1}, int64_t{256}))
      ->capture_default_str();
  cmd->add_option("--decode-tokens", o->interference.decode_tokens, "Interference: tokens each decoding request generates")
      ->check(CLI::Range(int64_t{8}, int64_t{100000}))
      ->capture_default_str();
  cmd->add_option("--long-prompt", o->interference.long_prompt, "Interference: tokens of each arriving prompt")
      ->check(CLI::Range(int64_t{16}, int64_t{131072}))
      ->capture_default_str();
  cmd->add_option("--long-prompts", o->interference.long_prompts, "Interference: arriving prompts")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}))
      ->capture_default_str();
  cmd->add_option("--long-gap", o->interference.long_gap_s, "Interference: seconds between two arriving prompts")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->callback([o] { Run(*o); });
}

}  // namespace crescent::cli
