#include "store/client.h"

#include <grpcpp/grpcpp.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "base/clock.h"
#include "base/logging.h"
#include "base/thread_annotations.h"
#include "proto/store.grpc.pb.h"
#include "store/grpc_status.h"
#include "store/range_allocator.h"
#include "store/store_node.h"

namespace crescent::store {
namespace {

void ToProto(const Key& k, proto::Key* out) {
  out->set_hi(k.hi);
  out->set_lo(k.lo);
}
Status FromItem(const proto::ItemStatus& s) {
  return s.code() == 0 ? Status::Ok() : Status(static_cast<StatusCode>(s.code()), s.message());
}
int64_t NowNs() { return MonotonicClock::Get().NowNanos(); }

}  // namespace

Key KeyFromString(std::string_view s) { return HashBytes128(s.data(), s.size()); }

class Client::Impl {
 public:
  Impl(ClientOptions o, std::shared_ptr<MasterApi> m, std::shared_ptr<transfer::TransferEngine> e, StoreNode* local)
      : options_(std::move(o)), master_(std::move(m)), engine_(std::move(e)), local_(local) {
    for (int i = 0; i < std::max(1, options_.async_threads); ++i) workers_.emplace_back([this] { Work(); });
  }
  ~Impl() {
    {
      MutexLock lock(work_mu_);
      stop_ = true;
    }
    work_cv_.NotifyAll();
    for (auto& t : workers_) t.join();
    if (scratch_) {
      engine_->UnregisterBuffer(scratch_).IgnoreError();
      munmap(scratch_, scratch_bytes_);
    }
  }

  void Header(proto::RequestHeader* h) const {
    h->set_fingerprint_hi(options_.fingerprint.hi);
    h->set_fingerprint_lo(options_.fingerprint.lo);
    if (local_) h->set_client_node(local_->node_id());
  }

  // ---- registered memory and the bounce area ----

  bool Registered(const void* p, uint64_t len) {
    MutexLock lock(mem_mu_);
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = regions_.upper_bound(a);
    if (it == regions_.begin()) return false;
    --it;
    return a >= it->first && a + len <= it->first + it->second;
  }

  Status Register(void* base, uint64_t len) {
    RETURN_IF_ERROR(engine_->RegisterBuffer(base, len));
    MutexLock lock(mem_mu_);
    regions_[reinterpret_cast<uintptr_t>(base)] = len;
    return Status::Ok();
  }

  Status Unregister(void* base) {
    {
      MutexLock lock(mem_mu_);
      regions_.erase(reinterpret_cast<uintptr_t>(base));
    }
    return engine_->UnregisterBuffer(base);
  }

