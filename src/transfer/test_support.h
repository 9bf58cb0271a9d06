// Test-only helpers for the transfer tests (header-only; included by *_test.cc
// files only): child processes with line-based pipes, free loopback ports,
// and a private etcd server on a temp data dir that the test starts and stops.
// Thread-safety: none; one test thread uses each object.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/subprocess.h"
#include "transfer/http_client.h"

namespace crescent::transfer::testing {

// A port that was free on 127.0.0.1 a moment ago.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A child process; its stdin and stdout are pipes to us, stderr is inherited.
class Subprocess {
 public:
  static Result<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                   const std::vector<std::string>& env = {}) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return Internal("pipe failed");
    Result<pid_t> pid = SpawnProcess(argv, env, in[0], out[1], kInheritFd);
    close(in[0]);
    close(out[1]);
    if (!pid.ok()) {
      close(in[1]);
      close(out[0]);
      return pid.status();
    }
    auto p = std::unique_ptr<Subprocess>(new Subprocess());
    p->pid_ = *pid;
    p->to_child_ = in[1];
    p->from_child_ = out[0];
    return p;
  }
  ~Subprocess() {
    if (pid_ > 0) {
      Kill(SIGKILL);
      Wait();
    }
    if (to_child_ >= 0) close(to_child_);
    if (from_child_ >= 0) close(from_child_);
  }
  pid_t pid() const { return pid_; }
  // Sends sig. SIGSTOP returns only once the whole child has stopped (a
  // signal is delivered asynchronously: a child running on another core may
  // otherwise still answer a request or two after kill() returns).
  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    if (sig != SIGSTOP) return;
    int status = 0;
    if (waitpid(pid_, &status, WUNTRACED) == pid_ && !WIFSTOPPED(status)) pid_ = -1;  // it died
  }
  // Reaps the child; returns its wait status.
  int Wait() {
    int status = 0;
    if (pid_ > 0) waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  bool WriteLine(const std::string& line) {
    std::string l = line + "\n";
    return write(to_child_, l.data(), l.size()) == static_cast<ssize_t>(l.size());
  }
  // One line from the child's stdout, without the newline; an error on EOF or
  // when nothing complete arrives within timeout_ms.
  Result<std::string> ReadLine(int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (left <= 0) return DeadlineExceeded("no line from child within " + std::to_string(timeout_ms) + " ms");
      pollfd p{from_child_, POLLIN, 0};
      if (poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = read(from_child_, buf, sizeof(buf));
      if (n <= 0) return Unavailable("child closed its stdout");
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }
  // Reads lines until one starts with `prefix`; returns it.
  Result<std::string> Expect(const std::string& prefix, int timeout_ms) {
    for (;;) {
      ASSIGN_OR_RETURN(std::string line, ReadLine(timeout_ms));
      if (line.rfind(prefix, 0) == 0) return line;
    }
  }
  // Reads lines until one starts with "PASS" or "FAIL" (UCX may log to stdout).
  Result<std::string> ExpectVerdict(int timeout_ms) {
    for (;;) {
      ASSIGN_OR_RETURN(std::string line, ReadLine(timeout_ms));
      if (line.rfind("PASS", 0) == 0 || line.rfind("FAIL", 0) == 0) return line;
    }
  }

 private:
  Subprocess() = default;
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  std::string buffer_;
};

// A private etcd on `host` with random ports and a temp data dir, removed on
// destruction. `netns` non-empty runs it inside that network namespace.
// Signal() stops or continues it (SIGSTOP/SIGCONT); Restart() kills it and
// starts it again on the same ports and data.
class EtcdServer {
 public:
  static Result<std::unique_ptr<EtcdServer>> Start(const std::string& host = "127.0.0.1",
                                                   const std::string& netns = "") {
    auto s = std::unique_ptr<EtcdServer>(new EtcdServer());
    char tmpl[] = "/tmp/crescent-etcd-XXXXXX";
    if (!mkdtemp(tmpl)) return Internal("mkdtemp failed");
    s->dir_ = tmpl;
    s->host_ = host;
    s->netns_ = netns;
    s->client_port_ = FreePort();
    s->peer_port_ = FreePort();
    s->endpoint_ = host + ":" + std::to_string(s->client_port_);
    RETURN_IF_ERROR(s->Launch());
    return s;
  }
  ~EtcdServer() {
    if (process_) {
      process_->Kill(SIGCONT);
      process_->Kill(SIGTERM);
      process_->Wait();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& endpoint() const { return endpoint_; }
  void Signal(int sig) { process_->Kill(sig); }
  // SIGKILL, then the same etcd again (same ports, same data dir).
  Status Restart() {
    process_->Kill(SIGKILL);
    process_->Wait();
    process_.reset();
    return Launch();
  }

 private:
  EtcdServer() = default;
  Status Launch() {
    std::string curl = "http://" + endpoint_;
    std::string purl = "http://" + host_ + ":" + std::to_string(peer_port_);
    std::vector<std::string> argv;
    if (!netns_.empty()) argv = {"ip", "netns", "exec", netns_};
    for (const char* a : {"etcd", "--name", "t"}) argv.push_back(a);
    argv.insert(argv.end(), {"--data-dir", dir_ + "/data", "--listen-client-urls", curl,
                             "--advertise-client-urls", curl, "--listen-peer-urls", purl,
                             "--initial-advertise-peer-urls", purl, "--initial-cluster", "t=" + purl,
                             "--log-outputs", dir_ + "/etcd.log", "--logger", "zap"});
    ASSIGN_OR_RETURN(process_, Subprocess::Start(argv));
    ASSIGN_OR_RETURN(HttpEndpoint ep, ParseHttpEndpoint(endpoint_));
    if (!netns_.empty()) return Status::Ok();  // not reachable from here; the caller waits through a peer
    for (int i = 0; i < 200; ++i) {
      if (HttpPost(ep, "/v3/kv/range", R"({"key":"AA=="})", 500).ok()) return Status::Ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Unavailable("etcd did not come up at " + endpoint_);
  }

  std::string dir_, host_, netns_, endpoint_;
  int client_port_ = 0, peer_port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace crescent::transfer::testing
