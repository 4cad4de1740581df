#pragma once

// One connection, as one coroutine that owns its socket: read a request, route it, write the
// answer, repeat while keep-alive holds. TCP and Unix sockets share this code path.
//
// session.cpp holds the loop (run) and what it reads and writes with; stream_route.cpp holds
// the stream routes (a body handed to the handler as it arrives, its output sent as it comes).

#include "rejection.hpp"
#include "server_state.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

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

using request_head = request::message_type; // a parsed request (its body, when read whole)

// Registers the connection with its worker for the deadline sweeper and keeps the counters
// honest however the session ends.
class connection_guard {
public:
    // `open` is the admission count this connection holds a place in (state.connections, or
    // state.refusing for a refused peer); it is given back on destruction.
    connection_guard(std::atomic<std::size_t>& open, worker& w, socket_type& socket);
    ~connection_guard();
    connection_guard(const connection_guard&) = delete;
    connection_guard& operator=(const connection_guard&) = delete;

    connection_slot slot;

private:
    std::atomic<std::size_t>& open_;
    worker& w_;
};

class session {
public:
    session(socket_type& socket, proto::peer_info peer, std::atomic<std::size_t>& open,
            server_state& state, worker& w);

    awaitable<> run();

    // The one exit for an answer the session gives by itself (not a route): counts the
    // rejection, answers with its error and Connection: close, records it, lingers and
    // closes. `head` is null when no request head was parsed.
    awaitable<> refuse(refusal r, const request_head* head, clock::time_point start,
                       const linger_bounds& linger = after_error);
    // The same for a 500 (a stream handler that failed before anything was sent), which is
    // not a rejection.
    awaitable<> fail(const request_head& head, std::uint64_t bytes_in, clock::time_point start);

private:
    // What a step that may end the connection decided.
    struct verdict {
        bool close = false;            // the connection ends after this step...
        std::optional<refusal> answer; // ...with this error answer first (else quietly)
    };
    static verdict go_on() { return {}; }
    static verdict quietly() { return {true, std::nullopt}; }
    static verdict answer_with(refusal r) { return {true, std::move(r)}; }

    // Waits for the first byte of the next request. False: close without answering (peer
    // gone, idle too long, or the server is draining and nothing has arrived).
    awaitable<bool> await_request(bool first);
    // RFC 9112 2.2: drops a few empty lines before a request line. False: nothing but empty
    // lines is buffered.
    bool skip_blank_lines() noexcept;
    // Parses the request head under the header deadline, and checks it (check_head).
    awaitable<verdict> read_head(request_parser& parser, clock::time_point start);
    // RFC 9110 10.1.1: sends 100 Continue if the request expects it and a route is about to
    // read its body. False: the connection ends.
    awaitable<bool> continue_if_expected(const request_parser& parser);
    // Reads the body of a request a handler will read, each pause under the idle deadline:
    // by its Content-Length (read_sized_body) or chunked through parse_some.
    awaitable<verdict> read_body(request_parser& parser);
    // Reads the rest of a Content-Length body into `body` (no parser: the length is the
    // framing), growing it as bytes arrive rather than reserving the declared size up front.
    // False: the peer went away or stalled.
    awaitable<bool> read_sized_body(std::string& body, std::uint64_t length);

    // One step of parsing from buffer_ into `parser`, reading from the socket when it needs
    // more. Every byte a parser gets passes here, so here are the bounds Beast 1.81 lacks:
    // buffer_ never holds more than read_cap_ (so a chunk-size line, its extensions or a
    // trailer section that does not end is a buffer_overflow, not growth), and the header
    // block is counted from its first byte across every put(), against max_header_bytes
    // (Beast's own header_limit only counts what one put() has not consumed yet).
    // Exceptions from the parser (a body's allocation) surface here, in the coroutine, not
    // inside an I/O completion. Defined for request_parser and stream_parser.
    template <class Parser>
    awaitable<boost::system::error_code> parse_some(Parser& parser, bool read_first = false);
    // parse_some's step without I/O: true when it has an answer in ec (progress, done or an
    // error), false when the parser needs more bytes. The common request is whole in buffer_,
    // and then this spares a coroutine frame per request.
    template <class Parser> bool parse_buffered(Parser& parser, boost::system::error_code& ec);