  // `bytes` of the bounce area, waiting up to `deadline_ns` for room.
  Result<std::byte*> Scratch(uint64_t bytes, int64_t deadline_ns) {
    MutexLock lock(scratch_mu_);
    if (!scratch_) {
      scratch_bytes_ = RoundUpBlock(options_.scratch_bytes);
      void* p = mmap(nullptr, scratch_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return ResourceExhausted("store client: cannot map its bounce area");
      Status s = engine_->RegisterBuffer(p, scratch_bytes_);
      if (!s.ok()) {
        munmap(p, scratch_bytes_);
        return s;
      }
      scratch_ = static_cast<std::byte*>(p);
      scratch_alloc_ = RangeAllocator(scratch_bytes_, kBlock);
    }
    if (RoundUpBlock(bytes) > scratch_bytes_) {
      return ResourceExhausted(fmt::format("an object of {} bytes is larger than the client's bounce area ({} bytes); "
                                           "register the buffer instead",
                                           bytes, scratch_bytes_));
    }
    for (;;) {
      std::optional<uint64_t> off = scratch_alloc_.Allocate(bytes);
      if (off) return scratch_ + *off;
      if (!scratch_cv_.WaitUntil(scratch_mu_, std::chrono::steady_clock::now() +
                                                  std::chrono::nanoseconds(std::max<int64_t>(0, deadline_ns - NowNs())))) {
        return DeadlineExceeded("store client: its bounce area stayed full");
      }
    }
  }
  // Room in the bounce area now, or null: a call that already holds some
  // (its wave is not empty) never waits for more, or two calls, or one
  // alone, could each wait on space they hold themselves.
  std::byte* TryScratch(uint64_t bytes) {
    MutexLock lock(scratch_mu_);
    if (!scratch_ || RoundUpBlock(bytes) > scratch_bytes_) return nullptr;
    std::optional<uint64_t> off = scratch_alloc_.Allocate(bytes);
    return off ? scratch_ + *off : nullptr;
  }
  void FreeScratch(std::byte* p, uint64_t bytes) {
    {
      MutexLock lock(scratch_mu_);
      scratch_alloc_.Free(static_cast<uint64_t>(p - scratch_), bytes);
    }
    scratch_cv_.NotifyAll();
  }

  // ---- put ----

  struct Write {
    size_t item;
    proto::Replica replica;
    const std::byte* data = nullptr;  // registered, or a bounce copy
    std::byte* bounce = nullptr;
    uint64_t bounce_bytes = 0;
    std::byte* header = nullptr;  // a bounce block holding the record header
  };

  std::vector<Status> BatchPut(std::span<const PutItem> items) {
    std::vector<Status> out(items.size());
    if (items.empty()) return out;
    proto::PutStartRequest req;
    Header(req.mutable_header());
    // Checksums: computed while copying into a local record, else in one
    // pass before the remote writes.
    std::vector<std::optional<uint64_t>> sums(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      proto::PutStartItem* it = req.add_items();
      ToProto(items[i].key, it->mutable_key());
      it->set_size(items[i].data.size());
      it->set_replicas(options_.replicas);
      if (items[i].parent) ToProto(*items[i].parent, it->mutable_parent());
    }
    proto::PutStartReply rep;
    Status s = master_->PutStart(req, &rep);
    if (!s.ok() || rep.results_size() != static_cast<int>(items.size())) {
      if (s.ok()) s = Internal("store master: a PutStart reply of the wrong size");
      for (auto& o : out) o = s;
      counters_.put_failures += static_cast<int64_t>(items.size());
      return out;
    }
    const int64_t deadline = NowNs() + engine_->options().timeout_ms * 1'000'000;
    std::vector<bool> writing(items.size(), false);
    std::vector<Write> remote;
    for (size_t i = 0; i < items.size(); ++i) {
      const proto::PutStartResult& r = rep.results(static_cast<int>(i));
      out[i] = FromItem(r.status());
      if (!out[i].ok()) continue;
      if (r.exists()) {
        counters_.put_exists++;
        continue;
      }
      writing[i] = true;
      for (const proto::Replica& rp : r.replicas()) {
        if (local_ && rp.segment_name() == local_->dram_segment()) {
          const uint64_t need = RecordBytes(items[i].data.size());
          if (need > local_->dram_bytes() || rp.offset() > local_->dram_bytes() - need) {
            out[i] = Internal("store master: a record placed outside this node's segment");
            continue;
          }
          std::byte* rec = local_->record(rp.offset());
          const uint64_t sum = CopyAndHash64(rec + kBlock, items[i].data.data(), items[i].data.size());
          sums[i] = sum;
          const RecordHeader h = MakeHeader(items[i].key, items[i].data.size(), sum, rp.generation());
          std::memcpy(rec, &h, sizeof(h));
          continue;
        }
        Write w;
        w.item = i;
        w.replica = rp;
        remote.push_back(w);
      }
    }
    for (const Write& w : remote) {
      if (!sums[w.item]) sums[w.item] = Checksum(items[w.item].data);
    }
    // Remote records in waves that fit the bounce area.
    size_t next = 0;
    while (next < remote.size()) {
      std::vector<Write*> wave;
      for (; next < remote.size(); ++next) {
        Write& w = remote[next];
        if (!out[w.item].ok()) continue;
        const PutItem& it = items[w.item];
        const bool in_place = Registered(it.data.data(), it.data.size());
        const uint64_t need = kBlock + (in_place ? 0 : it.data.size());
        std::byte* room = nullptr;
        if (!wave.empty()) {
          room = TryScratch(need);
          if (!room) break;  // the next wave
        } else {
          Result<std::byte*> hb = Scratch(need, deadline);
          if (!hb.ok()) {
            out[w.item] = hb.status();
            continue;
          }
          room = *hb;
        }
        w.header = room;
        w.bounce_bytes = need;
        const RecordHeader h = MakeHeader(it.key, it.data.size(), *sums[w.item], w.replica.generation());
        std::memcpy(w.header, &h, sizeof(h));
        if (in_place) {
          w.data = it.data.data();
        } else {
          w.bounce = w.header + kBlock;
          std::memcpy(w.bounce, it.data.data(), it.data.size());
          w.data = w.bounce;
        }
        wave.push_back(&w);
      }
      RunWrites(items, wave, out);
      for (Write* w : wave) FreeScratch(w->header, w->bounce_bytes);
    }
    proto::PutEndRequest end;
    Header(end.mutable_header());
    std::vector<size_t> ended;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!writing[i]) continue;
      proto::PutEndItem* e = end.add_items();
      ToProto(items[i].key, e->mutable_key());
      e->set_put_id(rep.results(static_cast<int>(i)).put_id());
      e->set_ok(out[i].ok() && sums[i].has_value());
      e->set_checksum(sums[i].value_or(0));
      ended.push_back(i);
    }
    if (!ended.empty()) {
      proto::PutEndReply er;
      Status es = master_->PutEnd(end, &er);
      for (size_t k = 0; k < ended.size(); ++k) {
        const size_t i = ended[k];
        if (!out[i].ok()) continue;
        if (!es.ok()) {
          out[i] = es;
        } else if (k < static_cast<size_t>(er.results_size())) {
          out[i] = FromItem(er.results(static_cast<int>(k)));
        }
      }
    }
    for (size_t i = 0; i < items.size(); ++i) {
      if (out[i].ok()) {
        counters_.puts++;
        counters_.bytes_put += static_cast<int64_t>(items[i].data.size());
      } else {
        counters_.put_failures++;
      }
    }
    return out;
  }

