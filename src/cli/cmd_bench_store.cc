// `crescent bench store [--sizes 1M,8M] [--count 32] [--json]`: the KV
// store's figures, each beside its limit measured in the same run:
//   metadata  Put (PutStart + PutEnd), Get and Exists per second, single and
//             in batches, from several threads against one master over
//             loopback gRPC (Mooncake's master_bench figures for scale);
//   data      put and get GB/s and p50/p99 latency of whole objects: in one
//             process (the client on the node: memcpy, beside memcpy itself),
//             and to a store node in another process over shm and over tcp,
//             beside the transfer engine's own GB/s at the same size on the
//             same transport and beside redis-server SET/GET of the same values;
//   ssd       write and read GB/s of 8 MiB records on the SSD tier beside fio's
//             sequential O_DIRECT write and read on the same directory.
// The store nodes of the shm and tcp rows are children forked before this
// process starts any thread or UCX state; they learn the master's address
// over a pipe and exit when it closes.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "cli/cli_store_baselines.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "store/master_server.h"
#include "store/remote_master.h"
#include "store/ssd_tier.h"
#include "store/store_stack.h"

namespace crescent::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Opts {
  std::string sizes = "1M,8M";
  int count = 32;
  int threads = 4;
  int64_t meta_ops = 20000;
  int batch = 1000;
  std::string ssd_dir;
  int ssd_objects = 32;
  int data_batch = 8;
  std::string parts = "meta,local,shm,tcp,ssd";
  bool json = false;
  bool Has(const std::string& part) const { return ("," + parts + ",").find("," + part + ",") != std::string::npos; }
};

double Pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string SizeLabel(uint64_t s) {
  if (s % (1 << 20) == 0) return std::to_string(s >> 20) + "M";
  if (s % (1 << 10) == 0) return std::to_string(s >> 10) + "K";
  return std::to_string(s);
}

struct Printer {
  bool json;
  boost::json::array rows;
  void Row(boost::json::object r, const std::string& text) {
    if (json) {
      rows.push_back(std::move(r));
    } else {
      std::printf("%s\n", text.c_str());
      std::fflush(stdout);
    }
  }
};

// A child hosting a store node: reads the master's address from `in`, starts
// the node, writes "READY <segment>" to `out`, waits for EOF on `in`.
[[noreturn]] void NodeChild(const std::string& transports, uint64_t dram, int in, int out) {
  std::string addr;
  char c;
  while (read(in, &c, 1) == 1 && c != '\n') addr += c;
  store::StoreStackOptions o;
  o.master = addr;
  o.engine.transports = transports;
  o.engine.net_devices = "lo";
  o.engine.timeout_ms = 30'000;
  store::StoreNodeOptions n;
  n.node_id = "bench-" + transports;
  n.dram_bytes = dram;
  o.node = n;
  std::string line;
  {
    auto stack = store::StoreStack::Create(o);
    if (stack.ok()) (*stack)->node()->WaitForPrefault();  // a node serving for a while has its pages
    line = stack.ok() ? "READY " + (*stack)->node()->dram_segment() + "\n" : "ERROR " + stack.status().ToString() + "\n";
    if (write(out, line.data(), line.size()) < 0) _exit(1);
    while (read(in, &c, 1) > 0) {
    }
  }
  _exit(0);
}

struct Child {
  pid_t pid = -1;
  int to = -1, from = -1;
  std::string segment;
};

// The parent's ends of every child's pipes: a later child must close them,
// or an earlier child never sees EOF.
std::vector<int>& ParentEnds() {
  static std::vector<int> fds;
  return fds;
}

Child ForkNode(const std::string& transports, uint64_t dram) {
  int down[2], up[2];
  // Close-on-exec: redis-server and fio, started later, must not hold them open.
  if (pipe2(down, O_CLOEXEC) != 0 || pipe2(up, O_CLOEXEC) != 0) throw CommandError("pipe failed");
  pid_t pid = fork();
  if (pid < 0) throw CommandError("fork failed");
  if (pid == 0) {
    close(down[1]);
    close(up[0]);
    for (int fd : ParentEnds()) close(fd);
    NodeChild(transports, dram, down[0], up[1]);
  }
  ParentEnds().push_back(down[1]);
  ParentEnds().push_back(up[0]);
  close(down[0]);
  close(up[1]);
  return Child{pid, down[1], up[0], ""};
}

