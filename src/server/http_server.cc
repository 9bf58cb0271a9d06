#include "server/http_server.h"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <exception>

#include "base/logging.h"

namespace crescent::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& host, int port, HttpOptions options,
                                                      int io_threads) {
  if (port < 0 || port > 65535) return InvalidArgument("port must be in [0, 65535]");
  if (io_threads < 1) return InvalidArgument("io_threads must be positive");
  boost::system::error_code ec;
  asio::ip::address addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return InvalidArgument("--host '" + host + "' is not an IP address");
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->options_ = std::make_shared<const HttpOptions>(std::move(options));
  // The listener and its retry timer share a strand: accepts and StopAccepting
  // never touch the acceptor at the same time.
  s->acceptor_ = std::make_unique<tcp::acceptor>(asio::make_strand(s->ioc_));
  s->retry_timer_ = std::make_unique<asio::steady_timer>(s->acceptor_->get_executor());
  tcp::endpoint ep(addr, static_cast<uint16_t>(port));
  auto& a = *s->acceptor_;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  s->port_ = a.local_endpoint().port();
  s->Accept();
  for (int i = 0; i < io_threads; ++i) {
    s->threads_.emplace_back([srv = s.get()] {
      // A handler that throws (bad_alloc, a Boost error we did not foresee) costs
      // its connection, never the process.
      for (;;) {
        try {
          srv->ioc_.run();
          return;
        } catch (const std::exception& e) {
          LOG_ERROR("http: handler threw: {}", e.what());
        }
      }
    });
  }
  return s;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Accept() {
  acceptor_->async_accept(asio::make_strand(ioc_), [this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
    if (ec) {
      // Out of descriptors or similar: back off instead of spinning.
      LOG_WARNING("accept failed: {}", ec.message());
      retry_timer_->expires_after(std::chrono::milliseconds(50));
      retry_timer_->async_wait([this](boost::system::error_code e) {
        if (!e) Accept();
      });
      return;
    }
    if (conns_->size() >= options_->max_connections) {
      // Over the cap: a short answer written at once (it fits the socket's
      // send buffer), then closed; the acceptor keeps going.
      static const std::string kBusy = [] {
        const std::string body =
            R"({"error":{"message":"too many open connections; retry later","type":"server_error","param":null,"code":null}})";
        return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      }();
      boost::system::error_code ignored;
      socket.non_blocking(true, ignored);
      socket.write_some(asio::buffer(kBusy), ignored);
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      if (options_->on_status) options_->on_status(503);
    } else {
      std::make_shared<HttpConnection>(std::move(socket), options_, conns_)->Start();
    }
    Accept();
  });
}

void HttpServer::StopAccepting() {
  asio::post(acceptor_->get_executor(), [this] {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
    retry_timer_->cancel();
  });
  conns_->CloseAllWhenIdle();
}

void HttpServer::Stop() {
  work_.reset();
  ioc_.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace crescent::server
