#include "session.hpp"

#include "async_route.hpp"
#include "stream_route.hpp"
#include "upgrade_route.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>

namespace udshttp::service::detail {

// The request loop. Each step is a named collaborator; the ones that may end the connection
// return a verdict, and every error answer leaves through connection::refuse().
awaitable<> session::run() {
    for (bool first = true;; first = false) {
        if (c_.buffer.size() == 0) {
            if (c_.has_gathered() && !co_await c_.flush())
                break;
            if (!co_await await_request(first))
                break;
        }
        const auto start = clock::now();
        if (!skip_blank_lines())
            continue;

        request_parser parser;
        if (auto v = co_await read_head(parser, start); v.close) {
            if (v.answer) // a head that failed its checks is named in the access log
                co_await c_.refuse(std::move(*v.answer),
                                   parser.is_header_done() ? &parser.get() : nullptr, start);
            break;
        }
        auto& msg = parser.get();
        keep_alive_ = parser.keep_alive();
        const auto match = c_.state.routes.resolve(msg.method(), msg.target());

        // No handler will read the body of a request that gets 404, 405 or 400 for its path:
        // it is answered before any body byte is read, and the body is dropped while lingering
        // (nginx's discard_request_body), never buffered.
        if (const auto up = upgrade_for(parser, match); up != upgrade_kind::none) {
            if (c_.has_gathered() && !co_await c_.flush())
                break;
            co_await serve_upgrade(c_, msg, match, up, start); // the connection goes with it
            co_return;
        }
        // Pipelining: the answers gathered so far wait only while this request is answered
        // at once, from what is buffered; anything that reads or writes on its own sends them.
        const bool answered_at_once =
            !match.found() || (match.kind() == route_kind::plain && parser.is_done());
        if (c_.has_gathered() && !answered_at_once && !co_await c_.flush())
            break;
        const bool body_unread = !match.found() && !parser.is_done();
        if (match.found() && !co_await continue_if_expected(parser))
            break;
        if (match.streams()) {
            stream_route route(c_, keep_alive_);
            if (!co_await route.serve(parser, match, start))
                break;
            continue;
        }
        if (match.found() && !parser.is_done()) { // no frame for a request without a body
            if (auto v = co_await read_body(parser); v.close) {
                if (v.answer)
                    co_await c_.refuse(std::move(*v.answer), &msg, start);
                break;
            }
        }

        if (match.found() &&
            (match.kind() == route_kind::async || match.kind() == route_kind::writer)) {
            if (!co_await serve_coroutine_route(c_, msg, match, keep_alive_, start))
                break;
            continue;
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
            break;
        if (body_unread) {
            co_await c_.lingering_close(after_error);
            break;
        }
        if (!keep_alive)
            break;
    }
    if (c_.has_gathered())
        co_await c_.flush();
    c_.close();
}

awaitable<bool> session::await_request(bool first) {
    // An idle connection waits with a small buffer (10,000 of them would otherwise hold 16 KiB
    // each); body reads reserve a larger one when they need it.
    c_.trim_for_idle();
    c_.slot.idle = true;
    if (first)
        c_.slot.arm(c_.opt.header_timeout);
    else
        c_.slot.arm(c_.opt.idle_timeout, c_.last_now); // c_.record() read the clock a moment ago
    bool ok = false;
    for (;;) {
        // Draining: serve what has already arrived, close the rest. The check and the read
        // start run without a suspension between them, so the drain's wake-up cannot fall
        // in between.
        if (c_.draining() && !c_.bytes_pending())
            break;
        auto [ec, n] =
            co_await c_.socket.async_read_some(c_.buffer.prepare(connection::idle_buffer_bytes));
        if (ec == asio::error::operation_aborted && !c_.slot.timed_out && c_.draining())
            continue; // woken by the drain: look again
        if (ec || c_.slot.timed_out)
            break; // closed, reset, or idle too long: nothing to answer
        c_.buffer.commit(n);
        c_.w.stats.bytes_received.add(n);
        ok = true;
        break;
    }
    c_.slot.idle = false;
    co_return ok;
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
