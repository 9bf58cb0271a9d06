#include "base/metrics.h"

#include <fmt/format.h>

#include <cmath>

#include "base/check.h"

namespace crescent {

void Counter::Increment(double by) { value_.fetch_add(by, std::memory_order_relaxed); }

void Counter::Mirror(double total) {
  double v = value_.load(std::memory_order_relaxed);
  while (total > v && !value_.compare_exchange_weak(v, total, std::memory_order_relaxed)) {
  }
}

void Gauge::Add(double by) { value_.fetch_add(by, std::memory_order_relaxed); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 1; i < bounds_.size(); ++i) CHECK(bounds_[i - 1] < bounds_[i]) << "bounds must increase";
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

uint64_t Histogram::CumulativeCount(size_t i) const {
  uint64_t n = 0;
  for (size_t b = 0; b <= i && b <= bounds_.size(); ++b) n += buckets_[b].load(std::memory_order_relaxed);
  return n;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

MetricsRegistry::Series& MetricsRegistry::GetSeries(const std::string& name, const std::string& help, Kind kind,
                                                    const MetricLabels& labels) {
  auto [it, inserted] = families_.try_emplace(name, Family{kind, help, {}});
  CHECK(it->second.kind == kind) << "metric " << name << " registered with two types";
  return it->second.series[labels];
}

Counter* MetricsRegistry::AddCounter(const std::string& name, const std::string& help, const MetricLabels& labels) {
  MutexLock lock(mu_);
  Series& s = GetSeries(name, help, Kind::kCounter, labels);
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return s.counter.get();
}

Gauge* MetricsRegistry::AddGauge(const std::string& name, const std::string& help, const MetricLabels& labels) {
  MutexLock lock(mu_);
  Series& s = GetSeries(name, help, Kind::kGauge, labels);
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return s.gauge.get();
}

Histogram* MetricsRegistry::AddHistogram(const std::string& name, const std::string& help, const MetricLabels& labels,
                                         std::vector<double> bounds) {
  MutexLock lock(mu_);
  Series& s = GetSeries(name, help, Kind::kHistogram, labels);
  if (!s.histogram) s.histogram = std::make_unique<Histogram>(std::move(bounds));
  return s.histogram.get();
}

namespace {

// Label values escape backslash, double quote and newline.
std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string LabelText(const MetricLabels& labels, const std::string& extra_key = "", const std::string& extra = "") {
  if (labels.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    out += (first ? "" : ",") + k + "=\"" + Escape(v) + "\"";
    first = false;
  }
  if (!extra_key.empty()) out += (first ? "" : ",") + extra_key + "=\"" + extra + "\"";
  return out + "}";
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

}  // namespace

std::string MetricsRegistry::Render() const {
  MutexLock lock(mu_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    const char* type = fam.kind == Kind::kCounter ? "counter" : fam.kind == Kind::kGauge ? "gauge" : "histogram";
    out += "# HELP " + name + " " + fam.help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, s] : fam.series) {
      if (s.counter) out += name + LabelText(labels) + " " + Number(s.counter->value()) + "\n";
      if (s.gauge) out += name + LabelText(labels) + " " + Number(s.gauge->value()) + "\n";
      if (s.histogram) {
        const Histogram& h = *s.histogram;
        for (size_t i = 0; i <= h.bounds().size(); ++i) {
          std::string le = i < h.bounds().size() ? Number(h.bounds()[i]) : "+Inf";
          out += name + "_bucket" + LabelText(labels, "le", le) + " " + std::to_string(h.CumulativeCount(i)) + "\n";
        }
        out += name + "_sum" + LabelText(labels) + " " + Number(h.sum()) + "\n";
        out += name + "_count" + LabelText(labels) + " " + std::to_string(h.count()) + "\n";
      }
    }
  }
  return out;
}

}  // namespace crescent
