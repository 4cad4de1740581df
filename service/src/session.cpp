#include "session.hpp"

#include "peer.hpp"

#include <udshttp/proto/version.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <deque>

namespace udshttp::service::detail {
namespace {

namespace beast = boost::beast;
using namespace boost::asio::experimental::awaitable_operators;
using request_parser = http::request_parser<http::string_body>;

constexpr std::string_view server_field = "udshttp/" UDSHTTP_VERSION_STRING;

// Maps a parser failure to the answer it deserves; nullopt means: close without answering
// (the peer went away or sent nothing).
std::optional<errc> classify(const boost::system::error_code& ec) {
    if (ec == http::error::header_limit)
        return errc::header_fields_too_large;
    if (ec == http::error::body_limit)
        return errc::payload_too_large;
    if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message &&
        ec != http::error::need_more && ec != http::error::need_buffer)
        return errc::bad_request;
    return std::nullopt;
}

// Registers the connection with its worker for the deadline sweeper and keeps the counters
// honest however the session ends.
class connection_guard {
public:
    // `open` is the admission count this connection holds a place in (state.connections, or
    // state.refusing for a refused peer); it is given back on destruction.
    connection_guard(std::atomic<std::size_t>& open, worker& w, socket_type& socket)
        : open_(open), w_(w) {
        slot.socket = &socket;
        w_.connections.add(slot);
        w_.stats.connections_accepted.add();
        w_.stats.connections_open.add();
    }
    ~connection_guard() {
        w_.connections.remove(slot);
        w_.stats.connections_open.sub();
        open_.fetch_sub(1, std::memory_order_relaxed);
    }
    connection_guard(const connection_guard&) = delete;
    connection_guard& operator=(const connection_guard&) = delete;

    connection_slot slot;

private:
    std::atomic<std::size_t>& open_;
    worker& w_;
};

// After an error answer: stop sending, then read and drop what the peer still sends, so that
// closing does not throw the answer away. A socket closed with unread bytes fails the peer's
// next write (EPIPE on a Unix socket, RST on TCP), and a client still uploading the body we
// refused would report that send error instead of reading our 413. Shaped like nginx's
// lingering_timeout and lingering_time: it ends at EOF, after `quiet` without a byte, after
// `total` in all, once `max_bytes` are dropped, or at once when the server
// drains (the slot counts as idle, so the drain's wake-up cancels the read).
struct linger_bounds {
    std::chrono::milliseconds quiet;
    std::chrono::milliseconds total;
    std::size_t max_bytes;
};
constexpr linger_bounds after_error{std::chrono::milliseconds(500), std::chrono::seconds(5),
                                    64u << 20};
// A peer the allow-list refuses gets its 403 and little else: it holds no admission slot, but
// its linger is short, so that max_refusals of them at once cost at most a second each.
constexpr linger_bounds after_refusal{std::chrono::milliseconds(100), std::chrono::seconds(1),
                                      64u << 10};

awaitable<> lingering_close(socket_type& socket, connection_slot& slot,
                            const std::atomic<bool>& stopping, const linger_bounds& bounds) {
    boost::system::error_code ignored;
    socket.shutdown(asio::socket_base::shutdown_send, ignored);
    const auto give_up = clock::now() + bounds.total;
    slot.timed_out = false;
    slot.idle = true;
    std::array<char, 8192> sink;
    for (std::size_t dropped = 0; dropped < bounds.max_bytes;) {
        // The check and the read start with no suspension between them (as in await_request).
        if (stopping.load(std::memory_order_relaxed))
            break;
        slot.deadline = std::min(clock::now() + bounds.quiet, give_up);
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(sink));
        if (ec || slot.timed_out)
            break;
        dropped += n;
    }
    socket.close(ignored);
}

// Server and Date are not fields here: write_response() adds them (unless a handler set its
// own), which saves two allocations per request; stamp() adds them for Beast-written answers.
response make_response(unsigned version) {
    return response{http::status::ok, version};
}

template <class Fields> void stamp(Fields& fields, worker& w) {
    if (fields.count(http::field::server) == 0)
        fields.set(http::field::server, server_field);
    if (fields.count(http::field::date) == 0)
        fields.set(http::field::date, w.date.get());
}

