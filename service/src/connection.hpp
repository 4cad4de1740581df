#pragma once

// One accepted connection: its socket, read buffer, deadline slot and counters, and what every
// request on it reads and writes with. The session (session.hpp) drives it request by request;
// a stream route (stream_route.hpp) borrows it for one request.

#include "rejection.hpp"
#include "server_state.hpp"
#include "worker.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>

namespace udshttp::service::detail {

using request_head = request::message_type; // a parsed request (its body, when read whole)
using stream_parser = http::request_parser<http::buffer_body>;

// Registers the connection with its worker for the deadline sweeper and keeps the counters
// honest however the connection ends.
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

class connection {
public:
    connection(socket_type& socket, proto::peer_info peer, std::atomic<std::size_t>& open,
               server_state& state, worker& w);
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // One step of parsing from `buffer` into `parser`, reading from the socket when it needs
    // more. Every byte a parser gets passes here, so here are the bounds Beast 1.81 lacks:
    // `buffer` never holds more than read_cap (so a chunk-size line, its extensions or a
    // trailer section that does not end is a buffer_overflow, not growth), and the header
    // block is counted from its first byte across every put(), against max_header_bytes
    // (Beast's own header_limit only counts what one put() has not consumed yet).
    // Exceptions from the parser (a body's allocation) surface here, in the coroutine, not
    // inside an I/O completion. Defined for request_parser and stream_parser.
    template <class Parser>
    awaitable<boost::system::error_code> parse_some(Parser& parser, bool read_first = false);
    // parse_some's step without I/O: true when it has an answer in ec (progress, done or an
    // error), false when the parser needs more bytes. The common request is whole in `buffer`,
    // and then this spares a coroutine frame per request.
    template <class Parser> bool parse_buffered(Parser& parser, boost::system::error_code& ec);
    // Reads the rest of a Content-Length body into `body` (no parser: the length is the
    // framing), growing it as bytes arrive rather than reserving the declared size up front.
    // False: the peer went away or stalled.
    awaitable<bool> read_sized_body(std::string& body, std::uint64_t length);

    // Writes `res` as the answer to `head` (finish(): the Content-Length, no body for HEAD,
    // 1xx, 204 and 304) and records it under `route`, under the deadline the caller armed.
    // False: the connection ends.
    awaitable<bool> answer(response& res, const request_head* head, bool keep_alive,
                           std::optional<std::size_t> route, std::uint64_t bytes_in,
                           clock::time_point start);
    // The one exit for an answer the server gives by itself (not a route): counts the
    // rejection, answers with its error and Connection: close, records it, lingers and
    // closes. `head` is null when no request head was parsed.
    awaitable<> refuse(refusal r, const request_head* head, clock::time_point start,
                       const linger_bounds& linger = after_error);
    // The same for a 500 (a stream handler that failed before anything was sent), which is
    // not a rejection.
    awaitable<> fail(const request_head& head, std::uint64_t bytes_in, clock::time_point start);
    // Reads and drops what the peer still sends after an error answer, then closes.
    awaitable<> lingering_close(const linger_bounds& bounds);
    // Shuts the socket down both ways and closes it.
    void close() noexcept;

    void record(const request_head* head, unsigned status, std::optional<std::size_t> route,
                std::uint64_t bytes_in, std::size_t bytes_out, clock::time_point start);
    bool draining() const noexcept { return state.stopping.load(std::memory_order_relaxed); }
    // The peer has sent bytes not read yet.
    bool bytes_pending() const noexcept;
    // Makes `s` hold at least n bytes, from the worker's spare buffers if one is big enough.
    void borrow(std::string& s, std::size_t n);
    // Gives a large buffer back to the worker (or frees it) so an idle connection holds none.
    void give_back(std::string& s);

    static constexpr std::size_t keep_bytes = 64 * 1024;
    static constexpr std::size_t idle_buffer_bytes = read_block_bytes; // the first read
    static constexpr std::size_t body_buffer_bytes = 64 * 1024;

    socket_type& socket;
    server_state& state;
    const server_options& opt;
    worker& w;

private:
    connection_guard guard_;

public:
    connection_slot& slot;
    const proto::peer_info peer;
    const std::size_t read_cap; // the most `buffer` holds: a header block and one body read
    // Empty (no memory) while the connection waits for a request; its first block comes from
    // the worker's read_blocks.
    boost::beast::basic_flat_buffer<pooled_allocator<char>> buffer;
    std::size_t head_bytes = 0; // of the request head being parsed, consumed by the parser
    clock::time_point last_now; // when record() last read the clock
    // A stream route's whole-body buffers, kept between requests up to keep_bytes (so an
    // idle connection does not hold a large body's memory). whole_in's size is kept too, so
    // reading the same size again fills nothing.
    std::string whole_in;
    std::string whole_out;
    // Who is calling, as the gateway's rules see it: read at its first gateway request.
    std::unique_ptr<caller_identity> caller;

    // Sends all of `pieces`: at once when the socket takes them (no suspension, which is the
    // common case for an answer that fits the socket buffer), else the rest asynchronously.
    // Answers gathered by answer() go first.
    awaitable<std::tuple<boost::system::error_code, std::size_t>>
    send_all(std::span<const asio::const_buffer> pieces);
    // Sends the answers answer() gathered, if any. Called before anything that waits for the
    // peer (a read from the socket) or writes on its own (streams, upgrades, 100 Continue), so
    // a peer never waits for an answer we hold. False: the connection ends.
    awaitable<bool> flush();
    bool has_gathered() const noexcept { return !gathered_.empty(); }
    // Before an idle wait: gives the (empty) read buffer back to the worker's pool and frees
    // the gathering buffer.
    void trim_for_idle() noexcept;

    // Pipelining: while the next request is already in `buffer`, small answers are gathered
    // and sent in one write (at most gather_bytes), as the input allows.
    static constexpr std::size_t gather_bytes = 64 * 1024;
    static constexpr std::size_t gather_body_bytes = 16 * 1024;

private:
    std::string head_;     // answer()'s formatted head, its capacity reused
    std::string gathered_; // answers to pipelined requests not sent yet
};

} // namespace udshttp::service::detail
