// MasterServer: `crescent store-master`: a Master (master.h) behind the
// StoreMaster gRPC service, ticked every 100 ms.
//
// Alone (no etcd), it leads at once with a term taken from the wall clock in
// milliseconds, so a restarted master outranks its previous life. With etcd,
// several servers campaign for `election_key` (leader_election.h); the winner
// starts a new, empty Master with the election's term and rebuilds it from
// the nodes' re-reports; the others answer Unavailable ("not the leader") so
// clients look the leader up again. Every reply carries the serving term in
// the trailing metadata "crescent-term".
//
// Ownership: owns the gRPC server, the election and the ticker.
// Thread-safety: all methods from any thread; the Master runs under one mutex.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "store/master.h"

namespace crescent::store {

struct MasterServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  std::string advertise;  // the address clients are told (default: the bound one)
  std::string etcd;       // host:port of etcd for leader election; empty: alone
  std::string election_key = "crescent/store/leader";
  int64_t lease_ttl_s = 5;
  MasterOptions master;
};

class MasterServer {
 public:
  static Result<std::unique_ptr<MasterServer>> Start(MasterServerOptions options);
  ~MasterServer();
  MasterServer(const MasterServer&) = delete;
  MasterServer& operator=(const MasterServer&) = delete;

  const std::string& address() const;  // the bound host:port
  bool leader() const;
  uint64_t term() const;

  class Impl;

 private:
  explicit MasterServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::store
