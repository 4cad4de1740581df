#include "session.hpp"

#include <udshttp/proto/version.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>

namespace udshttp::service::detail {
namespace {

namespace beast = boost::beast;
using request_parser = http::request_parser<http::string_body>;

constexpr std::string_view server_field = "udshttp/" UDSHTTP_VERSION_STRING;

proto::peer_info read_peer(socket_type& socket, bool is_unix) {
    proto::peer_info peer;
    const int fd = socket.native_handle();
    if (is_unix) {
        peer.transport = "unix";
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            peer.pid = cred.pid;
            peer.uid = cred.uid;
            peer.gid = cred.gid;
        }
        return peer;
    }
    peer.transport = "tcp";
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        return peer;
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (ss.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
        ::inet_ntop(AF_INET, &in.sin_addr, text.data(), text.size());
        peer.port = ntohs(in.sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
        ::inet_ntop(AF_INET6, &in6.sin6_addr, text.data(), text.size());
        peer.port = ntohs(in6.sin6_port);
    }
    peer.address = text.data();
    return peer;
}

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
    connection_guard(server_state& state, worker& w, socket_type& socket) : state_(state), w_(w) {
        slot.socket = &socket;
        w_.connections.add(slot);
        w_.stats.connections_accepted.add();
        w_.stats.connections_open.add();
    }
    ~connection_guard() {
        w_.connections.remove(slot);
        w_.stats.connections_open.sub();
        state_.connections.fetch_sub(1, std::memory_order_relaxed);
    }
    connection_guard(const connection_guard&) = delete;
    connection_guard& operator=(const connection_guard&) = delete;

    connection_slot slot;

private:
    server_state& state_;
    worker& w_;
};

// After an error answer: stop sending, then read and drop what the peer still sends for a
// moment, so that closing does not reset the connection (TCP) before the answer is read.
awaitable<> lingering_close(socket_type& socket, connection_slot& slot) {
    boost::system::error_code ignored;
    socket.shutdown(asio::socket_base::shutdown_send, ignored);
    slot.timed_out = false;
    slot.arm(std::chrono::milliseconds(500));
    std::array<char, 4096> sink;
    for (int i = 0; i < 256; ++i) {
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(sink));
        if (ec || slot.timed_out)
            break;
    }
    socket.close(ignored);
}

response make_response(const request_parser::value_type& msg, worker& w) {
    response res{http::status::ok, msg.version()};
    res.set(http::field::server, server_field);
    res.set(http::field::date, w.date.get());
    return res;
}

