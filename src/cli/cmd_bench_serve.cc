// `crescent bench serve`: what the HTTP layer costs. It starts `crescent serve`
// in-process on 127.0.0.1 and measures max_tokens=1 completions over keep-alive
// connections, against the engine's own time for the same work (Engine::Submit
// of the same tokens) in the same run, interleaved so that load on the machine
// hits both alike.
//
//   latency:    one client, requests one after another; HTTP and engine-direct
//               requests alternate; p50/p99 of each and the p50 difference
//   throughput: `--concurrency` clients (threads, one connection each) for
//               `--requests` requests; requests/s over HTTP and engine-direct
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "model/tokenizer.h"
#include "server/server.h"

namespace crescent::cli {

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

// One keep-alive connection issuing completions.
class Client {
 public:
  Client(int port, std::string body) : socket_(io_), body_(std::move(body)) {
    socket_.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
    socket_.set_option(asio::ip::tcp::no_delay(true));
  }
  // Seconds for one request; throws CommandError on a failure.
  double Once() {
    http::request<http::string_body> req{http::verb::post, "/v1/completions", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.body() = body_;
    req.prepare_payload();
    const auto t0 = Clock::now();
    http::write(socket_, req);
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    const auto t1 = Clock::now();
    if (res.result_int() != 200) throw CommandError("bench serve: HTTP " + std::to_string(res.result_int()) + ": " + res.body());
    return Seconds(t0, t1);
  }

 private:
  asio::io_context io_;
  asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::string body_;
};

// Engine::Submit of the same tokens, waiting for the final output.
double EngineOnce(engine::Engine& e, const std::vector<int32_t>& prompt) {
  engine::EngineRequest r;
  r.prompt = prompt;
  r.params.max_tokens = 1;
  r.params.sampling.temperature = 0;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  const auto t0 = Clock::now();
  auto id = e.Submit(std::move(r), [&](engine::RequestOutput o) {
    if (!o.finished) return;
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_one();
  });
  ThrowIfError(id.status());
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return Seconds(t0, Clock::now());
}

// Runs `total` calls of `fn(thread)` on `threads` threads; returns requests/s.
template <typename Fn>
double Throughput(int threads, int total, Fn fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> ts;
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      while (next.fetch_add(1) < total) fn(t);
    });
  }
  for (auto& t : ts) t.join();
  return static_cast<double>(total) / Seconds(t0, Clock::now());
}

}  // namespace

void RegisterBenchServe(CLI::App& bench) {
  struct Opts {
    server::ServeOptions serve;
    int requests = 400;
    int concurrency = 8;
    std::string prompt = "The capital of France is Paris, and the capital of Italy is";
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  o->serve.model.spec = "dummy:tiny-llama3";
  o->serve.port = 0;
  o->serve.kv_cache_bytes = 256 << 20;
  CLI::App* cmd = bench.add_subcommand("serve", "HTTP serving overhead: requests/s and p50/p99 latency with "
                                                "max_tokens=1, against the engine's own time in the same run");
  cmd->add_option("--model", o->serve.model.spec, "Model folder or dummy:<preset>")->capture_default_str();
  cmd->add_option("--dummy-dir", o->serve.model.dummy_dir, "Folder for the dummy model");
  cmd->add_option("--tokenizer-dir", o->serve.model.tokenizer_dir, "Tokenizer folder for dummy models");
  cmd->add_option("--kv-cache-bytes", o->serve.kv_cache_bytes, "KV cache size")->capture_default_str();
  cmd->add_option("--requests", o->requests, "Requests per measurement")->check(CLI::Range(10, 1000000))->capture_default_str();
  cmd->add_option("--concurrency", o->concurrency, "Clients in the throughput run")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "Prompt text");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] {
    auto srv = ValueOrThrow(server::Server::Start(o->serve));
    ThrowIfError(srv->WaitUntilLoaded());
    engine::Engine& eng = *srv->engine();
    const std::vector<int32_t> tokens = eng.tokenizer()->Encode(o->prompt, true);
    const std::string body = boost::json::serialize(boost::json::object{
        {"prompt", o->prompt}, {"max_tokens", 1}, {"temperature", 0}, {"model", o->serve.model.spec}});

    Client client(srv->port(), body);
    for (int i = 0; i < 20; ++i) {  // warm up both paths (and the prefix cache)
      client.Once();
      EngineOnce(eng, tokens);
    }
    std::vector<double> http_lat, engine_lat;
    for (int i = 0; i < o->requests; ++i) {
      http_lat.push_back(client.Once());
      engine_lat.push_back(EngineOnce(eng, tokens));
    }
    std::vector<std::unique_ptr<Client>> clients;
    for (int t = 0; t < o->concurrency; ++t) clients.push_back(std::make_unique<Client>(srv->port(), body));
    const double http_rps = Throughput(o->concurrency, o->requests, [&](int t) { clients[t]->Once(); });
    const double engine_rps = Throughput(o->concurrency, o->requests, [&](int) { EngineOnce(eng, tokens); });
    clients.clear();
    srv->Shutdown(1.0);

    const double hp50 = Percentile(http_lat, 0.5) * 1e3, hp99 = Percentile(http_lat, 0.99) * 1e3;
    const double ep50 = Percentile(engine_lat, 0.5) * 1e3, ep99 = Percentile(engine_lat, 0.99) * 1e3;
    // Each HTTP request is paired with the engine-direct one right after it; the
    // median of the pairwise differences is less sensitive to drift in load.
    std::vector<double> diffs;
    for (size_t i = 0; i < http_lat.size(); ++i) diffs.push_back(http_lat[i] - engine_lat[i]);
    const double paired = Percentile(diffs, 0.5) * 1e3;
    const double overhead = hp50 - ep50;
    if (o->json) {
      boost::json::object out{{"requests", o->requests},          {"concurrency", o->concurrency},
                              {"prompt_tokens", tokens.size()},   {"http_p50_ms", hp50},
                              {"http_p99_ms", hp99},              {"engine_p50_ms", ep50},
                              {"engine_p99_ms", ep99},            {"http_overhead_p50_ms", overhead},
                              {"http_overhead_paired_median_ms", paired},
                              {"http_requests_per_s", http_rps},  {"engine_requests_per_s", engine_rps},
                              {"overhead_under_1ms", overhead < 1.0}};
      std::printf("%s\n", boost::json::serialize(out).c_str());
      return;
    }
    std::printf("bench serve: %s, %zu prompt tokens, max_tokens=1, %d requests\n", o->serve.model.spec.c_str(),
                tokens.size(), o->requests);
    std::printf("  latency (1 client)   HTTP p50 %.3f ms  p99 %.3f ms | engine p50 %.3f ms  p99 %.3f ms\n", hp50, hp99,
                ep50, ep99);
    std::printf("  HTTP overhead at p50 %.3f ms, median of paired differences %.3f ms (target < 1 ms: %s)\n", overhead,
                paired, overhead < 1.0 ? "met" : "MISSED");
    std::printf("  throughput (%d clients)  HTTP %.0f req/s | engine %.0f req/s (%.0f%%)\n", o->concurrency, http_rps,
                engine_rps, engine_rps > 0 ? 100.0 * http_rps / engine_rps : 0.0);
  });
}

}  // namespace crescent::cli
