#include <udshttp/client/client.hpp>

#include <udshttp/client/async_client.hpp>
#include <udshttp/proto/text.hpp>
#include <udshttp/proto/url.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>

namespace udshttp::client {
namespace {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
namespace beast = boost::beast;
namespace http = beast::http;
using clock = std::chrono::steady_clock;
using executor = asio::any_io_executor;
using use_tuple = asio::as_tuple_t<asio::use_awaitable_t<executor>>;
using socket_type =
    use_tuple::as_default_on_t<asio::basic_stream_socket<asio::generic::stream_protocol, executor>>;
using resolver_type = use_tuple::as_default_on_t<asio::ip::basic_resolver<asio::ip::tcp, executor>>;
using timer_type = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, executor>;
using grace_timer = use_tuple::as_default_on_t<timer_type>;
template <class T = void> using awaitable = asio::awaitable<T, executor>;

constexpr std::size_t read_piece = 64 * 1024;

struct connection {
    connection(executor ex, std::size_t max_header)
        : socket(std::move(ex)), buffer(max_header + read_piece) {}
    socket_type socket;
    beast::flat_buffer buffer; // capped: see client_options::max_header_bytes
    clock::time_point idle_since;
};
using connection_ptr = std::unique_ptr<connection>;

// An idle pooled connection the server has closed reads as EOF at once; one that is still
// open has nothing to read. One non-blocking peek tells them apart before we write on it.
bool still_open(connection& c) {
    if (!c.socket.is_open() || c.buffer.size() != 0)
        return false;
    char byte = 0;
    const auto n = ::recv(c.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

bool idempotent(std::string_view method) {
    return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
           method == "OPTIONS" || method == "TRACE";
}

// The one timer a request has. When it fires it closes the connection in use, which ends the
// pending operation with an error; `fired` tells the coroutine which deadline that was.
class watchdog {
public:
    enum class kind { none, connect, total };

    watchdog(executor ex, clock::time_point total) : timer_(ex), total_(total) {}

    void watch(connection* c, clock::time_point when, kind k) {
        conn_ = c;
        timer_.expires_at(when);
        timer_.async_wait([this, k](boost::system::error_code ec) {
            if (ec)
                return; // re-armed or finished
            fired_ = k;
            if (conn_) {
                boost::system::error_code ignored;
                conn_->socket.close(ignored);
            }
        });
    }
    void watch_total(connection* c) { watch(c, total_, kind::total); }
    void cancel() {
        conn_ = nullptr;
        timer_.cancel();
    }
    kind fired() const noexcept { return fired_; }
    clock::time_point total() const noexcept { return total_; }

private:
    timer_type timer_;
    clock::time_point total_;
    connection* conn_ = nullptr;
    kind fired_ = kind::none;
};

error connect_error(const boost::system::error_code& ec, const proto::endpoint& where) {
    const std::string context = "connect to " + where.to_string();
    if (ec == boost::system::errc::no_such_file_or_directory)
        return error::from(errc::no_such_socket, context);
    if (ec == boost::system::errc::connection_refused)
        return where.is_unix() ? error::from(errc::connection_refused, context)
                               : error{make_error_code(errc::connection_refused),
                                       context + ": connection refused (no server listening)"};
    if (ec == boost::system::errc::permission_denied ||
        ec == boost::system::errc::operation_not_permitted)
        return error::from(errc::permission_denied, context);
    return {make_error_code(errc::connect_failed), context + ": " + ec.message()};
}

std::string ms(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + " ms";
}

} // namespace

std::string_view response::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers)
        if (beast::iequals(k, name))
            return v;
    return {};
}

std::optional<proto::error_body> response::error_body() const {
    auto decoded = proto::decode<proto::error_body>(body);
    if (!decoded)
        return std::nullopt;
    return *decoded;
}

namespace detail {

// What the writer and the reader of one exchange share. They run at once (full duplex), so a
// server may answer while the body is still going out: a streamed echo of any size, or an
// early 413.
struct exchange {
    response out;
    progress prog;
    const progress_callback* report = nullptr;
    boost::system::error_code write_ec;
    boost::system::error_code read_ec;
    std::optional<error> callback_error; // the source or the sink failed
    std::size_t read_bytes = 0;          // raw bytes read: 0 means the server said nothing
    bool write_done = false;
    bool read_done = false;
    bool keep_alive = false;
    bool read_abandoned = false; // stopped after the request could not be sent (send_request)
    bool read_over = false;      // read_response has returned, however it ended
    // send_request's wait for an answer after a failed write; the reader's end wakes it.
    std::optional<grace_timer> grace;

