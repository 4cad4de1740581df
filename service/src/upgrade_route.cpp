// WebSocket and raw upgrades: see upgrade_route.hpp.

#include "upgrade_route.hpp"

#include "handler_call.hpp"

#include <udshttp/service/async.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <algorithm>
#include <cstring>

namespace udshttp::service::detail {

namespace beast = boost::beast;
namespace websocket_ns = boost::beast::websocket;

upgrade_kind upgrade_for(const request_parser& parser, const route_match& match) {
    const auto& msg = parser.get();
    if (!match.found() || !parser.is_done() || msg.version() < 11 ||
        msg[http::field::upgrade].empty() ||
        !http::token_list(msg[http::field::connection]).exists("upgrade"))
        return upgrade_kind::none;
    if (websocket_ns::is_upgrade(msg))
        return match.websocket() ? upgrade_kind::websocket : upgrade_kind::none;
    return match.upgrades() ? upgrade_kind::raw : upgrade_kind::none;
}

namespace {

// What a handler's side returns: awaitable on the handler's executor.
template <class T = void> using task = service::awaitable<T>;

// The connection as Beast's websocket stream sees it: the bytes that arrived after the
// upgrade request (already in the session's buffer) first, then the socket.
class ws_transport {
public:
    using executor_type = socket_type::executor_type;

    ws_transport(socket_type& s, std::string prefix) : socket_(s), prefix_(std::move(prefix)) {}

    executor_type get_executor() noexcept { return socket_.get_executor(); }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        if (prefix_.empty())
            return socket_.async_read_some(buffers, std::forward<Token>(token));
        const auto n = asio::buffer_copy(buffers, asio::buffer(prefix_));
        prefix_.erase(0, n);
        return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, std::size_t copied) {
                auto ex = asio::get_associated_executor(handler, socket_.get_executor());
                asio::post(ex, [h = std::move(handler), copied]() mutable {
                    std::move(h)(boost::system::error_code{}, copied);
                });
            },
            token, n);
    }
    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        return socket_.async_write_some(buffers, std::forward<Token>(token));
    }

    // Beast tears the connection down after the closing handshake, and closes it on a
    // timeout, through these (found by argument-dependent lookup).
    friend void teardown(boost::beast::role_type role, ws_transport& t,
                         boost::system::error_code& ec) {
        websocket_ns::teardown(role, t.socket_, ec);
    }
    template <class Handler>
    friend void async_teardown(boost::beast::role_type role, ws_transport& t, Handler&& h) {
        websocket_ns::async_teardown(role, t.socket_, std::forward<Handler>(h));
    }
    friend void beast_close_socket(ws_transport& t) {
        boost::system::error_code ignored;
        t.socket_.close(ignored);
    }

private:
    socket_type& socket_;
    std::string prefix_;
};

// The bytes the session read past the request head: the start of the new protocol's.
std::string leftover(connection& c) {
    std::string out(static_cast<const char*>(c.buffer.data().data()), c.buffer.size());
    c.buffer.consume(c.buffer.size());
    return out;
}

[[noreturn]] void throw_error(const boost::system::error_code& ec) {
    throw boost::system::system_error(ec);
}

} // namespace

class websocket_call final : public drain_listener {
public:
    websocket_call(connection& conn, std::string prefix)
        : c(conn), ws(conn.socket, std::move(prefix)), call(conn) {
        c.slot.on_drain = this;
    }
    ~websocket_call() { c.slot.on_drain = nullptr; }
    websocket_call(const websocket_call&) = delete;
    websocket_call& operator=(const websocket_call&) = delete;

    void drain() noexcept override {
        if (start_close(websocket_ns::close_code::going_away))
            c.state.streams_drained.fetch_add(1, std::memory_order_relaxed);
    }
    // Starts the closing handshake unless one has begun; false if one had.
    bool start_close(websocket_ns::close_code code) noexcept {
        if (closing || !ws.is_open())
            return false;
        closing = true;
        ++close_ops;
        ws.async_close(code, [this](const boost::system::error_code&) {
            --close_ops;
            // Closed. A read the handler still has pending is not always completed by Beast
            // once its close operation took the peer's close frame: cancel the handler, so
            // that it cannot wait on a connection that is gone.
            call.cancel();
            call.wake.cancel();
        });
        return true;
    }

    connection& c;
    websocket_ns::stream<ws_transport> ws;
    handler_call call;
    bool closing = false;
    int close_ops = 0;
    std::optional<std::uint16_t> peer_code;
};

