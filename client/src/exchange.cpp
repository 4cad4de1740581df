#include "exchange.hpp"

#include "connect.hpp"
#include "message.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <variant>
#include <vector>

namespace udshttp::client::detail {
namespace {

using wait_descriptor =
    io::use_tuple::as_default_on_t<asio::posix::basic_stream_descriptor<executor>>;

// Waits until the source's descriptor is readable, so that calling the source cannot block the
// executor. False: the connection was closed or cancelled meanwhile (the deadline's watchdog
// closes it; an early answer cancels it), and the write is over.
awaitable<bool> source_ready(connection& c, wait_descriptor& source) {
    using namespace asio::experimental::awaitable_operators;
    auto ready = co_await (source.async_wait(asio::posix::descriptor_base::wait_read) ||
                           c.socket.async_wait(socket_type::wait_error));
    co_return ready.index() == 0 && !std::get<0>(std::get<0>(ready));
}

// Writes the head, then the body from the request or its source, then the last chunk.
awaitable<write_outcome> write_request(connection& c, request_message& msg, const request& req,
                                       duplex& d) {
    write_outcome w;
    http::request_serializer<http::buffer_body> sr(msg);
    auto [hec, hn] = co_await http::async_write_header(c.socket, sr);
    if (hec) {
        w.ec = hec;
        co_return w;
    }
    const auto send = [&](const char* data, std::size_t n) {
        msg.body().data = const_cast<char*>(data);
        msg.body().size = n;
        msg.body().more = true;
        return http::async_write(c.socket, sr);
    };
    if (const auto* streamed = std::get_if<streamed_body>(&req.body)) {
        const auto& length = streamed->length;
        std::vector<char> buf(read_piece);
        // A descriptor of our own (dup), so that closing it unregisters only ours; a wait
        // leaves the file's flags alone (no O_NONBLOCK on a shared stdin).
        std::optional<wait_descriptor> source_fd;
        if (streamed->wait_fd >= 0) {
            const int own = ::fcntl(streamed->wait_fd, F_DUPFD_CLOEXEC, 0);
            if (own < 0) {
                w.source_error =
                    error{make_error_code(errc::io_error),
                          std::string("cannot wait on the body source: ") + std::strerror(errno)};
            } else {
                boost::system::error_code ec;
                source_fd.emplace(c.socket.get_executor());
                source_fd->assign(own, ec);
                if (ec) {
                    ::close(own);
                    source_fd.reset(); // cannot be waited on: read it as it is
                }
            }
        }
        while (!w.source_error) {
            if (source_fd) {
                const bool ready = co_await source_ready(c, *source_fd);
                if (!ready) {
                    w.ec = asio::error::operation_aborted;
                    co_return w;
                }
            }
            auto n = streamed->source(buf);
            if (!n) {
                w.source_error = n.error();
                break;
            }
            if (*n == 0)
                break;
            if (length && d.prog.sent + *n > *length) {
                w.source_error = error{make_error_code(errc::io_error),
                                       "the body source gave more than its declared " +
                                           std::to_string(*length) + " bytes"};
                break;
            }
            auto [ec, written] = co_await send(buf.data(), *n);
            if (ec && ec != http::error::need_buffer) {
                w.ec = ec;
                co_return w;
            }
            d.prog.sent += *n;
            d.tell();
            if (d.read_done) // the server has answered already (an early error): stop sending
                co_return w;
        }
        if (!w.source_error && length && d.prog.sent != *length)
            w.source_error = error{make_error_code(errc::io_error),
                                   "the body source ended after " + std::to_string(d.prog.sent) +
                                       " of its declared " + std::to_string(*length) + " bytes"};
        if (w.source_error) {
            boost::system::error_code ignored;
            c.socket.close(ignored); // a body cut short must not look complete to the server
            co_return w;
        }
    } else if (const auto& body = std::get<std::string>(req.body); !body.empty()) {
        auto [ec, written] = co_await send(body.data(), body.size());
        if (ec && ec != http::error::need_buffer) {
            w.ec = ec;
            co_return w;
        }
        d.prog.sent += body.size();
    }
    msg.body().data = nullptr;
    msg.body().size = 0;
    msg.body().more = false;
    auto [ec, written] = co_await http::async_write(c.socket, sr); // the last chunk, if any
    w.ec = ec;
    w.done = !ec;
    co_return w;
}

// One step of parsing the response from c.buffer, reading when the parser needs more; the
// bounds Beast 1.81 lacks are kept here (the server's session.cpp does the same): the buffer is
// capped, and the header block is counted across every put() against max_header. Returns the
// error (need_buffer: the body buffer is full) and adds the bytes read to `read`.
template <class Parser>
awaitable<boost::system::error_code> parse_some(connection& c, Parser& p, std::size_t max_header,
                                                std::size_t& head_bytes, std::uint64_t& read) {
    for (;;) {
        boost::system::error_code ec;
        if (c.buffer.size() > 0) {
            const bool in_head = !p.is_header_done();
            const auto used = p.put(c.buffer.data(), ec);
            c.buffer.consume(used);
            if (in_head) {
                head_bytes += used;
                if (head_bytes + (p.is_header_done() ? 0 : c.buffer.size()) > max_header)
                    co_return http::error::header_limit;
            }
            if (ec != http::error::need_more)
                co_return ec;
        }
        const auto room = std::min(read_piece, c.buffer.max_size() - c.buffer.size());
        if (room == 0)
            co_return http::error::buffer_overflow;
        auto [rec, n] = co_await c.socket.async_read_some(c.buffer.prepare(room));
        if (rec) {
            if (rec != asio::error::eof)
                co_return rec;
            // End of stream: a body that runs to the close ends here; anything else is cut.
            if (!p.got_some())
                co_return http::error::end_of_stream;
            p.put_eof(ec);
            co_return ec;
        }
        c.buffer.commit(n);
        read += n;
    }
}

} // namespace

// The request, then, if it could not be sent whole, a bound on the wait for its answer. An
// answer may still come (a server's early 413, already in our receive buffer when its close
// made our write fail), so the reader keeps going while bytes arrive; after 1 s without any
// it is stopped. Without this a failed write whose connection stayed open left the reader
// waiting for the request deadline (found by the fault-injection test).
awaitable<write_outcome> send_request(connection& c, request_message& msg, const request& req,
                                      duplex& d) {
    auto w = co_await write_request(c, msg, req, d);
    d.write_over = true;
    d.write_done = w.done;
    if (!w.ec)
        co_return w;
    auto& grace = d.grace.emplace(c.socket.get_executor());
    auto seen = d.read_bytes;
    for (int quiet = 0; quiet < 4 && !d.read_over;) {
        grace.expires_after(std::chrono::milliseconds(250));
        auto [ec] = co_await grace.async_wait();
        if (ec) // the reader has finished (read_response cancels us)
            co_return w;
        quiet = d.read_bytes == seen ? quiet + 1 : 0;
        seen = d.read_bytes;
    }
    if (!d.read_over) {
        w.abandoned_read = true;
        boost::system::error_code ignored;
        c.socket.cancel(ignored);
    }
    co_return w;
}

awaitable<read_outcome> read_response(connection& c, const request& req, const download* dl,
                                      const client_options& options, duplex& d) {
    // However the read ends, a writer waiting out its grace period (send_request) need not
    // wait on: without this every answer to a failed write cost up to 250 ms more.
    struct wake_writer {
        duplex& d;
        ~wake_writer() {
            d.read_over = true;
            if (d.grace)
                d.grace->cancel();
        }
    } wake{d};
    read_outcome r;
    std::optional<http::response_parser<http::buffer_body>> p;
    do { // interim 1xx answers (100 Continue) are read and skipped
        p.emplace();
        p->header_limit(static_cast<std::uint32_t>(
            std::min<std::size_t>(options.max_header_bytes, UINT32_MAX)));
        p->body_limit(boost::none); // limited below, where the body goes to memory
        if (req.method == "HEAD")
            p->skip(true);
        std::size_t head_bytes = 0;
        boost::system::error_code ec;
        while (!ec && !p->is_header_done())
            ec = co_await parse_some(c, *p, options.max_header_bytes, head_bytes, d.read_bytes);
        if (ec) {
            r.ec = ec;
            co_return r;
        }
    } while (p->get().result_int() / 100 == 1 && p->get().result_int() != 101);

    auto& m = p->get();
    if (m.result_int() < 100) { // Beast takes any three digits; RFC 9110 codes start at 100
        r.ec = http::error::bad_status;
        co_return r;
    }
    r.out.status = m.result_int();
    r.out.reason = std::string(m.reason());
    r.out.version = m.version();
    for (const auto& f : m)
        r.out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    if (const auto length = p->content_length())
        d.prog.receive_total = *length;
    if (dl && dl->head)
        dl->head(r.out);
    const bool to_sink = dl && dl->sink;
    if (!to_sink && !p->is_done() && d.prog.receive_total &&
        *d.prog.receive_total > options.max_response_bytes) {
        r.ec = http::error::body_limit;
        co_return r;
    }

    auto& body = r.out.body;
    std::vector<char> scratch;
    while (!p->is_done()) {
        // Into the string directly when the length is known and the body stays in memory;
        // otherwise through a 64 KiB buffer. The string grows as bytes arrive (doubling, from
        // 64 KiB), so a Content-Length the server never delivers costs no more than it sent.
        char* into = nullptr;
        std::size_t room = 0;
        if (!to_sink && d.prog.receive_total) {
            const auto total = static_cast<std::size_t>(*d.prog.receive_total);
            const auto received = static_cast<std::size_t>(d.prog.received);
            if (received == body.size())
                body.resize(
                    std::min(total, received + std::max<std::size_t>(received, read_piece)));
            into = body.data() + d.prog.received;
            room = body.size() - d.prog.received;
        } else {
            scratch.resize(read_piece);
            into = scratch.data();
            room = scratch.size();
        }
        m.body().data = into;
        m.body().size = room;
        std::size_t no_head = 0;
        const auto ec = co_await parse_some(c, *p, options.max_header_bytes, no_head, d.read_bytes);
        if (ec && ec != http::error::need_buffer) {
            r.ec = ec;
            co_return r;
        }
        const auto got = room - m.body().size;
        if (into == scratch.data() && got > 0) {
            if (to_sink) {
                if (auto written = dl->sink({into, got}); !written) {
                    r.sink_error = written.error();
                    boost::system::error_code ignored;
                    c.socket.close(ignored);
                    co_return r;
                }
            } else {
                if (body.size() + got > options.max_response_bytes) {
                    r.ec = http::error::body_limit;
                    co_return r;
                }
                body.append(into, got);
            }
        }
        d.prog.received += got;
        d.tell();
    }
    r.keep_alive = m.keep_alive();
    r.done = d.read_done = true;
    // The writer's last completion may be queued behind ours (both ready in one reactor
    // pass): let it run before deciding the body was cut short.
    for (int i = 0; i < 4 && !d.write_over; ++i)
        co_await asio::post(c.socket.get_executor(), asio::use_awaitable);
    if (!d.write_done) { // the server answered before taking the whole body: stop sending
        boost::system::error_code ignored;
        c.socket.cancel(ignored);
        r.keep_alive = false;
    }
    co_return r;
}

namespace {

bool closed_early(const boost::system::error_code& ec) {
    return ec == http::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == http::error::partial_message;
}

// The reader's error, unless it was stopped because the write failed: then its cancellation
// says nothing, and the write's error is the story.
boost::system::error_code read_error(const write_outcome& w, const read_outcome& r) {
    return w.abandoned_read ? boost::system::error_code() : r.ec;
}

} // namespace

bool retry_on_fresh_connection(const request& req, bool reused, int attempt, const duplex& d,
                               const write_outcome& w, const read_outcome& r) {
    const auto read_ec = read_error(w, r);
    const auto& ec = read_ec ? read_ec : w.ec;
    return reused && attempt == 0 && idempotent(req.method) &&
           !std::holds_alternative<streamed_body>(req.body) && d.read_bytes == 0 &&
           !w.source_error && !r.sink_error && closed_early(ec);
}

error exchange_failure(const std::string& what, const client_options& options,
                       const write_outcome& w, const read_outcome& r) {
    const auto failure = [&](errc code, std::string why) -> error {
        return {make_error_code(code), what + ": " + why};
    };
    if (w.source_error)
        return {w.source_error->code, what + ": " + w.source_error->message};
    if (r.sink_error)
        return {r.sink_error->code, what + ": " + r.sink_error->message};
    const auto read_ec = read_error(w, r);
    if (closed_early(read_ec ? read_ec : w.ec))
        return failure(errc::connection_closed,
                       "the server closed the connection before a complete response");
    if (read_ec == http::error::body_limit)
        return failure(errc::protocol_error, "response body exceeds the client limit of " +
                                                 std::to_string(options.max_response_bytes) +
                                                 " bytes");
    if (read_ec == http::error::buffer_overflow)
        return failure(errc::protocol_error,
                       "malformed response: a chunk-size line or trailer section does not fit "
                       "the read buffer of " +
                           std::to_string(options.max_header_bytes + read_piece) + " bytes");
    if (read_ec == http::error::header_limit)
        return failure(errc::protocol_error,
                       "malformed response: the header block exceeds the client limit of " +
                           std::to_string(options.max_header_bytes) + " bytes");
    if (read_ec && read_ec.category() == http::make_error_code(http::error::bad_method).category())
        return failure(errc::protocol_error, "malformed response: " + read_ec.message());
    if (read_ec)
        return failure(errc::io_error, "reading the response failed: " + read_ec.message());
    return failure(errc::io_error, "sending the request failed: " + w.ec.message());
}

} // namespace udshttp::client::detail
