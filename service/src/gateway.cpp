// The gateway's exchange with an upstream: see gateway.hpp.
//
// One request is one `exchange`: the rules decide, a pooled or new upstream connection takes
// the request head, and then two coroutines run at once - the request body from the caller to
// the upstream (then a watch on the caller, so a caller that goes away ends a quiet stream),
// and the response from the upstream to the caller. Each copies through a fixed 64 KiB buffer
// and waits for its write before it reads again, so a side that stops reading stops the other
// from being read: memory per exchange is bounded whatever the bodies' sizes. A 101 turns the
// exchange into a tunnel, one copy loop per direction, each passing its EOF on as a half-close.

#include "gateway.hpp"

#include "connection.hpp"
#include "handler_call.hpp"
#include "response_head.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace udshttp::service::detail {

using namespace boost::asio::experimental::awaitable_operators;
namespace beast = boost::beast;
using generic = asio::generic::stream_protocol;

gateway_state::gateway_state(const gateway_options& o) : options(o) {
    for (const auto& u : o.upstreams) {
        if (u.name.empty())
            throw startup_error(make_error_code(errc::invalid_endpoint),
                                "an upstream needs a name (NAME=ENDPOINT)");
        if (!std::all_of(u.name.begin(), u.name.end(), [](char ch) {
                return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
                       ch == '-';
            }))
            throw startup_error(make_error_code(errc::invalid_endpoint),
                                "upstream name '" + u.name +
                                    "': use letters, digits, '.', '_', '-'");
        if (std::any_of(upstreams.begin(), upstreams.end(),
                        [&](const auto& s) { return s.name == u.name; }))
            throw startup_error(make_error_code(errc::invalid_endpoint),
                                "upstream " + u.name + " is named twice");
        upstream_state s{u.name, u.name + " (" + u.endpoint.to_string() + ")", {}};
        const auto& e = u.endpoint;
        if (!e.fits_sockaddr())
            throw startup_error(make_error_code(errc::socket_path_too_long),
                                "upstream " + s.label + ": the socket name is too long");
        if (e.kind == proto::transport::unix_path) {
            s.addresses.emplace_back(asio::local::stream_protocol::endpoint(e.address));
        } else if (e.kind == proto::transport::unix_abstract) {
            s.addresses.emplace_back(
                asio::local::stream_protocol::endpoint(std::string(1, '\0') + e.address));
        } else if (e.kind == proto::transport::tcp) {
            // Resolved once, here: a name that does not resolve is a start-up error, not a 502
            // on every request.
            asio::io_context ctx;
            asio::ip::tcp::resolver resolver(ctx);
            boost::system::error_code ec;
            const auto found = resolver.resolve(e.address, std::to_string(e.port), ec);
            if (ec)
                throw startup_error(ec, "upstream " + s.label + ": " + ec.message());
            for (const auto& r : found)
                s.addresses.emplace_back(r.endpoint());
        } else {
            throw startup_error(make_error_code(errc::invalid_endpoint),
                                "upstream " + s.label +
                                    ": an upstream is a socket path, an abstract name or "
                                    "host:port");
        }
        upstreams.push_back(std::move(s));
    }
    for (const auto& r : o.routes) {
        const auto it = std::find_if(upstreams.begin(), upstreams.end(),
                                     [&](const auto& s) { return s.name == r.upstream; });
        if (it == upstreams.end())
            throw startup_error(make_error_code(errc::invalid_endpoint),
                                "route " + r.prefix + " names no upstream '" + r.upstream +
                                    "' (give --upstream " + r.upstream + "=ENDPOINT)");
        auto prefix = r.prefix;
        while (prefix.size() > 1 && prefix.back() == '/')
            prefix.pop_back();
        if (!prefix.starts_with('/'))
            throw startup_error(make_error_code(errc::invalid_url),
                                "route prefix '" + r.prefix + "' does not start with '/'");
        routes_.emplace_back(prefix, static_cast<std::size_t>(it - upstreams.begin()));
    }
    std::stable_sort(routes_.begin(), routes_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    needs_process = o.rules && o.rules->needs_process();
}

std::optional<std::size_t> gateway_state::route(std::string_view path) const noexcept {
    for (const auto& [prefix, up] : routes_)
        if (prefix == "/" || (path.starts_with(prefix) &&
                              (path.size() == prefix.size() || path[prefix.size()] == '/')))
            return up;
    return std::nullopt;
}

namespace {

constexpr std::size_t copy_bytes = 64 * 1024;
constexpr std::size_t upstream_head_bytes = 64 * 1024;

// Fields that belong to one connection, never forwarded (RFC 9110 7.6.1), and the ones the
// gateway writes itself.
bool hop_by_hop(std::string_view name) {
    static constexpr std::string_view names[] = {"connection",
                                                 "keep-alive",
                                                 "proxy-connection",
                                                 "te",
                                                 "trailer",
                                                 "transfer-encoding",
                                                 "upgrade",
                                                 "proxy-authenticate",
                                                 "proxy-authorization",
                                                 "content-length",
                                                 "expect"};
    return std::any_of(std::begin(names), std::end(names),
                       [&](std::string_view n) { return beast::iequals(n, name); });
}

bool named_in_connection(std::string_view name, std::string_view connection) {
    for (const auto& token : http::token_list(connection))
        if (beast::iequals(token, name))
            return true;
    return false;
}

std::string hex(std::size_t n) {
    char b[24];
    const int len = std::snprintf(b, sizeof b, "%zx", n);
    return std::string(b, static_cast<std::size_t>(len));
}

// The framing around `got` body bytes on their way out: for chunked, the chunk-size line
// before and the CRLF after (and the last chunk when `last`); nothing for a sized body.
struct piece_framing {
    std::string size;
    std::string_view tail;
};
piece_framing frame_piece(bool chunked, std::size_t got, bool last) {
    if (!chunked)
        return {};
    if (got == 0)
        return {{}, last ? "0\r\n\r\n" : ""};
    return {hex(got) + "\r\n", last ? "\r\n0\r\n\r\n" : "\r\n"};
}

std::string_view sv(beast::string_view s) {
    return {s.data(), s.size()};
}

// A 64 KiB copy buffer from the worker's pool (no allocation, no zeroing per exchange).
struct copy_block {
    block_pool& pool;
    char* data;
    explicit copy_block(block_pool& p) : pool(p), data(p.take(copy_bytes)) {}
    ~copy_block() { pool.give(data, copy_bytes); }
    copy_block(const copy_block&) = delete;
    copy_block& operator=(const copy_block&) = delete;
};

// Tracks operations that share one deadline slot: the latest arm holds while any is pending.
struct deadline_use {
    connection_slot& slot;
    int& active;
    deadline_use(connection_slot& s, int& a, std::chrono::milliseconds d) : slot(s), active(a) {
        ++active;
        slot.arm(d);
    }
    ~deadline_use() {
        if (--active == 0)
            slot.disarm();
    }
    deadline_use(const deadline_use&) = delete;
    deadline_use& operator=(const deadline_use&) = delete;
};

// Looks at the caller's socket without reading: gone (closed or reset; over TCP a FIN too),
// data (a pipelined request), a Unix half-close, or nothing yet.
enum class look { nothing, data, half_closed, gone };
look look_at(int fd, bool unix_peer) {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0)
        return look::nothing;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return look::gone;
    if (p.revents & POLLRDHUP) {
        char b;
        if (::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
            return look::data;
        return unix_peer ? look::half_closed : look::gone;
    }
    return (p.revents & POLLIN) ? look::data : look::nothing;
}

} // namespace

class exchange final : public drain_listener {
public:
    exchange(connection& conn, gateway_state& gw, std::size_t up)
        : c(conn), g(gw), u(g.upstreams[up]), index(up), upstream(conn.socket.get_executor()) {
        if (auto& spare = c.w.spare_head_buffers; !spare.empty()) {
            ubuf = std::move(spare.back());
            spare.pop_back();
        }
        ubuf.max_size(upstream_head_bytes + copy_bytes);
        uslot.socket = &upstream;
        c.w.connections.add(uslot);
        c.slot.on_drain = this;
    }
    ~exchange() {
        ubuf.clear();
        if (auto& spare = c.w.spare_head_buffers; spare.size() < 8)
            spare.push_back(std::move(ubuf));
        c.slot.on_drain = nullptr;
        c.w.connections.remove(uslot);
    }
    exchange(const exchange&) = delete;
    exchange& operator=(const exchange&) = delete;

    // The server drains: a stream or tunnel passing through ends now (it has no last words of
    // ours to say: the bytes are the upstream's); a plain answer in flight may finish.
    void drain() noexcept override {
        drained = true;
        if (streaming) {
            c.state.streams_drained.fetch_add(1, std::memory_order_relaxed);
            cut();
        }
    }
    void cut() noexcept {
        failed = true;
        boost::system::error_code ignored;
        upstream.cancel(ignored);
        c.socket.cancel(ignored);
    }
    void count(upstream_counter k) noexcept { c.w.stats.count_upstream(index, k); }

    connection& c;
    gateway_state& g;
    const upstream_state& u;
    const std::size_t index;
    socket_type upstream;
    connection_slot uslot;
    int uactive = 0, cactive = 0; // operations pending under each slot
    beast::flat_buffer ubuf;      // the upstream's response head and what came with it
    bool reusable = false;        // the upstream may take the next request on this connection
    bool streaming = false;       // a response of unknown length, or a tunnel
    bool drained = false;
    bool failed = false;
    bool body_done = false;     // the request body has been forwarded whole
    bool response_done = false; // the response has been relayed whole
    bool head_sent = false;     // the response head has gone to the caller
    bool upgraded = false;
    bool client_keep = false;
    std::optional<refusal> answer; // an error answer for the caller (before head_sent)
    unsigned status = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
};

namespace {

refusal upstream_refusal(rejection why, std::string message) {
    return {why, std::move(message)};
}

// Takes an idle pooled connection that the upstream has not closed, if there is one.
bool take_pooled(exchange& x) {
    auto& idle = x.c.w.upstream_idle[x.index];
    while (!idle.empty()) {
        socket_type s = std::move(idle.back());
        idle.pop_back();
        if (look_at(s.native_handle(), false) == look::nothing) {
            x.upstream = std::move(s);
            return true;
        }
        boost::system::error_code ignored;
        s.close(ignored);
    }
    return false;
}

// Connects to the upstream: each address in turn; a Unix socket whose backlog is full
// (EAGAIN) is tried again with backoff until the upstream timeout.
awaitable<std::optional<refusal>> connect_upstream(exchange& x) {
    const auto deadline = clock::now() + x.g.options.upstream_timeout;
    boost::system::error_code last;
    for (const auto& ep : x.u.addresses) {
        auto delay = std::chrono::milliseconds(1);
        for (;;) {
            boost::system::error_code ec;
            x.upstream = socket_type(x.c.socket.get_executor());
            x.upstream.open(ep.protocol(), ec);
            if (!ec)
                x.upstream.non_blocking(true, ec);
            if (ec)
                co_return upstream_refusal(rejection::upstream_failed,
                                           "upstream " + x.u.label + ": socket: " + ec.message());
            if (::connect(x.upstream.native_handle(), ep.data(),
                          static_cast<socklen_t>(ep.size())) == 0)
                co_return std::nullopt;
            const int err = errno;
            if (err == EAGAIN && ep.protocol().family() == AF_UNIX) {
                if (clock::now() + delay > deadline) {
                    x.count(upstream_counter::timeouts);
                    co_return upstream_refusal(
                        rejection::upstream_timeout,
                        "upstream " + x.u.label + ": its listen backlog stayed full for " +
                            std::to_string(x.g.options.upstream_timeout.count()) + " ms");
                }
                timer_type t(x.c.socket.get_executor());
                t.expires_after(delay);
                co_await t.async_wait();
                delay = std::min(delay * 2, std::chrono::milliseconds(50));
                continue;
            }
            if (err == EINPROGRESS) {
                {
                    deadline_use d(x.uslot, x.uactive, x.g.options.upstream_timeout);
                    auto [wec] = co_await x.upstream.async_wait(asio::socket_base::wait_write);
                    ec = wec;
                }
                if (x.uslot.timed_out) {
                    x.count(upstream_counter::timeouts);
                    co_return upstream_refusal(
                        rejection::upstream_timeout,
                        "upstream " + x.u.label + ": no connection within " +
                            std::to_string(x.g.options.upstream_timeout.count()) + " ms");
                }
                int so = 0;
                socklen_t len = sizeof so;
                if (!ec &&
                    ::getsockopt(x.upstream.native_handle(), SOL_SOCKET, SO_ERROR, &so, &len) ==
                        0 &&
                    so == 0)
                    co_return std::nullopt;
                last = ec ? ec : boost::system::error_code(so, boost::system::system_category());
                break;
            }
            last = boost::system::error_code(err, boost::system::system_category());
            break;
        }
    }
    x.count(upstream_counter::connect_errors);
    co_return upstream_refusal(rejection::upstream_failed,
                               "upstream " + x.u.label +
                                   " is unavailable: connect: " + last.message());
}

// The request head as the upstream gets it: the normalised target, the caller's fields
// without the hop-by-hop ones (and those Connection names), the gateway's framing and, when
// asked, the caller's identity.
std::string upstream_head(const exchange& x, const http::request_header<>& h,
                          const normalized_target& t, std::string_view framing,
                          std::string_view upgrade) {
    std::string out;
    out.reserve(512);
    out.append(sv(h.method_string())).append(" ").append(t.target()).append(" HTTP/1.1\r\n");
    const auto connection = sv(h[http::field::connection]);
    const bool identity = x.g.options.peer_headers;
    bool host = false;
    for (const auto& f : h) {
        const auto name = sv(f.name_string());
        if (hop_by_hop(name) || named_in_connection(name, connection))
            continue;
        if (name.size() >= 15 && beast::iequals(name.substr(0, 15), "x-udshttp-peer-"))
            continue; // only the gateway says who the caller is
        if (identity &&
            (beast::iequals(name, "forwarded") || beast::iequals(name, "x-forwarded-for")))
            continue;
        host = host || f.name() == http::field::host;
        out.append(name).append(": ").append(sv(f.value())).append("\r\n");
    }
    if (!host)
        out.append("Host: localhost\r\n");
    out.append(framing);
    if (!upgrade.empty())
        out.append("Connection: Upgrade\r\nUpgrade: ").append(upgrade).append("\r\n");
    if (identity) {
        const auto& p = x.c.peer;
        if (p.transport == "unix") {
            if (p.uid)
                out.append("X-Udshttp-Peer-Uid: ").append(std::to_string(*p.uid)).append("\r\n");
            if (p.gid)
                out.append("X-Udshttp-Peer-Gid: ").append(std::to_string(*p.gid)).append("\r\n");
            if (p.pid)
                out.append("X-Udshttp-Peer-Pid: ").append(std::to_string(*p.pid)).append("\r\n");
        } else {
            const bool v6 = p.address.find(':') != std::string::npos;
            out.append("Forwarded: for=\"")
                .append(v6 ? "[" + p.address + "]" : p.address)
                .append(":")
                .append(std::to_string(p.port))
                .append("\"\r\nX-Forwarded-For: ")
                .append(p.address)
                .append("\r\n");
        }
    }
    out.append("\r\n");
    return out;
}

awaitable<bool> write_upstream(exchange& x, std::span<const asio::const_buffer> pieces) {
    deadline_use d(x.uslot, x.uactive, x.c.opt.idle_timeout);
    auto [ec, n] = co_await asio::async_write(x.upstream, pieces);
    co_return !ec && !x.uslot.timed_out;
}

// What a write to the caller did: counted, and false when it failed or stalled.
bool wrote_client(exchange& x, boost::system::error_code ec, std::size_t n) noexcept {
    x.bytes_out += n;
    x.c.w.stats.bytes_sent.add(n);
    return !ec && !x.c.slot.timed_out;
}

awaitable<bool> write_client(exchange& x, std::span<const asio::const_buffer> pieces) {
    // The write-stall deadline: a caller that takes nothing for the idle timeout is cut.
    deadline_use d(x.c.slot, x.cactive, x.c.opt.idle_timeout);
    auto [ec, n] = co_await asio::async_write(x.c.socket, pieces);
    co_return wrote_client(x, ec, n);
}

awaitable<> watch_caller(exchange& x);

// The request body, caller to upstream, re-framed as it was declared (Content-Length as is,
// chunked as fresh chunks: extensions and trailers are not forwarded). Then, while the
// response is relayed, a watch on the caller: one that goes away cuts the exchange.
awaitable<> pump_body(exchange& x, stream_parser* parser) {
    if (parser) {
        copy_block block(x.c.w.copy_blocks);
        const std::span<char> in(block.data, copy_bytes);
        const bool chunked = parser->chunked();
        while (!x.failed && !x.response_done && !parser->is_done()) {
            parser->get().body().data = in.data();
            parser->get().body().size = in.size();
            boost::system::error_code ec;
            {
                deadline_use d(x.c.slot, x.cactive, x.c.opt.idle_timeout);
                ec = co_await x.c.parse_some(*parser);
            }
            if ((ec && ec != http::error::need_buffer) || x.c.slot.timed_out) {
                if (!x.response_done) {
                    if (auto r = refusal_for(ec, x.c.opt, x.c.read_cap);
                        r && !x.c.slot.timed_out && !x.head_sent)
                        x.answer = std::move(r);
                    x.cut();
                }
                co_return;
            }
            const auto got = in.size() - parser->get().body().size;
            x.bytes_in += got;
            if (got == 0)
                continue;
            const auto f = frame_piece(chunked, got, false);
            const asio::const_buffer pieces[] = {asio::buffer(f.size), asio::buffer(in.data(), got),
                                                 asio::buffer(f.tail)};
            if (!co_await write_upstream(x, pieces)) {
                // The upstream stopped reading (it may have answered already): stop sending.
                co_return;
            }
        }
        if (x.failed || !parser->is_done())
            co_return;
        if (chunked) {
            static constexpr std::string_view last = "0\r\n\r\n";
            const asio::const_buffer pieces[] = {asio::buffer(last)};
            if (!co_await write_upstream(x, pieces))
                co_return;
        }
    }
    x.body_done = true;
    co_await watch_caller(x);
}

// While a response streams: a caller that goes away cuts the exchange (else a quiet stream
// would hold the upstream connection until its next byte). A wait, not a read, so a pipelined
// request stays in the socket for the session; Asio's waits are edge-triggered, so each look
// comes before its wait. Ends when the response does (wake_watch()).
awaitable<> watch_caller(exchange& x) {
    const bool unix_peer = x.c.peer.transport == "unix";
    while (!x.response_done && !x.failed) {
        if (x.c.buffer.size() > 0)
            co_return; // a pipelined request is buffered already: nothing to watch
        const auto l = look_at(x.c.socket.native_handle(), unix_peer);
        if (l == look::gone) {
            x.cut();
            co_return;
        }
        if (l != look::nothing)
            co_return; // a pipelined request, or a Unix half-close (not a disconnect)
        auto [ec] = co_await x.c.socket.async_wait(asio::socket_base::wait_read);
        if (ec)
            co_return;
    }
}

// The response is over: ends the watch on the caller (its wait), or a body the upstream
// answered before reading whole (the rest is never read; the connection closes).
void wake_watch(exchange& x) noexcept {
    boost::system::error_code ignored;
    x.c.socket.cancel(ignored);
}

// The rest of a response body, upstream to caller, through `out` (copy_bytes long).
awaitable<> copy_body(exchange& x, http::response_parser<http::buffer_body>& rp, char* out,
                      bool to_chunked, const http::request_header<>& req) {
    auto& res = rp.get();
    // Beast reads what the buffer has room for: without this, 512 bytes at a time.
    x.ubuf.reserve(copy_bytes);
    while (!rp.is_done()) {
        res.body().data = out;
        res.body().size = copy_bytes;
        // No deadline on the upstream here: a stream may rightly be quiet for hours.
        auto [rec, n] = co_await http::async_read_some(x.upstream, x.ubuf, rp, io::use_tuple{});
        if (x.failed)
            co_return;
        if (rec && rec != http::error::need_buffer) {
            x.count(upstream_counter::bad_answers);
            x.c.state.log.peer_log(log_level::warn, "cut the answer to " + quote(req.target()) +
                                                        ": upstream " + x.u.label + ": " +
                                                        rec.message());
            x.cut();
            co_return;
        }
        const auto got = copy_bytes - res.body().size;
        const bool last = rp.is_done();
        if (got == 0 && !(to_chunked && last))
            continue;
        const auto f = frame_piece(to_chunked, got, last);
        const asio::const_buffer pieces[] = {asio::buffer(f.size), asio::buffer(out, got),
                                             asio::buffer(f.tail)};
        if (!co_await write_client(x, pieces)) {
            x.cut();
            co_return;
        }
    }
    wake_watch(x); // the watch beside this copy, if any, ends with it
}

// The response, upstream to caller. `watch`: no body pump runs beside it, so a streamed
// answer watches the caller itself.
awaitable<> relay_response(exchange& x, const http::request_header<>& req, bool asked_upgrade,
                           bool watch) {
    std::optional<http::response_parser<http::buffer_body>> rp;
    boost::system::error_code ec;
    // Interim answers (100, 103) are the gateway's to handle: it answered 100 itself.
    for (;;) {
        rp.emplace();
        rp->header_limit(static_cast<std::uint32_t>(upstream_head_bytes));
        rp->body_limit(boost::none);
        if (req.method() == http::verb::head)
            rp->skip(true);
        {
            deadline_use d(x.uslot, x.uactive, x.g.options.upstream_timeout);
            std::tie(ec, std::ignore) =
                co_await http::async_read_header(x.upstream, x.ubuf, *rp, io::use_tuple{});
        }
        if (ec || rp->get().result_int() >= 200 || rp->get().result_int() == 101)
            break;
        if (!rp->is_done()) // an interim answer with a body is not HTTP
            ec = http::error::bad_value;
        else
            continue;
        break;
    }
    if (x.failed)
        co_return;
    if (ec || x.uslot.timed_out) {
        if (x.uslot.timed_out) {
            x.count(upstream_counter::timeouts);
            x.answer =
                upstream_refusal(rejection::upstream_timeout,
                                 "upstream " + x.u.label + " sent no answer within " +
                                     std::to_string(x.g.options.upstream_timeout.count()) + " ms");
        } else if (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                   ec == asio::error::eof || ec == asio::error::broken_pipe) {
            x.count(upstream_counter::bad_answers);
            x.answer = upstream_refusal(rejection::upstream_failed,
                                        "upstream " + x.u.label +
                                            " closed the connection without answering");
        } else {
            x.count(upstream_counter::bad_answers);
            x.answer = upstream_refusal(rejection::upstream_failed,
                                        "upstream " + x.u.label +
                                            " answered with malformed HTTP: " + ec.message());
        }
        x.cut();
        co_return;
    }
    auto& res = rp->get();
    x.status = res.result_int();
    if (x.status == 101 && !asked_upgrade) {
        x.count(upstream_counter::bad_answers);
        x.answer = upstream_refusal(rejection::upstream_failed,
                                    "upstream " + x.u.label +
                                        " switched protocols for a request that asked for none");
        x.cut();
        co_return;
    }
    // Framing towards the caller.
    const bool bodyless = rp->is_done() || x.status == 101;
    const bool sized = !bodyless && rp->content_length().has_value();
    const bool to_chunked = !bodyless && !sized && req.version() >= 11;
    x.streaming = x.status == 101 || (!bodyless && !sized);
    if (x.streaming && x.drained) {
        x.cut();
        co_return;
    }
    x.client_keep =
        x.client_keep && x.status != 101 && !x.drained && (bodyless || sized || to_chunked);
    std::string head = "HTTP/1.1 ";
    head.append(std::to_string(x.status)).append(" ");
    head.append(res.reason().empty() ? std::string_view(proto::reason_phrase(x.status))
                                     : sv(res.reason()));
    head.append("\r\n");
    const auto connection = sv(res[http::field::connection]);
    for (const auto& f : res) {
        const auto name = sv(f.name_string());
        const bool length = f.name() == http::field::content_length;
        if ((hop_by_hop(name) && !(length && (sized || bodyless))) ||
            named_in_connection(name, connection))
            continue;
        head.append(name).append(": ").append(sv(f.value())).append("\r\n");
    }
    if (x.status == 101)
        head.append("Connection: Upgrade\r\nUpgrade: ")
            .append(sv(res[http::field::upgrade]))
            .append("\r\n");
    else if (to_chunked)
        head.append("Transfer-Encoding: chunked\r\n");
    if (x.status != 101) {
        if (!x.client_keep && req.version() >= 11)
            head.append("Connection: close\r\n");
        else if (x.client_keep && req.version() < 11)
            head.append("Connection: keep-alive\r\n");
    }
    head.append("\r\n");
    if (x.status == 101) {
        const asio::const_buffer pieces[] = {asio::buffer(head)};
        x.head_sent = true;
        if (!co_await write_client(x, pieces)) {
            x.cut();
            co_return;
        }
        x.upgraded = true;
        x.response_done = true;
        wake_watch(x);
        co_return;
    }
    // The body bytes that came with the head go out with it, in one write: a small answer
    // costs the caller one sendmsg.
    copy_block block(x.c.w.copy_blocks);
    char* const out = block.data;
    std::size_t got = 0;
    if (!rp->is_done()) {
        boost::system::error_code pec;
        while (x.ubuf.size() > 0 && !rp->is_done() && got < copy_bytes) {
            res.body().data = out + got;
            res.body().size = copy_bytes - got;
            const auto used = rp->put(x.ubuf.data(), pec);
            x.ubuf.consume(used);
            got = copy_bytes - res.body().size;
            if (pec == http::error::need_buffer)
                pec = {};
            if (pec || used == 0)
                break;
        }
        if (pec && pec != http::error::need_more) {
            x.count(upstream_counter::bad_answers);
            x.answer = upstream_refusal(rejection::upstream_failed,
                                        "upstream " + x.u.label +
                                            " answered with a malformed body: " + pec.message());
            x.cut();
            co_return;
        }
    }
    {
        const auto f = frame_piece(to_chunked, got, rp->is_done());
        const asio::const_buffer pieces[] = {asio::buffer(head), asio::buffer(f.size),
                                             asio::buffer(out, got), asio::buffer(f.tail)};
        x.head_sent = true;
        // Written here rather than through write_client(): one coroutine frame less per
        // request on the hot path.
        deadline_use d(x.c.slot, x.cactive, x.c.opt.idle_timeout);
        auto [wec, n] =
            co_await asio::async_write(x.c.socket, std::span<const asio::const_buffer>(pieces));
        if (!wrote_client(x, wec, n)) {
            x.cut();
            co_return;
        }
    }
    if (!rp->is_done()) {
        if (watch && x.streaming)
            co_await (copy_body(x, *rp, out, to_chunked, req) && watch_caller(x));
        else
            co_await copy_body(x, *rp, out, to_chunked, req);
        if (x.failed || !rp->is_done())
            co_return;
    }
    x.response_done = true;
    // The upstream connection goes back to the pool if the exchange ends cleanly.
    x.reusable = rp->keep_alive() && x.ubuf.size() == 0;
    wake_watch(x);
}

// One direction of a tunnel: `prefix` first, then what `from` sends, until its EOF, which is
// passed on as a half-close of `to`.
awaitable<> tunnel(exchange& x, socket_type& from, socket_type& to, std::string prefix,
                   bool to_client) {
    if (!prefix.empty()) {
        auto [ec, n] = co_await asio::async_write(to, asio::buffer(prefix));
        if (ec) {
            x.cut();
            co_return;
        }
        if (to_client)
            x.bytes_out += n;
    }
    std::vector<char> buf(copy_bytes);
    for (;;) {
        auto [ec, n] = co_await from.async_read_some(asio::buffer(buf));
        if (ec == asio::error::eof) {
            boost::system::error_code ignored;
            to.shutdown(asio::socket_base::shutdown_send, ignored);
            co_return;
        }
        if (ec || x.failed) {
            x.cut();
            co_return;
        }
        auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n));
        if (to_client)
            x.bytes_out += wn;
        else
            x.bytes_in += wn;
        if (wec) {
            x.cut();
            co_return;
        }
    }
}

