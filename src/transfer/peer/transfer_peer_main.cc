// crescent_transfer_peer: a stand-alone process for the transfer engine's
// cross-process tests (one host over shared memory, two network namespaces
// over TCP, peers killed and restarted). Metadata goes through etcd.
//
//   serve  --etcd H:P --segment NAME --size N --seed S [--transports T]
//          [--net-devices D] [--lease-ttl SEC] [--timeout-ms MS]
//       Registers NAME (N bytes of Pattern(seed)), prints "READY <instance>",
//       then answers lines on stdin: "HASH <off> <len>" -> "HASH <hex>",
//       "FILL <seed>" -> "OK"; exits on "QUIT" or end of input.
//   client --etcd H:P --segment NAME --seed S [--transports T] [--net-devices D]
//       Opens NAME, checks READs of 1 B..64 MiB at unaligned offsets against
//       Pattern(seed), WRITEs random bytes and reads them back, runs several
//       batches at once; prints "PASS ..." or "FAIL <reason>" (exit 0 / 1).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/hash.h"
#include "transfer/etcd_metadata_store.h"
#include "transfer/transfer_engine.h"

namespace crescent::transfer {
namespace {

using Args = std::map<std::string, std::string>;

std::string Arg(const Args& a, const std::string& k, const std::string& dflt = "") {
  auto it = a.find(k);
  return it == a.end() ? dflt : it->second;
}

// Byte i of Pattern(seed) depends only on (seed, i / 8).
void Pattern(char* p, uint64_t n, uint64_t seed) {
  for (uint64_t w = 0; w * 8 < n; ++w) {
    uint64_t x = (w + 1) * 0x9e3779b97f4a7c15ULL ^ seed;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    std::memcpy(p + w * 8, &x, std::min<uint64_t>(8, n - w * 8));
  }
}

Result<std::unique_ptr<EtcdMetadataStore>> ConnectEtcd(const Args& a) {
  EtcdOptions eo;
  eo.endpoint = Arg(a, "etcd");
  eo.lease_ttl_s = std::stoll(Arg(a, "lease-ttl", "2"));
  eo.request_timeout_ms = 1000;
  Status last;
  for (int i = 0; i < 100; ++i) {  // etcd may still be starting
    auto s = EtcdMetadataStore::Connect(eo);
    if (s.ok()) return s;
    last = s.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

Result<std::unique_ptr<TransferEngine>> MakeEngine(const Args& a, std::shared_ptr<MetadataStore> store) {
  EngineOptions o;
  o.transports = Arg(a, "transports", "self,sm");
  o.net_devices = Arg(a, "net-devices", "lo");
  o.timeout_ms = std::stoll(Arg(a, "timeout-ms", "5000"));
  return TransferEngine::Create(o, std::move(store));
}

int Serve(const Args& a) {
  auto store = ConnectEtcd(a);
  if (!store.ok()) {
    std::printf("FAIL %s\n", store.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<MetadataStore> shared = std::move(store).value();
  auto engine = MakeEngine(a, shared);
  if (!engine.ok()) {
    std::printf("FAIL %s\n", engine.status().ToString().c_str());
    return 1;
  }
  uint64_t size = std::stoull(Arg(a, "size", "1048576"));
  std::vector<char> mem(size);
  Pattern(mem.data(), size, std::stoull(Arg(a, "seed", "1")));
  Status s = (*engine)->RegisterLocalMemory(Arg(a, "segment"), mem.data(), size);
  if (!s.ok()) {
    std::printf("FAIL %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("READY %s\n", (*engine)->instance_id().c_str());
  std::fflush(stdout);
  std::string cmd;
  while (std::cin >> cmd) {
    if (cmd == "QUIT") break;
    if (cmd == "HASH") {
      uint64_t off = 0, len = 0;
      std::cin >> off >> len;
      if (off > size || len > size - off) {
        std::printf("HASH out-of-range\n");
      } else {
        std::printf("HASH %s\n", HashBytes128(mem.data() + off, len).ToHex().c_str());
      }
    } else if (cmd == "FILL") {
      uint64_t seed = 0;
      std::cin >> seed;
      Pattern(mem.data(), size, seed);
      std::printf("OK\n");
    }
    std::fflush(stdout);
  }
  return 0;
}

int Client(const Args& a) {
  auto fail = [](const std::string& why) {
    std::printf("FAIL %s\n", why.c_str());
    return 1;
  };
  auto store = ConnectEtcd(a);
  if (!store.ok()) return fail(store.status().ToString());
  auto engine = MakeEngine(a, std::shared_ptr<MetadataStore>(std::move(store).value()));
  if (!engine.ok()) return fail(engine.status().ToString());
  TransferEngine& e = **engine;
  Result<SegmentId> seg = Status(NotFound("not yet"));
  for (int i = 0; i < 100 && !seg.ok(); ++i) {  // the server may still be registering
    seg = e.OpenSegment(Arg(a, "segment"));
    if (!seg.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!seg.ok()) return fail(seg.status().ToString());
  uint64_t size = *e.SegmentLength(*seg);
  std::vector<char> expect(size), local(size + 4096);
  Pattern(expect.data(), size, std::stoull(Arg(a, "seed", "1")));
  Status s = e.RegisterLocalMemory("client-local", local.data(), local.size());
  if (!s.ok()) return fail(s.ToString());
  auto run = [&](std::vector<TransferRequest> reqs) -> Status {
    TransferBatch b = e.NewBatch(reqs.size());
    RETURN_IF_ERROR(e.Submit(b, reqs));
    return b.Wait();
  };
  int checks = 0;
  std::mt19937_64 rng(7);
  for (uint64_t n : {1ull, 11ull, 4095ull, 65537ull, 1000003ull, (16ull << 20) + 5, 64ull << 20}) {
    if (n + 8 > size) break;
    uint64_t roff = rng() % (size - n + 1), loff = 1 + rng() % 4000;
    s = run({{OpKind::kRead, &local[loff], *seg, roff, n}});
    if (!s.ok()) return fail("read " + std::to_string(n) + ": " + s.ToString());
    if (std::memcmp(&local[loff], &expect[roff], n) != 0) return fail("read mismatch at size " + std::to_string(n));
    // Write random bytes, read them back elsewhere.
    for (uint64_t i = 0; i < n; ++i) local[loff + i] = static_cast<char>(rng());
    s = run({{OpKind::kWrite, &local[loff], *seg, roff, n}});
    if (!s.ok()) return fail("write " + std::to_string(n) + ": " + s.ToString());
    std::memcpy(&expect[roff], &local[loff], n);
    uint64_t loff2 = loff == 1 ? 2 : 1;
    s = run({{OpKind::kRead, &local[loff2], *seg, roff, n}});
    if (!s.ok() || std::memcmp(&local[loff2], &expect[roff], n) != 0) {
      return fail("write read-back mismatch at size " + std::to_string(n));
    }
    checks += 3;
  }
  // Several batches at once, many entries each: 4 threads x 64 reads of 64 KiB.
  const uint64_t span = std::min<uint64_t>(size / 4, 64 * 65536);
  std::vector<std::thread> threads;
  std::vector<Status> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<TransferRequest> reqs;
      for (uint64_t off = 0; off + 65536 <= span; off += 65536) {
        reqs.push_back({OpKind::kRead, &local[t * span + off], *seg, t * span + off, 65536});
      }
      results[t] = run(reqs);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    if (!results[t].ok()) return fail("concurrent batch: " + results[t].ToString());
  }
  if (std::memcmp(local.data(), expect.data(), 4 * span) != 0) return fail("concurrent batch data mismatch");
  std::printf("PASS %d checks, %zu concurrent entries\n", checks + 4, static_cast<size_t>(4 * span / 65536));
  return 0;
}

}  // namespace
}  // namespace crescent::transfer

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: crescent_transfer_peer serve|client --key value ...\n");
    return 2;
  }
  crescent::transfer::Args args;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) == 0) k = k.substr(2);
    args[k] = argv[i + 1];
  }
  std::string mode = argv[1];
  try {
    if (mode == "serve") return crescent::transfer::Serve(args);
    if (mode == "client") return crescent::transfer::Client(args);
  } catch (const std::exception& e) {  // std::stoll on a bad flag
    std::printf("FAIL bad arguments: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
