#pragma once

// Idle keep-alive connections, by endpoint (its canonical string: a socket path, an abstract
// name or host:port), so a connection is never reused for another socket.

#include "io.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace udshttp::client::detail {

class connection_pool {
public:
    connection_pool(std::chrono::milliseconds idle_timeout, std::size_t max_idle_per_endpoint)
        : idle_timeout_(idle_timeout), max_idle_(max_idle_per_endpoint) {}

    // The most recently used idle connection to `key` that is still open and has been idle
    // less than idle_timeout, or null. The ones found closed or stale are dropped.
    connection_ptr take(std::string_view key);
    // Keeps `c` for reuse (dropping the stale ones of `key`), unless `key` has enough.
    void give_back(const std::string& key, connection_ptr c);
    // Idle connections held, over all endpoints.
    std::size_t idle() const noexcept;

private:
    std::chrono::milliseconds idle_timeout_;
    std::size_t max_idle_;
    std::map<std::string, std::vector<connection_ptr>, std::less<>> by_endpoint_;
};

// False when an idle connection can no longer carry a request: closed, or the server has
// sent something (its close reads as EOF at once) that nobody asked for.
bool still_open(connection& c) noexcept;

} // namespace udshttp::client::detail
