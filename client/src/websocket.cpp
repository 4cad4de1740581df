// The blocking WebSocket client: the HTTP client's connect (deadline, errors that name the
// endpoint), then Beast's websocket stream over the socket, on a private io_context.

#include "connect.hpp"
#include "message.hpp"

#include <udshttp/client/websocket.hpp>
#include <udshttp/proto/url.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <ostream>

namespace udshttp::client {

namespace websocket_ns = boost::beast::websocket;

struct websocket::impl {
    detail::asio::io_context ctx;
    detail::connection_ptr conn;
    std::optional<websocket_ns::stream<detail::socket_type&>> ws;
    boost::beast::flat_buffer in;
    std::optional<std::uint16_t> peer_code;
    std::string url;

    error fail(std::string_view what, const boost::system::error_code& ec) const {
        const auto code =
            ec == websocket_ns::error::closed ? errc::connection_closed : errc::io_error;
        return error{make_error_code(code),
                     "websocket " + url + ": " + std::string(what) + ": " + ec.message()};
    }
};

websocket::websocket(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
websocket::websocket(websocket&&) noexcept = default;
websocket& websocket::operator=(websocket&&) noexcept = default;
websocket::~websocket() {
    if (impl_ && impl_->conn) { // no closing handshake here: it could wait on a hung server
        boost::system::error_code ignored;
        impl_->conn->socket.close(ignored);
    }
}

result<websocket> websocket::connect(std::string_view url_text, const websocket_options& options) {
    auto u = proto::url::parse(url_text);
    if (!u)
        return u.error();
    auto p = std::make_unique<impl>();
    p->url = std::string(url_text);
    const auto limit = options.connect_timeout;
    const auto total =
        limit.count() > 0 ? detail::clock::now() + limit : detail::clock::time_point::max();
    result<detail::connection_ptr> got = error{};
    detail::watchdog wd(p->ctx.get_executor(), total);
    detail::asio::co_spawn(
        p->ctx,
        [&]() -> detail::awaitable<> {
            got = co_await detail::connect(p->ctx.get_executor(), u->where, wd, {limit, limit},
                                           64 * 1024);
            wd.cancel();
        },
        detail::asio::detached);
    p->ctx.run();
    if (!got)
        return got.error();
    p->conn = std::move(*got);
    auto& ws = p->ws.emplace(p->conn->socket);
    ws.set_option(websocket_ns::stream_base::decorator(
        [ua = options.user_agent](websocket_ns::request_type& req) {
            if (!ua.empty())
                req.set(boost::beast::http::field::user_agent, ua);
        }));
    ws.read_message_max(options.max_message_bytes);
    websocket_ns::response_type res;
    boost::system::error_code ec;
    ws.handshake(res, u->host, u->target, ec);
    if (ec) {
        if (res.result_int() != 0 && res.result_int() != 101) {
            response r;
            r.status = res.result_int();
            r.reason = std::string(res.reason());
            r.body = res.body();
            for (const auto& f : res)
                r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
            return detail::answer_error("websocket " + p->url, r);
        }
        return p->fail("the opening handshake failed", ec);
    }
    return websocket(std::move(p));
}

result<void> websocket::send(std::string_view data, bool binary) {
    auto& ws = *impl_->ws;
    ws.binary(binary);
    boost::system::error_code ec;
    ws.write(detail::asio::buffer(data.data(), data.size()), ec);
    if (ec)
        return impl_->fail("send", ec);
    return {};
}

result<std::optional<websocket::message>> websocket::receive() {
    auto& ws = *impl_->ws;
    impl_->in.clear();
    boost::system::error_code ec;
    ws.read(impl_->in, ec);
    if (ec == websocket_ns::error::closed) {
        impl_->peer_code = static_cast<std::uint16_t>(ws.reason().code);
        return std::optional<message>();
    }
    if (ec)
        return impl_->fail("receive", ec);
    return std::optional<message>(
        message{boost::beast::buffers_to_string(impl_->in.data()), !ws.got_text()});
}

result<void> websocket::close(std::uint16_t code, std::string_view reason) {
    auto& ws = *impl_->ws;
    if (!ws.is_open())
        return {};
    boost::system::error_code ec;
    ws.close(websocket_ns::close_reason(static_cast<websocket_ns::close_code>(code),
                                        boost::beast::string_view(reason.data(), reason.size())),
             ec);
    if (ec && ec != websocket_ns::error::closed)
        return impl_->fail("close", ec);
    return {};
}

result<void> websocket::relay(int in, std::ostream& out, bool binary,
                              std::chrono::milliseconds linger) {
    namespace asio = detail::asio;
    auto& k = *impl_;
    auto& ws = *k.ws;
    ws.binary(binary);
    std::optional<error> failed;
    bool closed = false;
    auto last_heard = detail::clock::now();
    asio::steady_timer quiet(k.ctx);

    // Messages as they arrive, until the connection closes.
    const auto reader = [&]() -> detail::awaitable<> {
        for (;;) {
            k.in.clear();
            auto [ec, n] = co_await ws.async_read(k.in, detail::io::use_tuple{});
            if (ec) {
                if (ec == websocket_ns::error::closed)
                    k.peer_code = static_cast<std::uint16_t>(ws.reason().code);
                else if (ec != asio::error::operation_aborted && !closed)
                    failed = k.fail("receive", ec);
                break;
            }
            out << boost::beast::buffers_to_string(k.in.data()) << '\n' << std::flush;
            last_heard = detail::clock::now();
        }
        closed = true;
        quiet.cancel();
    };
    // Lines to send: a regular file is read at once, a pipe or terminal as it comes.
    const auto writer = [&]() -> detail::awaitable<> {
        struct stat st {};
        std::optional<asio::posix::stream_descriptor> stream;
        std::string pending;
        if (::fstat(in, &st) == 0 && S_ISREG(st.st_mode)) {
            char buf[65536];
            for (ssize_t n; (n = ::read(in, buf, sizeof buf)) > 0;)
                pending.append(buf, static_cast<std::size_t>(n));
            if (!pending.empty() && pending.back() != '\n')
                pending += '\n';
        } else {
            stream.emplace(k.ctx, ::dup(in));
        }
        for (;;) {
            while (!closed) {
                const auto nl = pending.find('\n');
                if (nl == std::string::npos)
                    break;
                auto [ec, n] = co_await ws.async_write(asio::buffer(pending.data(), nl),
                                                       detail::io::use_tuple{});
                pending.erase(0, nl + 1);
                if (ec) {
                    if (!closed)
                        failed = k.fail("send", ec);
                    co_return;
                }
            }
            if (closed || !stream)
                break;
            auto [ec, n] = co_await asio::async_read_until(*stream, asio::dynamic_buffer(pending),
                                                           '\n', detail::io::use_tuple{});
            if (ec) { // the end of the input (or it cannot be read further)
                if (!pending.empty())
                    pending += '\n';
                stream.reset();
            }
        }
        // Answers may still come: print them until the server has been quiet for `linger`.
        while (!closed) {
            quiet.expires_at(last_heard + linger);
            auto [ec] = co_await quiet.async_wait(detail::io::use_tuple{});
            if (!closed && !ec && detail::clock::now() >= last_heard + linger)
                break;
        }
        if (closed)
            co_return;
        closed = true;
        auto [ec] =
            co_await ws.async_close(websocket_ns::close_code::normal, detail::io::use_tuple{});
        (void)ec;
    };
    asio::co_spawn(k.ctx, reader, asio::detached);
    asio::co_spawn(k.ctx, writer, asio::detached);
    k.ctx.restart();
    k.ctx.run();
    if (failed)
        return *failed;
    return {};
}

std::optional<std::uint16_t> websocket::close_code() const noexcept {
    return impl_->peer_code;
}

} // namespace udshttp::client
