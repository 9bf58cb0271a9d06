// Test-only peers that misbehave on purpose (header-only; included by
// *_test.cc files only), so tests make faults happen instead of waiting for
// them:
//   SilentServer  accepts connections on 127.0.0.1 and never answers (it
//                 reads and drops what arrives, so writes never block);
//   StallProxy    forwards HTTP connections to an upstream, but holds the
//                 ones whose request line contains a chosen text (or all of
//                 them) without forwarding or answering.
// Each runs its own threads and closes every connection on destruction.
// Thread-safety: the setters may be called from any thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>
#include "base/thread_annotations.h"

namespace crescent::transfer::testing {

class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 64);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  // A connection, or -1 after `stop` was set (polled every 50 ms).
  int Accept(const std::atomic<bool>& stop) {
    while (!stop.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) return accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    }
    return -1;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Tracks connection fds and the threads serving them; closes them all at the end.
class ConnectionSet {
 public:
  ~ConnectionSet() { CloseAll(); }
  void Add(int fd) {
    MutexLock lock(mu_);
    fds_.push_back(fd);
  }
  void Spawn(std::thread t) {
    MutexLock lock(mu_);
    threads_.push_back(std::move(t));
  }
  void CloseAll() {
    std::vector<std::thread> threads;
    {
      MutexLock lock(mu_);
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    MutexLock lock(mu_);
    for (int fd : fds_) close(fd);
    fds_.clear();
  }

 private:
  Mutex mu_;
  std::vector<int> fds_ GUARDED_BY(mu_);
  std::vector<std::thread> threads_ GUARDED_BY(mu_);
};

// Reads and drops everything until the peer closes or `stop` is set.
inline void Drain(int fd, const std::atomic<bool>& stop) {
  char buf[4096];
  while (!stop.load()) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    if (read(fd, buf, sizeof(buf)) <= 0) return;
  }
}

class SilentServer {
 public:
  SilentServer() : thread_([this] { Run(); }) {}
  ~SilentServer() {
    stop_.store(true);
    thread_.join();
    conns_.CloseAll();
  }
  std::string endpoint() const { return listener_.endpoint(); }
  int accepted() const { return accepted_.load(); }

 private:
  void Run() {
    for (;;) {
      int fd = listener_.Accept(stop_);
      if (fd < 0) return;
      accepted_.fetch_add(1);
      conns_.Add(fd);
      conns_.Spawn(std::thread([this, fd] { Drain(fd, stop_); }));
    }
  }
  Listener listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  ConnectionSet conns_;
  std::thread thread_;
};

class StallProxy {
 public:
  explicit StallProxy(int upstream_port) : upstream_port_(upstream_port), thread_([this] { Run(); }) {}
  ~StallProxy() {
    stop_.store(true);
    thread_.join();
    conns_.CloseAll();
  }
  std::string endpoint() const { return listener_.endpoint(); }
  // Connections whose request line contains `text` are held ("" holds none,
  // "*" holds all). Applies to connections accepted from now on.
  void Stall(const std::string& text) {
    MutexLock lock(mu_);
    stall_ = text;
  }
  int stalled() const { return stalled_.load(); }

 private:
  void Run() {
    for (;;) {
      int fd = listener_.Accept(stop_);
      if (fd < 0) return;
      conns_.Add(fd);
      conns_.Spawn(std::thread([this, fd] { Serve(fd); }));
    }
  }

  void Serve(int client) {
    // The request line arrives first; decide on it.
    std::string head;
    char buf[16384];
    while (head.find("\r\n") == std::string::npos && !stop_.load()) {
      pollfd p{client, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      ssize_t n = read(client, buf, sizeof(buf));
      if (n <= 0) return;
      head.append(buf, static_cast<size_t>(n));
    }
    std::string stall;
    {
      MutexLock lock(mu_);
      stall = stall_;
    }
    const std::string line = head.substr(0, head.find("\r\n"));
    if (!stall.empty() && (stall == "*" || line.find(stall) != std::string::npos)) {
      stalled_.fetch_add(1);
      Drain(client, stop_);
      return;
    }
    int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    conns_.Add(up);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (connect(up, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return;
    if (write(up, head.data(), head.size()) != static_cast<ssize_t>(head.size())) return;
    // Pump both ways until either side closes.
    pollfd p[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
    while (!stop_.load()) {
      if (poll(p, 2, 50) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = read(p[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          shutdown(p[1 - i].fd, SHUT_WR);
          return;
        }
        if (write(p[1 - i].fd, buf, static_cast<size_t>(n)) != n) return;
      }
    }
  }

  Listener listener_;
  int upstream_port_;
  Mutex mu_;
  std::string stall_ GUARDED_BY(mu_);
  std::atomic<int> stalled_{0};
  std::atomic<bool> stop_{false};
  ConnectionSet conns_;
  std::thread thread_;
};

}  // namespace crescent::transfer::testing
