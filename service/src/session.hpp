#pragma once

// One connection, as one coroutine that owns its socket: read a request, route it, write the
// answer, repeat while keep-alive holds. TCP and Unix sockets share this code path.
//
// session.cpp holds the loop; connection.cpp what it reads and writes with; stream_route.cpp
// the stream routes (a body handed to the handler as it arrives, its output sent as it comes).

#include "connection.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace udshttp::service::detail {

// Serves a connection until it closes. Holds a place in state.connections (taken by the
// caller). A plain handler's throw is the router's 500; what can still escape is an allocation
// failure or a stream handler's throw of something that is not a std::exception, so spawn it
// with log_exception.
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

// The request loop of one connection, in the shape of Asio's http/server example: wait for a
// request, read its head, route it, read its body, answer, repeat while keep-alive holds.
class session {
public:
    explicit session(connection& c) : c_(c) {}
    awaitable<> run();

private:
    // What a step that may end the connection decided.
    struct verdict {
        bool close = false;            // the connection ends after this step...
        std::optional<refusal> answer; // ...with this error answer first (else quietly)
    };
    static verdict go_on() { return {}; }
    static verdict quietly() { return {true, std::nullopt}; }
    static verdict answer_with(refusal r) { return {true, std::move(r)}; }

    enum class step { next, close, gone }; // after a request: go on, close, or let it go
    // Reads, routes and answers the request whose first bytes are in the buffer.
    awaitable<step> serve_request();
    // The wait for the first bytes of the next request, around the one suspension run() does
    // for it: begin_wait() arms the deadline, after_wait() reads (after a readiness wait) and
    // decides: a request has begun, wait again, or close without answering (peer gone, idle
    // too long, or the server is draining and nothing has arrived).
    // `read`: the wait was a read into the buffer (else a readiness wait, and after_wait
    // reads).
    enum class waited { request, again, closed };
    void begin_wait(bool first) noexcept;
    waited after_wait(bool read, boost::system::error_code ec, std::size_t n);
    // Above this many connections on the worker, a keep-alive wait holds no read buffer.
    static constexpr std::size_t lean_above = 256;
    // RFC 9112 2.2: drops a few empty lines before a request line. False: nothing but empty
    // lines is buffered.
    bool skip_blank_lines() noexcept;
    // Parses the request head under the header deadline, and checks it (check_head).
    awaitable<verdict> read_head(request_parser& parser, clock::time_point start);
    // RFC 9110 10.1.1: sends 100 Continue if the request expects it and a route is about to
    // read its body. False: the connection ends.
    awaitable<bool> continue_if_expected(const request_parser& parser);
    // Reads the body of a request a handler will read, each pause under the idle deadline:
    // by its Content-Length (connection::read_sized_body) or chunked through parse_some.
    awaitable<verdict> read_body(request_parser& parser);

    connection& c_;
    int blank_lines_ = 0;     // skipped before the request line being read
    bool keep_alive_ = false; // what the request asked for (every Connection field counts)
};

} // namespace udshttp::service::detail
