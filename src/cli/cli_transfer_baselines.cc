#include "cli/cli_transfer_baselines.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "base/subprocess.h"

namespace crescent::cli {
namespace {

int LoopbackListener(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 1) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

std::vector<std::string> PerftestEnv(const PerftestOptions& o) {
  std::vector<std::string> env = {"UCX_TLS=" + o.transports, "UCX_NET_DEVICES=" + o.net_devices};
  for (const auto& [k, v] : o.ucx_settings) env.push_back("UCX_" + k + "=" + v);
  return env;
}

}  // namespace

Result<double> RunUcxPerftest(const PerftestOptions& o) {
  if (access("/usr/bin/ucx_perftest", X_OK) != 0) return Unavailable("ucx_perftest not found (ucx-utils)");
  uint16_t port = 0;
  int probe = LoopbackListener(&port);  // a free port for the perftest rendezvous
  if (probe < 0) return Unavailable("no free loopback port");
  close(probe);
  std::vector<std::string> env = PerftestEnv(o);
  ASSIGN_OR_RETURN(pid_t server, SpawnProcess({"/usr/bin/ucx_perftest", "-p", std::to_string(port)}, env, kInheritFd,
                                              kDevNullFd, kDevNullFd));
  std::string output;
  int status = 0;
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) break;
    Result<pid_t> client = SpawnProcess({"/usr/bin/ucx_perftest", "127.0.0.1", "-p", std::to_string(port), "-t",
                                        o.read ? "ucp_get" : "ucp_put_bw", "-s", std::to_string(o.size), "-n",
                                        std::to_string(o.iterations)},
                                       env, kInheritFd, pipefd[1], kDevNullFd);
    close(pipefd[1]);
    if (!client.ok()) {
      close(pipefd[0]);
      break;
    }
    output.clear();
    char buf[4096];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) output.append(buf, static_cast<size_t>(n));
    close(pipefd[0]);
    waitpid(*client, &status, 0);
    if (output.find("Final:") != std::string::npos) break;  // else the server was not listening yet
  }
  kill(server, SIGTERM);
  waitpid(server, nullptr, 0);
  size_t at = output.find("Final:");
  if (at == std::string::npos) return Unavailable("ucx_perftest printed no result");
  // Final: iterations typical_lat avg_lat overall_lat avg_bw overall_bw avg_mr overall_mr
  std::istringstream line(output.substr(at + 6));
  double iters, typical, avg_lat, overall_lat, avg_bw, overall_bw;
  if (!(line >> iters >> typical >> avg_lat >> overall_lat >> avg_bw >> overall_bw)) {
    return Unavailable("cannot parse ucx_perftest output");
  }
  return overall_bw * 1048576.0 / 1e9;  // its MB is 2^20 bytes
}

Result<double> TcpSocketBandwidth(uint64_t size, uint64_t total_bytes) {
  uint16_t port = 0;
  int listener = LoopbackListener(&port);
  if (listener < 0) return Unavailable("cannot listen on 127.0.0.1");
  uint64_t writes = (total_bytes + size - 1) / size;
  uint64_t total = writes * size;
  uint64_t received = 0;
  std::thread receiver([&] {
    int c = accept(listener, nullptr, nullptr);
    if (c < 0) return;
    std::vector<char> buf(std::min<uint64_t>(size, 4u << 20));
    while (received < total) {
      ssize_t n = recv(c, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      received += static_cast<uint64_t>(n);
    }
    close(c);
  });
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto t0 = std::chrono::steady_clock::now();
  bool ok = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  std::vector<char> data(size, 'x');
  for (uint64_t i = 0; ok && i < writes; ++i) {
    uint64_t sent = 0;
    while (ok && sent < size) {
      ssize_t n = send(s, data.data() + sent, size - sent, MSG_NOSIGNAL);
      if (n <= 0) ok = false;
      else sent += static_cast<uint64_t>(n);
    }
  }
  receiver.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  close(s);
  close(listener);
  if (!ok || received < total) return Unavailable("loopback TCP stream failed");
  return static_cast<double>(total) / secs / 1e9;
}

}  // namespace crescent::cli
