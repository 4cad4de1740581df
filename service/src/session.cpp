#include "session.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <array>

namespace udshttp::service::detail {

connection_guard::connection_guard(std::atomic<std::size_t>& open, worker& w, socket_type& socket)
    : open_(open), w_(w) {
    slot.socket = &socket;
    w_.connections.add(slot);
    w_.stats.connections_accepted.add();
    w_.stats.connections_open.add();
}

connection_guard::~connection_guard() {
    w_.connections.remove(slot);
    w_.stats.connections_open.sub();
    open_.fetch_sub(1, std::memory_order_relaxed);
}

session::session(socket_type& socket, proto::peer_info peer, std::atomic<std::size_t>& open,
                 server_state& state, worker& w)
    : socket_(socket), state_(state), opt_(state.options), w_(w), guard_(open, w, socket),
      slot_(guard_.slot), peer_(std::move(peer)),
      read_cap_(opt_.max_header_bytes + body_buffer_bytes), buffer_(read_cap_) {
    // send_all() tries a plain send first; asynchronous operations work either way.
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
}

// The request loop. Each step is a named collaborator; the ones that may end the connection
// return a verdict, and every error answer leaves through refuse().
awaitable<> session::run() {
    for (bool first = true;; first = false) {
        if (buffer_.size() == 0 && !co_await await_request(first))
            break;
        const auto start = clock::now();
        if (!skip_blank_lines())
            continue;

        request_parser parser;
        if (auto v = co_await read_head(parser, start); v.close) {
            if (v.answer) // a head that failed its checks is named in the access log
                co_await refuse(std::move(*v.answer),
                                parser.is_header_done() ? &parser.get() : nullptr, start);
            break;
        }
        auto& msg = parser.get();
        keep_alive_ = parser.keep_alive();
        const auto match = state_.routes.resolve(msg.method(), msg.target());

        // No handler will read the body of a request that gets 404, 405 or 400 for its path:
        // it is answered before any body byte is read, and the body is dropped while lingering
        // (nginx's discard_request_body), never buffered.
        const bool body_unread = !match.found() && !parser.is_done();
        if (match.found() && !co_await continue_if_expected(parser))
            break;
        if (match.streams()) {
            if (!co_await stream(parser, match, start))
                break;
            continue;
        }
        if (match.found() && !parser.is_done()) { // no frame for a request without a body
            if (auto v = co_await read_body(parser); v.close) {
                if (v.answer)
                    co_await refuse(std::move(*v.answer), &msg, start);
                break;
            }
        }

        const request req(msg, peer_, &match);
        response res{http::status::ok, msg.version()};
        const auto done = state_.routes.dispatch(match, req, res);
        if (!done.failure.empty())
            state_.log.log(log_level::error, "handler for " + quote(msg.method_string()) + " " +
                                                 quote(msg.target()) + " threw: " + done.failure);
        const bool keep_alive = keep_alive_ && !body_unread && !draining();
        const auto route = done.by_route ? match.index() : std::nullopt;
        slot_.arm(opt_.idle_timeout, start);
        if (!co_await answer(res, &msg, keep_alive, route, msg.body().size(), start))
            break;
        if (body_unread) {
            co_await lingering_close(after_error);
            break;
        }
        if (!keep_alive)
            break;
    }
    slot_.disarm();
    boost::system::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
}

awaitable<bool> session::await_request(bool first) {
    // An idle connection waits with a small buffer (10,000 of them would otherwise hold 16 KiB
    // each); body reads reserve a larger one when they need it.
    if (buffer_.size() == 0 && buffer_.capacity() > idle_buffer_bytes)
        buffer_.shrink_to_fit();
    slot_.idle = true;
    if (first)
        slot_.arm(opt_.header_timeout);
    else
        slot_.arm(opt_.idle_timeout, last_now_); // record() read the clock a moment ago
    bool ok = false;
    for (;;) {
        // Draining: serve what has already arrived, close the rest. The check and the read
        // start run without a suspension between them, so the drain's wake-up cannot fall
        // in between.
        if (draining() && !bytes_pending())
            break;
        auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(idle_buffer_bytes));
        if (ec == asio::error::operation_aborted && !slot_.timed_out && draining())
            continue; // woken by the drain: look again
        if (ec || slot_.timed_out)
            break; // closed, reset, or idle too long: nothing to answer
        buffer_.commit(n);
        w_.stats.bytes_received.add(n);
        ok = true;
        break;
    }
    slot_.idle = false;
    co_return ok;
}

bool session::skip_blank_lines() noexcept {
    // Some clients send a CRLF after a body; a few are ignored, an endless stream of them is
    // not a request.
    while (blank_lines_ < 4 && buffer_.size() >= 2 &&
           std::string_view(static_cast<const char*>(buffer_.data().data()), 2) == "\r\n") {
        buffer_.consume(2);
        ++blank_lines_;
    }
    if (buffer_.size() == 0)
        return false;
    blank_lines_ = 0;
    return true;
}

