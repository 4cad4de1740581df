#pragma once

// Deadlines without a timer per operation: each connection has a slot with one deadline, and
// one sweeper per worker walks the slots every tick and cancels the pending operation of each
// slot whose deadline has passed. The session sees operation_aborted with timed_out set.

#include "io.hpp"

#include <chrono>
#include <cstddef>

namespace udshttp::service::detail {

// What a connection does when the server starts to drain while it is busy (a response stream
// ends with its last words): registered in its slot for that time.
class drain_listener {
public:
    virtual void drain() noexcept = 0;

protected:
    ~drain_listener() = default;
};

// One connection as the sweeper sees it: a node in the worker's intrusive list.
struct connection_slot {
    connection_slot* prev = nullptr;
    connection_slot* next = nullptr;
    socket_type* socket = nullptr;
    clock::time_point deadline = clock::time_point::max();
    bool timed_out = false;
    bool idle = false; // waiting for the next request: closed at once when the server drains
    drain_listener* on_drain = nullptr; // told when the server drains, if set

    // `now` lets a caller that has just read the clock spare another read.
    void arm(std::chrono::milliseconds d, clock::time_point now = clock::now()) noexcept {
        deadline = now + d;
    }
    void disarm() noexcept { deadline = clock::time_point::max(); }
};

// The connections of one worker. A linked list makes add and remove O(1) without allocation,
// and a walk of 10,000 idle connections costs microseconds.
class connection_registry {
public:
    void add(connection_slot& s) noexcept;
    void remove(connection_slot& s) noexcept;
    // Cancels the pending operation of every connection whose deadline has passed and marks
    // it timed_out; returns how many.
    std::size_t sweep(clock::time_point now) noexcept;
    // The server is draining: wakes every connection waiting for its next request (the
    // session closes it unless the request's first bytes have already arrived), and tells
    // every drain_listener.
    void drain() noexcept;
    std::size_t size() const noexcept { return size_; }

private:
    connection_slot* head_ = nullptr;
    std::size_t size_ = 0;
};

// How long a session lingers after an error answer, reading and dropping what the peer still
// sends so that closing does not throw the answer away (nginx's lingering_timeout and
// lingering_time): until EOF, `quiet` without a byte, `total` in all, `max_bytes` dropped, or
// at once when the server drains.
struct linger_bounds {
    std::chrono::milliseconds quiet;
    std::chrono::milliseconds total;
    std::size_t max_bytes;
};
constexpr linger_bounds after_error{std::chrono::milliseconds(500), std::chrono::seconds(5),
                                    64u << 20};
// A peer the allow-list refuses gets its 403 and little else: it holds no admission slot, but
// its linger is short, so that max_refusals of them at once cost at most a second each.
constexpr linger_bounds after_refusal{std::chrono::milliseconds(100), std::chrono::seconds(1),
                                      64u << 10};

struct worker;
// Starts the worker's sweeper, ticking every `tick` on the worker's thread; each firing is
// counted in the worker's timeouts. It stops with the worker's io_context.
void start_sweeper(worker& w, std::chrono::milliseconds tick);

} // namespace udshttp::service::detail
