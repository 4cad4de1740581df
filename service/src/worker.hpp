#pragma once

// A worker thread's world: its io_context, the connections it serves (for the deadline
// sweeper), its counters and its Date cache. Everything here is touched only by the worker's
// own thread, except the counters, which /metrics reads from another worker with relaxed loads.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace udshttp::service::detail {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;
using executor = asio::io_context::executor_type;

// Every wait reads `auto [ec, n] = co_await ...;` (Asio's echo_server_with_as_tuple_default).
using use_tuple = asio::as_tuple_t<asio::use_awaitable_t<executor>>;
using socket_type =
    use_tuple::as_default_on_t<asio::basic_stream_socket<asio::generic::stream_protocol, executor>>;
using acceptor_type = use_tuple::as_default_on_t<
    asio::basic_socket_acceptor<asio::generic::stream_protocol, executor>>;
using timer_type = use_tuple::as_default_on_t<
    asio::basic_waitable_timer<clock, asio::wait_traits<clock>, executor>>;
template <class T = void> using awaitable = asio::awaitable<T, executor>;

// A counter with one writer (its worker) and any number of relaxed readers: no lock prefix on
// the hot path, no torn reads.
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

// Why a connection or request was turned away before reaching a route.
enum class reject_reason : unsigned {
    max_connections,  // 503: over the connection limit
    forbidden,        // 403: peer not in --allow-uid/--allow-gid
    malformed,        // 400 from the parser
    header_too_large, // 431
    body_too_large,   // 413
    header_timeout,   // 408
    count_
};
constexpr std::string_view reject_reason_names[] = {"max_connections", "forbidden",
                                                    "malformed",       "header_too_large",
                                                    "body_too_large",  "header_timeout"};
static_assert(std::size(reject_reason_names) == std::size_t(reject_reason::count_));

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
    counter rejected[std::size_t(reject_reason::count_)];
    counter latency[latency_buckets]; // per bucket, not cumulative
    counter latency_sum_ns;
    std::unique_ptr<counter[]> by_route_status; // (routes + 1) x status_columns
    std::size_t route_rows = 0;

    explicit worker_stats(std::size_t routes)
        : by_route_status(std::make_unique<counter[]>((routes + 1) * status_columns)),
          route_rows(routes + 1) {}

    // route: a router index, or router::npos for "no route".
    void count_response(std::size_t route, unsigned status) noexcept {
        if (route >= route_rows - 1)
            route = route_rows - 1;
        if (status >= first_status && status < first_status + status_columns)
            by_route_status[route * status_columns + (status - first_status)].add();
    }
    void count_latency(clock::duration d) noexcept {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
        const double seconds = static_cast<double>(ns) / 1e9;
        std::size_t b = 0;
        while (b < std::size(latency_bounds) && seconds > latency_bounds[b])
            ++b;
        latency[b].add();
        latency_sum_ns.add(static_cast<std::uint64_t>(ns));
    }
    void count_reject(reject_reason r) noexcept { rejected[std::size_t(r)].add(); }
};

// One connection as the deadline sweeper sees it: a node in the worker's intrusive list.
struct connection_slot {
    connection_slot* prev = nullptr;
    connection_slot* next = nullptr;
    socket_type* socket = nullptr;
    clock::time_point deadline = clock::time_point::max();
    bool timed_out = false;
    bool idle = false; // waiting for the next request: closed at once when the server drains

    // `now` lets a caller that has just read the clock spare another read.
    void arm(std::chrono::milliseconds d, clock::time_point now = clock::now()) noexcept {
        deadline = now + d;
    }
    void disarm() noexcept { deadline = clock::time_point::max(); }
};

// The connections of one worker. The sweeper walks it every tick; a linked list makes add and
// remove O(1) without allocation, and a walk of 10,000 idle connections costs microseconds.
class connection_registry {
public:
    void add(connection_slot& s) noexcept {
        s.next = head_;
        if (head_)
            head_->prev = &s;
        head_ = &s;
        ++size_;
    }
    void remove(connection_slot& s) noexcept {
        (s.prev ? s.prev->next : head_) = s.next;
        if (s.next)
            s.next->prev = s.prev;
        s.prev = s.next = nullptr;
        --size_;
    }
    // Cancels the pending operation of every connection whose deadline has passed; the session
    // sees operation_aborted with timed_out set and answers or closes as its state requires.
    std::size_t sweep(clock::time_point now) noexcept {
        std::size_t fired = 0;
        for (auto* s = head_; s; s = s->next) {
            if (s->deadline <= now && !s->timed_out) {
                s->timed_out = true;
                boost::system::error_code ignored;
                s->socket->cancel(ignored);
                ++fired;
            }
        }
        return fired;
    }
    // Wakes every connection waiting for its next request (the server is draining); the
    // session closes it unless the request's first bytes have already arrived.
    void wake_idle() noexcept {
        for (auto* s = head_; s; s = s->next)
            if (s->idle) {
                boost::system::error_code ignored;
                s->socket->cancel(ignored);
            }
    }
    std::size_t size() const noexcept { return size_; }

private:
    connection_slot* head_ = nullptr;
    std::size_t size_ = 0;
};

// The IMF-fixdate for the Date field, formatted once a second.
class date_cache {
public:
    std::string_view get() {
        const std::time_t now = std::time(nullptr);
        if (now != last_) {
            std::tm tm{};
            gmtime_r(&now, &tm);
            len_ = std::strftime(buf_, sizeof buf_, "%a, %d %b %Y %H:%M:%S GMT", &tm);
            last_ = now;
        }
        return {buf_, len_};
    }

private:
    std::time_t last_ = 0;
    char buf_[40] = {};
    std::size_t len_ = 0;
};

struct worker {
    // `alone`: this is the only worker. Then everything - accepting included - happens on its
    // thread, and the reactor's per-descriptor locks can go (BOOST_ASIO_CONCURRENCY_HINT_
    // UNSAFE_IO: two mutex round trips less per I/O operation). With several workers the
    // acceptor on worker 0 registers new sockets in the other workers' reactors, whose
    // descriptor states are pooled and reused, so those locks are what orders a reused state's
    // old reader before its new writer: ThreadSanitizer shows the race without them.
    worker(std::size_t routes, bool alone)
        : stats(routes), ctx(alone ? BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO : 1) {}

    // Declared before ctx so it outlives the coroutine frames ctx destroys on shutdown.
    connection_registry connections;
    worker_stats stats;
    date_cache date;
    // Whole-body buffers over 64 KiB that connections gave back, for the next large body on
    // this thread: a few at most, so a run of 1 MiB echoes reuses memory instead of faulting
    // in fresh pages each time.
    std::vector<std::string> spare_buffers;
    static constexpr std::size_t max_spare_buffers = 4;
    asio::io_context ctx;
    std::thread thread;
};

} // namespace udshttp::service::detail
