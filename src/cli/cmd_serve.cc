// `crescent serve`: the OpenAI-compatible HTTP server (server/server.h).
// SIGINT / SIGTERM shut it down gracefully and exit 0; a model that fails to
// load exits 1.
#include <signal.h>

#include <cerrno>
#include <ctime>
#include <memory>

#include "base/logging.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "server/server.h"

namespace crescent::cli {

namespace {
void RunServer(const server::ServeOptions& o, double grace, const char* name);
}  // namespace

void RegisterServe(CLI::App& app) {
  auto o = std::make_shared<server::ServeOptions>();
  auto grace = std::make_shared<double>(5.0);
  auto offload_dram = std::make_shared<std::string>("auto");
  auto kv_cache = std::make_shared<std::string>("0");
  auto offload_ssd = std::make_shared<std::string>("64G");
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over the OpenAI API (HTTP, SSE)");
  cmd->add_option("--model", o->model.spec, "Model folder, or dummy:<preset> (tiny-llama3, tiny-qwen3, tiny-llama2, llama3-1b, "
                                            "qwen3-0.6b) for a random-weight model with a real tokenizer")
      ->required();
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0 picks a free one)")->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--max-num-seqs", o->max_num_seqs, "Running sequences at most")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", o->max_num_batched_tokens,
                  "Tokens per engine step, decodes and prefill chunks together: smaller keeps running streams "
                  "smoother while a long prompt prefills, larger gives that prompt a slightly earlier first token")
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--kv-cache-bytes", *kv_cache, "KV cache size, e.g. 268435456 or 256M (0: a share of available memory)");
  cmd->add_option("--max-waiting", o->max_waiting, "Queued requests beyond this get 429")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on /v1 routes");
  cmd->add_option("--allowed-origins", o->http.allowed_origins,
                  "Origins browsers may call from (CORS), comma-separated, e.g. http://localhost:3000; * = any; "
                  "default: none (same-origin only). Preflights need no API key")
      ->delimiter(',');
  cmd->add_option("--served-model-name", o->served_model_name, "Model name clients use (default: --model)");
  cmd->add_option("--dtype", o->dtype, "Compute and KV dtype: auto | bfloat16 | float32")->capture_default_str();
  cmd->add_option("--quantization", o->quantization, "Quantize the weights at load: q8_0 | q4_k_m | q5_k_m | q4_0 | q4_k | q5_k | q6_k (GGUF tensors keep their types)");
  cmd->add_option("--tokenizer-dir", o->model.tokenizer_dir, "Tokenizer folder for dummy models");
  cmd->add_option("--dummy-dir", o->model.dummy_dir, "Folder for the dummy model (default ~/.cache/crescent/dummy/<preset>)");
  cmd->add_option("--io-threads", o->io_threads, "HTTP io threads")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--max-body-bytes", o->http.max_body_bytes, "Largest request body (413 beyond)")->capture_default_str();
  cmd->add_option("--max-connections", o->http.max_connections, "Open connections at most (503 beyond)")
      ->capture_default_str();
  cmd->add_option("--read-timeout", o->http.read_timeout_s, "Seconds to receive a request (and keep-alive idle)")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  cmd->add_option("--write-timeout", o->http.write_timeout_s,
                  "Seconds for one write to drain (a client that stops reading is dropped)")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  cmd->add_option("--shutdown-grace", *grace, "Seconds in-flight requests get to finish on SIGINT/SIGTERM")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  cmd->add_flag("!--no-enable-prefix-caching", o->enable_prefix_caching,
               "Turn the engine's prefix cache off (with --kv-offload-dram-bytes 0 every prompt is computed)");
  cmd->add_option("--kv-offload-dram-bytes", *offload_dram,
                  "KV offload tier in DRAM (e.g. 8G; auto: 20% of available memory, at most 32G; 0: off)")
      ->capture_default_str();
  cmd->add_option("--kv-offload-ssd-dir", o->kv_offload_ssd_dir,
                  "KV offload tier on SSD in this directory (kept across restarts)");
  cmd->add_option("--kv-offload-ssd-bytes", *offload_ssd, "Size of the SSD tier")->capture_default_str();
  cmd->add_option("--store-master", o->store_master,
                  "Share the KV store of this master (host:port or etcd://host:port) instead of an in-process one");
  cmd->add_option("--kv-chunk-tokens", o->kv_chunk_tokens, "Tokens per offloaded KV chunk (a multiple of 16)")
      ->check(CLI::Range(int64_t{16}, int64_t{4096}))
      ->capture_default_str();
  cmd->add_option("--role", o->role,
                  "both (all-in-one) | prefill | decode (an instance of a prefill/decode split, "
                  "driven by `crescent conductor`)")
      ->check(CLI::IsMember({"both", "prefill", "decode"}))
      ->capture_default_str();
  cmd->add_option("--instance-listen", o->instance_listen,
                  "host:port of the KV instance service (roles prefill and decode; port 0 picks one)")
      ->capture_default_str();
  cmd->add_option("--kv-transports", o->kv_transports, "UCX transports for KV between instances")->capture_default_str();
  cmd->add_option("--kv-net-devices", o->kv_net_devices,
                  "Network devices for KV between instances: lo (one host), an interface (eth0, ...) or all")
      ->capture_default_str();
  cmd->add_option("--etcd", o->etcd, "etcd host:port: register this prefill/decode instance there under a lease");
  cmd->add_option("--kv-lease-ms", o->kv_lease_ms,
                  "A decode instance: lease of a KV reservation (the prefill instance extends it; 0: 10000)")
      ->check(CLI::Range(int64_t{0}, int64_t{3'600'000}));
  cmd->add_option("--kv-quarantine-ms", o->kv_quarantine_ms,
                  "A decode instance: pages of an ended reservation wait this long before reuse, "
                  "longer than any write may take to land (0: 15000)")
      ->check(CLI::Range(int64_t{0}, int64_t{3'600'000}));
  cmd->callback([o, grace, offload_dram, offload_ssd, kv_cache] {
    o->kv_cache_bytes = *kv_cache == "0" ? 0 : static_cast<int64_t>(ValueOrThrow(ParseSize(*kv_cache)));
    o->kv_offload_dram_bytes = *offload_dram == "auto" ? -1
                               : *offload_dram == "0"  ? 0
                                                       : static_cast<int64_t>(ValueOrThrow(ParseSize(*offload_dram)));
    o->kv_offload_ssd_bytes = static_cast<int64_t>(ValueOrThrow(ParseSize(*offload_ssd)));
    RunServer(*o, *grace, "crescent serve");
  });
}

