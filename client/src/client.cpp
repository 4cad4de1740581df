#include "connect.hpp"
#include "connection_pool.hpp"
#include "exchange.hpp"
#include "message.hpp"

#include <udshttp/client/async_client.hpp>
#include <udshttp/client/client.hpp>
#include <udshttp/proto/url.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/string.hpp>

#include <exception>

namespace udshttp::client {
std::string_view find_header(const fields& f, std::string_view name) noexcept {
    for (const auto& [k, v] : f)
        if (boost::beast::iequals(k, name))
            return v;
    return {};
}

std::string_view response::header(std::string_view name) const noexcept {
    return find_header(headers, name);
}

std::optional<proto::error_body> response::error_body() const {
    auto decoded = proto::decode<proto::error_body>(body);
    if (!decoded)
        return std::nullopt;
    return *decoded;
}

namespace detail {

using namespace boost::asio::experimental::awaitable_operators;

// What a client and an async_client are: options, a pool, and the request coroutine.
class core {
public:
    core(executor ex, client_options o)
        : ex_(std::move(ex)), options(std::move(o)),
          pool(options.idle_timeout, options.max_idle_per_endpoint) {}

    // One request: connect or reuse, exchange, retry once by the single rule, give back.
    awaitable<result<response>> perform(const request& req, const download* dl);

    executor ex_;
    client_options options;
    connection_pool pool;
    std::uint64_t opened = 0;
};

// The URL a request goes to: its own, or its target on options.base_url.
result<proto::url> resolve_url(const std::string& url, const client_options& options) {
    if (url.empty() || url.front() != '/')
        return proto::url::parse(url);
    if (options.base_url.empty())
        return error{make_error_code(errc::invalid_url),
                     "'" + url + "' is a target alone, and client_options::base_url is not set"};
    std::string_view base = options.base_url;
    while (!base.empty() && base.back() == '/')
        base.remove_suffix(1);
    return proto::url::parse(std::string(base) + url);
}

awaitable<result<response>> core::perform(const request& req, const download* dl) {
    auto u = resolve_url(req.url, options);
    if (!u)
        co_return u.error();
    const std::string key = u->where.to_string();
    const std::string what = req.method + " " + u->to_string();
    const connect_limits limits{req.connect_timeout.value_or(options.connect_timeout),
                                req.timeout.value_or(options.timeout)};
    watchdog wd(ex_,
                limits.total.count() == 0 ? clock::time_point::max() : clock::now() + limits.total);

    if (auto bad = refuse_to_send(req))
        co_return error{make_error_code(errc::invalid_request), what + ": " + *bad};
    auto msg = make_message(req, *u, options);

    for (int attempt = 0;; ++attempt) {
        auto c = pool.take(key);
        const bool reused = c != nullptr;
        if (!c) {
            auto fresh = co_await connect(ex_, u->where, wd, limits, options.max_header_bytes);
            if (!fresh) {
                wd.cancel();
                co_return fresh.error();
            }
            ++opened;
            c = std::move(*fresh);
        }
        wd.watch_total(c.get());

        duplex d;
        const auto* streamed = std::get_if<streamed_body>(&req.body);
        d.prog.send_total =
            streamed ? streamed->length : std::optional(std::get<std::string>(req.body).size());
        d.report = dl ? &dl->progress : nullptr;
        auto [w, r] =
            co_await (send_request(*c, msg, req, d) && read_response(*c, req, dl, options, d));
        wd.cancel();
        if (r.done) {
            if (r.keep_alive && w.done)
                pool.give_back(key, std::move(c));
            co_return std::move(r.out);
        }
        if (wd.fired() != watchdog::kind::none)
            co_return error{make_error_code(errc::timeout),
                            what + ": request deadline of " + ms(limits.total) + " exceeded"};
        if (retry_on_fresh_connection(req, reused, attempt, d, w, r))
            continue;
        co_return exchange_failure(what, options, w, r);
    }
}

} // namespace detail

namespace {

namespace asio = boost::asio;
using detail::awaitable;

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

} // namespace

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

boost::asio::awaitable<result<response>> async_client::async_send(request req) {
    co_return co_await core_->perform(req, nullptr);
}

boost::asio::awaitable<result<response>> async_client::async_send(request req, download dl) {
    co_return co_await core_->perform(req, &dl);
}

std::uint64_t async_client::connections_opened() const noexcept {
    return core_->opened;
}

std::size_t async_client::idle_connections() const noexcept {
    return core_->pool.idle();
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
    if (!r->ok())
        return detail::answer_error(what, *r);
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
    return impl_->core.pool.idle();
}

const client_options& client::options() const noexcept {
    return impl_->core.options;
}

} // namespace udshttp::client
