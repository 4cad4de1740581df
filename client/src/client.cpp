#include <udshttp/client/client.hpp>

#include <udshttp/proto/url.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <map>

namespace udshttp::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using clock = std::chrono::steady_clock;
using executor = asio::io_context::executor_type;
using use_tuple = asio::as_tuple_t<asio::use_awaitable_t<executor>>;
using socket_type =
    use_tuple::as_default_on_t<asio::basic_stream_socket<asio::generic::stream_protocol, executor>>;
using resolver_type = use_tuple::as_default_on_t<asio::ip::basic_resolver<asio::ip::tcp, executor>>;
using timer_type = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, executor>;
template <class T> using awaitable = asio::awaitable<T, executor>;

struct connection {
    explicit connection(executor ex) : socket(ex) {}
    socket_type socket;
    beast::flat_buffer buffer;
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

struct client::impl {
    client_options options;
    asio::io_context ctx{1};
    std::map<std::string, std::vector<connection_ptr>, std::less<>> idle;
    std::uint64_t opened = 0;

    explicit impl(client_options o) : options(std::move(o)) {}

    // Runs one coroutine to completion on the private io_context.
    template <class T> T run(awaitable<T> op) {
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

    connection_ptr take_idle(const std::string& key) {
        auto it = idle.find(key);
        if (it == idle.end())
            return nullptr;
        auto& stack = it->second;
        while (!stack.empty()) {
            auto c = std::move(stack.back());
            stack.pop_back();
            if (still_open(*c))
                return c;
        }
        return nullptr;
    }

    void give_back(const std::string& key, connection_ptr c) {
        auto& stack = idle[key];
        if (stack.size() < options.max_idle_per_endpoint)
            stack.push_back(std::move(c));
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

    awaitable<result<connection_ptr>> connect(const proto::endpoint& where, watchdog& wd) {
        auto c = std::make_unique<connection>(ctx.get_executor());
        const auto connect_deadline = clock::now() + options.connect_timeout;
        if (connect_deadline < wd.total())
            wd.watch(c.get(), connect_deadline, watchdog::kind::connect);
        else
            wd.watch_total(c.get());

        boost::system::error_code ec;
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
            resolver_type resolver(ctx.get_executor());
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
                                ms(options.connect_timeout) + " (connect timeout)"};
        if (wd.fired() == watchdog::kind::total)
            co_return error{make_error_code(errc::timeout),
                            "connect to " + where.to_string() + ": request deadline of " +
                                ms(options.timeout) + " exceeded while connecting"};
        if (ec)
            co_return connect_error(ec, where);
        ++opened;
        co_return std::move(c);
    }

    awaitable<result<response>> perform(const request& req, const proto::url& u) {
        const std::string key = u.where.to_string();
        const std::string what = req.method + " " + u.to_string();
        watchdog wd(ctx.get_executor(), clock::now() + options.timeout);

        http::request<http::string_body> msg;
        if (const auto verb = http::string_to_verb(req.method); verb != http::verb::unknown)
            msg.method(verb);
        else
            msg.method_string(req.method);
        msg.target(u.target);
        msg.version(11);
        bool has_host = false;
        bool has_agent = false;
        for (const auto& [name, value] : req.headers) {
            has_host |= beast::iequals(name, "host");
            has_agent |= beast::iequals(name, "user-agent");
            msg.insert(name, value);
        }
        if (!has_host)
            msg.set(http::field::host, u.host);
        if (!has_agent && !options.user_agent.empty())
            msg.set(http::field::user_agent, options.user_agent);
        msg.body() = req.body;
        msg.prepare_payload();

        auto timed_out = [&]() -> error {
            return {make_error_code(errc::timeout),
                    what + ": request deadline of " + ms(options.timeout) + " exceeded"};
        };

        for (int attempt = 0;; ++attempt) {
            auto c = take_idle(key);
            const bool reused = c != nullptr;
            if (!c) {
                auto fresh = co_await connect(u.where, wd);
                if (!fresh) {
                    wd.cancel();
                    co_return fresh.error();
                }
                c = std::move(*fresh);
            }
            wd.watch_total(c.get());
            // A pooled connection the server closed in the meantime fails on first use; an
            // idempotent request then goes once more on a fresh connection.
            const bool may_retry = reused && attempt == 0 && idempotent(req.method);

            auto [wec, wn] = co_await http::async_write(c->socket, msg);
            if (wec) {
                if (wd.fired() != watchdog::kind::none) {
                    wd.cancel();
                    co_return timed_out();
                }
                if (may_retry)
                    continue;
                wd.cancel();
                co_return error{make_error_code(errc::io_error),
                                what + ": sending the request failed: " + wec.message()};
            }

            std::optional<http::response_parser<http::string_body>> parser;
            boost::system::error_code rec;
            std::size_t received = 0;
            do {
                parser.emplace();
                parser->body_limit(options.max_response_bytes);
                parser->header_limit(64 * 1024);
                if (req.method == "HEAD")
                    parser->skip(true);
                auto [ec, n] = co_await http::async_read(c->socket, c->buffer, *parser);
                rec = ec;
                received += n;
            } while (!rec && parser->get().result_int() / 100 == 1 &&
                     parser->get().result_int() != 101);

            if (rec) {
                if (wd.fired() != watchdog::kind::none) {
                    wd.cancel();
                    co_return timed_out();
                }
                if (may_retry && received == 0 &&
                    (rec == http::error::end_of_stream || rec == asio::error::connection_reset ||
                     rec == asio::error::eof))
                    continue;
                wd.cancel();
                if (rec == http::error::end_of_stream || rec == http::error::partial_message ||
                    rec == asio::error::eof || rec == asio::error::connection_reset)
                    co_return error{make_error_code(errc::connection_closed),
                                    what + ": the server closed the connection before a "
                                           "complete response"};
                if (rec == http::error::body_limit)
                    co_return error{make_error_code(errc::protocol_error),
                                    what + ": response body exceeds the client limit of " +
                                        std::to_string(options.max_response_bytes) + " bytes"};
                if (rec.category() == http::make_error_code(http::error::bad_method).category())
                    co_return error{make_error_code(errc::protocol_error),
                                    what + ": malformed response: " + rec.message()};
                co_return error{make_error_code(errc::io_error),
                                what + ": reading the response failed: " + rec.message()};
            }
            wd.cancel();

            auto& m = parser->get();
            response out;
            out.status = m.result_int();
            out.reason = std::string(m.reason());
            out.version = m.version();
            for (const auto& f : m)
                out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
            const bool keep = m.keep_alive();
            out.body = std::move(m.body());
            if (keep)
                give_back(key, std::move(c));
            co_return out;
        }
    }
};

client::client(client_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

result<response> client::send(const request& req) {
    auto u = proto::url::parse(req.url);
    if (!u)
        return u.error();
    return impl_->run(impl_->perform(req, *u));
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
    return impl_->opened;
}

std::size_t client::idle_connections() const noexcept {
    std::size_t n = 0;
    for (const auto& [key, stack] : impl_->idle)
        n += stack.size();
    return n;
}

const client_options& client::options() const noexcept {
    return impl_->options;
}

} // namespace udshttp::client
