// Coroutine handlers and response streams: see async_route.hpp.

#include "async_route.hpp"

#include "handler_call.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/string.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <charconv>
#include <span>

namespace udshttp::service::detail {
namespace {

// What the handler's side of a call returns: awaitable on the handler's executor.
template <class T = void> using handler_awaitable = service::awaitable<T>;

[[noreturn]] void throw_ended() {
    throw boost::system::system_error(asio::error::operation_aborted,
                                      "udshttp: the response stream has ended");
}

} // namespace

namespace {

// What an access-log line and /metrics say of a request whose peer left before its answer
// (nginx's 499: client closed request).
constexpr unsigned peer_left_status = 499;

void log_failure(connection& c, const request_head& msg, std::string_view what,
                 const std::string& failure) {
    c.state.log.log(log_level::error, std::string(what) + " for " + quote(msg.method_string()) +
                                          " " + quote(msg.target()) + " threw: " + failure);
}

awaitable<bool> serve_async(connection& c, const request_head& msg, const route_match& match,
                            bool keep_alive, clock::time_point start) {
    const request req(msg, c.peer, &match);
    response res{http::status::ok, msg.version()};
    handler_call call(c);
    c.slot.disarm(); // the handler may wait as long as it likes; the watch sees a disconnect
    call.spawn([&] { return c.state.routes.call(match, req, res); });
    call.watch();
    co_await call.settle();
    if (call.peer_gone) {
        c.record(&msg, peer_left_status, match.index(), msg.body().size(), 0, start);
        co_return false;
    }
    auto route = match.index();
    if (call.thrown) {
        log_failure(c, msg, "handler", call.failure());
        res = response{http::status::ok, msg.version()};
        set_error(res, errc::internal_error);
        route.reset();
    }
    keep_alive = keep_alive && !c.draining();
    c.slot.arm(c.opt.idle_timeout);
    co_return co_await c.answer(res, &msg, keep_alive, route, msg.body().size(), start) &&
        keep_alive;
}

} // namespace

// A stream_writer route's call. The handler's side (response_stream) queues body bytes; the
// connection's side (run()) frames and writes them, sends heartbeats, and ends the stream.
class stream_call final : public drain_listener {
public:
    // The most body bytes waiting in the server per stream; a write beyond it suspends.
    static constexpr std::size_t queue_cap = 64 * 1024;

    stream_call(connection& conn, const request_head& m, const route_match& match, bool keep_alive)
        : c(conn), msg(m), req(m, conn.peer, &match), res(http::status::ok, m.version()),
          call(conn), heartbeat_(match.heartbeat()), keep_alive_(keep_alive),
          room_(conn.socket.get_executor()) {
        c.slot.on_drain = this;
    }
    ~stream_call() { c.slot.on_drain = nullptr; }
    stream_call(const stream_call&) = delete;
    stream_call& operator=(const stream_call&) = delete;

    // The connection's side: runs the handler and writes its stream. Returns whether the
    // connection may carry another request.
    awaitable<bool> run(const route_match& match, clock::time_point start);

    // The handler's side.
    handler_awaitable<> put(std::string_view bytes);
    handler_awaitable<> flush();
    void set_type_if_unset(std::string_view type) {
        if (!head_sent_ && res[http::field::content_type].empty())
            res.set(http::field::content_type, type);
    }
    bool ended() const noexcept { return ended_; }

    void drain() noexcept override {
        draining_ = true;
        call.wake.cancel();
    }

