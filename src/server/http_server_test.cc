// HttpServer + HttpConnection with a scripted handler, over real loopback
// sockets: keep-alive, pipelining, chunked streaming, limits, and the
// disconnect callback that cancels work. Waits are bounded polls on events the
// handler records, not sleeps standing in for ordering.
#include "server/http_server.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <thread>

namespace crescent::server {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct Fixture {
  std::atomic<int> disconnects{0};
  std::atomic<int> statuses{0};
  std::shared_ptr<HttpExchange> parked;  // a request left unanswered
  std::mutex mu;
  std::unique_ptr<HttpServer> server;

  explicit Fixture(size_t max_connections = 4096, double write_timeout_s = 60) {
    HttpOptions o;
    o.max_connections = max_connections;
    o.max_body_bytes = 1000;
    o.read_timeout_s = 0.5;
    o.write_timeout_s = write_timeout_s;
    o.on_status = [this](int) { ++statuses; };
    o.handler = [this](HttpRequest r, std::shared_ptr<HttpExchange> ex) {
      if (r.path == "/echo") {
        ex->Respond(HttpResponse{200, "text/plain", r.method + " " + r.body, {}, false});
      } else if (r.path == "/stream") {
        ex->StartStream(200, "text/event-stream");
        ex->Write("data: 1\n\n");
        ex->Write("");  // ignored: an empty chunk would end the stream
        ex->Post([ex] {
          ex->Write("data: 2\n\n");
          ex->End();
        });
      } else if (r.path == "/flood") {  // 64 MiB, more than the sockets' buffers hold
        ex->OnDisconnect([this] { ++disconnects; });
        ex->StartStream(200, "text/event-stream");
        for (int i = 0; i < 64; ++i) ex->Write(std::string(1u << 20, 'x'));
        ex->End();
      } else if (r.path == "/park") {
        ex->OnDisconnect([this] { ++disconnects; });
        std::lock_guard<std::mutex> lock(mu);
        parked = ex;
      } else {
        ex->Respond(HttpResponse{404, "text/plain", "no", {}, false});
      }
    };
    server = HttpServer::Start("127.0.0.1", 0, std::move(o), 2).value();
  }
};

std::string Exchange(int port, const std::string& bytes, bool half_close = false) {
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  asio::write(s, asio::buffer(bytes));
  if (half_close) s.shutdown(tcp::socket::shutdown_send);
  std::string out;
  boost::system::error_code ec;
  asio::read(s, asio::dynamic_buffer(out), ec);  // until the server closes
  return out;
}

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 400 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return done();
}

TEST(HttpServer, KeepAliveAndPipelining) {
  Fixture f;
  std::string out = Exchange(f.server->port(),
                             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                             "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Connection: keep-alive"), std::string::npos) << out;
  EXPECT_NE(out.find("POST abc"), std::string::npos) << out;
  EXPECT_NE(out.find("Connection: close\r\n\r\nGET "), std::string::npos) << out;
  EXPECT_EQ(f.statuses.load(), 2);
}