void StartChild(Child& c, const std::string& master) {
  const std::string line = master + "\n";
  if (write(c.to, line.data(), line.size()) < 0) throw CommandError("cannot reach a bench child");
  std::string reply;
  char ch;
  while (read(c.from, &ch, 1) == 1 && ch != '\n') reply += ch;
  if (reply.rfind("READY ", 0) != 0) throw CommandError("bench store node: " + reply);
  c.segment = reply.substr(6);
}

void StopChild(Child& c) {
  if (c.to >= 0) close(c.to);
  if (c.pid > 0) waitpid(c.pid, nullptr, 0);
  if (c.from >= 0) close(c.from);
}

// ---- metadata ----

void Metadata(const Opts& o, const std::string& master, Printer& p) {
  store::RemoteMasterOptions ro;
  ro.target = master;
  ro.timeout_ms = 10'000;
  auto admin = ValueOrThrow(store::RemoteMaster::Connect(ro));
  proto::MountRequest m;
  m.set_node_id("bench-meta");
  m.set_node_epoch(1);
  auto* seg = m.add_segments();
  seg->set_name("bench-meta/dram");
  seg->set_tier(proto::TIER_DRAM);
  seg->set_capacity(uint64_t{1} << 42);  // metadata only: no memory behind it
  proto::MountReply mr;
  ThrowIfError(admin->Mount(m, &mr));
  std::atomic<uint64_t> next_key{1};
  auto key = [](proto::Key* k, uint64_t v) {
    k->set_hi(0xbe0c);
    k->set_lo(v);
  };
  struct Result {
    double ops_s, p50, p99;
  };
  // Runs `op(client, i)` meta_ops times over `threads` threads, each with its own connection.
  auto run = [&](const std::function<void(store::RemoteMaster&, int64_t)>& op, int64_t ops) {
    std::vector<std::vector<double>> lat(o.threads);
    std::vector<std::thread> ts;
    auto t0 = Clock::now();
    for (int t = 0; t < o.threads; ++t) {
      ts.emplace_back([&, t] {
        auto c = store::RemoteMaster::Connect(ro);
        if (!c.ok()) return;
        for (int64_t i = t; i < ops; i += o.threads) {
          auto s = Clock::now();
          op(**c, i);
          lat[t].push_back(Since(s) * 1e6);
        }
      });
    }
    for (auto& t : ts) t.join();
    const double secs = Since(t0);
    std::vector<double> all;
    for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    return Result{static_cast<double>(ops) / secs, Pct(all, 0.5), Pct(all, 0.99)};
  };
  const uint64_t base = next_key.fetch_add(static_cast<uint64_t>(o.meta_ops));
  auto put_one = [&](store::RemoteMaster& c, int64_t i) {
    proto::PutStartRequest s;
    auto* it = s.add_items();
    key(it->mutable_key(), base + static_cast<uint64_t>(i));
    it->set_size(1024);
    proto::PutStartReply sr;
    if (!c.PutStart(s, &sr).ok() || sr.results(0).status().code() != 0) return;
    proto::PutEndRequest e;
    auto* ei = e.add_items();
    key(ei->mutable_key(), base + static_cast<uint64_t>(i));
    ei->set_put_id(sr.results(0).put_id());
    ei->set_ok(true);
    proto::PutEndReply er;
    c.PutEnd(e, &er).IgnoreError();
  };
  auto get_one = [&](store::RemoteMaster& c, int64_t i) {
    proto::GetRequest g;
    key(g.add_keys(), base + static_cast<uint64_t>(i));
    proto::GetReply gr;
    c.Get(g, &gr).IgnoreError();
  };
  auto exists_one = [&](store::RemoteMaster& c, int64_t i) {
    proto::ExistsRequest g;
    key(g.add_keys(), base + static_cast<uint64_t>(i));
    proto::ExistsReply gr;
    c.Exists(g, &gr).IgnoreError();
  };
  const int64_t batches = std::max<int64_t>(o.threads * 4, o.meta_ops * 5 / o.batch);
  const uint64_t bbase = next_key.fetch_add(static_cast<uint64_t>(batches * o.batch));
  auto batch_put = [&](store::RemoteMaster& c, int64_t b) {
    proto::PutStartRequest s;
    for (int k = 0; k < o.batch; ++k) {
      auto* it = s.add_items();
      key(it->mutable_key(), bbase + static_cast<uint64_t>(b * o.batch + k));
      it->set_size(1024);
    }
    proto::PutStartReply sr;
    if (!c.PutStart(s, &sr).ok()) return;
    proto::PutEndRequest e;
    for (int k = 0; k < o.batch; ++k) {
      auto* ei = e.add_items();
      key(ei->mutable_key(), bbase + static_cast<uint64_t>(b * o.batch + k));
      ei->set_put_id(sr.results(k).put_id());
      ei->set_ok(true);
    }
    proto::PutEndReply er;
    c.PutEnd(e, &er).IgnoreError();
  };
  auto batch_get = [&](store::RemoteMaster& c, int64_t b) {
    proto::GetRequest g;
    for (int k = 0; k < o.batch; ++k) key(g.add_keys(), bbase + static_cast<uint64_t>(b * o.batch + k));
    proto::GetReply gr;
    c.Get(g, &gr).IgnoreError();
  };
  auto batch_exists = [&](store::RemoteMaster& c, int64_t b) {
    proto::ExistsRequest g;
    for (int k = 0; k < o.batch; ++k) key(g.add_keys(), bbase + static_cast<uint64_t>(b * o.batch + k));
    proto::ExistsReply gr;
    c.Exists(g, &gr).IgnoreError();
  };
  struct Case {
    const char* name;
    std::function<void(store::RemoteMaster&, int64_t)> op;
    int64_t ops;
    int keys_per_op;
    double mooncake;  // Mooncake's master_bench on this machine kind, per second (0: none)
  };
  const Case cases[] = {
      {"meta_put", put_one, o.meta_ops, 1, 4200},       {"meta_get", get_one, o.meta_ops, 1, 10300},
      {"meta_exists", exists_one, o.meta_ops, 1, 0},    {"meta_batch_put", batch_put, batches, o.batch, 69000},
      {"meta_batch_get", batch_get, batches, o.batch, 422000}, {"meta_batch_exists", batch_exists, batches, o.batch, 0},
  };
  if (!p.json) {
    std::printf("metadata: one master over loopback gRPC, %d client threads, batches of %d keys\n", o.threads, o.batch);
    std::printf("  %-18s %14s %10s %10s %16s %8s\n", "op", "per second", "p50 us", "p99 us", "mooncake", "ratio");
  }
  for (const Case& c : cases) {
    Result r = run(c.op, c.ops);
    const double per_s = r.ops_s * c.keys_per_op;
    boost::json::object row{{"op", c.name}, {"transport", "grpc"}, {"size_bytes", 1024}, {"ops_per_s", per_s},
                            {"p50_us", r.p50}, {"p99_us", r.p99}, {"keys_per_op", c.keys_per_op}};
    if (c.mooncake > 0) {
      row["mooncake_ops_per_s"] = c.mooncake;
      row["ratio"] = per_s / c.mooncake;
    }
    p.Row(std::move(row), fmt::format("  {:<18} {:>14.0f} {:>10.1f} {:>10.1f} {:>16} {:>8}", c.name, per_s, r.p50, r.p99,
                                      c.mooncake > 0 ? fmt::format("{:.0f}", c.mooncake) : "-",
                                      c.mooncake > 0 ? fmt::format("{:.2f}x", per_s / c.mooncake) : "-"));
  }
}