  // The bytes of every record of the wave, then, once they all landed, the
  // headers of those that did: a record has a header only over complete
  // bytes. (A writer that dies before its headers leaves records nobody
  // reports; the put times out and the space returns.)
  void RunWrites(std::span<const PutItem> items, const std::vector<Write*>& wave, std::vector<Status>& out) {
    if (wave.empty()) return;
    std::vector<transfer::TransferRequest> reqs, heads;
    std::vector<Write*> who;
    for (Write* w : wave) {
      if (!out[w->item].ok()) continue;
      Result<transfer::SegmentId> seg = engine_->OpenSegment(w->replica.segment_name());
      if (!seg.ok()) {
        out[w->item] = seg.status();
        continue;
      }
      reqs.push_back({transfer::OpKind::kWrite, const_cast<std::byte*>(w->data), *seg, w->replica.offset() + kBlock,
                      items[w->item].data.size()});
      heads.push_back({transfer::OpKind::kWrite, w->header, *seg, w->replica.offset(), sizeof(RecordHeader)});
      who.push_back(w);
    }
    if (reqs.empty()) return;
    auto run = [&](std::vector<transfer::TransferRequest>& batch, const std::vector<size_t>& owners) {
      transfer::TransferBatch b = engine_->NewBatch(batch.size());
      Status s = engine_->Submit(b, batch);
      if (!s.ok()) {
        for (size_t k : owners) out[who[k]->item] = s;
        return;
      }
      b.Wait().IgnoreError();  // per entry below
      for (size_t j = 0; j < batch.size(); ++j) {
        transfer::EntryStatus st = b.status(j);
        Write* w = who[owners[j]];
        if (st.state != transfer::EntryState::kDone && out[w->item].ok()) out[w->item] = st.error;
      }
    };
    std::vector<size_t> all(who.size());
    for (size_t k = 0; k < who.size(); ++k) all[k] = k;
    run(reqs, all);
    std::vector<transfer::TransferRequest> ready;
    std::vector<size_t> owners;
    for (size_t k = 0; k < who.size(); ++k) {
      if (!out[who[k]->item].ok()) continue;
      ready.push_back(heads[k]);
      owners.push_back(k);
    }
    if (!ready.empty()) run(ready, owners);
  }

