#include "store/store_node.h"

#include <grpcpp/grpcpp.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "base/clock.h"
#include "base/logging.h"
#include "base/thread_annotations.h"
#include "proto/store.grpc.pb.h"
#include "store/grpc_status.h"
#include "store/range_allocator.h"

namespace crescent::store {
namespace {

int64_t NowNs() { return MonotonicClock::Get().NowNanos(); }

void SetStatus(proto::ItemStatus* out, const Status& s) {
  out->set_code(static_cast<int32_t>(s.code()));
  out->set_message(s.message());
}

}  // namespace

class StoreNode::Impl final : public proto::StoreNode::Service {
 public:
  Impl(StoreNodeOptions o, std::shared_ptr<MasterApi> m, std::shared_ptr<transfer::TransferEngine> e)
      : options_(std::move(o)), master_(std::move(m)), engine_(std::move(e)) {}

  ~Impl() override {
    {
      MutexLock lock(mu_);
      stop_ = true;
    }
    cv_.NotifyAll();
    stopping_.store(true);
    if (prefaulter_.joinable()) prefaulter_.join();
    if (heartbeat_.joinable()) heartbeat_.join();
    if (demoter_.joinable()) demoter_.join();
    if (mounted_) {
      proto::UnmountRequest req;
      Header(req.mutable_header());
      req.set_node_id(id_);
      proto::UnmountReply rep;
      master_->Unmount(req, &rep).IgnoreError();  // best effort: the node TTL covers a failure
    }
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    if (base_) engine_->UnregisterLocalMemory(dram_name_).IgnoreError();
  }

  Status Start() {
    options_.dram_bytes &= ~(kBlock - 1);
    if (options_.dram_bytes < 2 * kBlock) return InvalidArgument("store node: DRAM segment too small");
    if (!options_.ssd_dir.empty()) {
      SsdTierOptions so;
      so.dir = options_.ssd_dir;
      so.capacity = options_.ssd_bytes;
      ASSIGN_OR_RETURN(ssd_, SsdTier::Open(so));
      const SsdScanReport& r = ssd_->scan_report();
      LOG_INFO("store node: SSD tier {} holds {} records ({} torn, {} bad headers, {} unfinished writes removed)",
               options_.ssd_dir, r.records, r.torn, r.bad_headers, r.temporaries);
    }
    std::random_device rd;
    id_ = !options_.node_id.empty() ? options_.node_id
          : ssd_               ? ssd_->node_id()
                               : fmt::format("node-{:08x}{:08x}", rd(), rd());
    epoch_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(NowNs());
    dram_name_ = "store/" + id_ + "/dram";
    if (ssd_) ssd_name_ = "store/" + id_ + "/ssd";
    const uint64_t staging = ssd_ ? RoundUpBlock(options_.staging_bytes) : 0;
    ASSIGN_OR_RETURN(void* mem, engine_->AllocateLocalMemory(dram_name_, options_.dram_bytes + staging));
    base_ = static_cast<std::byte*>(mem);
    {
      MutexLock lock(mu_);  // before the node serves
      staging_ = RangeAllocator(staging, kBlock);
    }
    if (ssd_) {
      grpc::ServerBuilder b;
      int port = 0;
      b.AddListeningPort(options_.rpc_listen, grpc::InsecureServerCredentials(), &port);
      b.RegisterService(this);
      server_ = b.BuildAndStart();
      if (!server_ || port == 0) return Unavailable("store node: cannot listen on " + options_.rpc_listen);
      rpc_address_ = options_.rpc_listen.substr(0, options_.rpc_listen.rfind(':')) + ":" + std::to_string(port);
    }
    Status m = Mount(/*scan_dram=*/false);
    if (!m.ok()) {
      if (m.code() != StatusCode::kUnavailable && m.code() != StatusCode::kDeadlineExceeded) return m;
      LOG_WARNING("store node {}: cannot mount yet ({}); retrying in the background", id_, m.ToString());
    }
    heartbeat_ = std::thread([this] { HeartbeatLoop(); });
    demoter_ = std::thread([this] { DemoteLoop(); });
    if (options_.prefault) {
      // Fault the segment's pages in now (without changing a byte), so the
      // first put into each page does not pay for it: a fresh page costs ~4x
      // a copy into a mapped one here.
      prefaulter_ = std::thread([this, bytes = options_.dram_bytes + staging] {
        constexpr uint64_t kStep = 64 << 20;
        for (uint64_t off = 0; off < bytes && !stopping_.load(); off += kStep) {
          madvise(base_ + off, std::min(kStep, bytes - off), MADV_POPULATE_WRITE);
        }
        MutexLock lock(mu_);
        prefaulted_ = true;
        cv_.NotifyAll();
      });
    } else {
      MutexLock lock(mu_);
      prefaulted_ = true;
    }
    return Status::Ok();
  }

