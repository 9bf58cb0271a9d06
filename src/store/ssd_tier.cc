#include "store/ssd_tier.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include <fmt/format.h>

#include "base/file.h"
#include "base/logging.h"
#include "base/thread_annotations.h"

namespace crescent::store {
namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuf = std::unique_ptr<std::byte, FreeDeleter>;

AlignedBuf Aligned(uint64_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, kBlock, std::max<uint64_t>(bytes, kBlock)) != 0) return nullptr;
  return AlignedBuf(static_cast<std::byte*>(p));
}

bool IsAligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kBlock == 0; }

Status Errno(const std::string& what) { return Internal(what + ": " + std::strerror(errno)); }

}  // namespace

SsdTier::SsdTier(SsdTierOptions options) : options_(std::move(options)), direct_(options_.direct) {}

SsdTier::~SsdTier() {
  if (ring_ok_) io_uring_queue_exit(&ring_);
}

std::string SsdTier::PathOf(uint64_t location) const { return JoinPath(options_.dir, fmt::format("{}.rec", location)); }

Result<std::unique_ptr<SsdTier>> SsdTier::Open(const SsdTierOptions& options) {
  if (options.dir.empty()) return InvalidArgument("SSD tier: no directory");
  if (options.capacity < 2 * kBlock) return InvalidArgument("SSD tier: capacity too small");
  if (options.queue_depth == 0 || options.io_bytes < kBlock || options.io_bytes % kBlock != 0) {
    return InvalidArgument("SSD tier: queue_depth must be >= 1 and io_bytes a multiple of 4 KiB");
  }
  RETURN_IF_ERROR(MakeDirectories(options.dir));
  std::unique_ptr<SsdTier> t(new SsdTier(options));
  const std::string id_path = JoinPath(options.dir, "node-id");
  Result<std::string> id = ReadFileToString(id_path);
  if (id.ok() && !id->empty()) {
    t->node_id_ = *id;
    while (!t->node_id_.empty() && (t->node_id_.back() == '\n' || t->node_id_.back() == ' ')) t->node_id_.pop_back();
  } else {
    std::random_device rd;
    t->node_id_ = fmt::format("node-{:08x}{:08x}", rd(), rd());
    RETURN_IF_ERROR(WriteFileAtomic(id_path, t->node_id_ + "\n"));
  }
  const int rc = io_uring_queue_init(std::max(2u, options.queue_depth), &t->ring_, 0);
  if (rc < 0) return Internal(std::string("io_uring_queue_init: ") + std::strerror(-rc));
  t->ring_ok_ = true;
  // Probe O_DIRECT on this filesystem.
  if (t->direct_) {
    const std::string probe = JoinPath(options.dir, ".direct-probe");
    int fd = open(probe.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
    if (fd < 0) {
      LOG_WARNING("SSD tier: {} refuses O_DIRECT ({}); using buffered I/O", options.dir, std::strerror(errno));
      t->direct_ = false;
    } else {
      close(fd);
    }
    unlink(probe.c_str());
  }
  RETURN_IF_ERROR(t->Scan());
  return t;
}

int SsdTier::OpenFile(const std::string& path, int flags) {
  return open(path.c_str(), flags | O_CLOEXEC | (direct_ ? O_DIRECT : 0), 0644);
}

Status SsdTier::Scan() {
  DIR* d = opendir(options_.dir.c_str());
  if (!d) return Errno("SSD tier: opendir " + options_.dir);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) names.emplace_back(e->d_name);
  closedir(d);
  MutexLock lock(mu_);  // at open, before any other thread has the tier
  AlignedBuf head = Aligned(kBlock);
  std::map<Key, uint64_t, bool (*)(const Key&, const Key&)> newest(
      [](const Key& a, const Key& b) { return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo; });
  for (const std::string& name : names) {
    const std::string path = JoinPath(options_.dir, name);
    if (name.size() > 4 && name.ends_with(".tmp")) {
      unlink(path.c_str());
      scan_.temporaries++;
      continue;
    }
    if (name.size() <= 4 || !name.ends_with(".rec")) continue;
    // Only names this tier writes (PathOf: decimal, no leading zero), so
    // "012.rec" never stands for 12.rec and gets it unlinked as a duplicate.
    const std::string digits = name.substr(0, name.size() - 4);
    if (digits.empty() || digits.size() > 19 || (digits.size() > 1 && digits[0] == '0') ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const uint64_t loc = std::stoull(digits);
    struct stat st{};
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && pread(fd, head.get(), kBlock, 0) == static_cast<ssize_t>(kBlock);
    if (fd >= 0) close(fd);
    RecordHeader h;
    if (ok) std::memcpy(&h, head.get(), sizeof(h));
    // A size past the tier's capacity cannot be a record it wrote (and would
    // wrap RecordBytes' rounding).
    if (!ok || !h.Valid() || h.size == 0 || h.size > options_.capacity || h.generation != loc ||
        (h.flags & kTombstone)) {
      LOG_WARNING("SSD tier: {} has no valid record header; removed", path);
      scan_.bad_headers++;
      unlink(path.c_str());
      continue;
    }
    if (static_cast<uint64_t>(st.st_size) < RecordBytes(h.size)) {
      LOG_WARNING("SSD tier: {} is torn ({} of {} bytes); removed", path, st.st_size, RecordBytes(h.size));
      scan_.torn++;
      unlink(path.c_str());
      continue;
    }
    auto [it, fresh] = newest.try_emplace(h.key(), loc);
    if (!fresh) {  // the same object twice: keep the newer copy
      const uint64_t older = std::min(it->second, loc);
      it->second = std::max(it->second, loc);
      objects_.erase(older);
      unlink(PathOf(older).c_str());
      if (older == loc) continue;
    }
    objects_[loc] = SsdObject{h.key(), h.size, h.checksum, loc};
    next_location_ = std::max(next_location_, loc + 1);
  }
  used_ = 0;
  for (const auto& [loc, o] : objects_) used_ += RecordBytes(o.size);
  scan_.records = objects_.size();
  return Status::Ok();
}

uint64_t SsdTier::used() const {
  MutexLock lock(mu_);
  return used_;
}

std::vector<SsdObject> SsdTier::Objects() const {
  MutexLock lock(mu_);
  std::vector<SsdObject> out;
  for (const auto& [loc, o] : objects_) out.push_back(o);
  return out;
}

Status SsdTier::Io(int fd, bool write, void* buf, uint64_t len, uint64_t file_offset) {
  MutexLock lock(ring_mu_);
  uint64_t submitted = 0, done = 0;
  unsigned inflight = 0;
  Status err;
  auto* base = static_cast<std::byte*>(buf);
  while (done < len) {
    while (submitted < len && inflight < options_.queue_depth && err.ok()) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (!sqe) break;
      const uint64_t n = std::min(options_.io_bytes, len - submitted);
      if (write) {
        io_uring_prep_write(sqe, fd, base + submitted, static_cast<unsigned>(n), file_offset + submitted);
      } else {
        io_uring_prep_read(sqe, fd, base + submitted, static_cast<unsigned>(n), file_offset + submitted);
      }
      io_uring_sqe_set_data64(sqe, n);
      submitted += n;
      ++inflight;
    }
    if (inflight == 0) break;  // an error stopped submission and everything came back
    io_uring_submit(&ring_);
    io_uring_cqe* cqe = nullptr;
    // Never return with I/O in flight: the kernel would still write into
    // (or read from) the caller's buffer, and the next call would count
    // these completions as its own.
    int rc;
    do {
      rc = io_uring_wait_cqe(&ring_, &cqe);
    } while (rc == -EINTR || rc == -EAGAIN);
    if (rc < 0) {  // a broken ring (a bug): nothing safe is left to do with the buffers
      LOG_ERROR("SSD tier: io_uring_wait_cqe with {} operations in flight: {}", inflight, std::strerror(-rc));
      std::abort();
    }
    const uint64_t want = io_uring_cqe_get_data64(cqe);
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    --inflight;
    if (res < 0) {
      if (err.ok()) err = Internal(std::string(write ? "SSD write: " : "SSD read: ") + std::strerror(-res));
    } else if (static_cast<uint64_t>(res) != want) {
      if (err.ok()) err = DataLoss(fmt::format("SSD {}: {} of {} bytes", write ? "write" : "read", res, want));
    }
    done += want;
  }
  if (err.ok() && done < len) err = Internal(fmt::format("SSD {}: only {} of {} bytes submitted", write ? "write" : "read", done, len));
  return err;
}