    void tell() const {
        if (report && *report)
            (*report)(prog);
    }
};

class core {
public:
    core(executor ex, client_options o) : ex_(std::move(ex)), options(std::move(o)) {}

    awaitable<result<response>> perform(const request& req, const download* dl);

    executor ex_;
    client_options options;
    std::map<std::string, std::vector<connection_ptr>, std::less<>> idle;
    std::uint64_t opened = 0;

private:
    connection_ptr take_idle(const std::string& key) {
        auto it = idle.find(key);
        if (it == idle.end())
            return nullptr;
        auto& stack = it->second;
        const auto now = clock::now();
        while (!stack.empty()) {
            auto c = std::move(stack.back());
            stack.pop_back();
            if (now - c->idle_since <= options.idle_timeout && still_open(*c))
                return c;
        }
        return nullptr;
    }

    void give_back(const std::string& key, connection_ptr c) {
        auto& stack = idle[key];
        // Drop the ones idle too long while we are here, oldest first.
        const auto now = clock::now();
        std::erase_if(stack, [&](const connection_ptr& old) {
            return now - old->idle_since > options.idle_timeout;
        });
        if (stack.size() < options.max_idle_per_endpoint) {
            c->idle_since = now;
            stack.push_back(std::move(c));
        }
    }

    // One connect attempt; a named coroutine, not a capturing lambda (GCC 12 miscompiles those).
    static awaitable<boost::system::error_code>
    try_connect(connection& c, const asio::generic::stream_protocol::endpoint& ep) {
        boost::system::error_code ec;
        if (c.socket.is_open())
            c.socket.close(ec);
        c.socket.open(ep.protocol(), ec);
        if (ec)
            co_return ec;
        auto [cec] = co_await c.socket.async_connect(ep);
        co_return cec;
    }

