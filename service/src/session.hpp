#pragma once

// One connection, as one coroutine that owns its socket: read a request, route it, write the
// answer, repeat while keep-alive holds. TCP and Unix sockets share this code path.

#include "server_state.hpp"

namespace udshttp::service::detail {

// Serves a connection until it closes. Holds a place in state.connections (taken by the
// caller). Throws only what a handler's allocation does; spawn it with log_exception.
awaitable<> run_session(socket_type socket, proto::peer_info peer, server_state& state, worker& w);

// Answers 503 to a connection over max_connections and closes it.
awaitable<> reject_connection(socket_type socket, proto::peer_info peer, server_state& state,
                              worker& w);

// Answers 403 at once to a peer the allow-list refuses (nothing of its request is read but a
// short linger's worth), and closes. Holds a place in state.refusing, not state.connections.
awaitable<> refuse_peer(socket_type socket, proto::peer_info peer, std::string why,
                        server_state& state, worker& w);

// The most refused peers answered at once; beyond it they are closed without an answer.
constexpr std::size_t max_refusals = 64;

// The completion of a coroutine spawned on a worker: an exception is logged with `where`,
// never rethrown (which would stop the worker's io_context and the server with it).
void log_exception(server_state& state, std::string_view where, std::exception_ptr e) noexcept;

// Starts the worker's deadline sweeper: every tick it cancels the pending operation of each
// connection whose deadline has passed. One timer per worker instead of one per operation.
// Restarted, with a log line, if it ever throws.
void start_sweeper(server_state& state, worker& w, std::chrono::milliseconds tick);

} // namespace udshttp::service::detail