// Answers a request whose body has been read: the matched handler, or 400/404/405, and 500
// whatever a handler throws. Returns the index of the route that answered, router::npos if none.
std::size_t handle(const router::match_result& m, const request& req, server_state& state,
                   response& res) {
    const auto& msg = req.message();
    try {
        if (m.bad_encoding) {
            set_error(res, errc::bad_request,
                      "invalid percent-encoding in path '" + std::string(req.path()) + "'");
        } else if (m.target) {
            (*m.target)(req, res);
            return m.index;
        } else if (m.path_known) {
            set_error(res, errc::method_not_allowed,
                      std::string(msg.method_string()) + " is not allowed on " +
                          std::string(req.path()) + "; allowed: " + m.allow);
            res.set(http::field::allow, m.allow);
        } else {
            set_error(res, errc::not_found,
                      "no route for " + std::string(msg.method_string()) + " " +
                          std::string(req.path()));
        }
    } catch (const std::exception& e) {
        state.log.log(log_level::error, "handler for " + quote(msg.method_string()) + " " +
                                            quote(msg.target()) + " threw: " + e.what());
        res = make_response(msg.version());
        set_error(res, errc::internal_error);
    }
    return router::npos;
}

// The Content-Length to announce (none for 1xx, 204 and 304), with the body cleared where it
// must not be sent (those statuses, and HEAD). Never throws (a handler may have set a status
// that forbids a body and given one anyway).
std::optional<std::uint64_t> finish(response& res, const request_parser::value_type& msg) {
    res.erase(http::field::content_length); // announced from the body, whatever a handler said
    const auto status = res.result_int();
    if (status < 200 || status == 204 || status == 304) {
        res.body().clear();
        return std::nullopt;
    }
    const auto size = res.body().size();
    if (msg.method() == http::verb::head)
        res.body().clear();
    return size;
}

std::string describe_limit(errc e, const server_options& o) {
    switch (e) {
    case errc::header_fields_too_large:
        return "request header block exceeds the limit of " + std::to_string(o.max_header_bytes) +
               " bytes";
    case errc::payload_too_large:
        return "request body exceeds the limit of " + std::to_string(o.max_body_bytes) + " bytes";
    default:
        return {};
    }
}

reject_reason reason_of(errc e) {
    switch (e) {
    case errc::header_fields_too_large:
        return reject_reason::header_too_large;
    case errc::payload_too_large:
        return reject_reason::body_too_large;
    case errc::request_timeout:
        return reject_reason::header_timeout;
    case errc::forbidden:
        return reject_reason::forbidden;
    case errc::service_unavailable:
        return reject_reason::max_connections;
    default:
        return reject_reason::malformed;
    }
}

// What a failed parse or read is answered with: the status, and the message that says why.
// nullopt: close without answering (the peer went away or sent nothing).
std::optional<std::pair<errc, std::string>>
answer_for(const boost::system::error_code& ec, const server_options& o, std::size_t read_cap) {
    const auto e = classify(ec);
    if (!e)
        return std::nullopt;
    if (*e != errc::bad_request)
        return std::pair{*e, describe_limit(*e, o)};
    if (ec == http::error::buffer_overflow)
        return std::pair{*e, "malformed request: a chunk-size line or trailer section does not "
                             "fit the read buffer of " +
                                 std::to_string(read_cap) + " bytes"};
    return std::pair{*e, "malformed request: " + ec.message()};
}

// RFC 9110 7.2 / RFC 3986 3.2.2: Host = uri-host [ ":" port ]; empty is allowed (no authority).
bool valid_host(std::string_view h) {
    const auto sub_delim_or_unreserved = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
    };
    std::size_t i = 0;
    if (!h.empty() && h.front() == '[') {
        const auto close = h.find(']');
        if (close == std::string_view::npos || close == 1)
            return false;
        for (i = 1; i < close; ++i)
            if (!sub_delim_or_unreserved(h[i]) && h[i] != ':')
                return false;
        i = close + 1;
    } else {
        for (; i < h.size() && h[i] != ':'; ++i) {
            if (h[i] == '%') {
                if (i + 2 >= h.size() || !std::isxdigit(static_cast<unsigned char>(h[i + 1])) ||
                    !std::isxdigit(static_cast<unsigned char>(h[i + 2])))
                    return false;
                i += 2;
            } else if (!sub_delim_or_unreserved(h[i])) {
                return false;
            }
        }
    }
    if (i == h.size())
        return true;
    if (h[i] != ':')
        return false;
    return std::all_of(h.begin() + static_cast<std::ptrdiff_t>(i) + 1, h.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
}

// One connection. Lives in run_session's frame; its members are what every step needs.
class session {
public:
    session(socket_type& socket, proto::peer_info peer, std::atomic<std::size_t>& open,
            server_state& state, worker& w)
        : socket_(socket), state_(state), opt_(state.options), w_(w), guard_(open, w, socket),
          slot_(guard_.slot), peer_(std::move(peer)),
          read_cap_(opt_.max_header_bytes + body_buffer_bytes), buffer_(read_cap_) {
        // send_all() tries a plain send first; asynchronous operations work either way.
        boost::system::error_code ignored;
        socket_.non_blocking(true, ignored);
    }