  // ---- get ----

  struct Read {
    size_t item;
    proto::Replica replica;
    uint64_t expect_generation = 0;
    std::string segment;  // where to READ (staging area for SSD copies)
    uint64_t offset = 0;
    std::byte* header = nullptr;  // bounce block
    std::byte* dest = nullptr;    // the caller's buffer or a bounce copy
    uint64_t bounce_bytes = 0;
    uint64_t stage_id = 0;
    int64_t stage_lease_end = 0;  // the staged bytes may be reused after
    std::string stage_node;
  };

  std::vector<Result<uint64_t>> BatchGet(std::span<const GetItem> items) {
    std::vector<Result<uint64_t>> out(items.size(), Result<uint64_t>(NotFound("no such object")));
    if (items.empty()) return out;
    proto::GetRequest req;
    Header(req.mutable_header());
    for (const GetItem& it : items) ToProto(it.key, req.add_keys());
    const int64_t t0 = NowNs();
    proto::GetReply rep;
    Status s = master_->Get(req, &rep);
    counters_.gets += static_cast<int64_t>(items.size());
    if (!s.ok() || rep.results_size() != static_cast<int>(items.size())) {
      if (s.ok()) s = Internal("store master: a Get reply of the wrong size");
      for (auto& o : out) o = s;
      counters_.misses += static_cast<int64_t>(items.size());
      return out;
    }
    std::vector<size_t> next(items.size(), 0);
    std::vector<bool> pending(items.size(), false), corrupt(items.size(), false);
    // One transfer deadline for the call: no wave starts after it (a wave
    // in flight ends within its own transfer timeout).
    const int64_t deadline = NowNs() + engine_->options().timeout_ms * 1'000'000;
    for (size_t i = 0; i < items.size(); ++i) {
      const proto::GetResult& r = rep.results(static_cast<int>(i));
      Status st = FromItem(r.status());
      if (!st.ok()) {
        out[i] = st;
        continue;
      }
      if (const uint64_t room = Room(items[i]); room < r.size()) {
        out[i] = ResourceExhausted(fmt::format("a buffer of {} bytes for an object of {}", room, r.size()));
        continue;
      }
      pending[i] = true;
    }
    for (;;) {
      std::vector<Read> wave;
      if (NowNs() >= deadline) {
        for (size_t i = 0; i < items.size(); ++i) {
          if (!pending[i]) continue;
          pending[i] = false;
          out[i] = DeadlineExceeded("store get: no copy arrived within the transfer timeout");
        }
        break;
      }
      for (size_t i = 0; i < items.size(); ++i) {
        if (!pending[i]) continue;
        const proto::GetResult& r = rep.results(static_cast<int>(i));
        if (next[i] >= static_cast<size_t>(r.replicas_size())) {
          pending[i] = false;
          out[i] = corrupt[i] ? Status(DataLoss("every copy of the object failed its checksum"))
                              : Status(NotFound("no copy of the object could be read"));
          continue;
        }
        const proto::Replica& rp = r.replicas(static_cast<int>(next[i]++));
        const int64_t lease_end = t0 + static_cast<int64_t>(r.lease_ms()) * 1'000'000 - 200'000'000;
        const bool scatter = !items[i].parts.empty();
        std::span<std::byte> dst = scatter ? std::span<std::byte>() : items[i].out.subspan(0, r.size());
        // This process's own memory or SSD: no transfer.
        if (local_ && rp.segment_name() == local_->dram_segment()) {
          if (RecordBytes(r.size()) > local_->dram_bytes() || rp.offset() > local_->dram_bytes() - RecordBytes(r.size())) {
            counters_.stale_copies++;
            ReportBad(items[i].key, rp, "a copy outside its segment");
            continue;
          }
          const std::byte* rec = local_->record(rp.offset());
          RecordHeader h;
          std::memcpy(&h, rec, sizeof(h));
          const uint64_t sum = scatter ? ScatterAndHash64(items[i].parts, rec + kBlock, r.size())
                                       : CopyAndHash64(dst.data(), rec + kBlock, dst.size());
          if (Finish(items[i].key, rp, r, h, sum, lease_end, i, out, pending, corrupt)) {
            Served(items[i], ReadFrom::kLocalDram);
          }
          counters_.local_reads++;
          continue;
        }
        if (local_ && local_->ssd() && rp.segment_name() == local_->ssd_segment()) {
          Status rs = scatter ? local_->ssd()->Read(rp.offset(), items[i].key, r.size(), items[i].parts, r.checksum())
                              : local_->ssd()->Read(rp.offset(), items[i].key, dst, r.checksum());
          counters_.ssd_reads++;
          if (rs.ok()) {
            Hit(i, r.size(), out, pending);
            Served(items[i], ReadFrom::kLocalSsd);
          } else {
            (rs.code() == StatusCode::kDataLoss ? counters_.checksum_failures : counters_.stale_copies)++;
            if (rs.code() == StatusCode::kDataLoss) corrupt[i] = true;
            ReportBad(items[i].key, rp, rs.message());
          }
          continue;
        }
        Read rd;
        rd.item = i;
        rd.replica = rp;
        rd.expect_generation = rp.generation();
        rd.segment = rp.segment_name();
        rd.offset = rp.offset();
        const bool in_place = !scatter && Registered(dst.data(), dst.size());
        rd.bounce_bytes = kBlock + (in_place ? 0 : r.size());
        // Room first (before paying for a stage); never wait while this
        // wave holds some: the item goes in the next wave instead.
        std::byte* room = nullptr;
        if (!wave.empty()) {
          room = TryScratch(rd.bounce_bytes);
          if (!room) {
            --next[i];
            continue;
          }
        } else {
          Result<std::byte*> b = Scratch(rd.bounce_bytes, deadline);
          if (!b.ok()) {
            out[i] = b.status();
            pending[i] = false;
            continue;
          }
          room = *b;
        }
        rd.header = room;
        if (rp.tier() == proto::TIER_SSD) {  // the owner stages it in its DRAM segment
          Status st = Stage(items[i].key, rp, r.size(), &rd);
          if (!st.ok()) {
            FreeScratch(rd.header, rd.bounce_bytes);
            if (st.code() == StatusCode::kNotFound || st.code() == StatusCode::kDataLoss) {
              (st.code() == StatusCode::kDataLoss ? counters_.checksum_failures : counters_.stale_copies)++;
              if (st.code() == StatusCode::kDataLoss) corrupt[i] = true;
              ReportBad(items[i].key, rp, "its node cannot stage it: " + st.message());
            }
            continue;  // try the next copy
          }
          counters_.ssd_reads++;
        }
        rd.dest = in_place ? dst.data() : rd.header + kBlock;
        wave.push_back(std::move(rd));
      }
      if (wave.empty()) {
        bool any = false;
        for (bool p : pending) any |= p;
        if (!any) break;
        continue;
      }
      std::vector<transfer::TransferRequest> reqs;
      std::vector<size_t> who;
      for (size_t k = 0; k < wave.size(); ++k) {
        Read& rd = wave[k];
        Result<transfer::SegmentId> seg = engine_->OpenSegment(rd.segment);
        if (!seg.ok()) continue;
        const uint64_t size = rep.results(static_cast<int>(rd.item)).size();
        reqs.push_back({transfer::OpKind::kRead, rd.header, *seg, rd.offset, sizeof(RecordHeader)});
        reqs.push_back({transfer::OpKind::kRead, rd.dest, *seg, rd.offset + kBlock, size});
        who.push_back(k);
      }
      std::vector<bool> landed(wave.size(), false);
      if (!reqs.empty()) {
        transfer::TransferBatch b = engine_->NewBatch(reqs.size());
        if (engine_->Submit(b, reqs).ok()) {
          b.Wait().IgnoreError();
          for (size_t j = 0; j < who.size(); ++j) {
            landed[who[j]] = b.status(2 * j).state == transfer::EntryState::kDone &&
                             b.status(2 * j + 1).state == transfer::EntryState::kDone;
          }
        }
      }
      for (size_t k = 0; k < wave.size(); ++k) {
        Read& rd = wave[k];
        const size_t i = rd.item;
        const proto::GetResult& r = rep.results(static_cast<int>(i));
        if (landed[k]) {
          RecordHeader h;
          std::memcpy(&h, rd.header, sizeof(h));
          uint64_t sum = 0;
          if (!items[i].parts.empty()) {
            sum = ScatterAndHash64(items[i].parts, rd.dest, r.size());
          } else {
            std::span<std::byte> dst = items[i].out.subspan(0, r.size());
            sum = rd.dest != dst.data() ? CopyAndHash64(dst.data(), rd.dest, dst.size()) : Checksum(dst);
          }
          const int64_t lease_end = rd.stage_id != 0 ? rd.stage_lease_end
                                                     : t0 + static_cast<int64_t>(r.lease_ms()) * 1'000'000 - 200'000'000;
          proto::Replica checked = rd.replica;
          checked.set_generation(rd.expect_generation);
          if (Finish(items[i].key, checked, r, h, sum, lease_end, i, out, pending, corrupt)) {
            Served(items[i], rd.stage_id != 0 ? ReadFrom::kRemoteSsd : ReadFrom::kRemoteDram);
          }
          counters_.remote_reads++;
        }
        ReleaseStage(rd);
        FreeScratch(rd.header, rd.bounce_bytes);
      }
    }
    return out;
  }