class upgrade_call final : public drain_listener {
public:
    upgrade_call(connection& conn, std::string rest, std::string asked)
        : c(conn), call(conn), prefix(std::move(rest)), protocol(std::move(asked)) {
        c.slot.on_drain = this;
    }
    ~upgrade_call() { c.slot.on_drain = nullptr; }
    upgrade_call(const upgrade_call&) = delete;
    upgrade_call& operator=(const upgrade_call&) = delete;

    void drain() noexcept override {
        // A raw stream has no last words: it ends, and its handler is cancelled.
        c.state.streams_drained.fetch_add(1, std::memory_order_relaxed);
        call.cancel();
        boost::system::error_code ignored;
        c.socket.cancel(ignored);
    }

    // Arms the connection's deadline for one read or write, if the handler set a limit.
    void arm() noexcept {
        if (idle_limit.count() > 0)
            c.slot.arm(idle_limit);
    }
    // Disarms it; false if it fired (the sweeper cancelled the operation).
    bool disarm() noexcept {
        c.slot.disarm();
        return !c.slot.timed_out;
    }

    connection& c;
    handler_call call;
    std::string prefix;
    const std::string protocol;
    std::chrono::milliseconds idle_limit{0};
};

namespace {

awaitable<> serve_websocket(connection& c, request_head& msg, const route_match& match,
                            clock::time_point start) {
    websocket_call k(c, leftover(c));
    k.ws.set_option(websocket_ns::stream_base::timeout{
        .handshake_timeout = c.opt.header_timeout,
        .idle_timeout = c.opt.idle_timeout,
        .keep_alive_pings = true, // a ping at half the idle timeout; silence past it closes
    });
    k.ws.set_option(websocket_ns::stream_base::decorator(
        [](websocket_ns::response_type& res) { res.set(http::field::server, server_field); }));
    k.ws.read_message_max(c.opt.max_body_bytes);
    // A message goes out as one frame in one gathered write: Beast's default splits what a
    // server sends into 4 KiB frames, each its own write (64 KiB echoes ran at a tenth of the
    // socket's speed).
    k.ws.auto_fragment(false);
    c.slot.disarm(); // Beast's own timer takes the deadlines from here
    auto [ec] = co_await k.ws.async_accept(msg, io::use_tuple{});
    if (ec) { // Beast has answered the bad handshake (400) itself
        c.record(&msg, 400, match.index(), 0, 0, start);
        c.close();
        co_return;
    }
    const request req(msg, c.peer, &match);
    websocket handle(k);
    k.call.spawn([&] { return c.state.routes.call(match, req, handle); });
    co_await k.call.settle();
    if (k.call.thrown && !k.closing && k.ws.is_open()) {
        c.state.log.log(log_level::error, "websocket handler for " + quote(msg.target()) +
                                              " threw: " + k.call.failure());
        k.start_close(websocket_ns::close_code::internal_error);
    } else {
        k.start_close(websocket_ns::close_code::normal); // the handler returned with it open
    }
    while (k.close_ops > 0)
        co_await wait_for(k.call.wake);
    c.record(&msg, 101, match.index(), 0, 0, start);
    c.close();
}

awaitable<> serve_raw(connection& c, request_head& msg, const route_match& match,
                      clock::time_point start) {
    upgrade_call k(c, leftover(c), std::string(msg[http::field::upgrade]));
    std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: ";
    head.append(k.protocol);
    head += "\r\nConnection: Upgrade\r\nServer: ";
    head.append(server_field);
    head += "\r\n\r\n";
    c.slot.arm(c.opt.idle_timeout);
    auto [ec, n] = co_await asio::async_write(c.socket, asio::buffer(head));
    c.slot.disarm(); // from here the handler decides how long a pause may be
    c.w.stats.bytes_sent.add(n);
    if (ec || c.slot.timed_out) {
        c.close();
        co_return;
    }
    const request req(msg, c.peer, &match);
    upgraded_stream handle(k);
    k.call.spawn([&] { return c.state.routes.call(match, req, handle); });
    co_await k.call.settle();
    if (k.call.thrown && !c.draining())
        c.state.log.log(log_level::debug, "upgrade handler for " + quote(msg.target()) +
                                              " ended by: " + k.call.failure());
    c.record(&msg, 101, match.index(), 0, n, start);
    c.close();
}

} // namespace

awaitable<> serve_upgrade(connection& c, request_head& msg, const route_match& match,
                          upgrade_kind kind, clock::time_point start) {
    if (kind == upgrade_kind::websocket)
        co_await serve_websocket(c, msg, match, start);
    else
        co_await serve_raw(c, msg, match, start);
}

} // namespace udshttp::service::detail