    // Writes `res` as the answer to `head` (finish(): the Content-Length, no body for HEAD,
    // 1xx, 204 and 304) and records it under `route`, under the deadline the caller armed.
    // False: the connection ends.
    awaitable<bool> answer(response& res, const request_head* head, bool keep_alive,
                           std::optional<std::size_t> route, std::uint64_t bytes_in,
                           clock::time_point start);
    // Sends all of `pieces`: at once when the socket takes them (no suspension, which is the
    // common case for an answer that fits the socket buffer), else the rest asynchronously.
    template <class Buffers>
    awaitable<std::tuple<boost::system::error_code, std::size_t>> send_all(const Buffers& pieces);
    void record(const request_head* head, unsigned status, std::optional<std::size_t> route,
                std::uint64_t bytes_in, std::size_t bytes_out, clock::time_point start);
    // Reads and drops what the peer still sends after an error answer, then closes.
    awaitable<> lingering_close(const linger_bounds& bounds);
    bool draining() const noexcept { return state_.stopping.load(std::memory_order_relaxed); }
    bool bytes_pending() const noexcept;

    // stream_route.cpp: serves a stream route. Returns whether the connection may carry
    // another request.
    awaitable<bool> stream(request_parser& parser, const route_match& match,
                           clock::time_point start);
    using stream_parser = http::request_parser<http::buffer_body>;
    struct pump;
    awaitable<> pump_reader(pump& p, stream_parser& parser);
    awaitable<> pump_writer(pump& p, http::response<http::buffer_body>& out);
    // Gives the handler a body piece (or, with nullopt, the end) and queues its output; false
    // (and the pump failed) if the handler threw.
    bool feed(pump& p, std::optional<std::string_view> in);
    // A stream route's small body (a Content-Length up to pump::queue_cap): read whole, one
    // handler call, head and output in one write. Returns whether the connection may go on.
    awaitable<bool> stream_whole(stream_handler& handler, std::optional<std::uint64_t> declared,
                                 response& res, const request_head& head, std::uint64_t length,
                                 std::optional<std::size_t> route, clock::time_point start);
    // Makes `s` hold at least n bytes, from the worker's spare buffers if one is big enough.
    void borrow(std::string& s, std::size_t n);
    // Gives a large buffer back to the worker (or frees it) so an idle connection holds none.
    void give_back(std::string& s);

    socket_type& socket_;
    server_state& state_;
    const server_options& opt_;
    worker& w_;
    connection_guard guard_;
    connection_slot& slot_;
    const proto::peer_info peer_;
    static constexpr std::size_t keep_bytes = 64 * 1024;
    static constexpr std::size_t idle_buffer_bytes = 2048;
    static constexpr std::size_t body_buffer_bytes = 64 * 1024;
    const std::size_t read_cap_; // the most buffer_ holds: a header block and one body read
    boost::beast::flat_buffer buffer_;
    std::size_t head_bytes_ = 0; // of the request head being parsed, consumed by the parser
    int blank_lines_ = 0;        // skipped before the request line being read
    bool keep_alive_ = false;    // what the request asked for (every Connection field counts)
    std::string head_;           // answer()'s formatted head, its capacity reused
    clock::time_point last_now_; // when record() last read the clock
    // stream_whole's buffers, kept between requests up to keep_bytes (so an idle connection
    // does not hold a large body's memory).
    std::string whole_in_; // its size is kept too, so reading the same size again fills nothing
    std::string whole_out_;
};

} // namespace udshttp::service::detail
