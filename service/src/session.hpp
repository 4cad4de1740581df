#pragma once

// One connection, as one coroutine that owns its socket: read a request, route it, write the
// answer, repeat while keep-alive holds. TCP and Unix sockets share this code path.

#include "server_state.hpp"

namespace udshttp::service::detail {

// Serves a connection until it closes. Never throws.
awaitable<> run_session(socket_type socket, bool is_unix, server_state& state, worker& w);

// Answers 503 to a connection over max_connections and closes it.
awaitable<> reject_connection(socket_type socket, bool is_unix, server_state& state, worker& w);

// Starts the worker's deadline sweeper: every tick it cancels the pending operation of each
// connection whose deadline has passed. One timer per worker instead of one per operation.
void start_sweeper(worker& w, std::chrono::milliseconds tick);

} // namespace udshttp::service::detail