    struct deadlines {
        std::chrono::milliseconds connect;
        std::chrono::milliseconds total;
    };
    awaitable<result<connection_ptr>> connect(const proto::endpoint& where, watchdog& wd,
                                              deadlines limits);
    static awaitable<> write_request(connection& c, http::request<http::buffer_body>& msg,
                                     const request& req, exchange& x);
    static awaitable<> send_request(connection& c, http::request<http::buffer_body>& msg,
                                    const request& req, exchange& x);
    awaitable<> read_response(connection& c, const request& req, const download* dl, exchange& x);
};

awaitable<result<connection_ptr>> core::connect(const proto::endpoint& where, watchdog& wd,
                                                deadlines limits) {
    auto c = std::make_unique<connection>(ex_, options.max_header_bytes);
    const auto connect_deadline = clock::now() + limits.connect;
    if (connect_deadline < wd.total())
        wd.watch(c.get(), connect_deadline, watchdog::kind::connect);
    else
        wd.watch_total(c.get());

    boost::system::error_code ec;
    // An endpoint built by hand (not parsed) may not fit sockaddr_un: Asio would throw.
    if (!where.fits_sockaddr())
        co_return error{make_error_code(errc::socket_path_too_long),
                        "cannot connect to " + where.to_string() + ": the name is " +
                            std::to_string(where.address.size()) +
                            " bytes, longer than a Unix socket address holds"};
    switch (where.kind) {
    case proto::transport::unix_path:
        ec = co_await try_connect(*c, asio::local::stream_protocol::endpoint(where.address));
        break;
    case proto::transport::unix_abstract:
        ec = co_await try_connect(
            *c, asio::local::stream_protocol::endpoint(std::string(1, '\0') + where.address));
        break;
    case proto::transport::tcp: {
        boost::system::error_code addr_ec;
        const auto address = asio::ip::make_address(where.address, addr_ec);
        if (!addr_ec) {
            ec = co_await try_connect(*c, asio::ip::tcp::endpoint(address, where.port));
            break;
        }
        resolver_type resolver(ex_);
        auto [rec, results] =
            co_await resolver.async_resolve(where.address, std::to_string(where.port));
        if (rec) {
            co_return error{make_error_code(errc::connect_failed),
                            "connect to " + where.to_string() +
                                ": cannot resolve host: " + rec.message()};
        }
        ec = asio::error::host_not_found;
        for (const auto& r : results) {
            ec = co_await try_connect(*c, r.endpoint());
            if (!ec || wd.fired() != watchdog::kind::none)
                break;
        }
        break;
    }
    default:
        co_return error{make_error_code(errc::invalid_endpoint),
                        "cannot connect to " + where.to_string() +
                            ": only socket paths, abstract names and host:port"};
    }
    if (wd.fired() == watchdog::kind::connect)
        co_return error{make_error_code(errc::connect_timeout),
                        "connect to " + where.to_string() + ": no connection within " +
                            ms(limits.connect) + " (connect timeout)"};
    if (wd.fired() == watchdog::kind::total)
        co_return error{make_error_code(errc::timeout),
                        "connect to " + where.to_string() + ": request deadline of " +
                            ms(limits.total) + " exceeded while connecting"};
    if (ec)
        co_return connect_error(ec, where);
    ++opened;
    co_return std::move(c);
}

awaitable<> core::write_request(connection& c, http::request<http::buffer_body>& msg,
                                const request& req, exchange& x) {
    http::request_serializer<http::buffer_body> sr(msg);
    auto [hec, hn] = co_await http::async_write_header(c.socket, sr);
    if (hec) {
        x.write_ec = hec;
        co_return;
    }
    const auto send = [&](const char* data, std::size_t n) {
        msg.body().data = const_cast<char*>(data);
        msg.body().size = n;
        msg.body().more = true;
        return http::async_write(c.socket, sr);
    };
    if (req.source) {
        std::vector<char> buf(64 * 1024);
        for (;;) {
            auto n = req.source(buf);
            if (!n) {
                x.callback_error = n.error();
                break;
            }
            if (*n == 0)
                break;
            if (req.source_length && x.prog.sent + *n > *req.source_length) {
                x.callback_error = error{make_error_code(errc::io_error),
                                         "the body source gave more than its declared " +
                                             std::to_string(*req.source_length) + " bytes"};
                break;
            }
            auto [ec, written] = co_await send(buf.data(), *n);
            if (ec && ec != http::error::need_buffer) {
                x.write_ec = ec;
                co_return;
            }
            x.prog.sent += *n;
            x.tell();
            if (x.read_done) // the server has answered already (an early error): stop sending
                co_return;
        }
        if (!x.callback_error && req.source_length && x.prog.sent != *req.source_length)
            x.callback_error =
                error{make_error_code(errc::io_error),
                      "the body source ended after " + std::to_string(x.prog.sent) +
                          " of its declared " + std::to_string(*req.source_length) + " bytes"};
        if (x.callback_error) {
            boost::system::error_code ignored;
            c.socket.close(ignored); // a body cut short must not look complete to the server
            co_return;
        }
    } else if (!req.body.empty()) {
        auto [ec, written] = co_await send(req.body.data(), req.body.size());
        if (ec && ec != http::error::need_buffer) {
            x.write_ec = ec;
            co_return;
        }
        x.prog.sent += req.body.size();
    }
    msg.body().data = nullptr;
    msg.body().size = 0;
    msg.body().more = false;
    auto [ec, written] = co_await http::async_write(c.socket, sr); // the last chunk, if any
    x.write_ec = ec;
    x.write_done = !ec;
}

// The request, then, if it could not be sent whole, a bound on the wait for its answer. An
// answer may still come (a server's early 413, already in our receive buffer when its close
// made our write fail), so the reader keeps going while bytes arrive; after 1 s without any
// it is stopped. Without this a failed write whose connection stayed open left the reader
// waiting for the request deadline (found by the fault-injection test).
awaitable<> core::send_request(connection& c, http::request<http::buffer_body>& msg,
                               const request& req, exchange& x) {
    co_await write_request(c, msg, req, x);
    if (!x.write_ec)
        co_return;
    auto& grace = x.grace.emplace(c.socket.get_executor());
    std::size_t seen = x.read_bytes;
    for (int quiet = 0; quiet < 4 && !x.read_over;) {
        grace.expires_after(std::chrono::milliseconds(250));
        auto [ec] = co_await grace.async_wait();
        if (ec) // the reader has finished (read_response cancels us)
            co_return;
        quiet = x.read_bytes == seen ? quiet + 1 : 0;
        seen = x.read_bytes;
    }
    if (!x.read_over) {
        x.read_abandoned = true;
        boost::system::error_code ignored;
        c.socket.cancel(ignored);
    }
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

awaitable<> core::read_response(connection& c, const request& req, const download* dl,
                                exchange& x) {
    // However the read ends, a writer waiting out its grace period (send_request) need not
    // wait on: without this every answer to a failed write cost up to 250 ms more.
    struct wake_writer {
        exchange& x;
        ~wake_writer() {
            x.read_over = true;
            if (x.grace)
                x.grace->cancel();
        }
    } wake{x};
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
            ec = co_await parse_some(c, *p, options.max_header_bytes, head_bytes, x.read_bytes);
        if (ec) {
            x.read_ec = ec;
            co_return;
        }
    } while (p->get().result_int() / 100 == 1 && p->get().result_int() != 101);

    auto& m = p->get();
    if (m.result_int() < 100) { // Beast takes any three digits; RFC 9110 codes start at 100
        x.read_ec = http::error::bad_status;
        co_return;
    }
    x.out.status = m.result_int();
    x.out.reason = std::string(m.reason());
    x.out.version = m.version();
    for (const auto& f : m)
        x.out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    if (const auto length = p->content_length())
        x.prog.receive_total = *length;
    if (dl && dl->head)
        dl->head(x.out);
    const bool to_sink = dl && dl->sink;
    if (!to_sink && !p->is_done() && x.prog.receive_total &&
        *x.prog.receive_total > options.max_response_bytes) {
        x.read_ec = http::error::body_limit;
        co_return;
    }

    std::vector<char> scratch;
    while (!p->is_done()) {
        // Into the string directly when the length is known and the body stays in memory;
        // otherwise through a 64 KiB buffer. The string grows as bytes arrive (doubling, from
        // 64 KiB), so a Content-Length the server never delivers costs no more than it sent.
        char* into = nullptr;
        std::size_t room = 0;
        if (!to_sink && x.prog.receive_total) {
            const auto total = static_cast<std::size_t>(*x.prog.receive_total);
            const auto received = static_cast<std::size_t>(x.prog.received);
            if (received == x.out.body.size())
                x.out.body.resize(
                    std::min(total, received + std::max<std::size_t>(received, 64 * 1024)));
            into = x.out.body.data() + x.prog.received;
            room = x.out.body.size() - x.prog.received;
        } else {
            scratch.resize(64 * 1024);
            into = scratch.data();
            room = scratch.size();
        }
        m.body().data = into;
        m.body().size = room;
        std::size_t no_head = 0;
        const auto ec = co_await parse_some(c, *p, options.max_header_bytes, no_head, x.read_bytes);
        if (ec && ec != http::error::need_buffer) {
            x.read_ec = ec;
            co_return;
        }
        const auto got = room - m.body().size;
        if (into == scratch.data() && got > 0) {
            if (to_sink) {
                if (auto r = dl->sink({into, got}); !r) {
                    x.callback_error = r.error();
                    boost::system::error_code ignored;
                    c.socket.close(ignored);
                    co_return;
                }
            } else {
                if (x.out.body.size() + got > options.max_response_bytes) {
                    x.read_ec = http::error::body_limit;
                    co_return;
                }
                x.out.body.append(into, got);
            }
        }
        x.prog.received += got;
        x.tell();
    }
    x.keep_alive = m.keep_alive();
    x.read_done = true;
    // The writer's last completion may be queued behind ours (both ready in one reactor
    // pass): let it run before deciding the body was cut short.
    for (int i = 0; i < 4 && !x.write_done && !x.write_ec; ++i)
        co_await asio::post(c.socket.get_executor(), asio::use_awaitable);
    if (!x.write_done) { // the server answered before taking the whole body: stop sending
        boost::system::error_code ignored;
        c.socket.cancel(ignored);
        x.keep_alive = false;
    }
}

// RFC 9110 5.6.2 token characters: what a method and a field name are made of.
bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return std::isalnum(c) ||
               std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
    });
}

