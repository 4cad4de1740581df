#pragma once

/// @file
/// Method + path pattern -> handler. Patterns are literal segments and {param} segments:
/// "/hello/{name}". resolve() finds the route for a request; dispatch() answers it: the
/// route's handler, or 400 (a {param} with invalid percent-encoding), 404 (no route has the
/// path), 405 with an Allow field (routes have the path, not the method), or 500 when the
/// handler throws. HEAD is answered by GET routes.
///
/// A handler is one of three shapes, told apart by add() (see async.hpp): a plain function
/// that answers at once, a coroutine that answers when it returns, or a coroutine that writes
/// a response stream. A fourth kind, add_stream(), reads the request body as it arrives.

#include <udshttp/service/async.hpp>
#include <udshttp/service/request.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace udshttp::service {

/// A route handler. It runs on the connection's worker thread and must not block for long.
using handler = std::function<void(const request&, response&)>;
/// Makes the stream_handler for one request of a stream route.
using stream_factory = std::function<std::unique_ptr<stream_handler>()>;

/// What GET /openapi.json says about a route (router::describe()).
struct route_doc {
    std::string summary{};     ///< one line: "Greets NAME"
    std::string description{}; ///< more, if there is more to say
    /// Media type of the request body ("application/json"), empty when it takes none.
    std::string request_type{};
    /// Media type of the successful answer.
    std::string response_type = "text/plain";
};

/// One registered route, as router::for_each() shows it.
struct route_view {
    std::size_t index;        ///< its position in the order added
    http::verb method;        ///< its method
    std::string_view pattern; ///< "/hello/{name}"
    const route_doc& doc;     ///< empty summary if never described
    bool stream;              ///< a stream route (add_stream())
    bool writes_stream;       ///< a stream_writer route
    bool websocket;           ///< answers Upgrade: websocket
    bool upgrades;            ///< answers other Upgrades (upgrade_handler)
};

/// What kind of handler a route has.
enum class route_kind {
    plain,       ///< void(const request&, response&)
    async,       ///< awaitable<>(const request&, response&)
    writer,      ///< awaitable<>(const request&, response_stream&)
    body_stream, ///< a stream_handler (add_stream())
    none,        ///< upgrades only: a request without Upgrade gets 426
};

class route_match;

/// The routing table.
/// @par Thread safety
/// Add routes before server::start(); after that the table is only read.
class router {
public:
    /// Adds a route whose handler `f` is a handler, an async_handler or a stream_writer (the
    /// shape of its call decides). Throws std::invalid_argument for a malformed pattern, a
    /// duplicate or an empty handler.
    template <class F> router& add(http::verb method, std::string_view pattern, F&& f) {
        handlers h;
        if constexpr (std::is_invocable_r_v<awaitable<>, F&, const request&, websocket&>)
            h.ws = websocket_handler(std::forward<F>(f));
        else if constexpr (std::is_invocable_r_v<awaitable<>, F&, const request&, upgraded_stream&>)
            h.raw = upgrade_handler(std::forward<F>(f));
        else if constexpr (std::is_invocable_r_v<awaitable<>, F&, const request&, response_stream&>)
            h.writer = stream_writer(std::forward<F>(f));
        else if constexpr (std::is_invocable_r_v<awaitable<>, F&, const request&, response&>)
            h.async = async_handler(std::forward<F>(f));
        else {
            static_assert(std::is_invocable_v<F&, const request&, response&>,
                          "a route handler is void(const request&, response&), or a coroutine "
                          "awaitable<>(const request&, X&) with X response, response_stream, "
                          "websocket or upgraded_stream");
            h.fn = handler(std::forward<F>(f));
        }
        return add_route(method, pattern, std::move(h));
    }
    /// Adds a stream route: its handler sees the body as it arrives (see stream_handler).
    router& add_stream(http::verb method, std::string_view pattern, stream_factory f);
    /// Describes the route added last, for GET /openapi.json:
    ///     r.get("/greet/{name}", greet).describe({.summary = "Greets NAME"});
    /// Throws std::logic_error if no route has been added.
    router& describe(route_doc doc);
    /// Gives the stream_writer route added last a heartbeat: when it has written nothing for
    /// `every`, the server sends one for it (see response_stream), so a quiet stream shows the
    /// peer it is alive. Throws std::logic_error if the last route is not a stream_writer one,
    /// std::invalid_argument if `every` is not positive.
    router& heartbeat(std::chrono::milliseconds every);
    /// Shorthand for add(GET, ...).
    template <class F> router& get(std::string_view pattern, F&& f) {
        return add(http::verb::get, pattern, std::forward<F>(f));
    }
    /// Shorthand for add(POST, ...).
    template <class F> router& post(std::string_view pattern, F&& f) {
        return add(http::verb::post, pattern, std::forward<F>(f));
    }

