#pragma once

// One listening endpoint and its accept loop. The loop runs on the listener's home worker and
// hands each accepted connection to the next worker, round robin.

#include "server_state.hpp"
#include "socket_file.hpp"

#include <udshttp/proto/endpoint.hpp>

#include <memory>
#include <vector>

namespace udshttp::service::detail {

class listener {
public:
    // Opens, binds and listens (throws startup_error naming the endpoint).
    listener(worker& home, const proto::endpoint& where, const server_options& options);

    // The endpoint as bound: TCP port 0 resolved, relative paths made absolute when that fits.
    const proto::endpoint& local_endpoint() const noexcept { return bound_; }

    // Starts the accept loop on the home worker; it runs until close() and never ends on a
    // single failed accept.
    void start(server_state& state);

    // Stops accepting. Call on the home worker's thread.
    void close() noexcept;

    worker& home() noexcept { return home_; }

private:
    awaitable<> accept_loop(server_state& state);

    worker& home_;
    acceptor_type acceptor_;
    std::unique_ptr<socket_file> file_;
    proto::endpoint bound_;
    bool is_unix_ = false;
};

} // namespace udshttp::service::detail