// Why the request must not go out as it is, or nullopt. A CR or LF in a method, name or value
// would end the line early and let the rest pass for fields or a second request (header
// injection, request smuggling); every caller of the library is protected here.
std::optional<std::string> refuse_to_send(const request& req) {
    if (!is_token(req.method))
        return "the method '" + proto::quote(req.method) +
               "' is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
    for (const auto& [name, value] : req.headers) {
        if (!is_token(name))
            return "the header name '" + proto::quote(name) +
                   "' is not an HTTP token (no spaces, colons or control bytes)";
        // RFC 9110 5.5: field values may hold HTAB, visible bytes and obs-text, no other CTL.
        if (std::any_of(value.begin(), value.end(), [](char ch) {
                const auto c = static_cast<unsigned char>(ch);
                return (c < 0x20 && c != '\t') || c == 0x7f;
            }))
            return "the value of header '" + name + "' holds a control byte (CR, LF, NUL...): '" +
                   proto::quote(value) + "'";
    }
    return std::nullopt;
}

awaitable<result<response>> core::perform(const request& req, const download* dl) {
    auto u = proto::url::parse(req.url);
    if (!u)
        co_return u.error();
    const std::string key = u->where.to_string();
    const std::string what = req.method + " " + u->to_string();
    const deadlines limits{req.connect_timeout.value_or(options.connect_timeout),
                           req.timeout.value_or(options.timeout)};
    watchdog wd(ex_, clock::now() + limits.total);

    if (auto bad = refuse_to_send(req))
        co_return error{make_error_code(errc::invalid_request), what + ": " + *bad};

    http::request<http::buffer_body> msg;
    if (const auto verb = http::string_to_verb(req.method); verb != http::verb::unknown)
        msg.method(verb);
    else
        msg.method_string(req.method);
    msg.target(u->target);
    msg.version(11);
    bool has_host = false;
    bool has_agent = false;
    for (const auto& [name, value] : req.headers) {
        has_host |= beast::iequals(name, "host");
        has_agent |= beast::iequals(name, "user-agent");
        msg.insert(name, value);
    }
    if (!has_host)
        msg.set(http::field::host, u->host);
    if (!has_agent && !options.user_agent.empty())
        msg.set(http::field::user_agent, options.user_agent);
    if (req.source) {
        if (req.source_length)
            msg.content_length(*req.source_length);
        else
            msg.chunked(true);
    } else if (!req.body.empty() || msg.method() == http::verb::post ||
               msg.method() == http::verb::put || msg.method() == http::verb::patch) {
        msg.content_length(req.body.size());
    }

    auto failure = [&](errc code, std::string why) -> error {
        return {make_error_code(code), what + ": " + why};
    };

    for (int attempt = 0;; ++attempt) {
        auto c = take_idle(key);
        const bool reused = c != nullptr;
        if (!c) {
            auto fresh = co_await connect(u->where, wd, limits);
            if (!fresh) {
                wd.cancel();
                co_return fresh.error();
            }
            c = std::move(*fresh);
        }
        wd.watch_total(c.get());

        exchange x;
        x.prog.send_total = req.source ? req.source_length : std::optional(req.body.size());
        x.report = dl ? &dl->progress : nullptr;
        co_await (send_request(*c, msg, req, x) && read_response(*c, req, dl, x));
        if (x.read_abandoned)
            x.read_ec = {}; // its cancellation says nothing; the write's error is the story

        if (x.read_done) {
            wd.cancel();
            if (x.keep_alive && x.write_done)
                give_back(key, std::move(c));
            co_return std::move(x.out);
        }
        wd.cancel();
        if (wd.fired() != watchdog::kind::none)
            co_return failure(errc::timeout,
                              "request deadline of " + ms(limits.total) + " exceeded");
        if (x.callback_error)
            co_return error{x.callback_error->code, what + ": " + x.callback_error->message};
        // A pooled connection the server closed in the meantime fails on first use, before
        // the server said anything; an idempotent request then goes once more on a fresh one.
        const auto& ec = x.read_ec ? x.read_ec : x.write_ec;
        const bool closed = ec == http::error::end_of_stream || ec == asio::error::eof ||
                            ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
                            ec == http::error::partial_message;
        if (reused && attempt == 0 && idempotent(req.method) && !req.source && x.read_bytes == 0 &&
            closed)
            continue;
        if (closed)
            co_return failure(errc::connection_closed,
                              "the server closed the connection before a complete response");
        if (x.read_ec == http::error::body_limit)
            co_return failure(errc::protocol_error, "response body exceeds the client limit of " +
                                                        std::to_string(options.max_response_bytes) +
                                                        " bytes");
        if (x.read_ec == http::error::buffer_overflow)
            co_return failure(errc::protocol_error,
                              "malformed response: a chunk-size line or trailer section does not "
                              "fit the read buffer of " +
                                  std::to_string(options.max_header_bytes + read_piece) + " bytes");
        if (x.read_ec == http::error::header_limit)
            co_return failure(errc::protocol_error,
                              "malformed response: the header block exceeds the client limit of " +
                                  std::to_string(options.max_header_bytes) + " bytes");
        if (x.read_ec &&
            x.read_ec.category() == http::make_error_code(http::error::bad_method).category())
            co_return failure(errc::protocol_error, "malformed response: " + x.read_ec.message());
        if (x.read_ec)
            co_return failure(errc::io_error,
                              "reading the response failed: " + x.read_ec.message());
        co_return failure(errc::io_error, "sending the request failed: " + x.write_ec.message());
    }
}

} // namespace detail

