// UcxContext: one UCP context (RMA + wakeup features) configured from
// EngineOptions: transports, network devices and extra UCX settings are set
// through ucp_config_modify, so they override the UCX_* environment.
// Ownership: move-only; owns the ucp_context_h. Thread-safety: the context is
// created with shared-worker locking, so mem_map/unmap may run on any thread.
#pragma once

#include <ucp/api/ucp.h>

#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "transfer/transfer_types.h"

namespace crescent::transfer {

class UcxContext {
 public:
  static Result<UcxContext> Create(const EngineOptions& options);
  UcxContext() = default;
  ~UcxContext();
  UcxContext(UcxContext&& o) noexcept : context_(o.context_) { o.context_ = nullptr; }
  UcxContext& operator=(UcxContext&& o) noexcept;
  UcxContext(const UcxContext&) = delete;
  UcxContext& operator=(const UcxContext&) = delete;

  ucp_context_h get() const { return context_; }

 private:
  ucp_context_h context_ = nullptr;
};

// The TCP settings EngineOptions::tune_tcp applies, in ucp_config_modify's
// names (the environment spells them UCX_TCP_<name>).
std::vector<std::pair<std::string, std::string>> TcpTuningSettings();

// "UCX <what>: <ucs_status_string>" with the matching Status code.
Status UcxError(std::string_view what, ucs_status_t status);

}  // namespace crescent::transfer
