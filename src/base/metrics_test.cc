#include "base/metrics.h"

#include <gtest/gtest.h>

namespace crescent {
namespace {

TEST(Metrics, CounterGaugeRenderInPrometheusText) {
  MetricsRegistry reg;
  Counter* ok = reg.AddCounter("x_requests_total", "Requests", {{"status", "200"}});
  Counter* bad = reg.AddCounter("x_requests_total", "Requests", {{"status", "400"}});
  EXPECT_EQ(ok, reg.AddCounter("x_requests_total", "Requests", {{"status", "200"}}));
  ok->Increment();
  ok->Increment(2);
  bad->Increment();
  reg.AddGauge("x_running", "Running")->Set(7);
  const std::string text = reg.Render();
  EXPECT_NE(text.find("# TYPE x_requests_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_requests_total{status=\"200\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_requests_total{status=\"400\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE x_running gauge\nx_running 7\n"), std::string::npos) << text;
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  MetricsRegistry reg;
  Histogram* h = reg.AddHistogram("x_latency_seconds", "Latency", {}, {0.1, 1.0});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(0.5);
  h->Observe(5);
  EXPECT_EQ(h->CumulativeCount(0), 1u);
  EXPECT_EQ(h->CumulativeCount(1), 3u);
  EXPECT_EQ(h->CumulativeCount(2), 4u);
  const std::string text = reg.Render();
  EXPECT_NE(text.find("x_latency_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_latency_seconds_bucket{le=\"1\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_latency_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_latency_seconds_count 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_latency_seconds_sum 6.05\n"), std::string::npos) << text;
}

TEST(Metrics, LabelValuesAreEscaped) {
  MetricsRegistry reg;
  reg.AddCounter("x_total", "X", {{"path", "a\"b\\c"}})->Increment();
  EXPECT_NE(reg.Render().find("x_total{path=\"a\\\"b\\\\c\"} 1\n"), std::string::npos);
}

TEST(Metrics, ExponentialBuckets) {
  auto b = ExponentialBuckets(0.001, 2, 4);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_DOUBLE_EQ(b[3], 0.008);
}

}  // namespace
}  // namespace crescent
