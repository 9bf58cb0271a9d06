// HttpServer: a listening socket and a few io threads running one io_context;
// every accepted connection gets its own strand (HttpConnection), so no thread
// is tied to a connection and engine callbacks only post to a strand.
//
// Past options.max_connections open connections, a new one gets a 503 with
// an OpenAI-style body and is closed (nothing else is read from it).
// Lifecycle: Start (binds; port 0 picks a free one) -> ... -> StopAccepting
// (closes the listener and every idle connection; requests in flight finish)
// -> Stop (stops the io threads, abandoning whatever is left) or destruction.
// Ownership: owns the io_context, the threads and the listener.
// Thread-safety: all methods may be called from any thread, except that Stop
// and the destructor must not run on an io thread.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "server/http_connection.h"

namespace crescent::server {

class HttpServer {
 public:
  // `host`: a literal IPv4/IPv6 address or "localhost".
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& host, int port, HttpOptions options,
                                                   int io_threads);
  ~HttpServer();

  int port() const { return port_; }
  size_t num_connections() const { return conns_->size(); }
  void StopAccepting();
  void Stop();

 private:
  HttpServer() = default;
  void Accept();

  std::shared_ptr<const HttpOptions> options_;
  std::shared_ptr<ConnectionSet> conns_ = std::make_shared<ConnectionSet>();
  boost::asio::io_context ioc_;
  // Keeps run() going while idle: engine callbacks may still post.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<boost::asio::steady_timer> retry_timer_;
  std::vector<std::thread> threads_;
  int port_ = 0;
};

}  // namespace crescent::server