namespace {

// Runs one coroutine to completion on a private io_context.
template <class T> T run_on(asio::io_context& ctx, awaitable<T> op) {
    std::optional<T> out;
    std::exception_ptr failure;
    asio::co_spawn(ctx, std::move(op), [&](std::exception_ptr e, T value) {
        failure = e;
        if (!e)
            out.emplace(std::move(value));
    });
    ctx.restart();
    ctx.run();
    if (failure)
        std::rethrow_exception(failure);
    return std::move(*out);
}

result<int> open_or_error(const std::string& path, int flags, const char* what) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0)
        return error{make_error_code(errc::io_error),
                     std::string("cannot ") + what + " '" + path + "': " + std::strerror(errno)};
    return fd;
}

// Owns a descriptor for the lifetime of the source or sink that captures it.
struct fd_owner {
    int fd;
    bool owned;
    ~fd_owner() {
        if (owned)
            ::close(fd);
    }
};

} // namespace

result<std::pair<body_source, std::optional<std::uint64_t>>> file_source(const std::string& path) {
    auto owner = std::make_shared<fd_owner>(fd_owner{STDIN_FILENO, false});
    if (path != "-") {
        auto fd = open_or_error(path, O_RDONLY, "read");
        if (!fd)
            return fd.error();
        owner->fd = *fd;
        owner->owned = true;
    }
    std::optional<std::uint64_t> length;
    struct stat st {};
    if (::fstat(owner->fd, &st) == 0 && S_ISREG(st.st_mode))
        length = static_cast<std::uint64_t>(st.st_size) -
                 static_cast<std::uint64_t>(std::max<off_t>(0, ::lseek(owner->fd, 0, SEEK_CUR)));
    const std::string name = path == "-" ? "stdin" : "'" + path + "'";
    body_source source = [owner, name](std::span<char> buf) -> result<std::size_t> {
        for (;;) {
            const auto n = ::read(owner->fd, buf.data(), buf.size());
            if (n >= 0)
                return static_cast<std::size_t>(n);
            if (errno != EINTR)
                return error{make_error_code(errc::io_error),
                             "cannot read " + name + ": " + std::strerror(errno)};
        }
    };
    return std::pair{std::move(source), length};
}