    /// Finds the route for a request: `target` is its request target as sent ("/a/b?q",
    /// or an absolute form "http://host/a/b"), whose path the patterns are matched against.
    route_match resolve(http::verb method, std::string_view target) const;

    /// What dispatch() did.
    struct outcome {
        bool by_route = false; ///< the route's handler answered (else the router did)
        std::string failure{}; ///< what a throwing handler said; res is then a 500
    };
    /// Answers `req`, resolved as `m` (req must have been made with m): the handler fills
    /// `res`, or the router fills it with 400, 404, 405 (with Allow), or 500 when the handler
    /// throws. Never throws. Only a plain route's handler runs here; the other kinds (see
    /// open_stream() and call()) are answered 500.
    outcome dispatch(const route_match& m, const request& req, response& res) const noexcept;

    /// The stream handler for a match of a stream route, or null if `m` is not one. Throws
    /// what the route's factory throws.
    std::unique_ptr<stream_handler> open_stream(const route_match& m) const;

    /// The coroutine of the websocket handler of the route matched by `m`. Throws
    /// std::logic_error if it has none.
    awaitable<> call(const route_match& m, const request& req, websocket& ws) const;
    /// The same for an upgrade_handler.
    awaitable<> call(const route_match& m, const request& req, upgraded_stream& up) const;
    /// The coroutine of an async route's handler for `req` (made with `m`), not started yet.
    /// Throws std::logic_error if `m` is not an async route, and what the handler's call throws.
    awaitable<> call(const route_match& m, const request& req, response& res) const;
    /// The same for a stream_writer route.
    awaitable<> call(const route_match& m, const request& req, response_stream& out) const;

    /// True if a route for exactly this method and pattern exists.
    bool contains(http::verb method, std::string_view pattern) const noexcept;
    /// The number of routes.
    std::size_t size() const noexcept { return routes_.size(); }
    /// Calls fn(route_view) for each route, in the order added.
    template <class Fn> void for_each(Fn&& fn) const {
        for (std::size_t i = 0; i < routes_.size(); ++i) {
            const auto& r = routes_[i];
            fn(route_view{i, r.method, r.pattern, r.doc, r.kind == route_kind::body_stream,
                          r.kind == route_kind::writer, static_cast<bool>(r.h.ws),
                          static_cast<bool>(r.h.raw)});
        }
    }

private:
    friend class route_match;
    struct segment {
        std::string text; // literal text, or the parameter name
        bool is_param = false;
    };
    struct handlers {
        handler fn;            // plain
        async_handler async;   // async
        stream_writer writer;  // writer
        stream_factory stream; // body_stream
        websocket_handler ws;  // Upgrade: websocket
        upgrade_handler raw;   // any other Upgrade
    };
    struct route {
        http::verb method;
        std::string pattern;
        std::vector<segment> segments;
        route_kind kind;
        handlers h;
        std::chrono::milliseconds heartbeat{0};
        route_doc doc;
    };
    // Adds the route, or gives an existing one for the same method and pattern the upgrade
    // handler (or the main handler) it lacks.
    router& add_route(http::verb method, std::string_view pattern, handlers h);
    std::vector<route> routes_;
    std::size_t last_ = 0; // the route added (or extended) last: describe() and heartbeat()
};

/// What router::resolve() found: the route with its decoded {param} values, or why none
/// answers. Valid while the router is.
class route_match {
public:
    /// A route will answer (a plain or a stream route).
    bool found() const noexcept { return route_ != nullptr; }
    /// The route found is a stream route (add_stream()).
    bool streams() const noexcept { return route_ && route_->kind == route_kind::body_stream; }
    /// The kind of the route found (plain when none is).
    route_kind kind() const noexcept { return route_ ? route_->kind : route_kind::plain; }
    /// The route found answers Upgrade: websocket.
    bool websocket() const noexcept { return route_ && route_->h.ws; }
    /// The route found answers other Upgrades.
    bool upgrades() const noexcept { return route_ && route_->h.raw; }
    /// The heartbeat of a stream_writer route (zero: none).
    std::chrono::milliseconds heartbeat() const noexcept {
        return route_ ? route_->heartbeat : std::chrono::milliseconds(0);
    }
    /// The percent-decoded value of {name}; empty if the route has none.
    std::string_view param(std::string_view name) const noexcept;
    /// The route's position in the order added, for per-route counters; nullopt if none.
    std::optional<std::size_t> index() const noexcept { return index_; }
    /// The path the patterns were matched against, still percent-encoded.
    std::string_view path() const noexcept { return path_; }

private:
    friend class router;
    enum class verdict { found, bad_encoding, not_found, method_not_allowed };
    const router::route* route_ = nullptr;
    std::optional<std::size_t> index_;
    verdict verdict_ = verdict::not_found;
    std::string_view path_;
    std::vector<std::pair<std::string_view, std::string>> params_;
    std::string allow_; // for 405: "GET, POST, HEAD"
};

} // namespace udshttp::service