Result<uint64_t> SsdTier::WriteRecord(const void* record) {
  RecordHeader h;
  std::memcpy(&h, record, sizeof(h));
  if (!h.Valid() || h.size == 0) return InvalidArgument("SSD write: the record has no valid header");
  const uint64_t bytes = RecordBytes(h.size);
  uint64_t loc;
  {
    MutexLock lock(mu_);
    if (used_ + bytes > options_.capacity) {
      return ResourceExhausted(fmt::format("SSD tier full ({} of {} bytes used)", used_, options_.capacity));
    }
    loc = next_location_++;
    used_ += bytes;
  }
  auto undo = [&] {
    MutexLock lock(mu_);
    used_ -= bytes;
  };
  // The header names the SSD location as its generation.
  AlignedBuf buf;
  const std::byte* src = static_cast<const std::byte*>(record);
  AlignedBuf head = Aligned(kBlock);
  std::memset(head.get(), 0, kBlock);
  RecordHeader sh = MakeHeader(h.key(), h.size, h.checksum, loc);
  std::memcpy(head.get(), &sh, sizeof(sh));
  const std::string tmp = JoinPath(options_.dir, fmt::format("{}.tmp", loc));
  int fd = OpenFile(tmp, O_CREAT | O_WRONLY | O_TRUNC);
  if (fd < 0) {
    undo();
    return Errno("SSD write: open " + tmp);
  }
  Status s;
  if (direct_ && !IsAligned(src + kBlock)) {  // O_DIRECT needs aligned memory: copy
    buf = Aligned(bytes);
    std::memcpy(buf.get(), head.get(), kBlock);
    std::memcpy(buf.get() + kBlock, src + kBlock, bytes - kBlock);
    s = Io(fd, true, buf.get(), bytes, 0);
  } else {  // the bytes go straight from the caller's memory
    s = Io(fd, true, const_cast<std::byte*>(src + kBlock), bytes - kBlock, kBlock);
    if (s.ok()) s = Io(fd, true, head.get(), kBlock, 0);
  }
  close(fd);
  if (s.ok() && rename(tmp.c_str(), PathOf(loc).c_str()) != 0) s = Errno("SSD write: rename");
  if (!s.ok()) {
    unlink(tmp.c_str());
    undo();
    return s;
  }
  MutexLock lock(mu_);
  objects_[loc] = SsdObject{h.key(), h.size, h.checksum, loc};
  return loc;
}

