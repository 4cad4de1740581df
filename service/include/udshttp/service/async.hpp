#pragma once

/// @file
/// Handlers that wait and answers that go on over time. A route's handler may be a coroutine
/// (an Asio awaitable) that answers once, or one that writes a response stream: NDJSON,
/// Server-Sent Events, or any chunked body. Both run on the connection's worker thread, free
/// to co_await timers, the udshttp client or any Asio I/O, and both are cancelled when the
/// peer goes away. router::add() tells the three handler shapes apart by their signatures:
///
///     void(const request&, response&)                      // answers at once
///     awaitable<void>(const request&, response&)           // answers when it returns
///     awaitable<void>(const request&, response_stream&)    // writes an answer over time
///
/// and two that take over the connection after a 101 Switching Protocols, added to the same
/// method and pattern as the route's handler or alone:
///
///     awaitable<void>(const request&, websocket&)          // Upgrade: websocket
///     awaitable<void>(const request&, upgraded_stream&)    // any other Upgrade (Docker's tcp)

#include <udshttp/service/request.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace udshttp::service {

/// The coroutine type of a handler: Asio's awaitable on its default executor, so a handler
/// co_awaits Asio's operations with asio::use_awaitable (or any token that suits it).
template <class T = void> using awaitable = boost::asio::awaitable<T>;

/// A coroutine handler that answers once: it fills `res` and returns; the answer is sent then.
/// The request (with its whole body) and the response live until it returns. When the peer
/// disconnects, what the handler awaits is cancelled (Asio's terminal cancellation: the await
/// throws boost::system::system_error with operation_aborted, and
/// `co_await asio::this_coro::cancellation_state` reports it), and nothing is sent. A peer
/// that only shuts its write side (a half-close) over a Unix socket is still answered; over
/// TCP a half-close looks like a close and cancels the handler too (as in Go's net/http).
/// A throw is a 500, as for a plain handler.
using async_handler = std::function<awaitable<>(const request&, response&)>;

/// One Server-Sent Event (the WHATWG HTML standard, section 9.2).
struct sse_event {
    std::string_view data{};  ///< one "data:" line per line of it (split at LF, CR or CRLF)
    std::string_view event{}; ///< "event:"; empty for the default type ("message")
    std::string_view id{};    ///< "id:"; the client sends it back as Last-Event-ID
    /// "retry:": how long the client should wait before it reconnects.
    std::optional<std::chrono::milliseconds> retry{};
};

/// The bytes response_stream::write_event() sends for `e`. To send one event to many streams,
/// format it once and write() the bytes to each. Throws std::invalid_argument if the event
/// name or id holds CR, LF or NUL.
std::string format_event(const sse_event& e);

namespace detail {
class stream_call;
class websocket_call;
class upgrade_call;
} // namespace detail

/// An answer a handler writes over time: chunked on HTTP/1.1, ended by closing the connection
/// on HTTP/1.0. The head (head()) goes out with the first write or flush(). Writes suspend
/// while the peer is not reading (at most 64 KiB wait in the server per stream), so a handler
/// can never make the server hold more than that. Every write throws
/// boost::system::system_error (operation_aborted) once the stream is over: the peer went
/// away, stopped reading for the idle timeout, or the server is draining. The handler returning
/// ends the stream.
///
/// The Content-Type picks the stream's format and so its heartbeat and its last words when the
/// server drains: text/event-stream (SSE: a ":" comment line; an "event: shutdown" event) and
/// application/x-ndjson (a blank line, which NDJSON readers skip; a {"type":"shutdown"} line).
/// write_json() and write_event() set it when the handler has not.
/// @par Thread safety
/// Use it from the handler's coroutine only, which runs on the connection's worker.
class response_stream {
public:
    explicit response_stream(detail::stream_call& call) noexcept : call_(call) {}

    /// The status and fields to send; changes after the first write are not sent.
    response& head() noexcept;
    /// Sends bytes of the body as they are.
    awaitable<> write(std::string_view bytes);
    /// Sends one NDJSON line: `value` serialized, then "\n".
    awaitable<> write_json(const nlohmann::json& value);
    /// Sends one Server-Sent Event.
    awaitable<> write_event(const sse_event& e);
    /// Sends an SSE comment (": text"), which clients ignore.
    awaitable<> write_comment(std::string_view text);
    /// Returns once everything written so far (and the head) has been handed to the socket.
    awaitable<> flush();
    /// The Last-Event-ID field of the request: where an SSE client asks to resume from.
    std::string_view last_event_id() const noexcept;
    /// True once the stream is over (see above): the next write throws.
    bool ended() const noexcept;
    /// The connection's executor (its worker), for timers and I/O made outside a coroutine.
    boost::asio::any_io_executor get_executor() const noexcept;

private:
    detail::stream_call& call_;
};

