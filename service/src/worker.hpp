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
#include <string>
#include <thread>

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

struct alignas(64) worker_stats {
    counter requests;
    counter responses_by_class[6]; // [1]..[5] = 1xx..5xx
    counter bytes_received;
    counter bytes_sent;
    counter connections_accepted;
    counter connections_open;
    counter connections_rejected; // over max_connections
    counter timeouts;             // connections closed by a deadline
    counter bad_requests;         // 400/413/431 from the parser
};

// One connection as the deadline sweeper sees it: a node in the worker's intrusive list.
struct connection_slot {
    connection_slot* prev = nullptr;
    connection_slot* next = nullptr;
    socket_type* socket = nullptr;
    clock::time_point deadline = clock::time_point::max();
    bool timed_out = false;

    void arm(std::chrono::milliseconds d) noexcept { deadline = clock::now() + d; }
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
    // Declared before ctx so it outlives the coroutine frames ctx destroys on shutdown.
    connection_registry connections;
    worker_stats stats;
    date_cache date;
    asio::io_context ctx{1};
    std::thread thread;
};

} // namespace udshttp::service::detail