// ---- data ----

struct DataFigures {
  double put_gb_s = 0, get_gb_s = 0, put_p50 = 0, put_p99 = 0, get_p50 = 0, get_p99 = 0;
};

// Puts `count` objects of `size` from registered memory, `batch` per call,
// then gets them back, after one warm-up pass over the same space: the
// first touch of a page, by the node or by this process's mapping of a
// same-host peer's segment, costs a minor fault per 4 KiB (~2.5 GB/s here),
// which a serving node has paid once; the transfer engine's own figure is
// taken on the same, warm, pages.
DataFigures PutGet(store::Client& c, uint64_t size, int count, int batch, uint64_t seed, std::byte* src,
                   std::byte* dst, int64_t lease_ms) {
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0; i < size * count; i += 8) {
    const uint64_t x = rng();
    std::memcpy(src + i, &x, std::min<uint64_t>(8, size * count - i));
  }
  auto key = [&](int pass, int i) { return store::Key{seed * 100000 + static_cast<uint64_t>(pass * 50000 + i), size}; };
  DataFigures f;
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<double> put_us, get_us;
    auto t0 = Clock::now();
    for (int i = 0; i < count; i += batch) {
      std::vector<store::PutItem> items;
      for (int j = i; j < std::min(count, i + batch); ++j) {
        items.push_back({key(pass, j), std::span<const std::byte>(src + size * j, size), std::nullopt});
      }
      auto s = Clock::now();
      for (const Status& st : c.BatchPut(items)) ThrowIfError(st);
      put_us.push_back(Since(s) * 1e6);
    }
    const double put_gb = static_cast<double>(size) * count / Since(t0) / 1e9;
    t0 = Clock::now();
    for (int i = 0; i < count; i += batch) {
      std::vector<store::GetItem> items;
      for (int j = i; j < std::min(count, i + batch); ++j) {
        items.push_back({key(pass, j), std::span<std::byte>(dst + size * j, size), {}, nullptr});
      }
      auto s = Clock::now();
      for (const Result<uint64_t>& g : c.BatchGet(items)) ThrowIfError(g.status());
      get_us.push_back(Since(s) * 1e6);
    }
    const double get_gb = static_cast<double>(size) * count / Since(t0) / 1e9;
    if (std::memcmp(src, dst, size * count) != 0) throw CommandError("bench store: the bytes read back differ");
    std::memset(dst, 0, size * count);
    if (pass == 0) {  // free the warm-up objects; their space is reused once the read leases end
      std::vector<store::Key> keys;
      for (int j = 0; j < count; ++j) keys.push_back(key(0, j));
      for (const Status& st : c.BatchRemove(keys)) ThrowIfError(st);
      std::this_thread::sleep_for(std::chrono::milliseconds(lease_ms + 300));
      continue;
    }
    f = DataFigures{put_gb, get_gb, Pct(put_us, 0.5), Pct(put_us, 0.99), Pct(get_us, 0.5), Pct(get_us, 0.99)};
  }
  return f;
}

