#include "connection.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
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

connection::connection(socket_type& s, proto::peer_info who, std::atomic<std::size_t>& open,
                       server_state& st, worker& wk)
    : socket(s), state(st), opt(st.options), w(wk), guard_(open, wk, s), slot(guard_.slot),
      peer(std::move(who)), read_cap(opt.max_header_bytes + body_buffer_bytes),
      buffer(read_cap, pooled_allocator<char>(wk.read_blocks)) {
    // send_all() tries a plain send first; asynchronous operations work either way.
    boost::system::error_code ignored;
    socket.non_blocking(true, ignored);
}

void connection::close() noexcept {
    slot.disarm();
    boost::system::error_code ignored;
    socket.shutdown(asio::socket_base::shutdown_both, ignored);
    socket.close(ignored);
}

awaitable<bool> connection::read_sized_body(std::string& body, std::uint64_t length) {
    const auto size = static_cast<std::size_t>(length);
    std::size_t have = std::min(size, buffer.size());
    body.resize(have);
    asio::buffer_copy(asio::buffer(body), buffer.data());
    buffer.consume(have);
    while (have < size) {
        // Grows by what is read (std::string doubles its capacity), never by what was declared.
        const auto want = std::min(size - have, body_buffer_bytes);
        body.resize(have + want);
        slot.arm(opt.idle_timeout);
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(body.data() + have, want));
        w.stats.bytes_received.add(n);
        have += n;
        body.resize(have);
        if (ec || slot.timed_out)
            co_return false;
    }
    co_return true;
}