  void Header(proto::RequestHeader* h) const {
    h->set_fingerprint_hi(options_.fingerprint.hi);
    h->set_fingerprint_lo(options_.fingerprint.lo);
    h->set_client_node(id_);
  }

  // The DRAM records, found by their headers and verified by their
  // checksums: a header over bytes still being written (a put in flight at a
  // failover) or over bytes a newer record overwrote (a freed record whose
  // free never arrived) is not a record; the scan then goes on block by
  // block, so a newer record inside a stale one's range is still found.
  void ScanDram(proto::MountRequest* req) {
    for (uint64_t off = 0; off + kBlock <= options_.dram_bytes;) {
      RecordHeader h;
      std::memcpy(&h, base_ + off, sizeof(h));
      if (h.Valid() && h.size > 0 && h.size <= options_.dram_bytes && RecordBytes(h.size) <= options_.dram_bytes - off &&
          !(h.flags & kTombstone) && Checksum({base_ + off + kBlock, h.size}) == h.checksum) {
        proto::ReportedObject* o = req->add_objects();
        o->mutable_key()->set_hi(h.key_hi);
        o->mutable_key()->set_lo(h.key_lo);
        o->set_size(h.size);
        o->set_checksum(h.checksum);
        o->set_segment_name(dram_name_);
        o->set_offset(off);
        o->set_generation(h.generation);
        off += RecordBytes(h.size);
      } else {
        off += kBlock;
      }
    }
  }

  Status Mount(bool scan_dram) {
    proto::MountRequest req;
    Header(req.mutable_header());
    req.set_node_id(id_);
    req.set_node_address(rpc_address_);
    req.set_node_epoch(epoch_);
    auto* d = req.add_segments();
    d->set_name(dram_name_);
    d->set_tier(proto::TIER_DRAM);
    d->set_capacity(options_.dram_bytes);
    // The descriptor again at every mount: after a worker rebuild it changed,
    // after a failover the new master has none.
    ASSIGN_OR_RETURN(std::string descriptor, engine_->LocalDescriptor(dram_name_));
    d->set_transfer_descriptor(std::move(descriptor));
    if (ssd_) {
      auto* s = req.add_segments();
      s->set_name(ssd_name_);
      s->set_tier(proto::TIER_SSD);
      s->set_capacity(ssd_->capacity());
      for (const SsdObject& o : ssd_->Objects()) {
        proto::ReportedObject* r = req.add_objects();
        r->mutable_key()->set_hi(o.key.hi);
        r->mutable_key()->set_lo(o.key.lo);
        r->set_size(o.size);
        r->set_checksum(o.checksum);
        r->set_segment_name(ssd_name_);
        r->set_offset(o.location);
        r->set_generation(o.location);
      }
    }
    if (scan_dram) ScanDram(&req);
    req.set_remount(mounted_once_);
    proto::MountReply rep;
    RETURN_IF_ERROR(master_->Mount(req, &rep));
    {
      MutexLock lock(mu_);
      heartbeat_ms_ = rep.heartbeat_ms() > 0 ? static_cast<int64_t>(rep.heartbeat_ms()) : 1000;
      acked_seq_ = 0;
      results_.clear();  // the new master knows nothing of earlier demotions
    }
    mounted_ = true;
    mounted_once_ = true;
    counters_.reported_objects += req.objects_size();
    LOG_INFO("store node {}: mounted {} ({} MiB{}) with {} objects", id_, dram_name_, options_.dram_bytes >> 20,
             ssd_ ? fmt::format(", SSD {} MiB", ssd_->capacity() >> 20) : "", req.objects_size());
    return Status::Ok();
  }

