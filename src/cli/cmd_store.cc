// `crescent store-master`, `crescent store-node` and `crescent store-cli`: the
// KV store's processes and its operator's tool (docs/store.md).
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "base/file.h"
#include "base/logging.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "store/master_server.h"
#include "store/store_stack.h"

namespace crescent::cli {
namespace {

struct StoreFlags {
  std::string master = "127.0.0.1:7070";
  int64_t master_timeout_ms = 3000;
  std::string transports = "self,sm,tcp";
  std::string net_devices = "lo";
  int64_t transfer_timeout_ms = 5000;
  std::string election_key = "crescent/store/leader";
};

void AddStoreFlags(CLI::App* cmd, StoreFlags& f) {
  cmd->add_option("--master", f.master, "The store master: host:port, or etcd://host:port to find the leader")
      ->capture_default_str();
  cmd->add_option("--master-timeout-ms", f.master_timeout_ms, "Every master call ends within this")
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}))
      ->capture_default_str();
  cmd->add_option("--transports", f.transports, "UCX transports for bytes (self,sm: this host; tcp: between hosts)")
      ->capture_default_str();
  cmd->add_option("--net-devices", f.net_devices, "Network devices UCX may use (e.g. lo, eth0)")->capture_default_str();
  cmd->add_option("--transfer-timeout-ms", f.transfer_timeout_ms, "Every transfer ends within this")
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}))
      ->capture_default_str();
  cmd->add_option("--election-key", f.election_key, "With --master etcd://...: the masters' election key")
      ->capture_default_str();
}

store::StoreStackOptions StackOptions(const StoreFlags& f) {
  store::StoreStackOptions o;
  o.master = f.master;
  o.master_timeout_ms = f.master_timeout_ms;
  o.election_key = f.election_key;
  o.engine.transports = f.transports;
  o.engine.net_devices = f.net_devices;
  o.engine.timeout_ms = f.transfer_timeout_ms;
  return o;
}

