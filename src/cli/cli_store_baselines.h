// Baselines that `crescent bench store` measures in the same run as the
// store: redis-server (Debian's; a private instance on a free loopback port,
// SET/GET of the same values over one connection, RESP written here) and fio
// (sequential O_DIRECT write then read with io_uring on the store's SSD
// directory). Thread-safety: free functions and a move-only server handle.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace crescent::cli {

struct RedisFigures {
  double set_gb_s = 0, get_gb_s = 0;
  double set_p50_us = 0, set_p99_us = 0, get_p50_us = 0, get_p99_us = 0;
};

class RedisServer {
 public:
  // Starts redis-server with no persistence on 127.0.0.1:<free port>.
  static Result<std::unique_ptr<RedisServer>> Start();
  ~RedisServer();
  // SET then GET of `count` distinct values of `size` bytes, one connection.
  Result<RedisFigures> SetGet(uint64_t size, int count);

 private:
  RedisServer() = default;
  pid_t pid_ = -1;
  int port_ = 0;
};

struct FioFigures {
  double write_gb_s = 0, read_gb_s = 0;
};
// Sequential write then read of `bytes` in 1 MiB blocks on `dir`.
Result<FioFigures> RunFio(const std::string& dir, uint64_t bytes);

// memcpy GB/s of `count` copies of `size` bytes from src to dst (best of 3).
double MemcpyGbS(const std::byte* src, std::byte* dst, uint64_t size, int count);

// A directory for a benchmark's files: `dir` itself, or a fresh one in
// /var/tmp (named after `name`) that the destructor removes.
class BenchDir {
 public:
  BenchDir(const std::string& dir, const std::string& name);
  ~BenchDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool own_ = false;
};

}  // namespace crescent::cli
