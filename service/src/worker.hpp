#pragma once

// A worker thread's world: its io_context, the connections it serves (for the deadline
// sweeper), its counters and its Date cache. Everything here is touched only by the worker's
// own thread, except the counters, which /metrics reads from another worker with relaxed loads.

#include "deadlines.hpp"
#include "io.hpp"
#include "response_head.hpp"
#include "stats.hpp"

#include <string>
#include <thread>
#include <vector>

namespace udshttp::service::detail {

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