namespace udshttp::service {

namespace {
// What a message's first read asks for, before its frame header tells its size (Beast's
// tcp_frame_size): a small message costs no more than this.
constexpr std::size_t first_read_bytes = 1536;
} // namespace

using detail::task;

task<std::optional<websocket::message>> websocket::read() {
    auto& k = call_;
    // Straight into the message's string, each read as large as the frame's rest (Beast's
    // read_size_hint): no buffer of the connection's own to hold while it idles, and no copy.
    message m;
    do {
        const auto want = k.ws.read_size_hint(first_read_bytes);
        const auto had = m.data.size();
        m.data.resize(had + want);
        auto [ec, n] =
            co_await k.ws.async_read_some(boost::asio::buffer(m.data.data() + had, want),
                                          boost::asio::as_tuple(boost::asio::use_awaitable));
        m.data.resize(had + n);
        if (ec == boost::beast::websocket::error::closed) {
            k.peer_code = static_cast<std::uint16_t>(k.ws.reason().code);
            co_return std::nullopt;
        }
        if (ec)
            detail::throw_error(ec);
    } while (!k.ws.is_message_done());
    m.binary = !k.ws.got_text();
    co_return m;
}

task<> websocket::write(std::string_view data, bool binary) {
    auto& k = call_;
    k.ws.binary(binary);
    // The write-stall deadline. Beast's idle timer does not catch a peer that keeps sending
    // but never reads (each read it makes resets the timer), so a write the peer does not take
    // within the idle timeout is cut here: the sweeper cancels the socket.
    k.c.slot.arm(k.c.opt.idle_timeout);
    auto [ec, n] = co_await k.ws.async_write(boost::asio::buffer(data.data(), data.size()),
                                             boost::asio::as_tuple(boost::asio::use_awaitable));
    k.c.slot.disarm();
    if (k.c.slot.timed_out && !ec)
        ec = boost::asio::error::timed_out;
    if (ec)
        detail::throw_error(ec);
}

task<> websocket::close(std::uint16_t code, std::string_view reason) {
    auto& k = call_;
    if (k.closing || !k.ws.is_open())
        co_return;
    k.closing = true;
    ++k.close_ops;
    boost::beast::websocket::close_reason why(
        static_cast<boost::beast::websocket::close_code>(code),
        boost::beast::string_view(reason.data(), reason.size()));
    auto [ec] = co_await k.ws.async_close(why, boost::asio::as_tuple(boost::asio::use_awaitable));
    --k.close_ops;
    if (ec && ec != boost::asio::error::operation_aborted)
        detail::throw_error(ec);
}

std::optional<std::uint16_t> websocket::close_code() const noexcept {
    return call_.peer_code;
}

task<std::size_t> upgraded_stream::read_some(std::span<char> into) {
    auto& k = call_;
    if (!k.prefix.empty()) {
        const auto n = std::min(into.size(), k.prefix.size());
        std::memcpy(into.data(), k.prefix.data(), n);
        k.prefix.erase(0, n);
        co_return n;
    }
    k.arm();
    auto [ec, n] =
        co_await k.c.socket.async_read_some(boost::asio::buffer(into.data(), into.size()),
                                            boost::asio::as_tuple(boost::asio::use_awaitable));
    if (!k.disarm())
        detail::throw_error(boost::asio::error::timed_out);
    if (ec == boost::asio::error::eof)
        co_return 0;
    if (ec)
        detail::throw_error(ec);
    k.c.w.stats.bytes_received.add(n);
    co_return n;
}

task<> upgraded_stream::write(std::string_view bytes) {
    auto& k = call_;
    k.arm();
    auto [ec, n] = co_await boost::asio::async_write(
        k.c.socket, boost::asio::buffer(bytes.data(), bytes.size()),
        boost::asio::as_tuple(boost::asio::use_awaitable));
    k.c.w.stats.bytes_sent.add(n);
    if (!k.disarm())
        detail::throw_error(boost::asio::error::timed_out);
    if (ec)
        detail::throw_error(ec);
}

void upgraded_stream::shutdown_write() noexcept {
    boost::system::error_code ignored;
    call_.c.socket.shutdown(boost::asio::socket_base::shutdown_send, ignored);
}

std::string_view upgraded_stream::protocol() const noexcept {
    return call_.protocol;
}

void upgraded_stream::set_idle_limit(std::chrono::milliseconds limit) noexcept {
    call_.idle_limit = limit;
}

} // namespace udshttp::service
