#include "session.hpp"

#include "async_route.hpp"
#include "gateway.hpp"
#include "stream_route.hpp"
#include "upgrade_route.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>

namespace udshttp::service::detail {

// The request loop. Each step is a named collaborator; the ones that may end the connection
// return a verdict, and every error answer leaves through connection::refuse(). The loop's own
// frame is small: what one request needs lives in serve_request()'s frame, which exists only
// while a request is served, so an idle keep-alive connection holds little more than its
// socket.
awaitable<> session::run() {
    for (bool first = true;; first = false) {
        if (c_.buffer.size() == 0) {
            if (c_.has_gathered() && !co_await c_.flush())
                break;
            // The wait for the next request, here rather than in a coroutine of its own, so an
            // idle connection keeps no frame for it.
            begin_wait(first);
            auto got = waited::again;
            while (got == waited::again) {
                // Draining: serve what has already arrived, close the rest. The check and the
                // wait start run without a suspension between them, so the drain's wake-up
                // cannot fall in between.
                if (c_.draining() && !c_.bytes_pending()) {
                    got = waited::closed;
                    break;
                }
                // A new connection's first request is usually there already: read at once
                // (Asio tries the read before it waits). Between requests, with many
                // connections open, wait for bytes without a buffer and read when they come,
                // so an idle keep-alive connection holds no read memory (as nginx's keep-alive
                // handler does). That wait costs an epoll_ctl per request (6-12% more CPU per
                // GET, measured A/B: bench/README.md), so with few connections, where the
                // buffers are a few hundred KiB in all, the read waits with its buffer.
                boost::system::error_code ec;
                std::size_t n = 0;
                const bool read = first || c_.w.connections.size() <= lean_above;
                if (read)
                    std::tie(ec, n) = co_await c_.socket.async_read_some(
                        c_.buffer.prepare(connection::idle_buffer_bytes));
                else
                    std::tie(ec) = co_await c_.socket.async_wait(asio::socket_base::wait_read);
                got = after_wait(read, ec, n);
            }
            c_.slot.idle = false;
            if (got != waited::request)
                break;
        }
        if (!skip_blank_lines())
            continue;
        // Pipelined requests already buffered are served by the same call, so a batch costs
        // one frame, not one per request.
        auto next = step::next;
        do
            next = co_await serve_request();
        while (next == step::next && c_.buffer.size() > 0 && skip_blank_lines());
        if (next == step::gone)
            co_return; // an upgrade took the connection
        if (next == step::close)
            break;
    }
    if (c_.has_gathered())
        co_await c_.flush();
    c_.close();
}

awaitable<session::step> session::serve_request() {
    const auto start = clock::now();
    request_parser parser;
    if (auto v = co_await read_head(parser, start); v.close) {
        if (v.answer) // a head that failed its checks is named in the access log
            co_await c_.refuse(std::move(*v.answer),
                               parser.is_header_done() ? &parser.get() : nullptr, start);
        co_return step::close;
    }
    auto& msg = parser.get();
    keep_alive_ = parser.keep_alive();
    // The gateway's routes come first; a path no gateway route covers is the local router's.
    if (c_.state.gateway) {
        auto target = normalize_path(msg.target());
        if (!target) {
            // Named first: GCC 12 destroys a braced temporary in a co_await expression twice.
            refusal why{rejection::malformed, target.error().message};
            co_await c_.refuse(std::move(why), &msg, start);
            co_return step::close;
        }
        if (const auto up = c_.state.gateway->route(target->path)) {
            if (c_.has_gathered() && !co_await c_.flush())
                co_return step::close;
            switch (co_await serve_gateway(c_, parser, *target, *up, keep_alive_, start)) {
            case gateway_end::next:
                co_return step::next;
            case gateway_end::close:
                co_return step::close;
            case gateway_end::gone:
                co_return step::gone;
            }
        }
    }
    const auto match = c_.state.routes.resolve(msg.method(), msg.target());

    // No handler will read the body of a request that gets 404, 405 or 400 for its path:
    // it is answered before any body byte is read, and the body is dropped while lingering
    // (nginx's discard_request_body), never buffered.
    if (const auto up = upgrade_for(parser, match); up != upgrade_kind::none) {
        if (c_.has_gathered() && !co_await c_.flush())
            co_return step::close;
        co_await serve_upgrade(c_, msg, match, up, start); // the connection goes with it
        co_return step::gone;
    }
    // Pipelining: the answers gathered so far wait only while this request is answered
    // at once, from what is buffered; anything that reads or writes on its own sends them.
    const bool answered_at_once =
        !match.found() || (match.kind() == route_kind::plain && parser.is_done());
    if (c_.has_gathered() && !answered_at_once && !co_await c_.flush())
        co_return step::close;
    const bool body_unread = !match.found() && !parser.is_done();
    if (match.found() && !co_await continue_if_expected(parser))
        co_return step::close;
    if (match.streams()) {
        stream_route route(c_, keep_alive_);
        if (!co_await route.serve(parser, match, start))
            co_return step::close;
        co_return step::next;
    }
    if (match.found() && !parser.is_done()) { // no frame for a request without a body
        if (auto v = co_await read_body(parser); v.close) {
            if (v.answer)
                co_await c_.refuse(std::move(*v.answer), &msg, start);
            co_return step::close;
        }
    }

    if (match.found() &&
        (match.kind() == route_kind::async || match.kind() == route_kind::writer)) {
        if (!co_await serve_coroutine_route(c_, msg, match, keep_alive_, start))
            co_return step::close;
        co_return step::next;
    }

    const request req(msg, c_.peer, &match);
    response res{http::status::ok, msg.version()};
    const auto done = c_.state.routes.dispatch(match, req, res);
    if (!done.failure.empty())
        c_.state.log.log(log_level::error, "handler for " + quote(msg.method_string()) + " " +
                                               quote(msg.target()) + " threw: " + done.failure);
    const bool keep_alive = keep_alive_ && !body_unread && !c_.draining();
    const auto route = done.by_route ? match.index() : std::nullopt;
    c_.slot.arm(c_.opt.idle_timeout, start);
    if (!co_await c_.answer(res, &msg, keep_alive, route, msg.body().size(), start))
        co_return step::close;
    if (body_unread) {
        co_await c_.lingering_close(after_error);
        co_return step::close;
    }
    if (!keep_alive)
        co_return step::close;
    co_return step::next;
}

void session::begin_wait(bool first) noexcept {
    // The read buffer goes back to the worker's pool (10,000 idle connections would otherwise
    // hold 2 to 16 KiB each); the wait takes a block again, at once or, above lean_above
    // connections, only when bytes arrive. Body reads take a larger one.
    c_.trim_for_idle();
    c_.slot.idle = true;
    if (first)
        c_.slot.arm(c_.opt.header_timeout);
    else
        c_.slot.arm(c_.opt.idle_timeout, c_.last_now); // c_.record() read the clock a moment ago
}

session::waited session::after_wait(bool read, boost::system::error_code ec, std::size_t n) {
    if (!read && !ec && !c_.slot.timed_out) { // readable: take a buffer and read
        n = c_.socket.read_some(c_.buffer.prepare(connection::idle_buffer_bytes), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            c_.buffer.shrink_to_fit(); // nothing came after all
            return waited::again;
        }
    }
    if (ec == asio::error::operation_aborted && !c_.slot.timed_out && c_.draining())
        return waited::again; // woken by the drain: look again
    if (ec || c_.slot.timed_out)
        return waited::closed; // closed, reset, or idle too long: nothing to answer
    c_.buffer.commit(n);
    c_.w.stats.bytes_received.add(n);
    return waited::request;
}

bool session::skip_blank_lines() noexcept {
    // Some clients send a CRLF after a body; a few are ignored, an endless stream of them is
    // not a request.
    while (blank_lines_ < 4 && c_.buffer.size() >= 2 &&
           std::string_view(static_cast<const char*>(c_.buffer.data().data()), 2) == "\r\n") {
        c_.buffer.consume(2);
        ++blank_lines_;
    }
    if (c_.buffer.size() == 0)
        return false;
    blank_lines_ = 0;
    return true;
}

awaitable<session::verdict> session::read_head(request_parser& parser, clock::time_point start) {
    c_.slot.arm(c_.opt.header_timeout, start);
    parser.header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(c_.opt.max_header_bytes, UINT32_MAX)));
    parser.body_limit(boost::none); // set below, once the head has passed its checks
    // The head, usually whole in c_.buffer already: then c_.parse_buffered() alone parses it.
    c_.head_bytes = 0;
    boost::system::error_code ec;
    if (!c_.parse_buffered(parser, ec)) {
        // The rest of the head is still to come: the peer may be waiting for answers first.
        if (c_.has_gathered() && !co_await c_.flush())
            co_return quietly();
        ec = co_await c_.parse_some(parser, true);
    }
    while (!ec && !parser.is_header_done())
        ec = co_await c_.parse_some(parser);
    if (c_.slot.timed_out)
        co_return answer_with(header_timeout(c_.opt));
    if (ec) {
        auto refused = refusal_for(ec, c_.opt, c_.read_cap);
        co_return refused ? answer_with(std::move(*refused)) : quietly();
    }
    if (auto refused = check_head(parser, c_.opt))
        co_return answer_with(std::move(*refused));
    parser.body_limit(c_.opt.max_body_bytes);
    co_return go_on();
}