// Routes one request and fills in the response, whatever the handler does.
void handle(const request_parser::value_type& msg, const proto::peer_info& peer,
            const server_state& state, response& res) {
    request req(msg, peer);
    try {
        const auto m = state.routes.match(msg.method(), req.path(), req);
        if (m.bad_encoding) {
            set_error(res, errc::bad_request,
                      "invalid percent-encoding in path '" + std::string(req.path()) + "'");
        } else if (m.target) {
            (*m.target)(req, res);
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
        log_line("handler for " + std::string(msg.method_string()) + " " +
                 std::string(msg.target()) + " threw: " + e.what());
        res.clear();
        res.set(http::field::server, server_field);
        set_error(res, errc::internal_error);
    }
}

// Content-Length, keep-alive and HEAD; never throws (a handler may have set a status that
// forbids a body and given one anyway).
void finish(response& res, const request_parser::value_type& msg, bool keep_alive) {
    res.keep_alive(keep_alive);
    const auto status = res.result_int();
    const bool bodiless_status = status < 200 || status == 204 || status == 304;
    if (bodiless_status) {
        res.body().clear();
        res.erase(http::field::content_length);
        return;
    }
    if (msg.method() == http::verb::head) {
        const auto size = res.body().size();
        res.body().clear();
        res.content_length(size);
        return;
    }
    res.content_length(res.body().size());
}

void count_response(worker& w, const response& res) {
    w.stats.requests.add();
    const auto cls = res.result_int() / 100;
    if (cls >= 1 && cls <= 5)
        w.stats.responses_by_class[cls].add();
}

// The body of an error answer the session gives by itself (not through the router).
response error_response(errc e, std::string message, unsigned version, worker& w) {
    response res{http::status::ok, version};
    res.set(http::field::server, server_field);
    res.set(http::field::date, w.date.get());
    set_error(res, e, std::move(message));
    res.keep_alive(false);
    res.content_length(res.body().size());
    return res;
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

} // namespace

awaitable<> run_session(socket_type socket, bool is_unix, server_state& state, worker& w) {
    connection_guard guard(state, w, socket);
    auto& slot = guard.slot;
    const auto& opt = state.options;
    const auto peer = read_peer(socket, is_unix);
    beast::flat_buffer buffer;
    bool first = true;

    for (;;) {
        // Wait for the first byte of the next request: the idle deadline (the header deadline
        // for a new connection). Only then does the header deadline start.
        if (buffer.size() == 0) {
            slot.arm(first ? opt.header_timeout : opt.idle_timeout);
            auto [ec, n] = co_await socket.async_read_some(buffer.prepare(16 * 1024));
            if (ec || slot.timed_out)
                break; // closed, reset, or idle too long: nothing to answer
            buffer.commit(n);
            w.stats.bytes_received.add(n);
        }
        first = false;
        slot.arm(opt.header_timeout);

        request_parser parser;
        parser.header_limit(
            static_cast<std::uint32_t>(std::min<std::size_t>(opt.max_header_bytes, UINT32_MAX)));
        parser.body_limit(opt.max_body_bytes);

        const auto before = buffer.size();
        auto [hec, hn] = co_await http::async_read_header(socket, buffer, parser);
        w.stats.bytes_received.add(hn > before ? hn - before : 0);
        if (hec || slot.timed_out) {
            std::optional<errc> answer = classify(hec);
            std::string message = answer ? describe_limit(*answer, opt) : std::string{};
            if (slot.timed_out) {
                answer = errc::request_timeout;
                message = "request header not received within " +
                          std::to_string(opt.header_timeout.count()) + " ms";
            }
            if (!answer)
                break;
            if (message.empty())
                message = "malformed request: " + hec.message();
            w.stats.bad_requests.add();
            auto res = error_response(*answer, std::move(message), 11, w);
            count_response(w, res);
            slot.timed_out = false;
            slot.arm(opt.idle_timeout);
            auto [wec, wn] = co_await http::async_write(socket, res);
            w.stats.bytes_sent.add(wn);
            if (!wec)
                co_await lingering_close(socket, slot);
            break;
        }

        auto& msg = parser.get();
        // RFC 9110 10.1.1: answer 100-continue only when we are about to read the body.
        if (msg.version() >= 11 && !parser.is_done() &&
            beast::iequals(msg[http::field::expect], "100-continue")) {
            static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
            slot.arm(opt.idle_timeout);
            auto [cec, cn] = co_await asio::async_write(socket, asio::buffer(cont));
            if (cec || slot.timed_out)
                break;
            w.stats.bytes_sent.add(cn);
        }

        // The body: the idle deadline applies to each pause, not to the whole upload.
        bool body_failed = false;
        while (!parser.is_done()) {
            slot.arm(opt.idle_timeout);
            auto [bec, bn] = co_await http::async_read_some(socket, buffer, parser);
            if (bec || slot.timed_out) {
                const auto answer = classify(bec);
                if (answer && !slot.timed_out) {
                    w.stats.bad_requests.add();
                    auto res = error_response(*answer,
                                              answer == errc::payload_too_large
                                                  ? describe_limit(*answer, opt)
                                                  : "malformed request body: " + bec.message(),
                                              msg.version(), w);
                    count_response(w, res);
                    auto [wec, wn] = co_await http::async_write(socket, res);
                    w.stats.bytes_sent.add(wn);
                    if (!wec)
                        co_await lingering_close(socket, slot);
                }
                body_failed = true;
                break;
            }
            w.stats.bytes_received.add(bn);
        }
        if (body_failed)
            break;

        auto res = make_response(msg, w);
        handle(msg, peer, state, res);
        const bool keep_alive = msg.keep_alive() && !state.stopping.load(std::memory_order_relaxed);
        finish(res, msg, keep_alive);
        count_response(w, res);

        slot.arm(opt.idle_timeout);
        auto [wec, wn] = co_await http::async_write(socket, res);
        w.stats.bytes_sent.add(wn);
        if (wec || slot.timed_out || !keep_alive)
            break;
    }
    slot.disarm();
    boost::system::error_code ignored;
    socket.shutdown(asio::socket_base::shutdown_both, ignored);
    socket.close(ignored);
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

void start_sweeper(worker& w, std::chrono::milliseconds tick) {
    asio::co_spawn(w.ctx, sweep_loop(w, tick), asio::detached);
}

awaitable<> reject_connection(socket_type socket, server_state& state, worker& w) {
    connection_guard guard(state, w, socket);
    w.stats.connections_rejected.add();
    auto res = error_response(errc::service_unavailable,
                              "too many connections (limit " +
                                  std::to_string(state.options.max_connections) + ")",
                              11, w);
    res.set(http::field::retry_after, "1");
    guard.slot.arm(std::chrono::milliseconds(1000));
    auto [ec, n] = co_await http::async_write(socket, res);
    w.stats.bytes_sent.add(n);
    if (!ec)
        co_await lingering_close(socket, guard.slot);
}

} // namespace udshttp::service::detail