result<body_sink> file_sink(const std::string& path) {
    auto owner = std::make_shared<fd_owner>(fd_owner{STDOUT_FILENO, false});
    if (path != "-") {
        auto fd = open_or_error(path, O_WRONLY | O_CREAT | O_TRUNC, "write");
        if (!fd)
            return fd.error();
        owner->fd = *fd;
        owner->owned = true;
    }
    const std::string name = path == "-" ? "stdout" : "'" + path + "'";
    return body_sink([owner, name](std::string_view piece) -> result<void> {
        while (!piece.empty()) {
            const auto n = ::write(owner->fd, piece.data(), piece.size());
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return error{make_error_code(errc::io_error),
                             "cannot write " + name + ": " + std::strerror(errno)};
            piece.remove_prefix(static_cast<std::size_t>(n));
        }
        return {};
    });
}

struct client::impl {
    asio::io_context ctx{1};
    detail::core core;
    explicit impl(client_options o) : core(ctx.get_executor(), std::move(o)) {}
};

client::client(client_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

result<response> client::send(const request& req) {
    return run_on(impl_->ctx, impl_->core.perform(req, nullptr));
}

result<response> client::send(const request& req, const download& dl) {
    return run_on(impl_->ctx, impl_->core.perform(req, &dl));
}

async_client::async_client(boost::asio::any_io_executor ex, client_options options)
    : core_(std::make_unique<detail::core>(std::move(ex), std::move(options))) {}
async_client::~async_client() = default;

boost::asio::awaitable<result<response>> async_client::async_request(request req) {
    co_return co_await core_->perform(req, nullptr);
}

boost::asio::awaitable<result<response>> async_client::async_request(request req, download dl) {
    co_return co_await core_->perform(req, &dl);
}

std::uint64_t async_client::connections_opened() const noexcept {
    return core_->opened;
}

std::size_t async_client::idle_connections() const noexcept {
    std::size_t n = 0;
    for (const auto& [key, stack] : core_->idle)
        n += stack.size();
    return n;
}

const client_options& async_client::options() const noexcept {
    return core_->options;
}

result<response> client::get(std::string_view url, fields headers) {
    return send(
        {.method = "GET", .url = std::string(url), .headers = std::move(headers), .body = {}});
}

result<response> client::post(std::string_view url, std::string body, std::string_view content_type,
                              fields headers) {
    headers.emplace_back("Content-Type", std::string(content_type));
    return send({.method = "POST",
                 .url = std::string(url),
                 .headers = std::move(headers),
                 .body = std::move(body)});
}

namespace {
result<nlohmann::json> json_answer(const std::string& what, result<response> r) {
    if (!r)
        return r.error();
    if (!r->ok()) {
        const auto body = r->error_body();
        auto code = body ? errc_from_code_string(body->code) : std::nullopt;
        if (!code)
            code = errc_from_http_status(r->status);
        std::string message = what + ": " + std::to_string(r->status) + " " + r->reason;
        if (body && !body->message.empty())
            message += ": " + body->message;
        return error{make_error_code(code.value_or(errc::protocol_error)), std::move(message)};
    }
    auto j = proto::parse_json(r->body);
    if (!j)
        return error{j.error().code, what + ": " + j.error().message};
    return j;
}
} // namespace

result<nlohmann::json> client::get_json(std::string_view url) {
    return json_answer("GET " + std::string(url), get(url, {{"Accept", "application/json"}}));
}

result<nlohmann::json> client::post_json(std::string_view url, const nlohmann::json& body) {
    return json_answer("POST " + std::string(url), post(url, body.dump(), "application/json",
                                                        {{"Accept", "application/json"}}));
}

std::uint64_t client::connections_opened() const noexcept {
    return impl_->core.opened;
}

std::size_t client::idle_connections() const noexcept {
    std::size_t n = 0;
    for (const auto& [key, stack] : impl_->core.idle)
        n += stack.size();
    return n;
}

const client_options& client::options() const noexcept {
    return impl_->core.options;
}

} // namespace udshttp::client
