#pragma once

// A worker thread's world: its io_context, the connections it serves (for the deadline
// sweeper), its counters and its Date cache. Everything here is touched only by the worker's
// own thread, except the counters, which /metrics reads from another worker with relaxed loads.

#include "deadlines.hpp"
#include "io.hpp"
#include "response_head.hpp"
#include "stats.hpp"
#include <boost/beast/core/flat_buffer.hpp>

#include <string>
#include <thread>
#include <vector>

namespace udshttp::service::detail {

// Fixed-size blocks a worker's connections take their read buffers from: a connection holds
// one only while it has bytes to parse, so an idle one holds none, and a busy thread reuses a
// few blocks instead of allocating one per request. Touched only by the worker's thread.
class block_pool {
public:
    explicit block_pool(std::size_t block, std::size_t max_free = 64)
        : block_(block), max_free_(max_free) {
        free_.reserve(max_free_);
    }
    ~block_pool() {
        for (auto* p : free_)
            ::operator delete(p);
    }
    block_pool(const block_pool&) = delete;
    block_pool& operator=(const block_pool&) = delete;

    char* take(std::size_t n) {
        if (n != block_ || free_.empty())
            return static_cast<char*>(::operator new(n));
        auto* p = free_.back();
        free_.pop_back();
        return p;
    }
    void give(char* p, std::size_t n) noexcept {
        if (n == block_ && free_.size() < max_free_)
            free_.push_back(p); // reserved: cannot throw
        else
            ::operator delete(p);
    }

private:
    std::size_t block_;
    std::size_t max_free_; // read blocks: 64 (more idle than busy connections, always)
    std::vector<char*> free_;
};

// The allocator a connection's read buffer uses: blocks of the pool's size from the pool.
template <class T> struct pooled_allocator {
    static_assert(sizeof(T) == 1);
    using value_type = T;
    block_pool* pool;
    explicit pooled_allocator(block_pool& p) noexcept : pool(&p) {}
    template <class U> pooled_allocator(const pooled_allocator<U>& o) noexcept : pool(o.pool) {}
    T* allocate(std::size_t n) { return reinterpret_cast<T*>(pool->take(n)); }
    void deallocate(T* p, std::size_t n) noexcept { pool->give(reinterpret_cast<char*>(p), n); }
    bool operator==(const pooled_allocator& o) const noexcept { return pool == o.pool; }
};

// The size of a read block: what a connection reads a request head into first.
constexpr std::size_t read_block_bytes = 2048;

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
    // Read buffers of connections that have bytes to parse.
    block_pool read_blocks{read_block_bytes};
    // The gateway's 64 KiB copy buffers (one per direction of an exchange); 8 kept spare.
    block_pool copy_blocks{64 * 1024, 8};
    asio::io_context ctx;
    // The gateway's upstream head buffers, kept for the next exchange (a few at most).
    std::vector<boost::beast::flat_buffer> spare_head_buffers;
    // Idle upstream connections of the gateway, per upstream (after ctx: they go first).
    std::vector<std::vector<socket_type>> upstream_idle;
    std::thread thread;
};

} // namespace udshttp::service::detail
