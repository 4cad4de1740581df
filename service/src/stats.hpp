#pragma once

// A worker's counters, read by /metrics and /healthz from any thread. Each has one writer (its
// worker) and any number of relaxed readers: no lock prefix on the hot path, no torn reads.

#include "rejection.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>

namespace udshttp::service::detail {

class counter {
public:
    void add(std::uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void sub(std::uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
    }
    std::uint64_t get() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

// Upper bounds of the latency histogram buckets, in seconds (Prometheus' `le`); one more
// bucket, +Inf, follows.
constexpr double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
constexpr std::size_t latency_buckets = std::size(latency_bounds) + 1;

// Responses are counted by route and status code in a flat table: one row per route plus one
// for "no route", one column per status 100..599. Sized once at start (routes are fixed by
// then), so the worker never allocates or locks to count.
constexpr unsigned first_status = 100;
constexpr unsigned status_columns = 500;

struct alignas(64) worker_stats {
    counter bytes_received;
    counter bytes_sent;
    counter connections_accepted;
    counter connections_open;
    counter timeouts; // connections closed by a deadline
    counter rejected[std::size_t(rejection::count_)];
    counter latency[latency_buckets]; // per bucket, not cumulative
    counter latency_sum_ns;
    std::unique_ptr<counter[]> by_route_status; // (routes + 1) x status_columns
    std::size_t route_rows = 0;
    // The gateway's: per upstream, upstream_counter::n_ columns; then the verdicts.
    std::unique_ptr<counter[]> gateway;
    std::size_t upstreams = 0;
    static constexpr std::size_t upstream_columns = 4, verdicts = 3;
    void size_gateway(std::size_t n) {
        upstreams = n;
        gateway = std::make_unique<counter[]>(n * upstream_columns + verdicts);
    }
    template <class Kind> void count_upstream(std::size_t up, Kind k) noexcept {
        gateway[up * upstream_columns + std::size_t(k)].add();
    }
    template <class Kind> void count_verdict(Kind k) noexcept {
        gateway[upstreams * upstream_columns + std::size_t(k)].add();
    }

    explicit worker_stats(std::size_t routes)
        : by_route_status(std::make_unique<counter[]>((routes + 1) * status_columns)),
          route_rows(routes + 1) {}

    // route: a router index, or nullopt for "no route".
    void count_response(std::optional<std::size_t> route, unsigned status) noexcept {
        const auto row = route && *route < route_rows - 1 ? *route : route_rows - 1;
        if (status >= first_status && status < first_status + status_columns)
            by_route_status[row * status_columns + (status - first_status)].add();
    }
    void count_latency(std::chrono::steady_clock::duration d) noexcept {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
        const double seconds = static_cast<double>(ns) / 1e9;
        std::size_t b = 0;
        while (b < std::size(latency_bounds) && seconds > latency_bounds[b])
            ++b;
        latency[b].add();
        latency_sum_ns.add(static_cast<std::uint64_t>(ns));
    }
    void count_reject(rejection r) noexcept { rejected[std::size_t(r)].add(); }
};

} // namespace udshttp::service::detail