    awaitable<> run();
    // Answers an error the session gives by itself (not through the router), counts it as a
    // rejection, and closes gracefully. msg is null when no request head was parsed.
    awaitable<> refuse(errc e, std::string message, const request_parser::value_type* msg,
                       clock::time_point start, const linger_bounds& linger = after_error);
    // One step of parsing from buffer_ into `parser`, reading from the socket when it needs
    // more. Every byte the parser gets passes here, so here are the bounds Beast 1.81 lacks:
    // buffer_ never holds more than read_cap_ (so a chunk-size line, its extensions or a
    // trailer section that does not end is a buffer_overflow, not growth), and the header
    // block is counted from its first byte across every put(), against max_header_bytes
    // (Beast's own header_limit only counts what one put() has not consumed yet).
    // Exceptions from the parser (a body's allocation) surface here, in the coroutine, not
    // inside an I/O completion.
    template <class Parser>
    awaitable<boost::system::error_code> parse_some(Parser& parser, bool read_first = false);
    // parse_some's step without I/O: true when it has an answer in ec (progress, done or an
    // error), false when the parser needs more bytes. The common request is whole in buffer_,
    // and then this spares a coroutine frame per request.
    template <class Parser> bool parse_buffered(Parser& parser, boost::system::error_code& ec);
    // Reads the body of a request a handler will read, each pause under the idle deadline:
    // by its Content-Length (read_sized_body) or chunked through parse_some. False: the
    // connection ends (the peer went away or stalled, or the body was refused and answered).
    awaitable<bool> read_body(request_parser& parser, clock::time_point start);
    // Reads the rest of a Content-Length body into `body` (no parser: the length is the
    // framing), growing it as bytes arrive rather than reserving the declared size up front.
    // False: the peer went away or stalled.
    awaitable<bool> read_sized_body(std::string& body, std::uint64_t length);

private:
    // The checks a request head must pass before its body is read or routed: the error to
    // answer with and why, or nullopt.
    std::optional<std::pair<errc, std::string>> check_head(const request_parser& parser) const;
    // Sends all of `pieces`: at once when the socket takes them (no suspension, which is the
    // common case for an answer that fits the socket buffer), else the rest asynchronously.
    template <class Buffers>
    awaitable<std::tuple<boost::system::error_code, std::size_t>> send_all(const Buffers& pieces);
    // Waits for the first byte of the next request. False: close without answering (peer
    // gone, idle too long, or the server is draining and nothing has arrived).
    awaitable<bool> await_request(bool first);
    // Writes res with one gather write: status line, fields, Server and Date (unless set),
    // Content-Length (if length), Connection as keep_alive says, then the body. Beast's
    // serializer did the same with a quarter of all instructions per request in buffer
    // sequence adaptors; it still writes anything unusual (a chunked answer).
    awaitable<std::tuple<boost::system::error_code, std::size_t>>
    write_response(response& res, std::optional<std::uint64_t> length, bool keep_alive);
    void record(std::string_view method, std::string_view target, const response& res,
                std::size_t route, std::uint64_t bytes_in, std::size_t bytes_out,
                clock::time_point start);
    // Serves a stream route: the body goes to the handler piece by piece and its output to the
    // peer as it comes. Returns whether the connection may carry another request.
    awaitable<bool> stream(request_parser& parser, const router::match_result& route,
                           request& matched, clock::time_point start);
    using stream_response = http::response<http::buffer_body>;
    using stream_serializer = http::response_serializer<http::buffer_body>;
    struct pump;
    awaitable<> pump_reader(pump& p, http::request_parser<http::buffer_body>& parser);
    // Gives the handler a body piece (or, with nullopt, the end) and queues its output; false
    // (and the pump failed) if the handler threw.
    bool feed(pump& p, std::optional<std::string_view> in);
    awaitable<> pump_writer(pump& p, stream_response& out);
    // A stream handler failed before anything was sent: 500 and close.
    awaitable<> answer_500(const request_parser::value_type& head, std::uint64_t bytes_in,
                           clock::time_point start);
    // A stream route's small body (a Content-Length up to pump::queue_cap): read whole, one
    // handler call, head and output in one write. Returns whether the connection may go on.
    awaitable<bool> stream_whole(stream_handler& handler, std::optional<std::uint64_t> declared,
                                 response& res, const request_parser::value_type& head,
                                 std::uint64_t length, std::size_t route, clock::time_point start);
    bool bytes_pending() const noexcept {
        char c;
        return ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
    }

