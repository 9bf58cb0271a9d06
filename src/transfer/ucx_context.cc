#include "transfer/ucx_context.h"

namespace crescent::transfer {

Status UcxError(std::string_view what, ucs_status_t status) {
  std::string m = "UCX " + std::string(what) + ": " + ucs_status_string(status);
  switch (status) {
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_REJECTED:
    case UCS_ERR_NOT_CONNECTED:
      return Unavailable(std::move(m));
    case UCS_ERR_TIMED_OUT:
      return DeadlineExceeded(std::move(m));
    case UCS_ERR_CANCELED:
      return Cancelled(std::move(m));
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_NO_RESOURCE:
      return ResourceExhausted(std::move(m));
    default:
      return Internal(std::move(m));
  }
}

std::vector<std::pair<std::string, std::string>> TcpTuningSettings() {
  return {{"TX_SEG_SIZE", "64K"}, {"RX_SEG_SIZE", "256K"}, {"SNDBUF", "4M"}, {"RCVBUF", "4M"}};
}

Result<UcxContext> UcxContext::Create(const EngineOptions& options) {
  ucp_config_t* config = nullptr;
  ucs_status_t st = ucp_config_read(nullptr, nullptr, &config);
  if (st != UCS_OK) return UcxError("config_read", st);
  auto modify = [&](const std::string& name, const std::string& value) -> Status {
    ucs_status_t s = ucp_config_modify(config, name.c_str(), value.c_str());
    if (s != UCS_OK) return InvalidArgument("UCX setting " + name + "=" + value + ": " + ucs_status_string(s));
    return Status::Ok();
  };
  Status status;
  if (!options.transports.empty()) status = modify("TLS", options.transports);
  if (status.ok() && !options.net_devices.empty()) status = modify("NET_DEVICES", options.net_devices);
  bool tcp = options.transports.empty() || options.transports.find("tcp") != std::string::npos;
  if (options.tune_tcp && tcp) {
    for (const auto& [name, value] : TcpTuningSettings()) {
      if (status.ok()) status = modify(name, value);
    }
  }
  for (const auto& [name, value] : options.ucx_settings) {
    if (status.ok()) status = modify(name, value);
  }
  if (!status.ok()) {
    ucp_config_release(config);
    return status;
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = 1;
  UcxContext ctx;
  st = ucp_init(&params, config, &ctx.context_);
  ucp_config_release(config);
  if (st != UCS_OK) return UcxError("init (transports '" + options.transports + "')", st);
  return ctx;
}

UcxContext::~UcxContext() {
  if (context_) ucp_cleanup(context_);
}

UcxContext& UcxContext::operator=(UcxContext&& o) noexcept {
  if (this != &o) {
    if (context_) ucp_cleanup(context_);
    context_ = o.context_;
    o.context_ = nullptr;
  }
  return *this;
}

}  // namespace crescent::transfer