awaitable<session::verdict> session::read_head(request_parser& parser, clock::time_point start) {
    slot_.arm(opt_.header_timeout, start);
    parser.header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(opt_.max_header_bytes, UINT32_MAX)));
    parser.body_limit(boost::none); // set below, once the head has passed its checks
    // The head, usually whole in buffer_ already: then parse_buffered() alone parses it.
    head_bytes_ = 0;
    boost::system::error_code ec;
    if (!parse_buffered(parser, ec))
        ec = co_await parse_some(parser, true);
    while (!ec && !parser.is_header_done())
        ec = co_await parse_some(parser);
    if (slot_.timed_out)
        co_return answer_with(header_timeout(opt_));
    if (ec) {
        auto refused = refusal_for(ec, opt_, read_cap_);
        co_return refused ? answer_with(std::move(*refused)) : quietly();
    }
    if (auto refused = check_head(parser, opt_))
        co_return answer_with(std::move(*refused));
    parser.body_limit(opt_.max_body_bytes);
    co_return go_on();
}

awaitable<bool> session::continue_if_expected(const request_parser& parser) {
    const auto& msg = parser.get();
    if (msg.version() < 11 || parser.is_done() ||
        !boost::beast::iequals(msg[http::field::expect], "100-continue"))
        co_return true;
    static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    slot_.arm(opt_.idle_timeout);
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(cont));
    w_.stats.bytes_sent.add(n);
    co_return !ec && !slot_.timed_out;
}

awaitable<session::verdict> session::read_body(request_parser& parser) {
    if (const auto length = parser.content_length(); length && *length > 0)
        co_return co_await read_sized_body(parser.get().body(), *length) ? go_on() : quietly();
    while (!parser.is_done()) {
        slot_.arm(opt_.idle_timeout);
        const auto ec = co_await parse_some(parser);
        if (slot_.timed_out)
            co_return quietly();
        if (ec) {
            auto refused = refusal_for(ec, opt_, read_cap_);
            co_return refused ? answer_with(std::move(*refused)) : quietly();
        }
    }
    co_return go_on();
}

awaitable<bool> session::read_sized_body(std::string& body, std::uint64_t length) {
    const auto size = static_cast<std::size_t>(length);
    std::size_t have = std::min(size, buffer_.size());
    body.resize(have);
    asio::buffer_copy(asio::buffer(body), buffer_.data());
    buffer_.consume(have);
    while (have < size) {
        // Grows by what is read (std::string doubles its capacity), never by what was declared.
        const auto want = std::min(size - have, body_buffer_bytes);
        body.resize(have + want);
        slot_.arm(opt_.idle_timeout);
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(body.data() + have, want));
        w_.stats.bytes_received.add(n);
        have += n;
        body.resize(have);
        if (ec || slot_.timed_out)
            co_return false;
    }
    co_return true;
}

template <class Parser>
bool session::parse_buffered(Parser& parser, boost::system::error_code& ec) {
    ec = {};
    if (buffer_.size() == 0)
        return false;
    const bool in_head = !parser.is_header_done();
    const auto used = parser.put(buffer_.data(), ec);
    buffer_.consume(used);
    if (in_head) {
        head_bytes_ += used;
        const auto pending = parser.is_header_done() ? 0 : buffer_.size();
        if (head_bytes_ + pending > opt_.max_header_bytes) {
            ec = http::error::header_limit;
            return true;
        }
    }
    if (ec != http::error::need_more)
        return true; // progress, done, need_buffer (a full body buffer) or an error
    ec = {};
    return false;
}

template <class Parser>
awaitable<boost::system::error_code> session::parse_some(Parser& parser, bool read_first) {
    for (;;) {
        boost::system::error_code ec;
        if (!read_first && parse_buffered(parser, ec))
            co_return ec;
        read_first = false;
        // A head grows the buffer a little at a time (most heads fit the first 2 KiB read); a
        // body reads in 64 KiB pieces.
        const auto want = parser.is_header_done()
                              ? body_buffer_bytes
                              : std::max(idle_buffer_bytes, buffer_.capacity() - buffer_.size());
        const auto room = std::min(want, buffer_.max_size() - buffer_.size());
        if (room == 0)
            co_return http::error::buffer_overflow;
        auto [rec, n] = co_await socket_.async_read_some(buffer_.prepare(room));
        if (rec) {
            if (rec == asio::error::eof)
                co_return parser.got_some() ? http::error::partial_message
                                            : http::error::end_of_stream;
            co_return rec;
        }
        buffer_.commit(n);
        w_.stats.bytes_received.add(n);
    }
}

template awaitable<boost::system::error_code> session::parse_some(request_parser&, bool);
template awaitable<boost::system::error_code> session::parse_some(stream_parser&, bool);