namespace {
void RunServer(const server::ServeOptions& o, double grace, const char* name) {
  // Block the signals before any thread starts, so they all inherit the mask
  // and only sigtimedwait below sees them.
  BlockTerminationSignals();
  std::unique_ptr<server::Server> srv = ValueOrThrow(server::Server::Start(o));
  const int sig = WaitForTermination([&] {
    Status st;
    if (srv->Loaded(&st) && !st.ok()) {
      srv->Shutdown(0);
      throw CommandError("cannot start: " + st.message());
    }
  });
  LOG_INFO("{}: {} received", name, sig == SIGINT ? "SIGINT" : "SIGTERM");
  srv->Shutdown(grace);
}
}  // namespace

void RegisterConductor(CLI::App& app) {
  auto o = std::make_shared<server::ServeOptions>();
  auto grace = std::make_shared<double>(5.0);
  o->role = "front";
  CLI::App* cmd = app.add_subcommand(
      "conductor", "The OpenAI front of a prefill/decode cluster: tokenizer and chat template only, no weights");
  cmd->add_option("--model", o->model.spec, "Model folder, or dummy:<preset> (the instances' model)")->required();
  cmd->add_option("--prefill", o->prefill_instances, "KV service addresses of prefill instances (host:port, ...)")
      ->delimiter(',');
  cmd->add_option("--decode", o->decode_instances, "KV service addresses of decode instances (host:port, ...)")
      ->delimiter(',');
  cmd->add_option("--etcd", o->etcd, "etcd host:port: find the instances registered there (and follow them)");
  cmd->add_option("--instance-timeout-ms", o->instance_timeout_ms,
                  "An instance silent this long (SIGSTOP, hung, cut off) is skipped and its calls fail over")
      ->check(CLI::Range(int64_t{200}, int64_t{3'600'000}))
      ->capture_default_str();
  cmd->add_option("--policy", o->policy,
                  "Prefill placement: global-cache (Algorithm 1), local-cache, least-loaded or random")
      ->check(CLI::IsMember({"global-cache", "local-cache", "least-loaded", "random"}))
      ->capture_default_str();
  cmd->add_option("--ttft-slo", o->ttft_slo_s,
                  "Seconds: refuse (429) a request whose predicted time to first token exceeds this (0: no SLO)")
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--tbt-slo", o->tbt_slo_s,
                  "Seconds: refuse (429) a request whose predicted time between tokens exceeds this (0: no SLO)")
      ->check(CLI::Range(0.0, 60.0));
  cmd->add_option("--admission-hysteresis", o->admission_hysteresis,
                  "After a refusal, refuse until predictions fall below (1 - this) x the SLO")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  cmd->add_option("--kvcache-balancing-threshold", o->kvcache_balancing_threshold,
                  "global-cache: fetch a longer prefix from the store when it is this many times the local one")
      ->check(CLI::Range(1.0, 1000.0))
      ->capture_default_str();
  cmd->add_option("--profile", o->profile,
                  "Start the estimators from this profile (crescent bench engine --profile-out); "
                  "they are refitted from the instances' timings either way")
      ->check(CLI::ExistingFile);
  cmd->add_option("--store-master", o->store_master,
                  "The shared KV store's master (host:port or etcd://host:port): its key index gives the best prefix");
  cmd->add_option("--report-stale-ms", o->report_stale_ms,
                  "An instance whose last report is older than this counts as saturated")
      ->check(CLI::Range(int64_t{100}, int64_t{600'000}))
      ->capture_default_str();
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0 picks a free one)")->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on /v1 routes");
  cmd->add_option("--allowed-origins", o->http.allowed_origins,
                  "Origins browsers may call from (CORS), comma-separated, e.g. http://localhost:3000; * = any; "
                  "default: none (same-origin only). Preflights need no API key")
      ->delimiter(',');
  cmd->add_option("--served-model-name", o->served_model_name, "Model name clients use (default: --model)");
  cmd->add_option("--tokenizer-dir", o->model.tokenizer_dir, "Tokenizer folder for dummy models");
  cmd->add_option("--dummy-dir", o->model.dummy_dir, "Folder of the dummy model (as the instances were given)");
  cmd->add_option("--shutdown-grace", *grace, "Seconds in-flight requests get to finish on SIGINT/SIGTERM")
      ->capture_default_str();
  cmd->callback([o, grace] {
    if (o->etcd.empty() && (o->prefill_instances.empty() || o->decode_instances.empty())) {
      throw CommandError("crescent conductor needs --etcd, or --prefill and --decode");
    }
    RunServer(*o, *grace, "crescent conductor");
  });
}

}  // namespace crescent::cli
