#pragma once

// What the listeners, sessions and built-in routes of one server share. Written during start(),
// read-only afterwards, except the atomics.

#include "gateway.hpp"
#include "log.hpp"
#include "topic_hub.hpp"
#include "worker.hpp"

#include <udshttp/service/server.hpp>

#include <atomic>
#include <memory>
#include <vector>

namespace udshttp::service::detail {

struct server_state {
    server_options options;
    router routes;
    std::vector<std::unique_ptr<worker>> workers;
    std::atomic<std::size_t> connections{0}; // open, across workers; admission control only
    std::atomic<std::size_t> refusing{0};    // refused peers being answered 403, across workers
    clock::time_point started = clock::now();
    std::atomic<bool> stopping{false};
    std::atomic<std::size_t> streams_drained{0}; // response streams the drain ended
    std::unique_ptr<topic_hub> hub;              // with the built-in routes
    std::unique_ptr<gateway_state> gateway;      // with gateway routes
    logger log;

    // Sums one counter over all workers (for /metrics and /healthz).
    template <class Member> std::uint64_t total(Member m) const {
        std::uint64_t sum = 0;
        for (const auto& w : workers)
            sum += (w->stats.*m).get();
        return sum;
    }
};

// Registers hello, echo, healthz, metrics, the topic hub and openapi on state.routes.
void add_builtin_routes(server_state& state);
// Creates state.hub and registers the routes that wait, stream or upgrade: /topics/{name},
// /events, /ws/echo, and POST /echo's Upgrade: tcp (live_routes.cpp).
void add_live_routes(server_state& state);

} // namespace udshttp::service::detail
