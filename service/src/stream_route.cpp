// Stream routes: the request body goes to the handler piece by piece and its output to the
// peer as it comes, in memory bounded by the pump's queue, whatever the body's size. A small
// body with a Content-Length is read whole and answered in one write instead.

#include "stream_route.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <deque>
#include <memory>
#include <vector>

namespace udshttp::service::detail {

using namespace boost::asio::experimental::awaitable_operators;

// The state a stream route's reader and writer share. They run at once on the worker's thread,
// so the peer may send and receive at the same time (as curl does); the queue between them is
// bounded, so a peer that does not read stops being read from, and memory stays bounded.
struct stream_route::pump {
    static constexpr std::size_t queue_cap = 1024 * 1024;

    explicit pump(executor ex) : wake_reader(ex), wake_writer(ex) {}

    std::unique_ptr<stream_handler> handler;
    std::optional<std::uint64_t> length;
    std::deque<std::string> queue;
    std::size_t queued = 0;
    bool input_done = false; // the body is read and end() has run
    bool failed = false;     // either side failed: both stop, the connection closes
    bool head_sent = false;
    bool keep_alive = false;
    std::optional<detail::refusal> refusal; // a body error before any output: answered so
    std::uint64_t received = 0;
    std::size_t sent = 0;
    timer_type wake_reader; // "cancel()" is notify: the waiter re-checks its condition
    timer_type wake_writer;

    // Written pieces are kept for reuse, so a stream allocates a handful of buffers in all,
    // not one per piece.
    std::vector<std::string> spare;
    std::string spare_piece() {
        if (spare.empty())
            return {};
        std::string s = std::move(spare.back());
        spare.pop_back();
        s.clear();
        return s;
    }
    void recycle(std::string s) {
        if (spare.size() < 8)
            spare.push_back(std::move(s));
    }