awaitable<bool> session::continue_if_expected(const request_parser& parser) {
    const auto& msg = parser.get();
    if (msg.version() < 11 || parser.is_done() ||
        !boost::beast::iequals(msg[http::field::expect], "100-continue"))
        co_return true;
    static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    c_.slot.arm(c_.opt.idle_timeout);
    auto [ec, n] = co_await asio::async_write(c_.socket, asio::buffer(cont));
    c_.w.stats.bytes_sent.add(n);
    co_return !ec && !c_.slot.timed_out;
}

awaitable<session::verdict> session::read_body(request_parser& parser) {
    if (const auto length = parser.content_length(); length && *length > 0)
        co_return co_await c_.read_sized_body(parser.get().body(), *length) ? go_on() : quietly();
    while (!parser.is_done()) {
        c_.slot.arm(c_.opt.idle_timeout);
        const auto ec = co_await c_.parse_some(parser);
        if (c_.slot.timed_out)
            co_return quietly();
        if (ec) {
            auto refused = refusal_for(ec, c_.opt, c_.read_cap);
            co_return refused ? answer_with(std::move(*refused)) : quietly();
        }
    }
    co_return go_on();
}

awaitable<> run_session(socket_type socket, proto::peer_info peer, server_state& state, worker& w) {
    connection c(socket, std::move(peer), state.connections, state, w);
    session s(c);
    co_await s.run();
}

awaitable<> reject_connection(socket_type socket, proto::peer_info peer, server_state& state,
                              worker& w) {
    connection c(socket, std::move(peer), state.connections, state, w);
    co_await c.refuse(too_many_connections(state.options), nullptr, clock::now());
}

awaitable<> refuse_peer(socket_type socket, proto::peer_info peer, std::string why,
                        server_state& state, worker& w) {
    connection c(socket, peer, state.refusing, state, w);
    state.log.peer_log(log_level::warn, "refused a connection from pid " +
                                            std::to_string(peer.pid.value_or(-1)) + ": " + why);
    co_await c.refuse(not_allowed(why), nullptr, clock::now(), after_refusal);
}

void log_exception(server_state& state, std::string_view where, std::exception_ptr e) noexcept {
    if (!e)
        return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        state.log.log(log_level::error, std::string(where) + " ended by an exception: " + x.what());
    } catch (...) {
        state.log.log(log_level::error, std::string(where) + " ended by an unknown exception");
    }
}

} // namespace udshttp::service::detail