Status SsdTier::ReadRecord(uint64_t location, const Key& key, void* dst, uint64_t size) {
  {
    MutexLock lock(mu_);
    auto it = objects_.find(location);
    if (it == objects_.end() || it->second.key != key || it->second.size != size) {
      return NotFound(fmt::format("no SSD record {} of that object", location));
    }
  }
  const uint64_t bytes = RecordBytes(size);
  int fd = OpenFile(PathOf(location), O_RDONLY);
  if (fd < 0) return NotFound("SSD record " + std::to_string(location) + ": " + std::strerror(errno));
  AlignedBuf bounce;
  void* target = dst;
  if (direct_ && !IsAligned(dst)) {
    bounce = Aligned(bytes);
    target = bounce.get();
  }
  Status s = Io(fd, false, target, bytes, 0);
  close(fd);
  RETURN_IF_ERROR(s);
  if (target != dst) std::memcpy(dst, target, bytes);
  RecordHeader h;
  std::memcpy(&h, dst, sizeof(h));
  if (!h.Valid() || h.key() != key || h.size != size || h.generation != location) {
    return DataLoss(fmt::format("SSD record {}: bad header", location));
  }
  return Status::Ok();
}

Status SsdTier::Read(uint64_t location, const Key& key, std::span<std::byte> out,
                     std::optional<uint64_t> expect_checksum) {
  const ScatterPart whole{out.data(), out.size()};
  return Read(location, key, out.size(), std::span<const ScatterPart>(&whole, 1), expect_checksum);
}

Status SsdTier::Read(uint64_t location, const Key& key, uint64_t size, std::span<const ScatterPart> parts,
                     std::optional<uint64_t> expect_checksum) {
  AlignedBuf buf = Aligned(RecordBytes(size));
  RETURN_IF_ERROR(ReadRecord(location, key, buf.get(), size));
  RecordHeader h;
  std::memcpy(&h, buf.get(), sizeof(h));
  // Copied and hashed in one pass; on a mismatch the caller is told, and
  // what landed in `parts` is not to be used.
  if (ScatterAndHash64(parts, buf.get() + kBlock, size) != h.checksum ||
      (expect_checksum && *expect_checksum != h.checksum)) {
    return DataLoss(fmt::format("SSD record {}: checksum mismatch", location));
  }
  return Status::Ok();
}

void SsdTier::Remove(uint64_t location) {
  {
    MutexLock lock(mu_);
    auto it = objects_.find(location);
    if (it == objects_.end()) return;
    used_ -= RecordBytes(it->second.size);
    objects_.erase(it);
  }
  unlink(PathOf(location).c_str());
}

}  // namespace crescent::store