std::string audit_line(const exchange& x, const caller_identity& who, std::string_view method,
                       const normalized_target& t, const gateway_verdict& v,
                       std::string_view verdict) {
    nlohmann::ordered_json j;
    j["time"] = log_timestamp();
    nlohmann::json caller = who.peer; // proto's to_json: transport, pid/uid/gid or address/port
    if (!who.exe.empty())
        caller["exe"] = who.exe;
    j["caller"] = std::move(caller);
    j["method"] = std::string(method.substr(0, quote_bytes));
    j["path"] = t.path.substr(0, access_target_bytes);
    if (t.has_query)
        j["query"] = t.query.substr(0, access_target_bytes);
    j["upstream"] = x.u.name;
    j["rule"] = v.rule.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(v.rule);
    j["verdict"] = verdict;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

awaitable<gateway_end> serve_gateway(connection& c, request_parser& parser,
                                     const normalized_target& target, std::size_t up,
                                     bool keep_alive, clock::time_point start) {
    auto& g = *c.state.gateway;
    exchange x(c, g, up);
    x.client_keep = keep_alive;
    x.count(upstream_counter::requests);
    auto& msg = parser.get();

    // The rules, with who is calling (read once per connection).
    const auto& o = g.options;
    std::optional<std::uint64_t> inspect;
    if (o.rules || !o.audit_log.empty()) {
        if (!c.caller)
            c.caller = std::make_unique<caller_identity>(
                read_caller(c.socket.native_handle(), c.peer, g.needs_process));
        const bool has_body = !parser.is_done() || parser.content_length().value_or(0) > 0;
        gateway_verdict v{true, {}, std::nullopt};
        if (o.rules)
            v = o.rules->decide(*c.caller, sv(msg.method_string()), target, has_body,
                                parser.content_length()
                                    ? std::optional<std::uint64_t>(*parser.content_length())
                                    : std::nullopt);
        const char* said = v.allow ? "allow" : o.learn ? "learn" : "deny";
        c.w.stats.count_verdict(v.allow   ? verdict_counter::allow
                                : o.learn ? verdict_counter::learn
                                          : verdict_counter::deny);
        c.state.log.audit(audit_line(x, *c.caller, sv(msg.method_string()), target, v, said));
        if (!v.allow && !o.learn) {
            std::string caller =
                c.peer.uid ? "uid " + std::to_string(*c.peer.uid) : "TCP caller " + c.peer.address;
            // Named first: GCC 12 destroys a braced temporary in a co_await expression twice.
            refusal why{rejection::gateway_denied,
                        caller + " may not " + quote(msg.method_string()) + " " +
                            quote(target.path) +
                            (v.rule.empty() ? " (no rule allows it)"
                                            : " (rule '" + v.rule + "' denies it)")};
            co_await c.refuse(std::move(why), &msg, start);
            co_return gateway_end::close;
        }
        inspect = v.inspect_body;
    }

    // Upgrades (RFC 9110 7.8) pass through: WebSocket, Docker's "tcp" and any other.
    const bool asked_upgrade = msg.version() >= 11 && !msg[http::field::upgrade].empty() &&
                               http::token_list(msg[http::field::connection]).exists("upgrade");
    const std::string upgrade = asked_upgrade ? std::string(sv(msg[http::field::upgrade])) : "";

    // A body a rule bounds but whose size the head does not tell is read whole first (up to
    // the bound), so what is forwarded is what was inspected; past the bound it is refused.
    if (inspect && !parser.is_done()) {
        parser.body_limit(std::min<std::uint64_t>(*inspect, c.opt.max_body_bytes));
        while (!parser.is_done()) {
            c.slot.arm(c.opt.idle_timeout);
            const auto ec = co_await c.parse_some(parser);
            if (c.slot.timed_out)
                co_return gateway_end::close;
            if (ec == http::error::body_limit) {
                refusal why{rejection::gateway_denied,
                            "the body passes the " + std::to_string(*inspect) +
                                "-byte bound of the rule that would allow it, so it cannot be "
                                "inspected"};
                co_await c.refuse(std::move(why), &msg, start);
                co_return gateway_end::close;
            }
            if (ec) {
                if (auto r = refusal_for(ec, c.opt, c.read_cap))
                    co_await c.refuse(std::move(*r), &msg, start);
                co_return gateway_end::close;
            }
        }
        c.slot.disarm();
    }
    const bool whole = parser.is_done(); // the body (if any) is in msg.body()
    std::string framing;
    if (whole && !msg.body().empty())
        framing = "Content-Length: " + std::to_string(msg.body().size()) + "\r\n";
    else if (!whole && parser.chunked())
        framing = "Transfer-Encoding: chunked\r\n";
    else if (!whole)
        framing = "Content-Length: " + std::to_string(*parser.content_length()) + "\r\n";
    else if (msg.method() == http::verb::post || msg.method() == http::verb::put ||
             msg.method() == http::verb::patch)
        framing = "Content-Length: 0\r\n";
    const std::string head = upstream_head(x, msg, target, framing, upgrade);

    // Expect: 100-continue is answered here, now that the rules have let the body through.
    if (!whole && msg.version() >= 11 && beast::iequals(msg[http::field::expect], "100-continue")) {
        static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        const asio::const_buffer pieces[] = {asio::buffer(cont)};
        if (!co_await write_client(x, pieces))
            co_return gateway_end::close;
        x.bytes_out = 0;
    }

    // Send the head: on a pooled connection first, and if that one turns out closed before
    // any answer (the upstream timed it out), once more on a fresh one.
    bool pooled = take_pooled(x);
    for (int attempt = 0;; ++attempt) {
        if (!pooled) {
            if (auto r = co_await connect_upstream(x)) {
                co_await c.refuse(std::move(*r), &msg, start);
                co_return gateway_end::close;
            }
        }
        const asio::const_buffer pieces[] = {asio::buffer(head),
                                             asio::buffer(whole ? msg.body() : std::string_view())};
        bool sent = false;
        {
            deadline_use d(x.uslot, x.uactive, c.opt.idle_timeout);
            auto [wec, n] =
                co_await asio::async_write(x.upstream, std::span<const asio::const_buffer>(pieces));
            sent = !wec && !x.uslot.timed_out;
        }
        if (sent)
            break;
        if (!pooled || attempt > 0) {
            x.count(upstream_counter::bad_answers);
            auto why =
                upstream_refusal(rejection::upstream_failed,
                                 "upstream " + x.u.label + " took no request (the write failed)");
            co_await c.refuse(std::move(why), &msg, start);
            co_return gateway_end::close;
        }
        pooled = false;
    }
    x.bytes_in = whole ? msg.body().size() : 0;

    // Body and response at once. The request's head is kept for the log; a streamed body is
    // read through a buffer_body parser made from the string one.
    request_head logged;
    std::optional<stream_parser> body_parser;
    const request_head* shown = &msg;
    if (!whole) {
        body_parser.emplace(std::move(parser));
        body_parser->body_limit(c.opt.max_body_bytes);
        logged.base() = body_parser->get().base();
        shown = &logged;
    }
    if (body_parser) {
        co_await (pump_body(x, &*body_parser) && relay_response(x, *shown, asked_upgrade, false));
    } else {
        x.body_done = true;
        co_await relay_response(x, *shown, asked_upgrade, true);
    }
    c.slot.timed_out = false;

    if (x.answer && !x.head_sent) {
        co_await c.refuse(std::move(*x.answer), shown, start);
        co_return gateway_end::close;
    }
    if (x.upgraded && !x.failed) {
        // The tunnel: each direction on its own, no deadline (a shell may be quiet for hours),
        // ended by both EOFs, a failure, or the drain.
        std::string from_client(static_cast<const char*>(c.buffer.data().data()), c.buffer.size());
        c.buffer.consume(c.buffer.size());
        std::string from_upstream(static_cast<const char*>(x.ubuf.data().data()), x.ubuf.size());
        x.ubuf.consume(x.ubuf.size());
        co_await (tunnel(x, c.socket, x.upstream, std::move(from_client), false) &&
                  tunnel(x, x.upstream, c.socket, std::move(from_upstream), true));
        c.record(shown, 101, std::nullopt, x.bytes_in, x.bytes_out, start);
        boost::system::error_code ignored;
        x.upstream.close(ignored);
        c.close();
        co_return gateway_end::gone;
    }
    c.record(shown, x.status ? x.status : 502, std::nullopt, x.bytes_in, x.bytes_out, start);
    const bool clean = !x.failed && x.response_done && x.body_done;
    if (clean && x.reusable && !x.drained) {
        auto& idle = c.w.upstream_idle[x.index];
        if (idle.size() < o.idle_per_upstream)
            idle.push_back(std::move(x.upstream));
    }
    if (!clean || !x.client_keep || c.draining())
        co_return gateway_end::close;
    co_return gateway_end::next;
}

} // namespace udshttp::service::detail