template <class Parser>
bool connection::parse_buffered(Parser& parser, boost::system::error_code& ec) {
    ec = {};
    if (buffer.size() == 0)
        return false;
    const bool in_head = !parser.is_header_done();
    const auto used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (in_head) {
        head_bytes += used;
        const auto pending = parser.is_header_done() ? 0 : buffer.size();
        if (head_bytes + pending > opt.max_header_bytes) {
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
awaitable<boost::system::error_code> connection::parse_some(Parser& parser, bool read_first) {
    for (;;) {
        boost::system::error_code ec;
        if (!read_first && parse_buffered(parser, ec))
            co_return ec;
        read_first = false;
        // A head grows the buffer a little at a time (most heads fit the first 2 KiB read); a
        // body reads in 64 KiB pieces.
        const auto want = parser.is_header_done()
                              ? body_buffer_bytes
                              : std::max(idle_buffer_bytes, buffer.capacity() - buffer.size());
        const auto room = std::min(want, buffer.max_size() - buffer.size());
        if (room == 0)
            co_return http::error::buffer_overflow;
        auto [rec, n] = co_await socket.async_read_some(buffer.prepare(room));
        if (rec) {
            if (rec == asio::error::eof)
                co_return parser.got_some() ? http::error::partial_message
                                            : http::error::end_of_stream;
            co_return rec;
        }
        buffer.commit(n);
        w.stats.bytes_received.add(n);
    }
}

awaitable<bool> connection::answer(response& res, const request_head* head, bool keep_alive,
                                   std::optional<std::size_t> route, std::uint64_t bytes_in,
                                   clock::time_point start) {
    const auto length = finish(res, head ? head->method() : http::verb::get);
    boost::system::error_code ec;
    std::size_t n = 0;
    if (format_head(res, length, keep_alive, w.date.get(), head_)) {
        const auto& body = res.body();
        if (keep_alive && buffer.size() > 0 && body.size() <= gather_body_bytes &&
            gathered_.size() + head_.size() + body.size() <= gather_bytes) {
            // The next request is here already: this answer goes out with the next ones.
            gathered_.append(head_).append(body);
            record(head, res.result_int(), route, bytes_in, head_.size() + body.size(), start);
            co_return true;
        }
        const std::array<asio::const_buffer, 2> pieces{asio::buffer(head_), asio::buffer(body)};
        std::tie(ec, n) = co_await send_all(pieces);
    } else { // the handler's own framing or connection options: Beast's rules
        if (!co_await flush())
            co_return false;
        stamp(res, w.date.get());
        res.keep_alive(keep_alive);
        if (length && !res.chunked())
            res.content_length(*length);
        std::tie(ec, n) = co_await http::async_write(socket, res);
    }
    record(head, res.result_int(), route, bytes_in, n, start);
    co_return !ec && !slot.timed_out;
}

awaitable<std::tuple<boost::system::error_code, std::size_t>>
connection::send_all(std::span<const asio::const_buffer> pieces) {
    // The gathered answers go first, in the same write when the pieces leave room (answer()
    // gives 2), else in a write of their own.
    boost::system::error_code ec;
    std::array<asio::const_buffer, 3> all;
    auto earlier = gathered_.size();
    if (earlier > 0 && pieces.size() >= all.size()) {
        std::tie(ec, std::ignore) = co_await asio::async_write(socket, asio::buffer(gathered_));
        gathered_.clear();
        earlier = 0;
        if (ec)
            co_return std::tuple{ec, std::size_t{0}};
    }
    auto out = pieces;
    if (earlier > 0) {
        all[0] = asio::buffer(gathered_);
        std::ranges::copy(pieces, all.begin() + 1);
        out = std::span<const asio::const_buffer>(all.data(), 1 + pieces.size());
    }
    const auto total = asio::buffer_size(out);
    auto sent = socket.send(out, 0, ec); // the socket is non-blocking
    if (ec == asio::error::would_block || ec == asio::error::try_again)
        ec = {};
    if (!ec && sent < total) {
        boost::beast::buffers_suffix<std::span<const asio::const_buffer>> rest(out);
        rest.consume(sent);
        std::size_t n = 0;
        std::tie(ec, n) = co_await asio::async_write(socket, rest);
        sent += n;
    }
    gathered_.clear();
    // The gathered answers were counted when they were gathered.
    co_return std::tuple{ec, sent > earlier ? sent - earlier : 0};
}

void connection::trim_for_idle() noexcept {
    if (buffer.size() == 0 && buffer.capacity() > 0)
        buffer.shrink_to_fit(); // empty: gives its memory back
    if (gathered_.empty() && gathered_.capacity() > 0)
        std::string().swap(gathered_);
}

awaitable<bool> connection::flush() {
    if (gathered_.empty())
        co_return true;
    auto [ec, n] = co_await send_all({});
    co_return !ec && !slot.timed_out;
}

void connection::record(const request_head* head, unsigned status, std::optional<std::size_t> route,
                        std::uint64_t bytes_in, std::size_t bytes_out, clock::time_point start) {
    last_now = clock::now();
    const auto took = last_now - start;
    w.stats.count_response(route, status);
    w.stats.count_latency(took);
    w.stats.bytes_sent.add(bytes_out);
    const bool to_events = state.hub && state.hub->events_wanted();
    if (!state.log.access_enabled() && !to_events)
        return;
    const access_record r{.peer = peer,
                          .method = head ? std::string_view(head->method_string()) : "-",
                          .target = head ? std::string_view(head->target()) : "-",
                          .status = status,
                          .bytes_in = bytes_in,
                          .bytes_out = bytes_out,
                          .duration = took};
    auto line = access_json(r);
    if (to_events) // GET /events: the same line, live
        (void)state.hub->publish(topic_hub::events_topic, "application/json", line);
    state.log.access(std::move(line));
}

awaitable<> connection::refuse(refusal r, const request_head* head, clock::time_point start,
                               const linger_bounds& linger) {
    w.stats.count_reject(r.why);
    response res{http::status::ok, head ? head->version() : 11u};
    set_error(res, row(r.why).error, std::move(r.message));
    if (r.why == rejection::max_connections)
        res.set(http::field::retry_after, "1");
    // The deadline that may have fired is over; a refusal at accept time gets a short one.
    slot.timed_out = false;
    const bool at_accept = r.why == rejection::max_connections || r.why == rejection::forbidden;
    slot.arm(at_accept ? std::chrono::milliseconds(1000) : opt.idle_timeout);
    if (co_await answer(res, head, false, std::nullopt, head ? head->body().size() : 0, start))
        co_await lingering_close(linger);
}

awaitable<> connection::fail(const request_head& head, std::uint64_t bytes_in,
                             clock::time_point start) {
    response res{http::status::ok, head.version()};
    set_error(res, errc::internal_error);
    slot.arm(opt.idle_timeout);
    if (co_await answer(res, &head, false, std::nullopt, bytes_in, start))
        co_await lingering_close(after_error);
}

// After an error answer: stop sending, then read and drop what the peer still sends, so that
// closing does not throw the answer away. A socket closed with unread bytes fails the peer's
// next write (EPIPE on a Unix socket, RST on TCP), and a client still uploading the body we
// refused would report that send error instead of reading our 413.
awaitable<> connection::lingering_close(const linger_bounds& bounds) {
    boost::system::error_code ignored;
    socket.shutdown(asio::socket_base::shutdown_send, ignored);
    const auto give_up = clock::now() + bounds.total;
    slot.timed_out = false;
    slot.idle = true; // so the drain's wake-up cancels the read
    std::array<char, 8192> sink;
    for (std::size_t dropped = 0; dropped < bounds.max_bytes;) {
        // The check and the read start with no suspension between them (as in session::run).
        if (draining())
            break;
        slot.deadline = std::min(clock::now() + bounds.quiet, give_up);
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(sink));
        if (ec || slot.timed_out)
            break;
        dropped += n;
    }
    socket.close(ignored);
}

bool connection::bytes_pending() const noexcept {
    char c;
    return ::recv(socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

void connection::borrow(std::string& s, std::size_t n) {
    if (s.capacity() >= n)
        return;
    auto& spares = w.spare_buffers;
    const auto fit = std::find_if(spares.begin(), spares.end(),
                                  [n](const std::string& b) { return b.capacity() >= n; });
    if (fit != spares.end()) {
        s.swap(*fit);
        spares.erase(fit);
    }
}

void connection::give_back(std::string& s) {
    if (s.capacity() <= keep_bytes)
        return;
    if (w.spare_buffers.size() < worker::max_spare_buffers)
        w.spare_buffers.push_back(std::move(s));
    std::string().swap(s);
}

template bool connection::parse_buffered(request_parser&, boost::system::error_code&);
template awaitable<boost::system::error_code> connection::parse_some(request_parser&, bool);
template awaitable<boost::system::error_code> connection::parse_some(stream_parser&, bool);

} // namespace udshttp::service::detail