  void Hit(size_t i, uint64_t size, std::vector<Result<uint64_t>>& out, std::vector<bool>& pending) {
    out[i] = size;
    pending[i] = false;
    counters_.hits++;
    counters_.bytes_got += static_cast<int64_t>(size);
  }

  static uint64_t Room(const GetItem& it) {
    if (it.parts.empty()) return it.out.size();
    uint64_t n = 0;
    for (const ScatterPart& p : it.parts) n += p.size;
    return n;
  }

  static void Served(const GetItem& it, ReadFrom from) {
    if (it.from) *it.from = from;
  }

  // Checks one copy that arrived; on success the item is done (true).
  // `sum`: the checksum of the bytes that arrived.
  bool Finish(const Key& key, const proto::Replica& rp, const proto::GetResult& r, const RecordHeader& h,
              uint64_t sum, int64_t lease_end, size_t i, std::vector<Result<uint64_t>>& out, std::vector<bool>& pending,
              std::vector<bool>& corrupt) {
    if (!h.Valid() || h.key() != key || h.generation != rp.generation() || h.size != r.size()) {
      counters_.stale_copies++;
      ReportBad(key, rp, "the record's header names another object or generation");
      return false;
    }
    if (h.checksum != r.checksum() || sum != r.checksum()) {
      counters_.checksum_failures++;
      corrupt[i] = true;
      ReportBad(key, rp, "checksum mismatch");
      return false;
    }
    if (NowNs() > lease_end) {  // the space may have been reused while we read: do not trust it
      counters_.stale_copies++;
      return false;
    }
    Hit(i, r.size(), out, pending);
    return true;
  }

