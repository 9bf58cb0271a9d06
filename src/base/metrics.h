// Metrics registry: counters, gauges and histograms rendered in the Prometheus
// text exposition format (version 0.0.4), for /metrics.
//
//   MetricsRegistry reg;
//   Counter* ok = reg.AddCounter("crescent_requests_total", "HTTP requests", {{"status", "200"}});
//   Histogram* ttft = reg.AddHistogram("crescent_ttft_seconds", "Time to first token", {}, {0.01, 0.1, 1});
//   ok->Increment();  ttft->Observe(0.05);
//   std::string text = reg.Render();
//
// One family (name) has one type and one help text; each label set is one series.
// Adding the same (name, labels) twice returns the same metric.
// Ownership: the registry owns every metric; pointers stay valid for its lifetime.
// Thread-safety: Increment/Set/Observe are lock-free (atomics) and may be called
// from any thread; Add* and Render take the registry's mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include "base/thread_annotations.h"

namespace crescent {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Increment(double by = 1.0);
  // Follows a monotonic total kept elsewhere (an engine's or a store's
  // counts): the value becomes `total` unless that would lower it.
  void Mirror(double total);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double by);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Cumulative buckets (le = upper bound), plus sum and count.
class Histogram {
 public:
  // REQUIRES: `bounds` strictly increasing (the +Inf bucket is implicit).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Count of observations <= bounds()[i] (i == bounds().size(): all of them).
  uint64_t CumulativeCount(size_t i) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket, not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

class MetricsRegistry {
 public:
  Counter* AddCounter(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  Gauge* AddGauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  Histogram* AddHistogram(const std::string& name, const std::string& help, const MetricLabels& labels,
                          std::vector<double> bounds);
  // Families in name order, series in label order.
  std::string Render() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Series {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    Kind kind;
    std::string help;
    std::map<MetricLabels, Series> series;
  };
  Series& GetSeries(const std::string& name, const std::string& help, Kind kind, const MetricLabels& labels)
      REQUIRES(mu_);

  mutable Mutex mu_;
  std::map<std::string, Family> families_ GUARDED_BY(mu_);
};

// Histogram bounds: `count` values from `start`, each `factor` times the last.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

}  // namespace crescent
