#pragma once

/// @file
/// Reading streams as they arrive: Server-Sent Events and NDJSON, from a udshttp server (its
/// /topics and /events) or any other. The parsers take the body piece by piece; read_events()
/// and read_json_lines() run a request whose body goes straight into them, with no deadline
/// (a stream may last for hours), and can reconnect, resuming SSE with Last-Event-ID.
///
///     udshttp::client::client c;
///     auto r = read_events(c, "http+unix://%2Frun%2Fapp.sock/topics/jobs",
///                          [](const sse_event& e) {
///                              std::cout << e.id << ' ' << e.data << '\n';
///                              return true; // false stops
///                          });

#include <udshttp/client/async_client.hpp>
#include <udshttp/client/client.hpp>

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace udshttp::client {

/// One Server-Sent Event as dispatched (the WHATWG HTML standard, 9.2.6).
struct sse_event {
    std::string type = "message"; ///< the event field; "message" when none was sent
    std::string data{};           ///< the data lines joined with LF
    std::string id{};             ///< the last event ID in force (sent by this event or earlier)
};

/// Parses text/event-stream given piece by piece: lines end in CR, LF or CRLF; fields
/// event, data, id and retry; ":" comments and unknown fields are ignored; an event is
/// dispatched at a blank line if it has data. A line longer than `max_line` bytes is an error
/// (so a server that never ends a line cannot make the client grow without bound).
class sse_parser {
public:
    using handler = std::function<bool(const sse_event&)>; ///< false stops
    explicit sse_parser(handler on_event, std::size_t max_line = 1 << 20);

    /// Feeds bytes. Returns false once the handler asked to stop (later feeds do nothing);
    /// an error when a line is too long.
    result<bool> feed(std::string_view piece);
    /// Forgets a partly received line or event, keeping the last event ID and retry: a new
    /// connection begins.
    void reset() noexcept;
    /// The last event ID seen: what a reconnect sends as Last-Event-ID.
    const std::string& last_event_id() const noexcept { return id_; }
    /// The reconnection delay the server asked for with retry:, if it did.
    std::optional<std::chrono::milliseconds> retry() const noexcept { return retry_; }

private:
    void line(std::string_view l);
    handler on_event_;
    std::size_t max_line_;
    std::string partial_;
    bool skip_lf_ = false; // the last piece ended in CR: a LF first in the next one is its CRLF
    bool stopped_ = false;
    std::string type_, data_, id_;
    bool has_data_ = false;
    std::optional<std::chrono::milliseconds> retry_;
};

/// Splits NDJSON (one JSON value per line) given piece by piece and parses each line; blank
/// lines (heartbeats) are skipped. A line that is not JSON, or longer than `max_line`, is an
/// error naming it.
class ndjson_parser {
public:
    using handler = std::function<bool(const nlohmann::json&)>; ///< false stops
    explicit ndjson_parser(handler on_value, std::size_t max_line = 1 << 20);
    /// As sse_parser::feed().
    result<bool> feed(std::string_view piece);
    /// Forgets a partly received line (a new connection begins).
    void reset() noexcept { partial_.clear(); }

private:
    handler on_value_;
    std::size_t max_line_;
    std::string partial_;
    bool stopped_ = false;
};

/// How read_events() and read_json_lines() go about it.
struct stream_options {
    fields headers{}; ///< more request fields (Accept is set for you)
    /// When the stream ends or breaks, connect again (after the server's retry: delay, else
    /// retry_delay), resuming SSE from the last event ID; up to max_reconnects times in a row
    /// without an event in between. Without it, the end of the stream ends the call.
    bool reconnect = false;
    std::size_t max_reconnects = 10;
    std::chrono::milliseconds retry_delay{1'000};
};

/// GETs `url` with Accept: text/event-stream and calls on_event for each event as it arrives,
/// until on_event returns false (success), the stream ends (success, unless reconnecting), or
/// it fails (a non-2xx status is an error carrying the server's message).
result<void> read_events(client& c, std::string_view url, sse_parser::handler on_event,
                         const stream_options& options = {});
/// The same with Accept: application/x-ndjson, one value per call.
result<void> read_json_lines(client& c, std::string_view url, ndjson_parser::handler on_value,
                             const stream_options& options = {});

/// read_events() on an async_client, as a coroutine.
boost::asio::awaitable<result<void>> async_read_events(async_client& c, std::string url,
                                                       sse_parser::handler on_event,
                                                       stream_options options = {});
/// read_json_lines() on an async_client, as a coroutine.
boost::asio::awaitable<result<void>> async_read_json_lines(async_client& c, std::string url,
                                                           ndjson_parser::handler on_value,
                                                           stream_options options = {});

} // namespace udshttp::client