  void ReportBad(const Key& key, const proto::Replica& rp, const std::string& why) {
    LOG_WARNING("store: a bad copy of {} in {} at {}: {}", key.ToHex(), rp.segment_name(), rp.offset(), why);
    proto::ReportBadReplicaRequest req;
    Header(req.mutable_header());
    ToProto(key, req.mutable_key());
    *req.mutable_replica() = rp;
    req.set_reason(why);
    // Off the caller's path (best effort: the next reader reports it again).
    Post([this, req = std::move(req)]() mutable {
      proto::ReportBadReplicaReply rep;
      master_->ReportBadReplica(req, &rep).IgnoreError();
    });
  }

  proto::StoreNode::Stub* NodeStub(const std::string& address) {
    MutexLock lock(stub_mu_);
    auto it = stubs_.find(address);
    if (it != stubs_.end()) return it->second.get();
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
    auto stub = proto::StoreNode::NewStub(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    return (stubs_[address] = std::move(stub)).get();
  }

  Status Stage(const Key& key, const proto::Replica& rp, uint64_t size, Read* rd) {
    if (rp.node_address().empty()) return Unavailable("the SSD copy's node has no address");
    proto::StageRequest req;
    ToProto(key, req.mutable_key());
    req.set_location(rp.offset());
    req.set_size(size);
    proto::StageReply rep;
    const int64_t sent = NowNs();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options_.rpc_timeout_ms));
    grpc::Status st = NodeStub(rp.node_address())->StageRead(&ctx, req, &rep);
    if (!st.ok()) return FromGrpc(st, "StageRead at " + rp.node_address());
    RETURN_IF_ERROR(FromItem(rep.status()));
    rd->segment = rep.segment_name();
    rd->offset = rep.offset();
    rd->stage_id = rep.stage_id();
    rd->stage_lease_end = sent + static_cast<int64_t>(rep.lease_ms()) * 1'000'000 - 200'000'000;
    rd->stage_node = rp.node_address();
    return Status::Ok();
  }

  void ReleaseStage(Read& rd) {
    if (rd.stage_id == 0) return;
    proto::ReleaseRequest req;
    req.set_stage_id(rd.stage_id);
    proto::ReleaseReply rep;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options_.rpc_timeout_ms));
    NodeStub(rd.stage_node)->ReleaseStage(&ctx, req, &rep);  // best effort: stages expire
    rd.stage_id = 0;
  }

  // ---- async ----

  void Post(std::function<void()> fn) {
    {
      MutexLock lock(work_mu_);
      queue_.push_back(std::move(fn));
    }
    work_cv_.NotifyOne();
  }
  void Work() {
    MutexLock lock(work_mu_);
    for (;;) {
      work_cv_.Wait(work_mu_, [&]() REQUIRES(work_mu_) { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.Unlock();
      fn();
      lock.Lock();
    }
  }

  ClientOptions options_;
  std::shared_ptr<MasterApi> master_;
  std::shared_ptr<transfer::TransferEngine> engine_;
  StoreNode* local_;
  ClientCounters counters_;

  Mutex mem_mu_;
  std::map<uintptr_t, uint64_t> regions_ GUARDED_BY(mem_mu_);

  Mutex scratch_mu_;
  CondVar scratch_cv_;
  std::byte* scratch_ GUARDED_BY(scratch_mu_) = nullptr;
  uint64_t scratch_bytes_ = 0;
  RangeAllocator scratch_alloc_ GUARDED_BY(scratch_mu_);

  Mutex stub_mu_;
  std::map<std::string, std::unique_ptr<proto::StoreNode::Stub>> stubs_ GUARDED_BY(stub_mu_);

  Mutex work_mu_;
  CondVar work_cv_;
  std::deque<std::function<void()>> queue_ GUARDED_BY(work_mu_);
  bool stop_ GUARDED_BY(work_mu_) = false;
  std::vector<std::thread> workers_;
};

Result<std::unique_ptr<Client>> Client::Create(ClientOptions options, std::shared_ptr<MasterApi> master,
                                               std::shared_ptr<transfer::TransferEngine> engine, StoreNode* local) {
  if (!master || !engine) return InvalidArgument("store client needs a master and a transfer engine");
  return std::unique_ptr<Client>(
      new Client(std::make_unique<Impl>(std::move(options), std::move(master), std::move(engine), local)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Status Client::Put(const Key& key, std::span<const std::byte> data, std::optional<Key> parent) {
  PutItem it{key, data, parent};
  return impl_->BatchPut({&it, 1})[0];
}

Result<uint64_t> Client::Get(const Key& key, std::span<std::byte> out) {
  GetItem it{key, out, {}, nullptr};
  return std::move(impl_->BatchGet({&it, 1})[0]);
}

Result<bool> Client::Exists(const Key& key) {
  ASSIGN_OR_RETURN(std::vector<bool> e, BatchExists({&key, 1}));
  return static_cast<bool>(e[0]);
}

Status Client::Remove(const Key& key) { return BatchRemove({&key, 1})[0]; }

std::vector<Status> Client::BatchPut(std::span<const PutItem> items) { return impl_->BatchPut(items); }
std::vector<Result<uint64_t>> Client::BatchGet(std::span<const GetItem> items) { return impl_->BatchGet(items); }

Result<std::vector<bool>> Client::BatchExists(std::span<const Key> keys) {
  proto::ExistsRequest req;
  impl_->Header(req.mutable_header());
  for (const Key& k : keys) ToProto(k, req.add_keys());
  proto::ExistsReply rep;
  RETURN_IF_ERROR(impl_->master_->Exists(req, &rep));
  std::vector<bool> out(keys.size(), false);
  for (int i = 0; i < rep.exists_size() && i < static_cast<int>(keys.size()); ++i) out[i] = rep.exists(i);
  return out;
}

Result<size_t> Client::PrefixLength(std::span<const Key> keys) {
  ASSIGN_OR_RETURN(std::vector<bool> e, BatchExists(keys));
  size_t n = 0;
  while (n < e.size() && e[n]) ++n;
  return n;
}

std::vector<Status> Client::BatchRemove(std::span<const Key> keys) {
  proto::RemoveRequest req;
  impl_->Header(req.mutable_header());
  for (const Key& k : keys) ToProto(k, req.add_keys());
  proto::RemoveReply rep;
  Status s = impl_->master_->Remove(req, &rep);
  std::vector<Status> out(keys.size(), s);
  if (!s.ok()) return out;
  for (int i = 0; i < rep.results_size() && i < static_cast<int>(keys.size()); ++i) out[i] = FromItem(rep.results(i));
  return out;
}

std::future<std::vector<Status>> Client::BatchPutAsync(std::vector<PutItem> items) {
  auto p = std::make_shared<std::promise<std::vector<Status>>>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), p, items = std::move(items)] { p->set_value(impl->BatchPut(items)); });
  return f;
}

std::future<std::vector<Result<uint64_t>>> Client::BatchGetAsync(std::vector<GetItem> items) {
  auto p = std::make_shared<std::promise<std::vector<Result<uint64_t>>>>();
  auto f = p->get_future();
  impl_->Post([impl = impl_.get(), p, items = std::move(items)] { p->set_value(impl->BatchGet(items)); });
  return f;
}

Status Client::RegisterMemory(void* base, uint64_t length) { return impl_->Register(base, length); }
Status Client::UnregisterMemory(void* base) { return impl_->Unregister(base); }

Result<proto::GetResult> Client::Locate(const Key& key) {
  proto::GetRequest req;
  impl_->Header(req.mutable_header());
  ToProto(key, req.add_keys());
  proto::GetReply rep;
  RETURN_IF_ERROR(impl_->master_->Get(req, &rep));
  if (rep.results_size() != 1) return Internal("store master: a Get reply of the wrong size");
  RETURN_IF_ERROR(FromItem(rep.results(0).status()));
  return rep.results(0);
}

Result<proto::StatReply> Client::Stat() {
  proto::StatRequest req;
  impl_->Header(req.mutable_header());
  proto::StatReply rep;
  RETURN_IF_ERROR(impl_->master_->Stat(req, &rep));
  return rep;
}

const ClientCounters& Client::counters() const { return impl_->counters_; }
MasterApi& Client::master() { return *impl_->master_; }

}  // namespace crescent::store
