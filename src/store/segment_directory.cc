#include "store/segment_directory.h"
#include "base/thread_annotations.h"

namespace crescent::store {

SegmentDirectory::SegmentDirectory(std::shared_ptr<MasterApi> master, std::string prefix)
    : master_(std::move(master)), prefix_(std::move(prefix)) {}

Status SegmentDirectory::Put(std::string_view key, std::string_view value) {
  if (!key.starts_with(prefix_)) return Unimplemented("the store's segment directory holds segment descriptors only");
  MutexLock lock(mu_);
  own_.insert_or_assign(std::string(key), std::string(value));
  return Status::Ok();
}

Result<std::string> SegmentDirectory::Get(std::string_view key) {
  if (!key.starts_with(prefix_)) return Unimplemented("the store's segment directory holds segment descriptors only");
  {
    MutexLock lock(mu_);
    auto it = own_.find(key);
    if (it != own_.end()) return it->second;
  }
  proto::GetSegmentDescriptorRequest req;
  req.set_name(std::string(key.substr(prefix_.size())));
  proto::GetSegmentDescriptorReply rep;
  RETURN_IF_ERROR(master_->GetSegmentDescriptor(req, &rep));
  return rep.transfer_descriptor();
}

Status SegmentDirectory::Remove(std::string_view key) {
  MutexLock lock(mu_);
  auto it = own_.find(key);
  if (it != own_.end()) own_.erase(it);
  return Status::Ok();
}

Result<transfer::KeyValue> SegmentDirectory::GetEntry(std::string_view) {
  return Unimplemented("segment directory: no revisions");
}
Result<transfer::ListResult> SegmentDirectory::List(std::string_view) {
  return Unimplemented("segment directory: no listing");
}
Result<int64_t> SegmentDirectory::CompareAndSwap(std::string_view, int64_t, std::string_view, transfer::LeaseId) {
  return Unimplemented("segment directory: no transactions");
}
Status SegmentDirectory::CompareAndDelete(std::string_view, int64_t) {
  return Unimplemented("segment directory: no transactions");
}
Result<transfer::LeaseId> SegmentDirectory::GrantLease(int64_t) { return Unimplemented("segment directory: no leases"); }
Result<int64_t> SegmentDirectory::KeepAliveLease(transfer::LeaseId) {
  return Unimplemented("segment directory: no leases");
}
Status SegmentDirectory::RevokeLease(transfer::LeaseId) { return Unimplemented("segment directory: no leases"); }
Result<std::unique_ptr<transfer::Watch>> SegmentDirectory::WatchPrefix(std::string_view, int64_t,
                                                                       transfer::WatchCallback) {
  return Unimplemented("segment directory: no watches");
}

}  // namespace crescent::store