    static awaitable<> wait(timer_type& t) {
        t.expires_at(clock::time_point::max());
        co_await t.async_wait();
    }
    void fail(socket_type& socket) {
        failed = true;
        boost::system::error_code ignored;
        socket.cancel(ignored);
        wake_reader.cancel();
        wake_writer.cancel();
    }
};

bool stream_route::feed(pump& p, std::optional<std::string_view> in) {
    std::string piece = p.spare_piece();
    try {
        if (in)
            p.handler->data(*in, piece);
        else
            p.handler->end(piece);
    } catch (const std::exception& e) {
        c_.state.log.log(log_level::error, "stream handler threw: " + std::string(e.what()));
        p.fail(c_.socket);
        return false;
    }
    if (!piece.empty()) {
        p.queued += piece.size();
        p.queue.push_back(std::move(piece));
        p.wake_writer.cancel();
    }
    return true;
}

awaitable<> stream_route::pump_reader(pump& p, stream_parser& parser) {
    std::vector<char> in(connection::body_buffer_bytes);
    c_.buffer.reserve(connection::body_buffer_bytes);
    while (!p.failed && !parser.is_done()) {
        while (p.queued >= pump::queue_cap && !p.failed)
            co_await pump::wait(p.wake_reader);
        if (p.failed)
            co_return;
        parser.get().body().data = in.data();
        parser.get().body().size = in.size();
        c_.slot.arm(c_.opt.idle_timeout);
        const auto ec = co_await c_.parse_some(parser);
        if ((ec && ec != http::error::need_buffer) || c_.slot.timed_out) {
            if (auto refused = refusal_for(ec, c_.opt, c_.read_cap);
                refused && !c_.slot.timed_out) {
                if (!p.head_sent) {
                    p.refusal = std::move(refused);
                } else {
                    // The answer has begun: too late for a status, so the cut is what the
                    // peer sees (no last chunk). Count and say it, so it is not a silent 200.
                    c_.w.stats.count_reject(refused->why);
                    c_.state.log.peer_log(log_level::warn,
                                          "cut the answer to " + quote(parser.get().target()) +
                                              " after " + std::to_string(p.received) +
                                              " request body bytes: " + refused->message);
                }
            }
            p.fail(c_.socket);
            co_return;
        }
        const auto got = in.size() - parser.get().body().size;
        p.received += got;
        if (!feed(p, std::string_view(in.data(), got)))
            co_return;
    }
    if (p.failed || !feed(p, std::nullopt))
        co_return;
    p.input_done = true;
    p.wake_writer.cancel();
}

awaitable<> stream_route::pump_writer(pump& p, http::response<http::buffer_body>& out) {
    http::response_serializer<http::buffer_body> sr(out);
    for (;;) {
        while (p.queue.empty() && !p.input_done && !p.failed)
            co_await pump::wait(p.wake_writer);
        if (p.failed)
            co_return;
        if (!p.head_sent) {
            // Sent with the first output, not before: a body that is malformed from its first
            // byte still gets a 400, and a drain that began meanwhile still says close.
            p.keep_alive = p.keep_alive && !c_.draining();
            out.keep_alive(p.keep_alive);
            p.head_sent = true;
            c_.slot.arm(c_.opt.idle_timeout);
            auto [ec, n] = co_await http::async_write_header(c_.socket, sr);
            p.sent += n;
            if (ec || c_.slot.timed_out) {
                p.fail(c_.socket);
                co_return;
            }
        }
        if (p.queue.empty()) { // input done: the end of the body (the last chunk, if chunked)
            out.body().data = nullptr;
            out.body().size = 0;
            out.body().more = false;
            c_.slot.arm(c_.opt.idle_timeout);
            auto [ec, n] = co_await http::async_write(c_.socket, sr);
            p.sent += n;
            if (ec || c_.slot.timed_out)
                p.fail(c_.socket);
            co_return;
        }
        std::string piece = std::move(p.queue.front());
        p.queue.pop_front();
        out.body().data = piece.data();
        out.body().size = piece.size();
        out.body().more = true;
        c_.slot.arm(c_.opt.idle_timeout);
        auto [ec, n] = co_await http::async_write(c_.socket, sr);
        p.sent += n;
        p.queued -= piece.size();
        p.recycle(std::move(piece));
        p.wake_reader.cancel();
        if ((ec && ec != http::error::need_buffer) || c_.slot.timed_out) {
            p.fail(c_.socket);
            co_return;
        }
    }
}

awaitable<bool> stream_route::serve(request_parser& parser, const route_match& match,
                                    clock::time_point start) {
    // A Content-Length up to pump::queue_cap: read whole and answered in one write (no body
    // parser, no pump). Anything larger, or chunked, streams through the pump.
    const auto content_length = parser.content_length();
    const bool whole = content_length && *content_length <= pump::queue_cap;
    std::optional<stream_parser> body_parser;
    request_head head; // the head, for the handler (its body stays empty)
    if (whole) {
        head.base() = std::move(parser.get().base()); // the parser is done with it
    } else {
        body_parser.emplace(std::move(parser));
        body_parser->body_limit(c_.opt.max_body_bytes);
        head.base() = body_parser->get().base();
    }
    const request req(head, c_.peer, &match);

    response res{http::status::ok, head.version()};
    std::unique_ptr<stream_handler> handler;
    std::optional<std::uint64_t> length;
    try {
        handler = c_.state.routes.open_stream(match);
        length = handler->begin(req, res);
    } catch (const std::exception& e) {
        c_.state.log.log(log_level::error, "stream handler for " + quote(head.method_string()) +
                                               " " + quote(head.target()) + " threw: " + e.what());
        handler.reset();
    }
    if (!handler) {
        co_await c_.fail(head, 0, start);
        co_return false;
    }
    if (whole)
        co_return co_await stream_whole(*handler, length, res, head, *content_length, match.index(),
                                        start);

    pump p(c_.socket.get_executor());
    p.handler = std::move(handler);
    p.length = length;
    stamp(res, c_.w.date.get());
    http::response<http::buffer_body> out(res.result(), head.version());
    out.base() = res.base();
    p.keep_alive = keep_alive_;
    if (p.length)
        out.content_length(*p.length);
    else if (head.version() >= 11)
        out.chunked(true);
    else
        p.keep_alive = false; // HTTP/1.0 without a length: the close ends the body
    out.body().data = nullptr;
    out.body().more = true;

    co_await (pump_reader(p, *body_parser) && pump_writer(p, out));

    if (p.refusal) { // nothing was sent yet: a proper error answer
        c_.slot.timed_out = false;
        co_await c_.refuse(std::move(*p.refusal), &head, start);
        co_return false;
    }
    c_.record(&head, out.result_int(), match.index(), p.received, p.sent, start);
    co_return !p.failed && p.keep_alive;
}

awaitable<bool> stream_route::stream_whole(stream_handler& handler,
                                           std::optional<std::uint64_t> declared, response& res,
                                           const request_head& head, std::uint64_t length,
                                           std::optional<std::size_t> route,
                                           clock::time_point start) {
    // The body: what the header read left in c_.buffer, then straight from the socket into one
    // buffer (no parser in between: the Content-Length is the framing).
    const auto size = static_cast<std::size_t>(length);
    c_.borrow(c_.whole_in, size);
    c_.whole_in.resize(size);
    char* in = c_.whole_in.data();
    std::size_t have = std::min(size, c_.buffer.size());
    asio::buffer_copy(asio::buffer(in, have), c_.buffer.data());
    c_.buffer.consume(have);
    while (have < size) {
        c_.slot.arm(c_.opt.idle_timeout);
        auto [ec, n] = co_await c_.socket.async_read_some(asio::buffer(in + have, size - have));
        c_.w.stats.bytes_received.add(n);
        if (ec || c_.slot.timed_out)
            co_return false; // the peer went away or stalled mid-body: nothing to answer
        have += n;
    }

    // The handler may turn the body into the answer in place (echo does: no copy at all).
    // Otherwise one call for the body and one for the end, both into the response body,
    // which borrows the connection's output buffer so its capacity is reused.
    auto& out = res.body();
    std::string* lent = &c_.whole_out;
    std::string failure;
    try {
        if (handler.whole(c_.whole_in)) {
            lent = &c_.whole_in;
            out.swap(c_.whole_in);
        } else {
            c_.borrow(c_.whole_out, size); // a guess: handlers often answer about what they read
            out.swap(c_.whole_out);
            out.clear();
            handler.data(std::string_view(in, size), out);
            handler.end(out);
        }
        if (declared && *declared != out.size())
            failure = "declared " + std::to_string(*declared) + " bytes and gave " +
                      std::to_string(out.size());
    } catch (const std::exception& e) {
        failure = std::string("threw: ") + e.what();
    }
    if (!failure.empty()) {
        c_.state.log.log(log_level::error, "stream handler for " + quote(head.method_string()) +
                                               " " + quote(head.target()) + " " + failure);
        co_await c_.fail(head, size, start);
        co_return false;
    }
    const bool keep_alive = keep_alive_ && !c_.draining();
    c_.slot.arm(c_.opt.idle_timeout);
    const bool sent = co_await c_.answer(res, &head, keep_alive, route, size, start);
    out.swap(*lent);
    c_.give_back(c_.whole_in);
    c_.give_back(c_.whole_out);
    co_return sent&& keep_alive;
}

} // namespace udshttp::service::detail