awaitable<bool> session::answer(response& res, const request_head* head, bool keep_alive,
                                std::optional<std::size_t> route, std::uint64_t bytes_in,
                                clock::time_point start) {
    const auto length = finish(res, head ? head->method() : http::verb::get);
    boost::system::error_code ec;
    std::size_t n = 0;
    if (format_head(res, length, keep_alive, w_.date.get(), head_)) {
        const std::array<asio::const_buffer, 2> pieces{asio::buffer(head_),
                                                       asio::buffer(res.body())};
        std::tie(ec, n) = co_await send_all(pieces);
    } else { // the handler's own framing or connection options: Beast's rules
        stamp(res, w_.date.get());
        res.keep_alive(keep_alive);
        if (length && !res.chunked())
            res.content_length(*length);
        std::tie(ec, n) = co_await http::async_write(socket_, res);
    }
    record(head, res.result_int(), route, bytes_in, n, start);
    co_return !ec && !slot_.timed_out;
}

template <class Buffers>
awaitable<std::tuple<boost::system::error_code, std::size_t>>
session::send_all(const Buffers& pieces) {
    boost::system::error_code ec;
    const auto total = asio::buffer_size(pieces);
    const auto sent = socket_.send(pieces, 0, ec); // the socket is non-blocking
    if (ec == asio::error::would_block || ec == asio::error::try_again)
        ec = {};
    if (ec || sent == total)
        co_return std::tuple{ec, sent};
    boost::beast::buffers_suffix<Buffers> rest(pieces);
    rest.consume(sent);
    auto [wec, n] = co_await asio::async_write(socket_, rest);
    co_return std::tuple{wec, sent + n};
}

void session::record(const request_head* head, unsigned status, std::optional<std::size_t> route,
                     std::uint64_t bytes_in, std::size_t bytes_out, clock::time_point start) {
    last_now_ = clock::now();
    const auto took = last_now_ - start;
    w_.stats.count_response(route, status);
    w_.stats.count_latency(took);
    w_.stats.bytes_sent.add(bytes_out);
    if (state_.log.access_enabled())
        state_.log.access({.peer = peer_,
                           .method = head ? std::string_view(head->method_string()) : "-",
                           .target = head ? std::string_view(head->target()) : "-",
                           .status = status,
                           .bytes_in = bytes_in,
                           .bytes_out = bytes_out,
                           .duration = took});
}

awaitable<> session::refuse(refusal r, const request_head* head, clock::time_point start,
                            const linger_bounds& linger) {
    w_.stats.count_reject(r.why);
    response res{http::status::ok, head ? head->version() : 11u};
    set_error(res, row(r.why).error, std::move(r.message));
    if (r.why == rejection::max_connections)
        res.set(http::field::retry_after, "1");
    // The deadline that may have fired is over; a refusal at accept time gets a short one.
    slot_.timed_out = false;
    const bool at_accept = r.why == rejection::max_connections || r.why == rejection::forbidden;
    slot_.arm(at_accept ? std::chrono::milliseconds(1000) : opt_.idle_timeout);
    if (co_await answer(res, head, false, std::nullopt, head ? head->body().size() : 0, start))
        co_await lingering_close(linger);
}

awaitable<> session::fail(const request_head& head, std::uint64_t bytes_in,
                          clock::time_point start) {
    response res{http::status::ok, head.version()};
    set_error(res, errc::internal_error);
    slot_.arm(opt_.idle_timeout);
    if (co_await answer(res, &head, false, std::nullopt, bytes_in, start))
        co_await lingering_close(after_error);
}

// After an error answer: stop sending, then read and drop what the peer still sends, so that
// closing does not throw the answer away. A socket closed with unread bytes fails the peer's
// next write (EPIPE on a Unix socket, RST on TCP), and a client still uploading the body we
// refused would report that send error instead of reading our 413.
awaitable<> session::lingering_close(const linger_bounds& bounds) {
    boost::system::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    const auto give_up = clock::now() + bounds.total;
    slot_.timed_out = false;
    slot_.idle = true; // so the drain's wake-up cancels the read
    std::array<char, 8192> sink;
    for (std::size_t dropped = 0; dropped < bounds.max_bytes;) {
        // The check and the read start with no suspension between them (as in await_request).
        if (draining())
            break;
        slot_.deadline = std::min(clock::now() + bounds.quiet, give_up);
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(sink));
        if (ec || slot_.timed_out)
            break;
        dropped += n;
    }
    socket_.close(ignored);
}

bool session::bytes_pending() const noexcept {
    char c;
    return ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

awaitable<> run_session(socket_type socket, proto::peer_info peer, server_state& state, worker& w) {
    session s(socket, std::move(peer), state.connections, state, w);
    co_await s.run();
}

awaitable<> reject_connection(socket_type socket, proto::peer_info peer, server_state& state,
                              worker& w) {
    session s(socket, std::move(peer), state.connections, state, w);
    co_await s.refuse(too_many_connections(state.options), nullptr, clock::now());
}

awaitable<> refuse_peer(socket_type socket, proto::peer_info peer, std::string why,
                        server_state& state, worker& w) {
    session s(socket, peer, state.refusing, state, w);
    state.log.peer_log(log_level::warn, "refused a connection from pid " +
                                            std::to_string(peer.pid.value_or(-1)) + ": " + why);
    co_await s.refuse(not_allowed(why), nullptr, clock::now(), after_refusal);
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