void RegisterStoreMaster(CLI::App& app) {
  auto o = std::make_shared<store::MasterServerOptions>();
  o->listen = "127.0.0.1:7070";
  auto fingerprint = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("store-master", "Run a KV store master (metadata only; several with --etcd for HA)");
  cmd->add_option("--listen", o->listen, "host:port to serve gRPC on (port 0: a free one)")->capture_default_str();
  cmd->add_option("--advertise", o->advertise, "The address clients are given (default: --listen's)");
  cmd->add_option("--etcd", o->etcd, "etcd host:port: elect one leader among the masters sharing it");
  cmd->add_option("--election-key", o->election_key, "etcd key of the leader")->capture_default_str();
  cmd->add_option("--lease-ttl", o->lease_ttl_s, "Leader lease, seconds")->check(CLI::Range(2, 600))->capture_default_str();
  cmd->add_option("--replicas", o->master.default_replicas, "Copies per object unless a put asks otherwise")
      ->check(CLI::Range(1, 3))
      ->capture_default_str();
  cmd->add_option("--high-watermark", o->master.high_watermark, "Evict above this share of a segment")
      ->check(CLI::Range(0.1, 1.0))
      ->capture_default_str();
  cmd->add_option("--low-watermark", o->master.low_watermark, "Evict down to this share")
      ->check(CLI::Range(0.05, 1.0))
      ->capture_default_str();
  cmd->add_option("--lease-ms", o->master.lease_ms, "Read lease (readers keep a 200 ms margin)")
      ->check(CLI::Range(500, 600'000))
      ->capture_default_str();
  cmd->add_option("--node-ttl-ms", o->master.node_ttl_ms, "A node silent this long loses its DRAM copies")
      ->check(CLI::Range(500, 3'600'000))
      ->capture_default_str();
  cmd->add_option("--ssd-grace-ms", o->master.ssd_grace_ms, "SSD copies of a silent node wait this long for it")
      ->check(CLI::Range(0, 86'400'000))
      ->capture_default_str();
  cmd->add_option("--put-timeout-ms", o->master.put_timeout_ms, "Puts not ended within this are reclaimed")
      ->check(CLI::Range(1000, 3'600'000))
      ->capture_default_str();
  cmd->add_option("--write-grace-ms", o->master.write_grace_ms,
                  "After a failover, a re-reported segment's free space waits this long (>= the writers' transfer "
                  "timeout) before new puts")
      ->check(CLI::Range(0, 3'600'000))
      ->capture_default_str();
  cmd->add_option("--model-fingerprint", *fingerprint, "Serve only this model's KV (32 hex digits; default: the "
                                                       "first client's)");
  cmd->callback([o, fingerprint] {
    if (o->master.low_watermark >= o->master.high_watermark) {
      throw CommandError("--low-watermark must be below --high-watermark");
    }
    if (!fingerprint->empty()) {
      if (fingerprint->size() != 32 || fingerprint->find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
        throw CommandError("--model-fingerprint: expected 32 hex digits");
      }
      o->master.fingerprint.hi = std::stoull(fingerprint->substr(0, 16), nullptr, 16);
      o->master.fingerprint.lo = std::stoull(fingerprint->substr(16), nullptr, 16);
    }
    BlockTerminationSignals();
    auto server = ValueOrThrow(store::MasterServer::Start(*o));
    std::printf("store-master: serving on %s (%s)\n", server->address().c_str(),
                o->etcd.empty() ? fmt::format("alone, term {}", server->term()).c_str()
                                : fmt::format("electing through etcd {}", o->etcd).c_str());
    std::fflush(stdout);
    bool was_leader = server->leader();
    WaitForTermination([&] {
      const bool now = server->leader();
      if (now != was_leader) {
        std::printf("store-master: %s (term %llu)\n", now ? "leader" : "standby",
                    static_cast<unsigned long long>(server->term()));
        std::fflush(stdout);
        was_leader = now;
      }
    });
  });
}

void RegisterStoreNode(CLI::App& app) {
  auto f = std::make_shared<StoreFlags>();
  auto n = std::make_shared<store::StoreNodeOptions>();
  auto dram = std::make_shared<std::string>("1G");
  auto ssd = std::make_shared<std::string>("16G");
  auto staging = std::make_shared<std::string>("64M");
  CLI::App* cmd = app.add_subcommand("store-node", "Contribute DRAM (and an SSD directory) to a KV store");
  AddStoreFlags(cmd, *f);
  cmd->add_option("--dram-bytes", *dram, "DRAM to contribute (e.g. 512M, 4G)")->capture_default_str();
  cmd->add_option("--ssd-dir", n->ssd_dir, "Directory for the SSD tier (records survive a restart)");
  cmd->add_option("--ssd-bytes", *ssd, "Size of the SSD tier")->capture_default_str();
  cmd->add_option("--staging-bytes", *staging, "DRAM for staging SSD reads of other nodes")->capture_default_str();
  cmd->add_option("--node-id", n->node_id, "Node id (default: the SSD directory's, else random)");
  cmd->add_option("--rpc-listen", n->rpc_listen, "host:port of the node's service (SSD staging)")->capture_default_str();
  cmd->callback([f, n, dram, ssd, staging] {
    n->dram_bytes = ValueOrThrow(ParseSize(*dram));
    n->ssd_bytes = ValueOrThrow(ParseSize(*ssd));
    n->staging_bytes = ValueOrThrow(ParseSize(*staging));
    store::StoreStackOptions o = StackOptions(*f);
    o.node = *n;
    BlockTerminationSignals();
    auto stack = ValueOrThrow(store::StoreStack::Create(o));
    store::StoreNode* node = stack->node();
    std::printf("store-node: %s contributes %s (%llu MiB)%s to %s\n", node->node_id().c_str(),
                node->dram_segment().c_str(), static_cast<unsigned long long>(node->dram_bytes() >> 20),
                node->ssd() ? fmt::format(" and {} ({} MiB, {} records found)", node->ssd_segment(),
                                          node->ssd()->capacity() >> 20, node->ssd()->scan_report().records)
                                  .c_str()
                            : "",
                f->master.c_str());
    std::fflush(stdout);
    WaitForTermination();
  });
}

void RegisterStoreCli(CLI::App& app) {
  auto f = std::make_shared<StoreFlags>();
  CLI::App* cmd = app.add_subcommand("store-cli", "Put, get, check and remove store objects; show the store's state");
  AddStoreFlags(cmd, *f);
  cmd->require_subcommand(1);
  auto key = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto connect = [f] { return ValueOrThrow(store::StoreStack::Create(StackOptions(*f))); };

  CLI::App* put = cmd->add_subcommand("put", "Store FILE's bytes under KEY (any string)");
  put->add_option("key", *key, "Key")->required();
  put->add_option("file", *file, "File")->required();
  put->callback([=] {
    std::string data = ValueOrThrow(ReadFileToString(*file));
    auto s = connect();
    ThrowIfError(s->client().Put(store::KeyFromString(*key),
                                 std::as_bytes(std::span<const char>(data.data(), data.size()))));
    std::printf("OK %zu bytes\n", data.size());
  });
  CLI::App* get = cmd->add_subcommand("get", "Write KEY's bytes to FILE");
  get->add_option("key", *key, "Key")->required();
  get->add_option("file", *file, "File")->required();
  get->callback([=] {
    auto s = connect();
    const store::Key k = store::KeyFromString(*key);
    proto::GetResult where = ValueOrThrow(s->client().Locate(k));
    std::string data(where.size(), '\0');
    const uint64_t n = ValueOrThrow(s->client().Get(k, std::as_writable_bytes(std::span<char>(data.data(), data.size()))));
    data.resize(n);
    ThrowIfError(WriteFileAtomic(*file, data));
    std::printf("OK %llu bytes\n", static_cast<unsigned long long>(n));
  });
  CLI::App* exists = cmd->add_subcommand("exists", "Print whether KEY is stored");
  exists->add_option("key", *key, "Key")->required();
  exists->callback([=] {
    auto s = connect();
    std::printf("%s\n", ValueOrThrow(s->client().Exists(store::KeyFromString(*key))) ? "true" : "false");
  });
  CLI::App* rm = cmd->add_subcommand("rm", "Remove KEY");
  rm->add_option("key", *key, "Key")->required();
  rm->callback([=] {
    auto s = connect();
    ThrowIfError(s->client().Remove(store::KeyFromString(*key)));
    std::printf("OK\n");
  });
  CLI::App* stat = cmd->add_subcommand("stat", "Nodes, segments, usage by tier, objects, the leader and its term");
  stat->add_flag("--json", *json, "One JSON object");
  stat->callback([=] {
    auto s = connect();
    proto::StatReply r = ValueOrThrow(s->client().Stat());
    uint64_t cap[2] = {0, 0}, used[2] = {0, 0};
    for (const auto& seg : r.segments()) {
      cap[seg.tier()] += seg.alive() ? seg.capacity() : 0;
      used[seg.tier()] += seg.alive() ? seg.used() : 0;
    }
    if (*json) {
      std::string segs;
      for (const auto& seg : r.segments()) {
        segs += fmt::format("{}{{\"name\":\"{}\",\"node\":\"{}\",\"tier\":\"{}\",\"capacity\":{},\"used\":{},"
                            "\"objects\":{},\"alive\":{}}}",
                            segs.empty() ? "" : ",", seg.name(), seg.node_id(), seg.tier() ? "ssd" : "dram",
                            seg.capacity(), seg.used(), seg.objects(), seg.alive() ? "true" : "false");
      }
      std::string counters;
      for (const auto& [k, v] : r.counters()) counters += fmt::format("{}\"{}\":{}", counters.empty() ? "" : ",", k, v);
      std::printf("{\"leader\":\"%s\",\"term\":%llu,\"nodes\":%llu,\"objects\":%llu,\"dram_capacity\":%llu,"
                  "\"dram_used\":%llu,\"ssd_capacity\":%llu,\"ssd_used\":%llu,\"segments\":[%s],\"counters\":{%s}}\n",
                  r.leader().c_str(), static_cast<unsigned long long>(r.header().term()),
                  static_cast<unsigned long long>(r.nodes()), static_cast<unsigned long long>(r.objects()),
                  static_cast<unsigned long long>(cap[0]), static_cast<unsigned long long>(used[0]),
                  static_cast<unsigned long long>(cap[1]), static_cast<unsigned long long>(used[1]), segs.c_str(),
                  counters.c_str());
      return;
    }
    std::printf("leader %s, term %llu\n", r.leader().c_str(), static_cast<unsigned long long>(r.header().term()));
    std::printf("nodes %llu, objects %llu\n", static_cast<unsigned long long>(r.nodes()),
                static_cast<unsigned long long>(r.objects()));
    std::printf("DRAM %.1f of %.1f MiB used, SSD %.1f of %.1f MiB used\n", used[0] / 1048576.0, cap[0] / 1048576.0,
                used[1] / 1048576.0, cap[1] / 1048576.0);
    for (const auto& seg : r.segments()) {
      std::printf("  %-40s %-4s %10.1f / %10.1f MiB  %8llu objects%s\n", seg.name().c_str(), seg.tier() ? "ssd" : "dram",
                  seg.used() / 1048576.0, seg.capacity() / 1048576.0, static_cast<unsigned long long>(seg.objects()),
                  seg.alive() ? "" : "  (node silent)");
    }
    for (const auto& [k, v] : r.counters()) std::printf("  %s %.0f\n", k.c_str(), v);
  });
}

}  // namespace

void RegisterStore(CLI::App& app) {
  RegisterStoreMaster(app);
  RegisterStoreNode(app);
  RegisterStoreCli(app);
}

}  // namespace crescent::cli