  void HeartbeatLoop() {
    MutexLock lock(mu_);
    for (;;) {
      cv_.WaitFor(mu_, std::chrono::milliseconds(heartbeat_ms_), [&]() REQUIRES(mu_) { return stop_ || beat_now_; });
      if (stop_) break;
      beat_now_ = false;
      const uint64_t my_beat = ++beats_built_;
      proto::HeartbeatRequest req;
      Header(req.mutable_header());
      req.set_node_id(id_);
      req.set_node_epoch(epoch_);
      req.set_acked_seq(acked_seq_);
      for (auto& r : results_) *req.add_demoted() = r;
      const size_t sent = results_.size();
      ExpireStages();
      lock.Unlock();
      proto::HeartbeatReply rep;
      Status s = mounted_ ? master_->Heartbeat(req, &rep) : Status(Unavailable("not mounted"));
      if (!s.ok() && mounted_) LOG_DEBUG("store node {}: heartbeat: {}", id_, s.ToString());
      if (!mounted_ || (s.ok() && rep.remount())) {
        counters_.remounts += mounted_ ? 1 : 0;
        Status m = Mount(/*scan_dram=*/true);
        if (!m.ok()) LOG_WARNING("store node {}: remount: {}", id_, m.ToString());
        lock.Lock();
        continue;
      }
      if (s.ok()) Apply(rep);
      lock.Lock();
      if (s.ok()) {
        results_.erase(results_.begin(), results_.begin() + static_cast<std::ptrdiff_t>(std::min(sent, results_.size())));
        acked_seq_ = rep.seq();
        for (const auto& t : rep.demote()) tasks_.push_back(t);
        last_demotes_ = rep.demote_size();
        last_ok_beat_ = my_beat;
      }
      cv_.NotifyAll();
    }
  }

  // Frees and drops of one reply. Runs without mu_ (touches memory and files only).
  void Apply(const proto::HeartbeatReply& rep) {
    for (const proto::FreedRange& f : rep.frees()) {
      if (f.segment_name() != dram_name_ || f.offset() > options_.dram_bytes - kBlock) continue;
      RecordHeader h;
      std::memcpy(&h, base_ + f.offset(), sizeof(h));
      if (h.Valid() && h.generation == f.generation()) {
        std::memset(base_ + f.offset(), 0, sizeof(h));  // a later scan must not report it
        counters_.frees++;
      }
    }
    for (const proto::SsdDrop& d : rep.ssd_drops()) {
      if (ssd_) {
        ssd_->Remove(d.location());
        counters_.ssd_drops++;
      }
    }
  }