/// A coroutine handler that writes a response stream (see response_stream). It runs until it
/// returns, the peer goes away, or the server drains; in the last two cases what it awaits is
/// cancelled, as for an async_handler. While it runs the idle timeout does not apply between
/// writes; a write that the peer does not take within the idle timeout ends the stream (the
/// write-stall deadline). A throw before the first write is a 500; after it, the stream ends
/// without its last chunk, so the peer sees it was cut.
using stream_writer = std::function<awaitable<>(const request&, response_stream&)>;

/// A WebSocket connection (RFC 6455) a handler drives, once the server has answered the
/// upgrade with 101: Beast's websocket stream, over a Unix socket or TCP. A message larger
/// than server_options::max_body_bytes fails the read (close code 1009). The server pings an
/// idle peer and closes a connection that has been silent for the idle timeout. Keep a read()
/// pending while the connection lives: that is where pings, pongs and the peer's close are
/// handled, and where a disconnect shows. When the server drains, it sends close 1001 (going
/// away); the pending read() then returns nullopt.
/// @par Thread safety
/// One read() and one write() may be pending at once, from the handler's coroutines on the
/// connection's worker.
class websocket {
public:
    struct message {
        std::string data{};
        bool binary = false; ///< a binary message (else text, which is UTF-8)
    };
    explicit websocket(detail::websocket_call& call) noexcept : call_(call) {}

    /// The next message; nullopt once the connection is closed (close_code() says how).
    /// Throws boost::system::system_error when it fails otherwise (the peer vanished).
    awaitable<std::optional<message>> read();
    /// Sends one message.
    awaitable<> write(std::string_view data, bool binary = false);
    /// Starts the closing handshake with `code` and waits for it to finish.
    awaitable<> close(std::uint16_t code = 1000, std::string_view reason = {});
    /// The close code the peer sent, once read() returned nullopt; nullopt before.
    std::optional<std::uint16_t> close_code() const noexcept;

private:
    detail::websocket_call& call_;
};

/// A WebSocket route's handler; see websocket.
using websocket_handler = std::function<awaitable<>(const request&, websocket&)>;

/// The raw connection after a 101 for an Upgrade other than websocket: Docker's hijack
/// (Upgrade: tcp) and its kin. Bytes flow as they are in both directions, each of which ends on
/// its own: read_some() returns 0 once the peer has shut its sending side (it may still read),
/// and shutdown_write() ends ours (the peer reads EOF, and may still send).
class upgraded_stream {
public:
    explicit upgraded_stream(detail::upgrade_call& call) noexcept : call_(call) {}

    /// Reads what has arrived into `into` (waiting for at least one byte); 0 at the peer's EOF.
    awaitable<std::size_t> read_some(std::span<char> into);
    /// Sends all of `bytes`.
    awaitable<> write(std::string_view bytes);
    /// Half-closes: no more bytes to the peer.
    void shutdown_write() noexcept;
    /// Bounds each read_some() (and write()): one that makes no progress for `limit` throws
    /// operation_aborted and ends the connection. None by default: a hijacked stream may
    /// rightly be quiet for hours (a shell attached to an idle container).
    void set_idle_limit(std::chrono::milliseconds limit) noexcept;
    /// The protocol the request asked for in Upgrade ("tcp").
    std::string_view protocol() const noexcept;

private:
    detail::upgrade_call& call_;
};

/// An upgrade route's handler; see upgraded_stream.
using upgrade_handler = std::function<awaitable<>(const request&, upgraded_stream&)>;

/// The `timeout` query parameter of a long-poll request ("30s", "500ms", a bare number of
/// seconds), capped at `max`; zero when the request has none; nullopt when it is malformed
/// (answer 400). At the deadline a long-poll answers an empty result, not an error.
std::optional<std::chrono::milliseconds> poll_timeout(const request& req,
                                                      std::chrono::milliseconds max);

} // namespace udshttp::service