    connection& c;
    const request_head& msg;
    const request req;
    response res;

private:
    enum class format { raw, ndjson, sse };
    format current_format() const {
        const std::string_view type = res[http::field::content_type];
        const auto is = [&](std::string_view t) {
            return type.size() >= t.size() && boost::beast::iequals(type.substr(0, t.size()), t);
        };
        if (is("text/event-stream"))
            return format::sse;
        if (is("application/x-ndjson") || is("application/jsonl"))
            return format::ndjson;
        return format::raw;
    }
    // Ends the stream for the handler: its writes throw from now on and what it awaits is
    // cancelled.
    void end_for_handler() {
        ended_ = true;
        call.cancel();
        room_.cancel();
    }
    handler_awaitable<> wait_room() {
        room_.expires_at(clock::time_point::max());
        co_await room_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    // Writes the head if not sent yet, what a direct send left, what the queue holds (as one
    // chunk), and the last chunk if `last`. False: the peer went away or stalled past the idle
    // timeout.
    awaitable<bool> send(bool last);
    // The handler's side sends `bytes` itself, framed, when the writer is idle and nothing
    // waits before them: one non-blocking sendmsg, no wake-up of the writer (which is what a
    // subscriber that keeps up costs). What the socket does not take goes to pending_ for the
    // writer. A send that cannot block cannot be cut by a cancellation, so the framing stays
    // whole. False: not now (the bytes go through the queue).
    bool send_directly(std::string_view bytes);
    // `body` as it goes on the wire: one chunk (size line, bytes, CRLF) on HTTP/1.1, the bytes
    // alone on 1.0. Fills `out` (room for 3) and returns how many buffers; `size_line` holds
    // the chunk's size line and must outlive them.
    std::size_t frame(std::string_view body, char (&size_line)[20],
                      asio::const_buffer* out) const noexcept {
        if (!chunked_) {
            out[0] = asio::buffer(body.data(), body.size());
            return 1;
        }
        auto* end = std::to_chars(size_line, size_line + 16, body.size(), 16).ptr;
        *end++ = '\r';
        *end++ = '\n';
        out[0] = asio::buffer(size_line, static_cast<std::size_t>(end - size_line));
        out[1] = asio::buffer(body.data(), body.size());
        out[2] = asio::buffer("\r\n", 2);
        return 3;
    }

    handler_call call;
    const std::chrono::milliseconds heartbeat_;
    bool keep_alive_;
    timer_type room_; // notifies the handler's side: room in the queue, or the stream ended
    std::string queue_;
    std::string out_;
    std::string head_;
    std::string pending_; // framed bytes a direct send left: the writer sends them first
    clock::time_point last_write_ = clock::now();
    bool writing_ = false;     // the writer is in send()
    std::uint64_t queued_ = 0; // body bytes the handler has written
    std::uint64_t taken_ = 0;  // of those, handed to the socket
    std::size_t sent_ = 0;     // bytes written, framing and head included
    bool head_wanted_ = false; // flush() asked for the head
    bool head_sent_ = false;
    bool chunked_ = false;
    bool no_body_ = false; // HEAD, 1xx, 204 or 304: a head and nothing else
    bool ended_ = false;
    bool draining_ = false;
    bool drained_ = false; // the drain ended it
};

bool stream_call::send_directly(std::string_view bytes) {
    if (ended_ || draining_ || writing_ || !head_sent_ || no_body_ || !queue_.empty() ||
        !pending_.empty() || bytes.empty() || bytes.size() > queue_cap)
        return false;
    std::array<asio::const_buffer, 3> parts;
    char size_line[20];
    const auto n = frame(bytes, size_line, parts.data());
    const std::span<const asio::const_buffer> pieces(parts.data(), n);
    boost::system::error_code ec;
    auto sent = c.socket.send(pieces, 0, ec); // the socket is non-blocking
    if (ec) // would block, or failed: the writer's write finds out which
        sent = 0;
    queued_ += bytes.size();
    taken_ += bytes.size();
    sent_ += sent;
    c.w.stats.bytes_sent.add(sent);
    last_write_ = clock::now();
    if (sent < asio::buffer_size(pieces)) {
        boost::beast::buffers_suffix<std::span<const asio::const_buffer>> rest(pieces);
        rest.consume(sent);
        pending_.reserve(asio::buffer_size(rest));
        for (const auto& b : boost::beast::buffers_range_ref(rest))
            pending_.append(static_cast<const char*>(b.data()), b.size());
        call.wake.cancel();
    }
    return true;
}

handler_awaitable<> stream_call::put(std::string_view bytes) {
    if (send_directly(bytes))
        co_return;
    while (!bytes.empty()) {
        if (ended_)
            throw_ended();
        // What a direct send left counts against the cap: it is written with the queue.
        const auto held = queue_.size() + pending_.size();
        if (held >= queue_cap) {
            co_await wait_room();
            continue;
        }
        const auto n = std::min(queue_cap - held, bytes.size());
        queue_.append(bytes.substr(0, n));
        bytes.remove_prefix(n);
        queued_ += n;
        call.wake.cancel();
    }
}

handler_awaitable<> stream_call::flush() {
    head_wanted_ = true;
    call.wake.cancel();
    const auto target = queued_;
    while ((taken_ < target || !head_sent_) && !ended_)
        co_await wait_room();
    if (taken_ < target || !head_sent_)
        throw_ended();
}

awaitable<bool> stream_call::send(bool last) {
    std::array<asio::const_buffer, 6> parts;
    std::size_t n = 0;
    if (!head_sent_) {
        // The stream owns the framing: what the handler set about it goes.
        res.erase(http::field::content_length);
        res.erase(http::field::transfer_encoding);
        res.erase(http::field::connection);
        const auto status = res.result_int();
        no_body_ =
            msg.method() == http::verb::head || status < 200 || status == 204 || status == 304;
        const bool framed = !(status < 200 || status == 204 || status == 304);
        chunked_ = framed && msg.version() >= 11;
        // HTTP/1.0 has no chunks: the close ends the body.
        keep_alive_ = keep_alive_ && (chunked_ || !framed) && !c.draining();
        format_head(res, std::nullopt, keep_alive_, c.w.date.get(), head_, chunked_);
        parts[n++] = asio::buffer(head_);
        head_sent_ = true;
    }
    if (!pending_.empty())
        parts[n++] = asio::buffer(pending_);
    out_.swap(queue_);
    queue_.clear();
    taken_ += out_.size();
    if (no_body_)
        out_.clear();
    char size_line[20];
    if (!out_.empty())
        n += frame(out_, size_line, parts.data() + n);
    if (last && chunked_ && !no_body_)
        parts[n++] = asio::buffer("0\r\n\r\n", 5);
    room_.cancel(); // the queue has room again
    if (n == 0)
        co_return true;
    c.slot.arm(c.opt.idle_timeout); // the write-stall deadline
    // A plain send first: a subscriber that keeps up takes it at once, with no trip through
    // the reactor and the scheduler.
    const std::span<const asio::const_buffer> pieces(parts.data(), n);
    writing_ = true;
    auto [ec, written] = co_await c.send_all(pieces);
    writing_ = false;
    c.slot.disarm();
    last_write_ = clock::now();
    if (head_.capacity() > 0)
        std::string().swap(head_); // sent: an idle stream keeps none of it
    if (pending_.capacity() > 0)
        std::string().swap(pending_);
    sent_ += written;
    c.w.stats.bytes_sent.add(written);
    co_return !ec && !c.slot.timed_out;
}

awaitable<bool> stream_call::run(const route_match& match, clock::time_point start) {
    c.slot.disarm(); // between writes no deadline: the heartbeat and the watch do that work
    // A stream may idle for hours: it holds no read buffer meanwhile (bytes of a pipelined
    // request stay in the socket until the stream ends).
    if (c.buffer.size() == 0)
        c.buffer.shrink_to_fit();
    response_stream stream(*this);
    call.spawn([&] { return c.state.routes.call(match, req, stream); });
    call.watch();
    bool cut = false;
    for (;;) {
        if (call.peer_gone)
            break;
        if (draining_ && !ended_) {
            drained_ = true;
            end_for_handler();
        }
        if (!queue_.empty() || !pending_.empty() || (head_wanted_ && !head_sent_)) {
            if (!co_await send(false)) {
                cut = true;
                break;
            }
            if (no_body_ && !ended_)
                end_for_handler(); // the head was all there is to send
            continue;
        }
        if (call.handler_done)
            break;
        const auto f = current_format();
        const auto due = heartbeat_.count() > 0 && f != format::raw ? last_write_ + heartbeat_
                                                                    : clock::time_point::max();
        if (due <= clock::now()) {
            const std::string_view beat = f == format::sse ? ":\n\n" : "\n";
            queue_ += beat;
            queued_ += beat.size(); // so that flush() counts it as taken
            continue;
        }
        co_await wait_for(call.wake, due);
    }
    if (!call.handler_done)
        end_for_handler(); // the peer left or stalled: the handler stops too
    co_await call.settle();
    room_.cancel();
    const auto route = match.index();
    const auto status = head_sent_ ? res.result_int() : peer_left_status;
    if (call.peer_gone || cut) {
        c.record(&msg, status, route, msg.body().size(), sent_, start);
        co_return false;
    }
    if (call.thrown && !ended_) {
        log_failure(c, msg, "stream handler", call.failure());
        if (!head_sent_) {
            co_await c.fail(msg, msg.body().size(), start);
            co_return false;
        }
        // Too late for a status: the stream ends without its last chunk, so the peer sees
        // that it was cut.
        c.record(&msg, status, route, msg.body().size(), sent_, start);
        co_return false;
    }
    if (drained_ && !head_sent_ && current_format() == format::raw) {
        // A stream that had not begun (a long-poll still waiting) and has no last words of
        // its own format: a plain 503, so the client knows to come back.
        res = response{http::status::ok, msg.version()};
        set_error(res, errc::service_unavailable, "the server is shutting down");
        queue_ = std::move(res.body());
        c.state.streams_drained.fetch_add(1, std::memory_order_relaxed);
    } else if (drained_) {
        queue_.clear(); // the handler's unsent bytes go; the last words do not
        switch (current_format()) {
        case format::sse:
            queue_ = "event: shutdown\ndata: the server is shutting down\n\n";
            break;
        case format::ndjson:
            queue_ = "{\"type\":\"shutdown\"}\n";
            break;
        case format::raw:
            break;
        }
        c.state.streams_drained.fetch_add(1, std::memory_order_relaxed);
    }
    const bool ok = co_await send(true);
    c.record(&msg, res.result_int(), route, msg.body().size(), sent_, start);
    co_return ok&& keep_alive_ && !c.draining();
}

awaitable<bool> serve_coroutine_route(connection& c, const request_head& msg,
                                      const route_match& match, bool keep_alive,
                                      clock::time_point start) {
    if (match.kind() == route_kind::async)
        co_return co_await serve_async(c, msg, match, keep_alive, start);
    stream_call call(c, msg, match, keep_alive);
    co_return co_await call.run(match, start);
}

} // namespace udshttp::service::detail

namespace udshttp::service {

response& response_stream::head() noexcept {
    return call_.res;
}

awaitable<> response_stream::write(std::string_view bytes) {
    return call_.put(bytes);
}

awaitable<> response_stream::write_json(const nlohmann::json& value) {
    call_.set_type_if_unset("application/x-ndjson");
    std::string line = value.dump();
    line += '\n';
    co_await call_.put(line);
}

namespace {

// "name: value\n" for each line of `value` (split at CRLF, LF or CR, as SSE parsers split).
void sse_lines(std::string& out, std::string_view name, std::string_view value) {
    for (;;) {
        const auto eol = value.find_first_of("\r\n");
        out.append(name);
        out.append(": ");
        out.append(value.substr(0, eol));
        out += '\n';
        if (eol == std::string_view::npos)
            return;
        value.remove_prefix(eol + (value.compare(eol, 2, "\r\n") == 0 ? 2 : 1));
    }
}

void check_one_line(std::string_view what, std::string_view value) {
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        throw std::invalid_argument("an SSE " + std::string(what) + " cannot hold CR, LF or NUL");
}

} // namespace

std::string format_event(const sse_event& e) {
    check_one_line("event name", e.event);
    check_one_line("id", e.id);
    std::string text;
    text.reserve(e.data.size() + e.event.size() + e.id.size() + 32);
    if (!e.event.empty())
        sse_lines(text, "event", e.event);
    if (!e.id.empty())
        sse_lines(text, "id", e.id);
    if (e.retry)
        text += "retry: " + std::to_string(e.retry->count()) + "\n";
    sse_lines(text, "data", e.data);
    text += '\n';
    return text;
}

awaitable<> response_stream::write_event(const sse_event& e) {
    const auto text = format_event(e);
    call_.set_type_if_unset("text/event-stream");
    co_await call_.put(text);
}

awaitable<> response_stream::write_comment(std::string_view text) {
    call_.set_type_if_unset("text/event-stream");
    std::string out;
    sse_lines(out, "", text); // ": text" per line
    out += '\n';
    co_await call_.put(out);
}

awaitable<> response_stream::flush() {
    return call_.flush();
}

std::string_view response_stream::last_event_id() const noexcept {
    return call_.msg["Last-Event-ID"];
}

bool response_stream::ended() const noexcept {
    return call_.ended();
}

boost::asio::any_io_executor response_stream::get_executor() const noexcept {
    return call_.c.socket.get_executor();
}

} // namespace udshttp::service