  void DemoteLoop() {
    MutexLock lock(mu_);
    for (;;) {
      cv_.Wait(mu_, [&]() REQUIRES(mu_) { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      proto::DemoteTask t = std::move(tasks_.front());
      tasks_.pop_front();
      demoting_now_ = true;
      lock.Unlock();
      proto::DemoteResult r;
      *r.mutable_key() = t.key();
      r.set_dram_generation(t.generation());
      r.set_ssd_segment(ssd_name_);
      r.set_ok(false);
      if (ssd_ && t.segment_name() == dram_name_ && t.size() > 0 && t.size() <= options_.dram_bytes &&
          RecordBytes(t.size()) <= options_.dram_bytes && t.offset() <= options_.dram_bytes - RecordBytes(t.size())) {
        // A private copy, verified, is what goes to SSD: the master may free
        // the DRAM record (a Remove, a bad-copy report) while this runs.
        const uint64_t rec_bytes = RecordBytes(t.size());
        void* copy = mmap(nullptr, rec_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        const std::byte* rec = static_cast<const std::byte*>(copy);
        RecordHeader h;
        const Key key{t.key().lo(), t.key().hi()};
        bool good = false;
        if (copy != MAP_FAILED) {
          std::memcpy(copy, base_ + t.offset(), kBlock);
          std::memcpy(&h, rec, sizeof(h));
          good = h.Valid() && h.key() == key && h.generation == t.generation() && h.size == t.size() &&
                 CopyAndHash64(static_cast<std::byte*>(copy) + kBlock, base_ + t.offset() + kBlock, h.size) ==
                     h.checksum;
        }
        if (good) {
          Result<uint64_t> loc = ssd_->WriteRecord(rec);
          if (loc.ok()) {
            r.set_ok(true);
            r.set_ssd_location(*loc);
          } else {
            LOG_WARNING("store node {}: demotion to SSD: {}", id_, loc.status().ToString());
          }
        }
        if (copy != MAP_FAILED) munmap(copy, rec_bytes);
      }
      (r.ok() ? counters_.demotions : counters_.demotions_failed)++;
      lock.Lock();
      results_.push_back(std::move(r));
      demoting_now_ = false;
      cv_.NotifyAll();
    }
  }

  void ExpireStages() REQUIRES(mu_) {
    const int64_t now = NowNs();
    for (auto it = stages_.begin(); it != stages_.end();) {
      if (it->second.expires_ns <= now) {
        staging_.Free(it->second.offset, RecordBytes(it->second.size));
        it = stages_.erase(it);
      } else {
        ++it;
      }
    }
  }

  grpc::Status StageRead(grpc::ServerContext*, const proto::StageRequest* req, proto::StageReply* rep) override {
    if (!ssd_) {
      SetStatus(rep->mutable_status(), FailedPrecondition("this node has no SSD tier"));
      return grpc::Status::OK;
    }
    uint64_t off, id;
    {
      MutexLock lock(mu_);
      ExpireStages();
      std::optional<uint64_t> o = staging_.Allocate(RecordBytes(req->size()));
      if (!o) {
        SetStatus(rep->mutable_status(), ResourceExhausted("the node's staging area is full"));
        return grpc::Status::OK;
      }
      off = *o;
      id = next_stage_++;
      stages_[id] = Stage{off, req->size(), NowNs() + options_.stage_lease_ms * 1'000'000};
    }
    const Key key{req->key().lo(), req->key().hi()};
    Status s = ssd_->ReadRecord(req->location(), key, base_ + options_.dram_bytes + off, req->size());
    if (!s.ok()) {
      Release(id);
      SetStatus(rep->mutable_status(), s);
      return grpc::Status::OK;
    }
    counters_.stages++;
    SetStatus(rep->mutable_status(), Status::Ok());
    rep->set_segment_name(dram_name_);
    rep->set_offset(options_.dram_bytes + off);
    rep->set_stage_id(id);
    rep->set_lease_ms(static_cast<uint64_t>(options_.stage_lease_ms));
    return grpc::Status::OK;
  }

  void Release(uint64_t id) {
    MutexLock lock(mu_);
    auto it = stages_.find(id);
    if (it == stages_.end()) return;
    staging_.Free(it->second.offset, RecordBytes(it->second.size));
    stages_.erase(it);
  }

  grpc::Status ReleaseStage(grpc::ServerContext*, const proto::ReleaseRequest* req, proto::ReleaseReply*) override {
    Release(req->stage_id());
    return grpc::Status::OK;
  }

  struct Stage {
    uint64_t offset = 0, size = 0;
    int64_t expires_ns = 0;
  };

  StoreNodeOptions options_;
  std::shared_ptr<MasterApi> master_;
  std::shared_ptr<transfer::TransferEngine> engine_;
  std::string id_, dram_name_, ssd_name_, rpc_address_;
  uint64_t epoch_ = 0;
  std::byte* base_ = nullptr;
  std::unique_ptr<SsdTier> ssd_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> mounted_{false};
  bool mounted_once_ = false;  // heartbeat thread (and Start, before it runs)
  StoreNodeCounters counters_;

  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  bool prefaulted_ GUARDED_BY(mu_) = false;
  bool beat_now_ GUARDED_BY(mu_) = false;
  bool demoting_now_ GUARDED_BY(mu_) = false;
  uint64_t beats_built_ GUARDED_BY(mu_) = 0;  // heartbeat requests built
  uint64_t last_ok_beat_ GUARDED_BY(mu_) = 0;  // the last one answered
  int last_demotes_ GUARDED_BY(mu_) = 0;  // tasks in the last reply
  int64_t heartbeat_ms_ GUARDED_BY(mu_) = 1000;
  uint64_t acked_seq_ GUARDED_BY(mu_) = 0;
  std::vector<proto::DemoteResult> results_ GUARDED_BY(mu_);  // to report
  std::deque<proto::DemoteTask> tasks_ GUARDED_BY(mu_);
  RangeAllocator staging_ GUARDED_BY(mu_);
  std::map<uint64_t, Stage> stages_ GUARDED_BY(mu_);
  uint64_t next_stage_ GUARDED_BY(mu_) = 1;
  std::thread heartbeat_, demoter_, prefaulter_;
  std::atomic<bool> stopping_{false};
};

Result<std::unique_ptr<StoreNode>> StoreNode::Start(StoreNodeOptions options, std::shared_ptr<MasterApi> master,
                                                    std::shared_ptr<transfer::TransferEngine> engine) {
  if (!master || !engine) return InvalidArgument("store node needs a master and a transfer engine");
  auto impl = std::make_unique<Impl>(std::move(options), std::move(master), std::move(engine));
  RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<StoreNode>(new StoreNode(std::move(impl)));
}

StoreNode::StoreNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreNode::~StoreNode() = default;
const std::string& StoreNode::node_id() const { return impl_->id_; }
const std::string& StoreNode::dram_segment() const { return impl_->dram_name_; }
const std::string& StoreNode::ssd_segment() const { return impl_->ssd_name_; }
const std::string& StoreNode::rpc_address() const { return impl_->rpc_address_; }
std::byte* StoreNode::record(uint64_t offset) const { return impl_->base_ + offset; }
uint64_t StoreNode::dram_bytes() const { return impl_->options_.dram_bytes; }
SsdTier* StoreNode::ssd() const { return impl_->ssd_.get(); }
bool StoreNode::Flush(int64_t timeout_ms) {
  Impl& im = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  MutexLock lock(im.mu_);
  for (;;) {
    // Settled: nothing queued or being copied, nothing unreported, and the
    // last heartbeat, sent after all of that, brought no new task.
    // Only a heartbeat built after this point counts: one in flight may have
    // left the master before the last copies were queued.
    const uint64_t after = im.beats_built_;
    im.beat_now_ = true;
    im.cv_.NotifyAll();
    if (!im.cv_.WaitUntil(im.mu_, deadline, [&]() REQUIRES(im.mu_) { return im.stop_ || im.last_ok_beat_ > after; })) return false;
    if (!im.cv_.WaitUntil(im.mu_, deadline, [&]() REQUIRES(im.mu_) { return im.stop_ || (im.tasks_.empty() && !im.demoting_now_); })) {
      return false;
    }
    if (im.stop_) return false;
    if (im.last_demotes_ == 0 && im.results_.empty()) return true;
  }
}

void StoreNode::WaitForPrefault() const {
  MutexLock lock(impl_->mu_);
  impl_->cv_.Wait(impl_->mu_, [&]() REQUIRES(impl_->mu_) { return impl_->prefaulted_ || impl_->stop_; });
}
const StoreNodeCounters& StoreNode::counters() const { return impl_->counters_; }

}  // namespace crescent::store