    socket_type& socket_;
    server_state& state_;
    const server_options& opt_;
    worker& w_;
    connection_guard guard_;
    connection_slot& slot_;
    const proto::peer_info peer_;
    static constexpr std::size_t keep_bytes = 64 * 1024;
    static constexpr std::size_t idle_buffer_bytes = 2048;
    static constexpr std::size_t body_buffer_bytes = 64 * 1024;
    const std::size_t read_cap_; // the most buffer_ holds: a header block and one body read
    beast::flat_buffer buffer_;
    std::size_t head_bytes_ = 0; // of the request head being parsed, consumed by the parser
    bool keep_alive_ = false;    // what the request asked for (every Connection field counts)
    std::string head_;           // write_response's serialized head, its capacity reused
    clock::time_point last_now_; // when record() last read the clock
    // stream_whole's buffers, kept between requests up to keep_bytes (so an idle connection
    // does not hold a large body's memory).
    std::string whole_in_; // its size is kept too, so reading the same size again fills nothing
    std::string whole_out_;
    // Makes `s` hold at least n bytes, from the worker's spare buffers if one is big enough.
    void borrow(std::string& s, std::size_t n);
    // Gives a large buffer back to the worker (or frees it) so an idle connection holds none.
    void give_back(std::string& s);
};

void session::record(std::string_view method, std::string_view target, const response& res,
                     std::size_t route, std::uint64_t bytes_in, std::size_t bytes_out,
                     clock::time_point start) {
    last_now_ = clock::now();
    const auto took = last_now_ - start;
    w_.stats.count_response(route, res.result_int());
    w_.stats.count_latency(took);
    w_.stats.bytes_sent.add(bytes_out);
    if (state_.log.access_enabled())
        state_.log.access({.peer = peer_,
                           .method = method,
                           .target = target,
                           .status = res.result_int(),
                           .bytes_in = bytes_in,
                           .bytes_out = bytes_out,
                           .duration = took});
}