// The transfer engine alone: WRITE then READ of `count` entries of `size`
// between `local` and the segment (the limit the store's data path has).
std::pair<double, double> RawTransfer(transfer::TransferEngine& e, const std::string& segment, std::byte* local,
                                      uint64_t size, int count) {
  transfer::SegmentId seg = ValueOrThrow(e.OpenSegment(segment));
  double gb[2];
  for (int op = 0; op < 2; ++op) {
    std::vector<transfer::TransferRequest> reqs;
    for (int i = 0; i < count; ++i) {
      reqs.push_back({op == 0 ? transfer::OpKind::kWrite : transfer::OpKind::kRead, local + size * i, seg,
                      store::RecordBytes(size) * static_cast<uint64_t>(i), size});
    }
    double best = 0;
    for (int round = 0; round < 3; ++round) {  // best of three, one entry at a time as the store does
      auto t0 = Clock::now();
      for (const auto& r : reqs) {
        transfer::TransferBatch b = e.NewBatch(1);
        ThrowIfError(e.Submit(b, {&r, 1}));
        ThrowIfError(b.Wait());
      }
      best = std::max(best, static_cast<double>(size) * count / Since(t0) / 1e9);
    }
    gb[op] = best;
  }
  return {gb[0], gb[1]};
}

void DataRow(Printer& p, const char* transport, uint64_t size, int batch, const DataFigures& f, double limit_put,
             double limit_get, const char* limit_name, const RedisFigures* redis) {
  for (int op = 0; op < 2; ++op) {
    const std::string name = std::string(batch > 1 ? "batch_" : "") + (op ? "get" : "put");
    const double gb = op ? f.get_gb_s : f.put_gb_s;
    const double limit = op ? limit_get : limit_put;
    boost::json::object row{{"op", name}, {"transport", transport}, {"size_bytes", size}, {"batch", batch},
                            {"gb_per_s", gb},           {"p50_us", op ? f.get_p50 : f.put_p50},
                            {"p99_us", op ? f.get_p99 : f.put_p99}};
    row[std::string(limit_name) + "_gb_per_s"] = limit;
    row["ratio_to_" + std::string(limit_name)] = gb / limit;
    std::string redis_text = "-";
    if (redis) {
      const double r = op ? redis->get_gb_s : redis->set_gb_s;
      row["redis_gb_per_s"] = r;
      row["ratio_to_redis"] = gb / r;
      redis_text = fmt::format("{:.2f} ({:.1f}x)", r, gb / r);
    }
    p.Row(std::move(row), fmt::format("  {:<9} {:<5} {:>6} {:>8.2f} {:>10.0f} {:>10.0f}   {:<9} {:>6.2f} ({:.2f})   {}",
                                      name, transport, SizeLabel(size), gb,
                                      op ? f.get_p50 : f.put_p50, op ? f.get_p99 : f.put_p99, limit_name, limit,
                                      gb / limit, redis_text));
  }
}

