#include "cli/cli_store_baselines.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "base/json.h"
#include "base/subprocess.h"
#include "cli/cli_util.h"
#include "cli/commands.h"

namespace crescent::cli {
namespace {

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads one RESP reply; for a bulk string, its payload into `out`.
bool ReadReply(int fd, std::string& buf, std::string* out) {
  auto fill = [&]() {
    char tmp[1 << 16];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  };
  size_t eol;
  while ((eol = buf.find("\r\n")) == std::string::npos) {
    if (!fill()) return false;
  }
  const char kind = buf[0];
  if (kind == '+' || kind == '-' || kind == ':') {
    const bool ok = kind != '-';
    buf.erase(0, eol + 2);
    return ok;
  }
  if (kind != '$') return false;
  const long long len = std::stoll(buf.substr(1, eol - 1));
  buf.erase(0, eol + 2);
  if (len < 0) return false;
  while (buf.size() < static_cast<size_t>(len) + 2) {
    if (!fill()) return false;
  }
  if (out) out->assign(buf.data(), static_cast<size_t>(len));
  buf.erase(0, static_cast<size_t>(len) + 2);
  return true;
}

double Pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

Result<std::unique_ptr<RedisServer>> RedisServer::Start() {
  std::unique_ptr<RedisServer> r(new RedisServer());
  r->port_ = FreeLocalPort();
  ASSIGN_OR_RETURN(r->pid_, SpawnProcess({"redis-server", "--port", std::to_string(r->port_), "--bind", "127.0.0.1",
                                          "--save", "", "--appendonly", "no", "--protected-mode", "no"},
                                         {}, kDevNullFd, kDevNullFd, kDevNullFd));
  for (int i = 0; i < 100; ++i) {
    int fd = Connect(r->port_);
    if (fd >= 0) {
      close(fd);
      return r;
    }
    int status;
    if (waitpid(r->pid_, &status, WNOHANG) == r->pid_) {
      r->pid_ = -1;
      return Unavailable("redis-server exited at start (is Debian's redis-server installed? scripts/setup.sh)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Unavailable("redis-server did not start");
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
}

Result<RedisFigures> RedisServer::SetGet(uint64_t size, int count) {
  int fd = Connect(port_);
  if (fd < 0) return Unavailable("cannot reach redis-server");
  std::string value(size, '\0');
  std::mt19937_64 rng(size);
  for (auto& c : value) c = static_cast<char>(rng());
  std::string buf, got;
  std::vector<double> set_us, get_us;
  double set_s = 0, get_s = 0;
  Status bad;
  for (int pass = 0; pass < 2 && bad.ok(); ++pass) {
    for (int i = 0; i < count; ++i) {
      const std::string key = fmt::format("k{}", i);
      std::string cmd = pass == 0 ? fmt::format("*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n${}\r\n", key.size(), key, size)
                                  : fmt::format("*2\r\n$3\r\nGET\r\n${}\r\n{}\r\n", key.size(), key);
      auto t0 = std::chrono::steady_clock::now();
      bool ok = WriteAll(fd, cmd.data(), cmd.size());
      if (pass == 0) ok = ok && WriteAll(fd, value.data(), value.size()) && WriteAll(fd, "\r\n", 2);
      ok = ok && ReadReply(fd, buf, pass == 1 ? &got : nullptr);
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!ok || (pass == 1 && got.size() != size)) {
        bad = Internal("redis " + std::string(pass ? "GET" : "SET") + " failed");
        break;
      }
      (pass ? get_s : set_s) += dt;
      (pass ? get_us : set_us).push_back(dt * 1e6);
    }
  }
  close(fd);
  RETURN_IF_ERROR(bad);
  RedisFigures f;
  f.set_gb_s = static_cast<double>(size) * count / set_s / 1e9;
  f.get_gb_s = static_cast<double>(size) * count / get_s / 1e9;
  f.set_p50_us = Pct(set_us, 0.5);
  f.set_p99_us = Pct(set_us, 0.99);
  f.get_p50_us = Pct(get_us, 0.5);
  f.get_p99_us = Pct(get_us, 0.99);
  return f;
}

Result<FioFigures> RunFio(const std::string& dir, uint64_t bytes) {
  FioFigures f;
  for (const char* rw : {"write", "read"}) {
    const std::string out = dir + "/fio.json";
    const std::vector<std::string> argv = {"fio", "--name=seq", "--directory=" + dir, "--filename=fio.dat",
                                           std::string("--rw=") + rw, "--bs=1M", "--size=" + std::to_string(bytes),
                                           "--direct=1", "--ioengine=io_uring", "--iodepth=8",
                                           "--output-format=json", "--output=" + out};
    Result<pid_t> pid = SpawnProcess(argv, {}, kDevNullFd, kDevNullFd, kDevNullFd);
    if (!pid.ok()) return pid.status();
    int status = 0;
    waitpid(*pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return Unavailable("fio failed (is Debian's fio installed? scripts/setup.sh)");
    }
    ASSIGN_OR_RETURN(boost::json::value v, ReadJsonFile(out));
    try {
      const auto& job = v.at("jobs").as_array().at(0).as_object().at(rw).as_object();
      const double bw_bytes = job.at("bw_bytes").to_number<double>();
      (std::string(rw) == "write" ? f.write_gb_s : f.read_gb_s) = bw_bytes / 1e9;
    } catch (const std::exception& e) {
      return DataLoss(std::string("fio's JSON: ") + e.what());
    }
  }
  std::error_code ec;
  std::filesystem::remove(dir + "/fio.dat", ec);
  std::filesystem::remove(dir + "/fio.json", ec);
  return f;
}

double MemcpyGbS(const std::byte* src, std::byte* dst, uint64_t size, int count) {
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < count; ++i) std::memcpy(dst + size * i, src + size * i, size);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(size) * count / s / 1e9);
  }
  return best;
}

BenchDir::BenchDir(const std::string& dir, const std::string& name) : path_(dir) {
  if (!path_.empty()) return;
  std::string tmpl = "/var/tmp/crescent-bench-" + name + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw CommandError("cannot make a temp directory in /var/tmp");
  path_ = tmpl;
  own_ = true;
}

BenchDir::~BenchDir() {
  std::error_code ec;
  if (own_) std::filesystem::remove_all(path_, ec);
}

}  // namespace crescent::cli