awaitable<std::tuple<boost::system::error_code, std::size_t>>
session::write_response(response& res, std::optional<std::uint64_t> length, bool keep_alive) {
    using namespace std::string_view_literals;
    // One pass over the fields (comparing field enums, not names) builds the head; a handler's
    // own framing or connection options send the answer through Beast's rules instead.
    head_.clear();
    const auto put = [this](std::string_view v) { head_.append(v.data(), v.size()); };
    put(res.version() == 10 ? "HTTP/1.0 "sv : "HTTP/1.1 "sv);
    const auto status = res.result_int();
    const char code[4] = {static_cast<char>('0' + status / 100 % 10),
                          static_cast<char>('0' + status / 10 % 10),
                          static_cast<char>('0' + status % 10), ' '};
    put({code, 4});
    const auto reason = res.reason();
    put(reason.empty() ? http::obsolete_reason(res.result()) : reason);
    put("\r\n"sv);
    bool has_server = false, has_date = false;
    for (const auto& f : res) {
        const auto name = f.name();
        if (name == http::field::transfer_encoding || name == http::field::connection) {
            stamp(res, w_);
            res.keep_alive(keep_alive);
            if (length && !res.chunked())
                res.content_length(*length);
            co_return co_await http::async_write(socket_, res);
        }
        has_server = has_server || name == http::field::server;
        has_date = has_date || name == http::field::date;
        put(f.name_string());
        put(": "sv);
        put(f.value());
        put("\r\n"sv);
    }
    if (!has_server) {
        put("Server: "sv);
        put(server_field);
        put("\r\n"sv);
    }
    if (!has_date) {
        put("Date: "sv);
        put(w_.date.get());
        put("\r\n"sv);
    }
    if (length) {
        char digits[24];
        const auto end = std::to_chars(digits, digits + sizeof digits, *length).ptr;
        put("Content-Length: "sv);
        put({digits, static_cast<std::size_t>(end - digits)});
        put("\r\n"sv);
    }
    if (!keep_alive && res.version() >= 11)
        put("Connection: close\r\n"sv);
    else if (keep_alive && res.version() == 10)
        put("Connection: keep-alive\r\n"sv);
    put("\r\n"sv);
    const std::array<asio::const_buffer, 2> pieces{asio::buffer(head_), asio::buffer(res.body())};
    co_return co_await send_all(pieces);
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
    beast::buffers_suffix<Buffers> rest(pieces);
    rest.consume(sent);
    auto [wec, n] = co_await asio::async_write(socket_, rest);
    co_return std::tuple{wec, sent + n};
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

awaitable<> session::refuse(errc e, std::string message, const request_parser::value_type* msg,
                            clock::time_point start, const linger_bounds& linger) {
    w_.stats.count_reject(reason_of(e));
    auto res = make_response(msg ? msg->version() : 11);
    set_error(res, e, std::move(message));
    if (e == errc::service_unavailable)
        res.set(http::field::retry_after, "1");
    slot_.timed_out = false;
    slot_.arm(e == errc::service_unavailable || e == errc::forbidden
                  ? std::chrono::milliseconds(1000)
                  : opt_.idle_timeout);
    const auto length = res.body().size();
    auto [ec, n] = co_await write_response(res, length, false);
    record(msg ? std::string_view(msg->method_string()) : "-",
           msg ? std::string_view(msg->target()) : "-", res, router::npos,
           msg ? msg->body().size() : 0, n, start);
    if (!ec)
        co_await lingering_close(socket_, slot_, state_.stopping, linger);
}

std::optional<std::pair<errc, std::string>>
session::check_head(const request_parser& parser) const {
    const auto& msg = parser.get();
    const auto bad = [](std::string why) {
        return std::pair{errc::bad_request, "malformed request: " + std::move(why)};
    };
    // RFC 9112 6.1: Transfer-Encoding in a 1.0 message is faulty framing (1.0 has none).
    if (msg.version() < 11 && msg.count(http::field::transfer_encoding) != 0)
        return bad("Transfer-Encoding in an HTTP/1.0 request");
    // RFC 9112 6.3: a request whose transfer codings do not end in chunked has no knowable
    // length (Beast would read to EOF): 400 and close, the request-smuggling rule.
    if (msg.count(http::field::transfer_encoding) != 0 && !parser.chunked())
        return bad("Transfer-Encoding '" + quote(msg[http::field::transfer_encoding]) +
                   "' does not end in chunked");
    // RFC 9112 3.2: 400 for a 1.1 request without Host, for more than one Host field line,
    // and for a Host that is not uri-host [":" port].
    const auto hosts = msg.count(http::field::host);
    if (msg.version() >= 11 && hosts == 0)
        return bad("HTTP/1.1 request without a Host field");
    if (hosts > 1)
        return bad("more than one Host field");
    if (hosts == 1 && !valid_host(msg[http::field::host]))
        return bad("invalid Host '" + quote(msg[http::field::host]) + "'");
    // RFC 9112 3.2: a fragment is never sent; a '#' in the target is not a request target.
    if (msg.target().find('#') != std::string_view::npos)
        return bad("'#' in the request target");
    // --max-body-bytes, judged on Content-Length before any body byte is read (so
    // Expect: 100-continue gets the 413 instead of a 100); a chunked body is cut off at it.
    if (const auto length = parser.content_length(); length && *length > opt_.max_body_bytes)
        return std::pair{errc::payload_too_large, describe_limit(errc::payload_too_large, opt_)};
    return std::nullopt;
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
        if (state_.stopping.load(std::memory_order_relaxed) && !bytes_pending())
            break;
        auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(idle_buffer_bytes));
        if (ec == asio::error::operation_aborted && !slot_.timed_out &&
            state_.stopping.load(std::memory_order_relaxed))
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

awaitable<bool> session::read_body(request_parser& parser, clock::time_point start) {
    auto& msg = parser.get();
    if (const auto length = parser.content_length(); length && *length > 0)
        co_return co_await read_sized_body(msg.body(), *length);
    while (!parser.is_done()) {
        slot_.arm(opt_.idle_timeout);
        const auto ec = co_await parse_some(parser);
        if (ec || slot_.timed_out) {
            auto answer = answer_for(ec, opt_, read_cap_);
            if (answer && !slot_.timed_out)
                co_await refuse(answer->first, std::move(answer->second), &msg, start);
            co_return false;
        }
    }
    co_return true;
}

awaitable<> session::run() {
    int blank_lines = 0;
    for (bool first = true;; first = false) {
        if (buffer_.size() == 0 && !co_await await_request(first))
            break;
        const auto start = clock::now();
        slot_.arm(opt_.header_timeout, start);
        // RFC 9112 2.2: empty lines before a request line are ignored (some clients send a
        // CRLF after a body), a few of them: an endless stream of them is not a request.
        while (blank_lines < 4 && buffer_.size() >= 2 &&
               std::string_view(static_cast<const char*>(buffer_.data().data()), 2) == "\r\n") {
            buffer_.consume(2);
            ++blank_lines;
        }
        if (buffer_.size() == 0)
            continue;
        blank_lines = 0;

        request_parser parser;
        parser.header_limit(
            static_cast<std::uint32_t>(std::min<std::size_t>(opt_.max_header_bytes, UINT32_MAX)));
        parser.body_limit(boost::none); // set below, once the header is known

        // The head, usually whole in buffer_ already: then parse_buffered() alone parses it.
        head_bytes_ = 0;
        boost::system::error_code hec;
        if (!parse_buffered(parser, hec))
            hec = co_await parse_some(parser, true);
        while (!hec && !parser.is_header_done())
            hec = co_await parse_some(parser);
        // (Every message is built before co_await: GCC 12 destroys temporaries of a
        // conditional expression inside a co_await twice.)
        if (slot_.timed_out) {
            std::string why = "request header not received within " +
                              std::to_string(opt_.header_timeout.count()) + " ms";
            co_await refuse(errc::request_timeout, std::move(why), nullptr, start);
            break;
        }
        if (hec) {
            if (auto answer = answer_for(hec, opt_, read_cap_))
                co_await refuse(answer->first, std::move(answer->second), nullptr, start);
            break;
        }
        auto& msg = parser.get();
        if (auto refused = check_head(parser)) {
            co_await refuse(refused->first, std::move(refused->second), &msg, start);
            break;
        }
        keep_alive_ = parser.keep_alive();
        parser.body_limit(opt_.max_body_bytes);
        request req(msg, peer_);
        const auto route = state_.routes.match(msg.method(), req.path(), req);

        // No handler will read the body of a request that gets 404, 405 or 400 for its path:
        // it is answered before any body byte is read, and the body is dropped while lingering
        // (nginx's discard_request_body), never buffered.
        const bool routed = route.target || route.stream;
        const bool body_unread = !routed && !parser.is_done();

        // RFC 9110 10.1.1: answer 100-continue only when we are about to read the body.
        if (routed && msg.version() >= 11 && !parser.is_done() &&
            beast::iequals(msg[http::field::expect], "100-continue")) {
            static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
            slot_.arm(opt_.idle_timeout);
            auto [cec, cn] = co_await asio::async_write(socket_, asio::buffer(cont));
            if (cec || slot_.timed_out)
                break;
            w_.stats.bytes_sent.add(cn);
        }

        if (route.stream) {
            if (!co_await stream(parser, route, req, start))
                break;
            continue;
        }
        if (routed && !parser.is_done()) { // no coroutine frame for a request without a body
            if (!co_await read_body(parser, start))
                break;
        }

        auto res = make_response(msg.version());
        const auto answered_by = handle(route, req, state_, res);
        const bool keep_alive =
            keep_alive_ && !body_unread && !state_.stopping.load(std::memory_order_relaxed);
        const auto length = finish(res, msg);

        slot_.arm(opt_.idle_timeout, start);
        auto [wec, wn] = co_await write_response(res, length, keep_alive);
        record(msg.method_string(), msg.target(), res, answered_by, msg.body().size(), wn, start);
        if (wec || slot_.timed_out)
            break;
        if (body_unread)
            co_await lingering_close(socket_, slot_, state_.stopping, after_error);
        if (!keep_alive)
            break;
    }
    slot_.disarm();
    boost::system::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
}

// The state a stream route's reader and writer share. They run at once on the worker's thread,
// so the peer may send and receive at the same time (as curl does); the queue between them is
// bounded, so a peer that does not read stops being read from, and memory stays bounded.
struct session::pump {
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
    std::optional<errc> refusal; // a body error before any output: answered with this
    std::string refusal_message;
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

bool session::feed(pump& p, std::optional<std::string_view> in) {
    std::string piece = p.spare_piece();
    try {
        if (in)
            p.handler->data(*in, piece);
        else
            p.handler->end(piece);
    } catch (const std::exception& e) {
        state_.log.log(log_level::error, "stream handler threw: " + std::string(e.what()));
        p.fail(socket_);
        return false;
    }
    if (!piece.empty()) {
        p.queued += piece.size();
        p.queue.push_back(std::move(piece));
        p.wake_writer.cancel();
    }
    return true;
}

awaitable<> session::pump_reader(pump& p, http::request_parser<http::buffer_body>& parser) {
    std::vector<char> in(body_buffer_bytes);
    buffer_.reserve(body_buffer_bytes);
    while (!p.failed && !parser.is_done()) {
        while (p.queued >= pump::queue_cap && !p.failed)
            co_await pump::wait(p.wake_reader);
        if (p.failed)
            co_return;
        parser.get().body().data = in.data();
        parser.get().body().size = in.size();
        slot_.arm(opt_.idle_timeout);
        const auto ec = co_await parse_some(parser);
        if ((ec && ec != http::error::need_buffer) || slot_.timed_out) {
            if (auto answer = answer_for(ec, opt_, read_cap_); answer && !slot_.timed_out) {
                if (!p.head_sent) {
                    p.refusal = answer->first;
                    p.refusal_message = std::move(answer->second);
                } else {
                    // The answer has begun: too late for a status, so the cut is what the
                    // peer sees (no last chunk). Count and say it, so it is not a silent 200.
                    w_.stats.count_reject(reason_of(answer->first));
                    state_.log.peer_log(log_level::warn,
                                        "cut the answer to " + quote(parser.get().target()) +
                                            " after " + std::to_string(p.received) +
                                            " request body bytes: " + answer->second);
                }
            }
            p.fail(socket_);
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

awaitable<> session::pump_writer(pump& p, stream_response& out) {
    stream_serializer sr(out);
    for (;;) {
        while (p.queue.empty() && !p.input_done && !p.failed)
            co_await pump::wait(p.wake_writer);
        if (p.failed)
            co_return;
        if (!p.head_sent) {
            // Sent with the first output, not before: a body that is malformed from its first
            // byte still gets a 400, and a drain that began meanwhile still says close.
            p.keep_alive = p.keep_alive && !state_.stopping.load(std::memory_order_relaxed);
            out.keep_alive(p.keep_alive);
            p.head_sent = true;
            slot_.arm(opt_.idle_timeout);
            auto [ec, n] = co_await http::async_write_header(socket_, sr);
            p.sent += n;
            if (ec || slot_.timed_out) {
                p.fail(socket_);
                co_return;
            }
        }
        if (p.queue.empty()) { // input done: the end of the body (the last chunk, if chunked)
            out.body().data = nullptr;
            out.body().size = 0;
            out.body().more = false;
            slot_.arm(opt_.idle_timeout);
            auto [ec, n] = co_await http::async_write(socket_, sr);
            p.sent += n;
            if (ec || slot_.timed_out)
                p.fail(socket_);
            co_return;
        }
        std::string piece = std::move(p.queue.front());
        p.queue.pop_front();
        out.body().data = piece.data();
        out.body().size = piece.size();
        out.body().more = true;
        slot_.arm(opt_.idle_timeout);
        auto [ec, n] = co_await http::async_write(socket_, sr);
        p.sent += n;
        p.queued -= piece.size();
        p.recycle(std::move(piece));
        p.wake_reader.cancel();
        if ((ec && ec != http::error::need_buffer) || slot_.timed_out) {
            p.fail(socket_);
            co_return;
        }
    }
}

awaitable<bool> session::stream(request_parser& parser, const router::match_result& route,
                                request& matched, clock::time_point start) {
    // A Content-Length up to pump::queue_cap: read whole and answered in one write (no body
    // parser, no pump). Anything larger, or chunked, streams through the pump.
    const auto content_length = parser.content_length();
    const bool whole = content_length && *content_length <= pump::queue_cap;
    std::optional<http::request_parser<http::buffer_body>> body_parser;
    request_parser::value_type head; // the header, for the handler (its body stays empty)
    if (whole) {
        head.base() = std::move(parser.get().base()); // the parser is done with it
    } else {
        body_parser.emplace(std::move(parser));
        body_parser->body_limit(opt_.max_body_bytes);
        head.base() = body_parser->get().base();
    }
    request req(head, peer_);
    req.params() = std::move(matched.params()); // decoded once, by the match in run()

    auto res = make_response(head.version());
    std::unique_ptr<stream_handler> handler;
    std::optional<std::uint64_t> length;
    try {
        handler = (*route.stream)();
        length = handler->begin(req, res);
    } catch (const std::exception& e) {
        state_.log.log(log_level::error, "stream handler for " + quote(head.method_string()) + " " +
                                             quote(head.target()) + " threw: " + e.what());
        handler.reset();
    }
    if (!handler) {
        co_await answer_500(head, 0, start);
        co_return false;
    }
    if (whole)
        co_return co_await stream_whole(*handler, length, res, head, *content_length, route.index,
                                        start);

    pump p(socket_.get_executor());
    p.handler = std::move(handler);
    p.length = length;
    stamp(res, w_);
    stream_response out(res.result(), head.version());
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
        std::string why = std::move(p.refusal_message);
        slot_.timed_out = false;
        co_await refuse(*p.refusal, std::move(why), &head, start);
        co_return false;
    }
    res.result(out.result());
    record(head.method_string(), head.target(), res, route.index, p.received, p.sent, start);
    co_return !p.failed && p.keep_alive;
}

awaitable<> session::answer_500(const request_parser::value_type& head, std::uint64_t bytes_in,
                                clock::time_point start) {
    auto res = make_response(head.version());
    set_error(res, errc::internal_error);
    const auto length = finish(res, head);
    slot_.arm(opt_.idle_timeout);
    auto [ec, n] = co_await write_response(res, length, false);
    record(head.method_string(), head.target(), res, router::npos, bytes_in, n, start);
}

void session::borrow(std::string& s, std::size_t n) {
    if (s.capacity() >= n)
        return;
    auto& spares = w_.spare_buffers;
    const auto fit = std::find_if(spares.begin(), spares.end(),
                                  [n](const std::string& b) { return b.capacity() >= n; });
    if (fit != spares.end()) {
        s.swap(*fit);
        spares.erase(fit);
    }
}

void session::give_back(std::string& s) {
    if (s.capacity() <= keep_bytes)
        return;
    if (w_.spare_buffers.size() < worker::max_spare_buffers)
        w_.spare_buffers.push_back(std::move(s));
    std::string().swap(s);
}

awaitable<bool> session::stream_whole(stream_handler& handler,
                                      std::optional<std::uint64_t> declared, response& res,
                                      const request_parser::value_type& head, std::uint64_t length,
                                      std::size_t route, clock::time_point start) {
    // The body: what the header read left in buffer_, then straight from the socket into one
    // buffer (no parser in between: the Content-Length is the framing).
    const auto size = static_cast<std::size_t>(length);
    borrow(whole_in_, size);
    whole_in_.resize(size);
    char* in = whole_in_.data();
    std::size_t have = std::min(size, buffer_.size());
    asio::buffer_copy(asio::buffer(in, have), buffer_.data());
    buffer_.consume(have);
    while (have < size) {
        slot_.arm(opt_.idle_timeout);
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(in + have, size - have));
        w_.stats.bytes_received.add(n);
        if (ec || slot_.timed_out)
            co_return false; // the peer went away or stalled mid-body: nothing to answer
        have += n;
    }

    // The handler may turn the body into the answer in place (echo does: no copy at all).
    // Otherwise one call for the body and one for the end, both into the response body,
    // which borrows the connection's output buffer so its capacity is reused.
    auto& out = res.body();
    std::string* lent = &whole_out_;
    std::string failure;
    try {
        if (handler.whole(whole_in_)) {
            lent = &whole_in_;
            out.swap(whole_in_);
        } else {
            borrow(whole_out_, size); // a guess: handlers often answer about what they read
            out.swap(whole_out_);
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
        state_.log.log(log_level::error, "stream handler for " + quote(head.method_string()) + " " +
                                             quote(head.target()) + " " + failure);
        co_await answer_500(head, size, start);
        co_return false;
    }
    const bool keep_alive = keep_alive_ && !state_.stopping.load(std::memory_order_relaxed);
    slot_.arm(opt_.idle_timeout);
    auto [ec, n] = co_await write_response(res, out.size(), keep_alive);
    record(head.method_string(), head.target(), res, route, size, n, start);
    out.swap(*lent);
    give_back(whole_in_);
    give_back(whole_out_);
    co_return !ec && !slot_.timed_out && keep_alive;
}

} // namespace

awaitable<> run_session(socket_type socket, proto::peer_info peer, server_state& state, worker& w) {
    session s(socket, std::move(peer), state.connections, state, w);
    co_await s.run();
}

awaitable<> reject_connection(socket_type socket, proto::peer_info peer, server_state& state,
                              worker& w) {
    session s(socket, std::move(peer), state.connections, state, w);
    std::string why =
        "too many connections (limit " + std::to_string(state.options.max_connections) + ")";
    co_await s.refuse(errc::service_unavailable, std::move(why), nullptr, clock::now());
}

awaitable<> refuse_peer(socket_type socket, proto::peer_info peer, std::string why,
                        server_state& state, worker& w) {
    session s(socket, peer, state.refusing, state, w);
    state.log.peer_log(log_level::warn, "refused a connection from pid " +
                                            std::to_string(peer.pid.value_or(-1)) + ": " + why);
    std::string message = "this peer may not call: " + why;
    co_await s.refuse(errc::forbidden, std::move(message), nullptr, clock::now(), after_refusal);
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

namespace {
awaitable<> sweep_loop(worker& w, std::chrono::milliseconds tick) {
    timer_type timer(w.ctx.get_executor());
    for (;;) {
        timer.expires_after(tick);
        auto [ec] = co_await timer.async_wait();
        if (ec)
            co_return;
        w.stats.timeouts.add(w.connections.sweep(clock::now()));
    }
}
} // namespace

void start_sweeper(server_state& state, worker& w, std::chrono::milliseconds tick) {
    asio::co_spawn(w.ctx, sweep_loop(w, tick), [&state, &w, tick](std::exception_ptr e) {
        if (!e)
            return; // the context stopped
        log_exception(state, "a deadline sweeper", e);
        start_sweeper(state, w, tick); // without it, deadlines would never fire again
    });
}

} // namespace udshttp::service::detail