void RunBenchStore(const Opts& o) {
  std::vector<uint64_t> sizes;
  for (size_t start = 0; start <= o.sizes.size();) {
    size_t comma = o.sizes.find(',', start);
    if (comma == std::string::npos) comma = o.sizes.size();
    sizes.push_back(ValueOrThrow(ParseSize(o.sizes.substr(start, comma - start))));
    start = comma + 1;
  }
  const uint64_t max_size = *std::max_element(sizes.begin(), sizes.end());
  const uint64_t dram = std::max<uint64_t>(64 << 20, store::RecordBytes(max_size) * (o.count + 4) * 2);
  // Children first: no thread and no UCX state exist yet in this process.
  Child shm, tcp;
  if (o.Has("shm")) shm = ForkNode("self,sm", dram);
  if (o.Has("tcp")) tcp = ForkNode("tcp", dram);
  Printer p{o.json, {}};
  // A master per part, so no put lands on another part's node (a tcp-only
  // node is unreachable from a shared-memory client, and the metadata rows'
  // node has no memory at all).
  store::MasterServerOptions mo;
  mo.listen = "127.0.0.1:0";
  mo.master.ramp_ms = 0;
  mo.master.lease_ms = 500;  // short: the warm-up pass's space is reused soon
  auto meta_master = ValueOrThrow(store::MasterServer::Start(mo));
  auto shm_master = ValueOrThrow(store::MasterServer::Start(mo));
  auto tcp_master = ValueOrThrow(store::MasterServer::Start(mo));
  if (o.Has("shm")) StartChild(shm, shm_master->address());
  if (o.Has("tcp")) StartChild(tcp, tcp_master->address());

  if (o.Has("meta")) Metadata(o, meta_master->address(), p);

  // Buffers for the data rows, registered with each client (in place, as the engine's KV memory is).
  const uint64_t bytes = max_size * static_cast<uint64_t>(o.count);
  // redis-server first: a fork write-protects every private page of this
  // process until its next write (a page fault each, ~2 us per 4 KiB here),
  // which would bill the first get into a buffer for it. The buffers are not
  // inherited by later forks (fio) either.
  auto redis = RedisServer::Start();
  auto* src = static_cast<std::byte*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto* dst = static_cast<std::byte*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (src == MAP_FAILED || dst == MAP_FAILED) throw CommandError("bench store: cannot map its buffers");
  madvise(src, bytes, MADV_DONTFORK);
  madvise(dst, bytes, MADV_DONTFORK);
  std::memset(dst, 0, bytes);
  // redis-server SET/GET of `o.count` values of `size` (none without redis).
  auto RedisAt = [&](uint64_t size) -> std::optional<RedisFigures> {
    if (!redis.ok()) return std::nullopt;
    Result<RedisFigures> r = (*redis)->SetGet(size, o.count);
    return r.ok() ? std::optional<RedisFigures>(*r) : std::nullopt;
  };
  if (!p.json) {
    std::printf("data: %d objects a size, one at a time, from registered memory; limits measured in the same run\n",
                o.count);
    std::printf("  %-9s %-5s %6s %8s %10s %10s   %-9s %13s   %s\n", "op", "where", "size", "GB/s", "p50 us", "p99 us",
                "limit", "GB/s (ratio)", "redis GB/s (store/redis)");
  }
  if (o.Has("local")) {  // In one process (as the all-in-one server's offload): an in-process master, copies by memcpy.
    store::StoreStackOptions so;
    so.master = "local";
    so.local_master.ramp_ms = 0;
    so.local_master.lease_ms = 500;
    so.engine.transports = "self,sm";
    store::StoreNodeOptions n;
    n.node_id = "bench-local";
    n.dram_bytes = dram;
    so.node = n;
    auto stack = ValueOrThrow(store::StoreStack::Create(so));
    stack->node()->WaitForPrefault();
    ThrowIfError(stack->client().RegisterMemory(src, bytes));
    ThrowIfError(stack->client().RegisterMemory(dst, bytes));
    uint64_t seed = 1;
    for (uint64_t size : sizes) {
      std::optional<RedisFigures> rf = RedisAt(size);
      for (int batch : {1, o.data_batch}) {
        DataFigures f = PutGet(stack->client(), size, o.count, batch, seed++, src, dst, so.local_master.lease_ms);
        const double mc = MemcpyGbS(src, dst, size, o.count);
        DataRow(p, "local", size, batch, f, mc, mc, "memcpy", rf ? &*rf : nullptr);
      }
    }
  }
  // Across processes: this client has no segment, so every object goes to the child's node.
  for (auto [name, child, tls, master] : {std::tuple{"shm", &shm, "self,sm", shm_master->address()},
                                         std::tuple{"tcp", &tcp, "tcp", tcp_master->address()}}) {
    if (!o.Has(name)) continue;
    store::StoreStackOptions so;
    so.master = master;
    so.engine.transports = tls;
    so.engine.timeout_ms = 30'000;
    auto stack = ValueOrThrow(store::StoreStack::Create(so));
    ThrowIfError(stack->client().RegisterMemory(src, bytes));
    ThrowIfError(stack->client().RegisterMemory(dst, bytes));
    uint64_t seed = std::string(name) == "shm" ? 100 : 200;
    for (uint64_t size : sizes) {
      std::optional<RedisFigures> rf = RedisAt(size);
      for (int batch : {1, o.data_batch}) {
        DataFigures f = PutGet(stack->client(), size, o.count, batch, seed++, src, dst, mo.master.lease_ms);
        // The transfer engine's own rate, on the (warm) space the objects just used.
        auto [w, r] = RawTransfer(stack->engine(), child->segment, src, size, std::min(o.count, 16));
        DataRow(p, name, size, batch, f, w, r, "transfer", rf ? &*rf : nullptr);
      }
    }
  }
  if (!redis.ok() && !p.json) std::printf("  (redis-server unavailable: %s)\n", redis.status().ToString().c_str());
  munmap(src, bytes);
  munmap(dst, bytes);
  StopChild(shm);
  StopChild(tcp);

  // SSD tier against fio on the same directory.
  BenchDir bench_dir(o.ssd_dir, "ssd");
  const std::string& dir = bench_dir.path();
  if (o.Has("ssd")) {
    const uint64_t size = 8 << 20;
    store::SsdTierOptions to;
    to.dir = dir + "/tier";
    to.capacity = store::RecordBytes(size) * (o.ssd_objects + 2);
    auto tier = ValueOrThrow(store::SsdTier::Open(to));
    const uint64_t rec = store::RecordBytes(size);
    auto* buf = static_cast<std::byte*>(mmap(nullptr, rec, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    std::mt19937_64 rng(9);
    for (uint64_t i = 0; i < size; ++i) buf[store::kBlock + i] = static_cast<std::byte>(rng());
    std::vector<uint64_t> locs;
    std::vector<double> wus, rus;
    auto t0 = Clock::now();
    for (int i = 0; i < o.ssd_objects; ++i) {
      const store::Key k{static_cast<uint64_t>(i), 9};
      store::RecordHeader h = store::MakeHeader(k, size, store::Checksum({buf + store::kBlock, size}), 1);
      std::memcpy(buf, &h, sizeof(h));
      auto s = Clock::now();
      locs.push_back(ValueOrThrow(tier->WriteRecord(buf)));
      wus.push_back(Since(s) * 1e6);
    }
    const double wgb = static_cast<double>(size) * o.ssd_objects / Since(t0) / 1e9;
    std::vector<std::byte> out(size);
    t0 = Clock::now();
    for (int i = 0; i < o.ssd_objects; ++i) {
      auto s = Clock::now();
      ThrowIfError(tier->Read(locs[i], store::Key{static_cast<uint64_t>(i), 9}, out));
      rus.push_back(Since(s) * 1e6);
    }
    const double rgb = static_cast<double>(size) * o.ssd_objects / Since(t0) / 1e9;
    munmap(buf, rec);
    tier.reset();
    Result<FioFigures> fio = RunFio(dir, size * static_cast<uint64_t>(o.ssd_objects));
    if (!p.json) {
      std::printf("ssd: %d records of 8M in %s (O_DIRECT %s), fio sequential 1M blocks on the same directory\n",
                  o.ssd_objects, dir.c_str(), "where allowed");
    }
    for (int op = 0; op < 2; ++op) {
      const double gb = op ? rgb : wgb;
      boost::json::object row{{"op", op ? "ssd_read" : "ssd_write"}, {"transport", "ssd"}, {"size_bytes", size},
                              {"gb_per_s", gb}, {"p50_us", Pct(op ? rus : wus, 0.5)}, {"p99_us", Pct(op ? rus : wus, 0.99)}};
      std::string fio_text = "fio unavailable";
      if (fio.ok()) {
        const double f = op ? fio->read_gb_s : fio->write_gb_s;
        row["fio_gb_per_s"] = f;
        row["ratio_to_fio"] = gb / f;
        fio_text = fmt::format("fio {:.2f} GB/s ({:.2f})", f, gb / f);
      }
      p.Row(std::move(row), fmt::format("  {:<9} 8M {:>8.2f} GB/s  p50 {:>8.0f} us  p99 {:>8.0f} us   {}",
                                        op ? "read" : "write", gb, Pct(op ? rus : wus, 0.5),
                                        Pct(op ? rus : wus, 0.99), fio_text));
    }
  }
  if (p.json) std::printf("%s\n", boost::json::serialize(p.rows).c_str());
}

}  // namespace

void RegisterBenchStore(CLI::App& bench) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = bench.add_subcommand("store", "KV store: metadata ops/s, data GB/s vs transfer/memcpy/redis, SSD vs fio");
  cmd->add_option("--sizes", o->sizes, "Object sizes of the data rows")->capture_default_str();
  cmd->add_option("--count", o->count, "Objects per size and row")->check(CLI::Range(2, 10000))->capture_default_str();
  cmd->add_option("--threads", o->threads, "Client threads of the metadata rows")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--meta-ops", o->meta_ops, "Single-key operations per metadata row")
      ->check(CLI::Range(int64_t{100}, int64_t{100'000'000}))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Keys per batch")->check(CLI::Range(2, 100000))->capture_default_str();
  cmd->add_option("--data-batch", o->data_batch, "Objects per call of the batch data rows")
      ->check(CLI::Range(2, 1000))
      ->capture_default_str();
  cmd->add_option("--ssd-dir", o->ssd_dir, "Directory of the SSD rows (default: a temp folder in /var/tmp)");
  cmd->add_option("--ssd-objects", o->ssd_objects, "8 MiB records of the SSD rows")->check(CLI::Range(2, 100000))->capture_default_str();
  cmd->add_option("--parts", o->parts, "Which rows: any of meta,local,shm,tcp,ssd")->capture_default_str();
  cmd->add_flag("--json", o->json, "One JSON array of rows");
  cmd->callback([o] { RunBenchStore(*o); });
}

}  // namespace crescent::cli
