// The HTTP client's deadline is real: a server that accepts and never
// answers, or stalls mid-response, costs the caller the timeout and no more.
#include "transfer/http_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "transfer/fault_servers.h"

namespace crescent::transfer {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

HttpEndpoint Ep(const std::string& text) { return ParseHttpEndpoint(text).value(); }

TEST(HttpClientTest, ParsesEndpoints) {
  EXPECT_EQ(Ep("127.0.0.1:2379").port, 2379);
  EXPECT_EQ(Ep("http://[::1]:80/").host, "::1");
  EXPECT_FALSE(ParseHttpEndpoint("nonsense").ok());
  EXPECT_FALSE(ParseHttpEndpoint("h:0").ok());
  EXPECT_FALSE(ParseHttpEndpoint("h:99999").ok());
}

TEST(HttpClientTest, SilentServerCostsTheTimeoutAndNoMore) {
  testing::SilentServer silent;
  auto t0 = Clock::now();
  Result<std::string> r = HttpPost(Ep(silent.endpoint()), "/v3/kv/range", "{}", 300);
  const double secs = SecondsSince(t0);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("no answer within 300 ms"), std::string::npos) << r.status().message();
  EXPECT_GE(secs, 0.29);
  EXPECT_LT(secs, 0.8);
  EXPECT_EQ(silent.accepted(), 1);
}

// A server that sends the header and then a body byte every 100 ms, for longer
// than the deadline: the deadline covers the whole exchange, not each read.
TEST(HttpClientTest, TricklingServerCannotStretchTheDeadline) {
  testing::Listener listener;
  std::atomic<bool> stop{false};
  std::thread server([&] {
    int fd = listener.Accept(stop);
    if (fd < 0) return;
    char buf[4096];
    (void)!read(fd, buf, sizeof(buf));
    const char* head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    (void)!write(fd, head, strlen(head));
    for (int i = 0; i < 100 && !stop.load(); ++i) {
      if (write(fd, "x", 1) != 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    close(fd);
  });
  auto t0 = Clock::now();
  Result<std::string> r = HttpPost(Ep(listener.endpoint()), "/", "{}", 500);
  const double secs = SecondsSince(t0);
  stop.store(true);
  server.join();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_LT(secs, 1.0);
}

TEST(HttpClientTest, RefusedConnectionIsUnavailableAtOnce) {
  int port;
  {
    testing::Listener l;  // a port that was free a moment ago, now closed
    port = l.port();
  }
  auto t0 = Clock::now();
  Result<std::string> r = HttpPost(Ep("127.0.0.1:" + std::to_string(port)), "/", "{}", 2000);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_LT(SecondsSince(t0), 0.5);
}

// A stream that sends two pieces then goes quiet: ReadSome delivers the
// pieces, times out while quiet (and stays usable), and Cancel() from another
// thread ends a blocked read at once.
TEST(HttpClientTest, StreamReadsTimesOutAndCancels) {
  testing::Listener listener;
  std::atomic<bool> stop{false};
  std::atomic<bool> send_third{false};
  std::thread server([&] {
    int fd = listener.Accept(stop);
    if (fd < 0) return;
    char buf[4096];
    (void)!read(fd, buf, sizeof(buf));
    std::string msg = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello\n\r\n";
    (void)!write(fd, msg.data(), msg.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    msg = "6\r\nworld\n\r\n";
    (void)!write(fd, msg.data(), msg.size());
    while (!send_third.load() && !stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    msg = "4\r\nmore\r\n";
    (void)!write(fd, msg.data(), msg.size());
    while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    close(fd);
  });
  auto stream = HttpStream::Open(Ep(listener.endpoint()), "/watch", "{}", 1000);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  std::string got;
  while (got.size() < 12) {
    Result<std::string> piece = (*stream)->ReadSome(1000);
    ASSERT_TRUE(piece.ok()) << piece.status().ToString();
    got += *piece;
  }
  EXPECT_EQ(got, "hello\nworld\n");
  auto t0 = Clock::now();
  EXPECT_EQ((*stream)->ReadSome(200).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(SecondsSince(t0), 0.6);
  send_third.store(true);
  Result<std::string> more = (*stream)->ReadSome(2000);  // the pending read goes on
  ASSERT_TRUE(more.ok()) << more.status().ToString();
  EXPECT_EQ(*more, "more");
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (*stream)->Cancel();
  });
  t0 = Clock::now();
  EXPECT_EQ((*stream)->ReadSome(10'000).status().code(), StatusCode::kCancelled);
  EXPECT_LT(SecondsSince(t0), 1.0);
  canceller.join();
  stop.store(true);
  server.join();
}

TEST(HttpClientTest, StreamOpenToASilentServerTimesOut) {
  testing::SilentServer silent;
  auto t0 = Clock::now();
  auto s = HttpStream::Open(Ep(silent.endpoint()), "/v3/watch", "{}", 300);
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  EXPECT_LT(SecondsSince(t0), 0.8);
}

}  // namespace
}  // namespace crescent::transfer