TEST(HttpServer, ChunkedStream) {
  Fixture f;
  std::string out = Exchange(f.server->port(), "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(out.find("Transfer-Encoding: chunked"), std::string::npos) << out;
  const std::string body = out.substr(out.find("\r\n\r\n") + 4);
  EXPECT_EQ(body, "9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n");
}

TEST(HttpServer, LimitsAndMalformedInput) {
  Fixture f;
  const int port = f.server->port();
  EXPECT_EQ(Exchange(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n").substr(0, 12),
            "HTTP/1.1 413");
  EXPECT_EQ(Exchange(port, "NOT HTTP AT ALL\r\n\r\n").substr(0, 12), "HTTP/1.1 400");
  EXPECT_EQ(Exchange(port, "GET /echo HTTP/1.1\r\nX: " + std::string(40000, 'x') + "\r\n\r\n").substr(0, 12),
            "HTTP/1.1 431");
  // Half a request: closed at the read deadline with nothing sent.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Exchange(port, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"), "");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  // Still serving.
  EXPECT_NE(Exchange(port, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n").find("200 OK"), std::string::npos);
}

TEST(HttpServer, DisconnectFiresCallbackAndLateAnswersAreDropped) {
  Fixture f;
  {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(f.server->port())));
    asio::write(s, asio::buffer(std::string("GET /park HTTP/1.1\r\nHost: x\r\n\r\n")));
    ASSERT_TRUE(WaitFor([&] {
      std::lock_guard<std::mutex> lock(f.mu);
      return f.parked != nullptr;
    }));
  }  // the client closes
  EXPECT_TRUE(WaitFor([&] { return f.disconnects.load() == 1; }));
  std::shared_ptr<HttpExchange> ex;
  {
    std::lock_guard<std::mutex> lock(f.mu);
    ex = std::move(f.parked);
  }
  ex->Respond(HttpResponse{200, "text/plain", "late", {}, false});  // no crash, nothing sent
  ex.reset();
  EXPECT_TRUE(WaitFor([&] { return f.server->num_connections() == 0; }));
}

TEST(HttpServer, StopAcceptingClosesIdleConnections) {
  Fixture f;
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(f.server->port())));
  asio::write(s, asio::buffer(std::string("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")));
  std::string out;
  boost::system::error_code ec;
  asio::read(s, asio::dynamic_buffer(out), asio::transfer_at_least(1), ec);
  EXPECT_NE(out.find("200 OK"), std::string::npos);
  f.server->StopAccepting();
  asio::read(s, asio::dynamic_buffer(out), ec);  // returns when the server closes
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
}

// A client that sends a request and then never reads: once the kernel's
// buffers are full the write cannot drain, and at the write deadline the
// connection is closed and its request's disconnect callback fires (the
// engine cancels the request), while other clients are served meanwhile.
TEST(HttpServer, AClientThatStopsReadingIsDroppedAtTheWriteDeadline) {
  Fixture f(4096, /*write_timeout_s=*/0.5);
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(f.server->port())));
  s.set_option(asio::socket_base::receive_buffer_size(64 << 10));
  asio::write(s, asio::buffer(std::string("GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")));
  const auto t0 = std::chrono::steady_clock::now();
  // Served meanwhile: the stalled write holds no io thread.
  EXPECT_NE(Exchange(f.server->port(), "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n").find("200 OK"),
            std::string::npos);
  ASSERT_TRUE(WaitFor([&] { return f.disconnects.load() == 1; })) << "not dropped within 2 s";
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(400)) << "dropped before its deadline";
  EXPECT_TRUE(WaitFor([&] { return f.server->num_connections() == 0; }));
  // What reaches the client is a prefix of the stream, then the end.
  std::string got;
  boost::system::error_code ec;
  asio::read(s, asio::dynamic_buffer(got), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK", 0), 0u);
  EXPECT_LT(got.size(), size_t{64} << 20);
}

// Past the cap a new connection gets a 503 (and is closed) while the open
// ones keep working; once one closes, a new one is served again.
TEST(HttpServer, ConnectionsPastTheCapGet503) {
  Fixture f(2);
  asio::io_context io;
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(f.server->port()));
  auto open_one = [&] {
    auto s = std::make_unique<tcp::socket>(io);
    s->connect(ep);
    return s;
  };
  auto a = open_one();
  auto b = open_one();
  ASSERT_TRUE(WaitFor([&] { return f.server->num_connections() == 2; }));
  const std::string refused = Exchange(f.server->port(), "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0u) << refused;
  EXPECT_NE(refused.find("too many open connections"), std::string::npos);
  // The open ones still answer.
  asio::write(*a, asio::buffer(std::string("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")));
  std::string out;
  boost::system::error_code ec;
  asio::read(*a, asio::dynamic_buffer(out), asio::transfer_at_least(1), ec);
  EXPECT_NE(out.find("200 OK"), std::string::npos);
  b.reset();
  ASSERT_TRUE(WaitFor([&] { return f.server->num_connections() == 1; }));
  EXPECT_NE(Exchange(f.server->port(), "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").find("200 OK"),
            std::string::npos);
}

}  // namespace
}  // namespace crescent::server
