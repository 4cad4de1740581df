#pragma once

// Connecting to an endpoint under the request's deadlines, with the one timer a request has.

#include "io.hpp"

#include <udshttp/proto/endpoint.hpp>
#include <udshttp/proto/error.hpp>

#include <chrono>

namespace udshttp::client::detail {

// The one timer a request has. When it fires it closes the connection in use, which ends the
// pending operation with an error; fired() tells the coroutine which deadline that was.
class watchdog {
public:
    enum class kind { none, connect, total };

    watchdog(executor ex, clock::time_point total) : timer_(std::move(ex)), total_(total) {}

    // Closes `c` at `when`, reporting `k`; re-arming replaces the previous watch.
    void watch(connection* c, clock::time_point when, kind k);
    void watch_total(connection* c) { watch(c, total_, kind::total); }
    void cancel();
    kind fired() const noexcept { return fired_; }
    clock::time_point total() const noexcept { return total_; }

private:
    timer_type timer_;
    clock::time_point total_;
    connection* conn_ = nullptr;
    kind fired_ = kind::none;
};

struct connect_limits {
    std::chrono::milliseconds connect; // this connect
    std::chrono::milliseconds total;   // the whole request (for the message)
};

// A new connection to `where`, or an error that names it and the reason (no socket file,
// refused, permission, timeout...). Host names are resolved and each address tried in turn.
awaitable<result<connection_ptr>> connect(executor ex, const proto::endpoint& where, watchdog& wd,
                                          connect_limits limits, std::size_t max_header_bytes);

// "250 ms"
std::string ms(std::chrono::milliseconds d);

} // namespace udshttp::client::detail
